package rendezvous

import (
	"errors"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/relayframe"
)

// Config is the server's configuration. The zero value of every optional field means
// its default (see the Default* constants); NewServer validates the rest.
type Config struct {
	// Secret is the HMAC-SHA256 key tickets are minted with (at least MinSecretLen
	// bytes). The relay-token key is derived from it (relayframe.DeriveTokenKey).
	Secret []byte
	// InsecureDev runs the server without a secret: tickets are still parsed and
	// their version and expiry checked, but their MAC is not, so anyone may register
	// under any peer ID and key, and the relay-token key is drawn from Seed. For
	// development and tests only; it must be set when Secret is empty and must not be
	// set with a Secret.
	InsecureDev bool
	// Seed seeds the server's ChaCha8 generator, which draws session cookies, the
	// per-pair key (PSKs and pair IDs), and in InsecureDev mode the relay-token key.
	// Cookies and PSKs are only as secret as the seed: a production driver fills it
	// from crypto/rand; a simulator derives it from its run seed.
	Seed [32]byte

	// Cluster makes the server a member of a cluster (PROTOCOL.md §12): peers it
	// does not hold are looked for on the cluster bus (HandleCluster, PollCluster,
	// PollInterest). Every server of a cluster needs the same Secret (tickets and
	// relay tokens verify everywhere, pair IDs and PSKs agree), or with InsecureDev
	// the same ClusterSecret.
	Cluster bool
	// ClusterSecret stands in for Secret as the source of the shared keys (relay
	// tokens, pairs) of an InsecureDev cluster. Ignored with a Secret.
	ClusterSecret []byte

	// Primary is the socket nodes register on. Required.
	Primary netip.AddrPort
	// AltPort is a second socket on Primary's IP with another port, for nat-probe
	// replies with ChangePort (PROTOCOL.md §5.5). Optional.
	AltPort netip.AddrPort
	// AltAddr is a socket on another IP, for nat-probe replies with ChangeAddress.
	// Optional. With a port other than Primary's it also serves "change both".
	// Both alternates are of Primary's IP family.
	AltAddr netip.AddrPort

	// OtherPrimary is the primary socket of the other IP family than Primary's, on a
	// dual-stack server (PROTOCOL.md §5.12, [SRV-1]): nodes may register on either
	// primary and bind their socket of the other family to the session with
	// register-family at the other one. OtherAltPort and OtherAltAddr are its
	// alternates, as AltPort and AltAddr are Primary's, of OtherPrimary's family.
	// All optional; the alternates need OtherPrimary. Every socket accepts every
	// message; registered names the alternates of the family of the socket reached.
	OtherPrimary, OtherAltPort, OtherAltAddr netip.AddrPort

	// WallClock anchors wall time (for ticket and relay-token expiry) to the
	// monotonic timeline: at instant At the Unix time was Unix seconds. The server
	// reads no clock; SetWallClock re-anchors it when the driver sees the wall clock
	// step.
	WallClock proto.WallClock

	// MaxPeers bounds the presence table (registered sessions).
	MaxPeers int
	// MaxSources bounds the per-source rate-limit table; the least recently seen
	// source is evicted when a new one arrives and the table is full.
	MaxSources int
	// KeepaliveInterval is what Registered asks nodes for (whole seconds, 1 s–1 h).
	KeepaliveInterval time.Duration
	// SessionTimeout is how long a session lives without a keepalive from its
	// registered address.
	SessionTimeout time.Duration
	// StartDelay is the introduction's start delay: how long after receiving it both
	// peers wait before punching, so that their first probes cross (≤ 65535 ms).
	// Zero: three times the longer of the two sides' measured round trips to the
	// server, within 150 ms and DefaultStartDelay (DefaultStartDelay while one is
	// not measured, the other side is on another server of a cluster, or the pair
	// will not punch by simultaneous open).
	StartDelay time.Duration
	// RelayTokenLifetime bounds a relay token's validity; a token also expires no
	// later than either peer's ticket.
	RelayTokenLifetime time.Duration
	// DisableRelay makes the server issue no relay tokens and refuse relay-only
	// introductions and relay-allocate requests with error code 8.
	DisableRelay bool
	// MaxRelayChannels bounds the relay's forwarding table (PROTOCOL.md §8.4), at
	// most relayframe.MaxTableChannels; a pair relaying both ways holds two.
	MaxRelayChannels int
	// MaxRelayChannelsPerSession bounds the channels one session holds.
	MaxRelayChannelsPerSession int
	// DisableRelayReadyNotice stops the server from answering a peer's latest
	// relay-allocate again, with "peer ready", when the other side's allocation links
	// the pair (the ready notice, PROTOCOL.md §8.2). The notice lets relaying start
	// without the peer polling; in the lab it brings the first message's p95 from
	// 1.1–5.6 s to about 0.7 s.
	DisableRelayReadyNotice bool
	// RelaySessionRate is each session's relay budget, all its channels together;
	// RelayServerRate the budget of everything the relay forwards. A frame costs its
	// length plus relayframe.FrameCostOverhead bytes. Burst must hold at least one
	// largest frame.
	RelaySessionRate, RelayServerRate relayframe.ByteRate

	// MaxRoomMembers caps a room's members (PROTOCOL.md §13), at most
	// proto.MaxRoomMembers; a join beyond it gets error 12.
	MaxRoomMembers int
	// MaxRooms bounds the room table, empty rooms included; MaxRoomsPerSession the
	// rooms one session is in. A join beyond either gets error 7.
	MaxRooms, MaxRoomsPerSession int
	// RoomTTL is how long an empty room is kept before it is forgotten ([ROOM-4]).
	RoomTTL time.Duration

	// SourceRate limits what each source address (an IPv4 address, or an IPv6 /64)
	// may ask that costs the server work or a reply before it is authenticated:
	// register without a valid admission token, STUN Binding, and requests with an
	// unknown cookie. A register it refuses is answered with retry (PROTOCOL.md
	// [SRV-15]).
	SourceRate Rate
	// SourceTokenRate limits each source's registers that carry a valid admission
	// token (proven: the sender receives at its address). It is what a busy shared
	// address (a carrier-grade NAT's) registers at; a register it refuses gets a
	// fresh retry and its node waits for its backoff.
	SourceTokenRate Rate
	// OpenRegisterRate is the server-wide budget of registers without a valid token
	// from sources the server has no entry for. Beyond it the server is under load:
	// such registers get a retry and cost no per-source entry and no ticket MAC.
	OpenRegisterRate Rate
	// SessionRate limits each session's requests (keepalive, nat-probe, introduce).
	SessionRate Rate
	// UnauthRate is the server-wide budget of replies to senders without a session
	// cookie (registered, retry, errors, STUN responses), whatever their source.
	UnauthRate Rate
	// NoSessionRate is the server-wide budget of requests with an unknown session
	// cookie (answered with error 5, no larger than the request): after a restart,
	// every node's next keepalive. It has no per-source part, so thousands of nodes
	// behind one address all learn at once that they must register again.
	NoSessionRate Rate
}

