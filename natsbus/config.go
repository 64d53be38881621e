package natsbus

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/natpass/natpass/rendezvous"
)

// Config configures a Bus. Either URL is set (an external NATS) or the bus embeds a
// nats-server, alone or joined to others by routes.
type Config struct {
	// ClusterName names the cluster: the embedded nats-server's cluster name and the
	// subject prefix (natpass.<ClusterName>.) that keeps two natpass clusters on one
	// NATS apart. One subject token of letters, digits, '-' and '_'; "" means
	// DefaultClusterName.
	ClusterName string

	// ClusterListen is HOST:PORT of the embedded server's route listener; port 0
	// picks a free port (see ClusterAddr). "" means no listener, which is only
	// allowed without ClusterPeers: nats-server routes nothing without one.
	ClusterListen string
	// ClusterPeers are route URLs (nats://host:port) of other servers of the
	// cluster, without credentials (the bus adds those derived from Secret). The
	// cluster gossips its members, so one reachable peer is enough.
	ClusterPeers []string
	// Secret is the cluster secret (--cluster-secret-file), at least
	// rendezvous.MinSecretLen bytes. Required with ClusterListen or ClusterPeers:
	// routes are authenticated with credentials derived from it.
	Secret []byte

	// URL, when set, is an external NATS (nats://[user:pass@]host:port, several
	// separated by commas) used instead of an embedded server; ClusterListen and
	// ClusterPeers must then be empty.
	URL string
	// Token and CredsFile authenticate to the external NATS (a token, or a .creds
	// file with a user JWT and nkey seed); user and password go in URL.
	Token     string
	CredsFile string

	// InboxSize bounds Inbox (messages); 0 means DefaultInboxSize.
	InboxSize int
	// Log, when set, receives the bus's and the embedded server's notices, warnings
	// and errors, one line each. nil means silence.
	Log func(string)
}

// Defaults.
const (
	DefaultClusterName = "default"
	// DefaultInboxSize: about a second of cluster traffic for a busy server at
	// a few thousand cluster messages per second.
	DefaultInboxSize = 4096
)

// routeUser is the user every route presents. It is a constant, not derived from
// the secret: nats-server logs the user of each route it refuses, and a derived
// user would put a verifier of the secret in those logs.
const routeUser = "natpass-route"

// routePasswordLabel names the route password derived from Config.Secret.
// Changing it splits a cluster in two during a rolling upgrade.
const routePasswordLabel = "natpass natsbus route password v1"

// Errors of Start for a Config that cannot work; compare with errors.Is.
var (
	ErrClusterName     = errors.New("natsbus: cluster name must be one subject token of letters, digits, '-' and '_'")
	ErrNoSecret        = errors.New("natsbus: a cluster (ClusterListen or ClusterPeers) needs a secret: unauthenticated routes are refused")
	ErrShortSecret     = fmt.Errorf("natsbus: cluster secret shorter than %d bytes", rendezvous.MinSecretLen)
	ErrPeersNeedListen = errors.New("natsbus: ClusterPeers needs ClusterListen (nats-server opens no routes without a route listener)")
	ErrCredsNeedURL    = errors.New("natsbus: Token and CredsFile are for an external NATS (URL)")
	ErrExternalCluster = errors.New("natsbus: URL (external NATS) excludes ClusterListen and ClusterPeers")
)

// normalized checks c and fills its defaults.
func (c Config) normalized() (Config, error) {
	if c.ClusterName == "" {
		c.ClusterName = DefaultClusterName
	}
	if !validToken(c.ClusterName) {
		return c, ErrClusterName
	}
	if c.InboxSize <= 0 {
		c.InboxSize = DefaultInboxSize
	}
	clustered := c.ClusterListen != "" || len(c.ClusterPeers) > 0
	switch {
	case c.URL != "" && clustered:
		return c, ErrExternalCluster
	case c.URL != "":
		return c, nil
	case c.Token != "" || c.CredsFile != "":
		return c, ErrCredsNeedURL
	case len(c.ClusterPeers) > 0 && c.ClusterListen == "":
		return c, ErrPeersNeedListen
	case clustered && len(c.Secret) == 0:
		return c, ErrNoSecret
	case clustered && len(c.Secret) < rendezvous.MinSecretLen:
		return c, ErrShortSecret
	}
	return c, nil
}

// validToken: a NATS subject token safe to use as a cluster name too.
func validToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
		if !ok {
			return false
		}
	}
	return true
}

// routeCredentials gives the route user and password of a cluster: the password
// is HMAC-SHA256(secret, routePasswordLabel || 0 || clusterName) in hex. Each server
// computes the same pair, so every server accepts the others' routes, and a server
// with another secret (or none) is refused.
func routeCredentials(secret []byte, clusterName string) (user, password string) {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(routePasswordLabel))
	m.Write([]byte{0})
	m.Write([]byte(clusterName))
	return routeUser, hex.EncodeToString(m.Sum(nil))
}

// listenHostPort splits ClusterListen for nats-server, where port 0 means "no
// listener" and -1 "any free port".
func listenHostPort(hostport string) (string, int, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, fmt.Errorf("natsbus: ClusterListen %q: %w", hostport, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("natsbus: ClusterListen %q: bad port", hostport)
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}

// routeURLs parses ClusterPeers and puts the derived credentials in each URL.
func routeURLs(peers []string, user, password string) ([]*url.URL, error) {
	urls := make([]*url.URL, 0, len(peers))
	for _, p := range peers {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.Scheme != "nats" || u.Host == "" || u.Port() == "" {
			return nil, fmt.Errorf("natsbus: cluster peer %q: want nats://host:port", p)
		}
		if u.User != nil {
			return nil, fmt.Errorf("natsbus: cluster peer %q: credentials come from the cluster secret, not the URL", u.Redacted())
		}
		u.User = url.UserPassword(user, password)
		urls = append(urls, u)
	}
	return urls, nil
}