// Rate is a token bucket in GCRA form: on average one request per Interval, at most
// Burst in a row after a quiet period.
type Rate struct {
	Interval time.Duration
	Burst    int
}

// Defaults for the optional Config fields.
const (
	DefaultMaxPeers          = 16384
	DefaultMaxSources        = 4096
	DefaultKeepaliveInterval = 25 * time.Second // DESIGN §6.1
	DefaultSessionTimeout    = 90 * time.Second // three missed keepalives and a margin
	// DefaultStartDelay leaves room for a lost introduction copy to be repeated
	// (every 200 ms) and still name the same start instant.
	DefaultStartDelay         = 500 * time.Millisecond
	DefaultRelayTokenLifetime = 10 * time.Minute
	// The relay's table holds 8192 relayed pairs; a session relays to up to 8 peers
	// (a refresh keeps its channel, a re-introduction with a new pair ID takes one
	// more until the old one expires).
	DefaultMaxRelayChannels           = 16384
	DefaultMaxRelayChannelsPerSession = 16
	// Rooms (PROTOCOL.md §13): 4096 rooms of up to 16 members hold 64 Ki
	// memberships, four per session of a full presence table.
	DefaultMaxRoomMembers     = proto.MaxRoomMembers
	DefaultMaxRooms           = 4096
	DefaultMaxRoomsPerSession = 8
	DefaultRoomTTL            = 5 * time.Minute
)

// Default rates. A node sends a register, a keepalive every 25 s, a burst of about a
// dozen nat-probes while it measures its NAT, and an introduce per connection; the
// session budget leaves room for that and for retransmissions.
var (
	DefaultSourceRate = Rate{Interval: 100 * time.Millisecond, Burst: 20}
	// DefaultSourceTokenRate: 5000/s, burst 2000. A proven source receives at its
	// address, so it may have more than an unproven one (10,000 nodes behind one
	// address register in about 2 s of it), but at most a quarter of the server-wide
	// reply budget: one address (an attacker's own) cannot take the server from the
	// rest.
	DefaultSourceTokenRate = Rate{Interval: 200 * time.Microsecond, Burst: 2000}
	// DefaultOpenRegisterRate: 2000/s, burst 1000, of ticket checks for sources not
	// yet seen, about 0.5 % of a core; beyond it every new source proves itself
	// first (one round trip more), as WireGuard demands cookies under load.
	DefaultOpenRegisterRate = Rate{Interval: 500 * time.Microsecond, Burst: 1000}
	DefaultSessionRate      = Rate{Interval: 50 * time.Millisecond, Burst: 40}
	DefaultUnauthRate       = Rate{Interval: 50 * time.Microsecond, Burst: 2000}
	// DefaultNoSessionRate: 10,000/s, burst 10,000. After a restart 100,000 nodes
	// keeping alive every 25 s send 4,000 dead cookies a second; each answer is a
	// map lookup and a datagram no larger than its request.
	DefaultNoSessionRate = Rate{Interval: 100 * time.Microsecond, Burst: 10000}
	// Relay budgets (PROTOCOL.md §8.4): about 33 Mbit/s per session, 540 Mbit/s for
	// the server, so one client cannot take the relay from the others.
	DefaultRelaySessionRate = relayframe.ByteRate{BytesPerSecond: 4 << 20, Burst: 512 << 10}
	DefaultRelayServerRate  = relayframe.ByteRate{BytesPerSecond: 64 << 20, Burst: 4 << 20}
)

// Errors of NewServer.
var (
	ErrNoSecret        = errors.New("rendezvous: no secret: set Config.Secret, or InsecureDev for development")
	ErrShortSecret     = errors.New("rendezvous: secret shorter than MinSecretLen")
	ErrSecretAndDev    = errors.New("rendezvous: InsecureDev set together with a Secret")
	ErrNoPrimary       = errors.New("rendezvous: Config.Primary is not set")
	ErrBadAltSocket    = errors.New("rendezvous: AltPort must share Primary's IP with another port; AltAddr must have another IP of Primary's family")
	ErrBadOtherSocket  = errors.New("rendezvous: OtherPrimary must be of the other IP family than Primary; OtherAltPort must share its IP with another port, OtherAltAddr have another IP of its family; neither without OtherPrimary")
	ErrBadConfigValues = errors.New("rendezvous: a Config duration, bound or rate is out of range")
	ErrClusterNoSecret = errors.New("rendezvous: an InsecureDev cluster needs a ClusterSecret (servers must derive the same keys)")
)

// withDefaults returns c with defaults filled in, or the first problem found.
func (c Config) withDefaults() (Config, error) {
	switch {
	case len(c.Secret) == 0 && !c.InsecureDev:
		return c, ErrNoSecret
	case len(c.Secret) > 0 && c.InsecureDev:
		return c, ErrSecretAndDev
	case len(c.Secret) > 0 && len(c.Secret) < MinSecretLen:
		return c, ErrShortSecret
	case !c.Primary.IsValid():
		return c, ErrNoPrimary
	case c.Cluster && c.InsecureDev && len(c.ClusterSecret) == 0:
		return c, ErrClusterNoSecret
	}
	if err := c.checkSockets(); err != nil {
		return c, err
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	defRate := func(r *Rate, v Rate) {
		if *r == (Rate{}) {
			*r = v
		}
	}
	defInt(&c.MaxPeers, DefaultMaxPeers)
	defInt(&c.MaxSources, DefaultMaxSources)
	def(&c.KeepaliveInterval, DefaultKeepaliveInterval)
	def(&c.SessionTimeout, DefaultSessionTimeout)
	def(&c.StartDelay, DefaultStartDelay)
	def(&c.RelayTokenLifetime, DefaultRelayTokenLifetime)
	defRate(&c.SourceRate, DefaultSourceRate)
	defRate(&c.SourceTokenRate, DefaultSourceTokenRate)
	defRate(&c.OpenRegisterRate, DefaultOpenRegisterRate)
	defRate(&c.SessionRate, DefaultSessionRate)
	defRate(&c.UnauthRate, DefaultUnauthRate)
	defRate(&c.NoSessionRate, DefaultNoSessionRate)
	defInt(&c.MaxRelayChannels, DefaultMaxRelayChannels)
	defInt(&c.MaxRelayChannelsPerSession, DefaultMaxRelayChannelsPerSession)
	defInt(&c.MaxRoomMembers, DefaultMaxRoomMembers)
	defInt(&c.MaxRooms, DefaultMaxRooms)
	defInt(&c.MaxRoomsPerSession, DefaultMaxRoomsPerSession)
	def(&c.RoomTTL, DefaultRoomTTL)
	if c.RelaySessionRate == (relayframe.ByteRate{}) {
		c.RelaySessionRate = DefaultRelaySessionRate
	}
	if c.RelayServerRate == (relayframe.ByteRate{}) {
		c.RelayServerRate = DefaultRelayServerRate
	}
	return c, c.checkValues()
}

// checkValues checks the durations, bounds and rates once defaults are filled in.
func (c *Config) checkValues() error {
	okRate := func(r Rate) bool { return r.Interval > 0 && r.Burst >= 1 }
	if c.MaxPeers < 1 || c.MaxPeers > 1<<24 || c.MaxSources < 1 || c.MaxSources > 1<<24 ||
		c.KeepaliveInterval < time.Second || c.KeepaliveInterval > proto.MaxKeepaliveS*time.Second ||
		c.SessionTimeout <= c.KeepaliveInterval ||
		c.StartDelay < 0 || c.StartDelay > 65535*time.Millisecond ||
		c.RelayTokenLifetime < time.Second ||
		!okRate(c.SourceRate) || !okRate(c.SessionRate) || !okRate(c.UnauthRate) || !okRate(c.NoSessionRate) ||
		!okRate(c.SourceTokenRate) || !okRate(c.OpenRegisterRate) ||
		c.MaxRelayChannels < 1 || c.MaxRelayChannels > relayframe.MaxTableChannels ||
		c.MaxRelayChannelsPerSession < 1 ||
		c.MaxRoomMembers < 1 || c.MaxRoomMembers > proto.MaxRoomMembers ||
		c.MaxRooms < 1 || c.MaxRooms > 1<<20 || c.MaxRoomsPerSession < 1 || c.MaxRoomsPerSession > 256 ||
		c.RoomTTL <= 0 {
		return ErrBadConfigValues
	}
	return nil
}

// checkSockets checks the roles of the sockets against each other (Primary is set).
func (c *Config) checkSockets() error {
	if !validAlternates(c.Primary, c.AltPort, c.AltAddr) {
		return ErrBadAltSocket
	}
	if c.OtherPrimary.IsValid() && (isIPv4(c.OtherPrimary) == isIPv4(c.Primary) || !validAlternates(c.OtherPrimary, c.OtherAltPort, c.OtherAltAddr)) ||
		!c.OtherPrimary.IsValid() && (c.OtherAltPort.IsValid() || c.OtherAltAddr.IsValid()) {
		return ErrBadOtherSocket
	}
	return nil
}

// validAlternates reports whether altPort (same IP as primary, another port) and
// altAddr (another IP of primary's family) fit primary; a zero one always fits.
func validAlternates(primary, altPort, altAddr netip.AddrPort) bool {
	prim := primary.Addr().Unmap()
	return (!altPort.IsValid() || altPort.Addr().Unmap() == prim && altPort.Port() != primary.Port()) &&
		(!altAddr.IsValid() || altAddr.Addr().Unmap() != prim && isIPv4(altAddr) == isIPv4(primary))
}

// isIPv4 reports whether a is an IPv4 address (an IPv4-mapped IPv6 one included):
// the IP family, as the wire spells it (PROTOCOL.md §4.1).
func isIPv4(a netip.AddrPort) bool { return a.Addr().Unmap().Is4() }
