package natsbus

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/natpass/natpass/rendezvous"
)

// A server with another secret, and a nats-server with no route credentials at
// all, are refused by the cluster: the cluster's route counts leave them out,
// interest never crosses (requests both ways find no responders), and the refusal
// is what the cluster logs.
func TestRouteWithoutSecretRefused(t *testing.T) {
	logs := &logRecorder{}
	buses := cluster(t, 2, func(i int, c *Config) {
		if i == 0 {
			c.Log = logs.log
		}
	})
	b1, b2 := buses[0], buses[1]
	mustSubscribe(t, b1, "srv.01")
	mustSubscribe(t, b2, "peer.b2")
	waitInterest(t, b1, "peer.b2")

	rogue := start(t, Config{
		ClusterName: "t", ClusterListen: "127.0.0.1:0", Secret: secretB,
		ClusterPeers: []string{"nats://" + b1.ClusterAddr()},
	})
	waitFor(t, "the wrong secret's route refused", func() bool { return logs.count("authentication error") >= 1 })

	startBareRoute(t, b1.ClusterAddr())
	before := logs.count("authentication error")
	waitFor(t, "the bare route refused", func() bool { return logs.count("authentication error") > before })

	// The cluster counts only each other. (The intruders' own counts are not
	// checked: each keeps redialling, and counts its route for the moment between
	// the TCP connect and the refusal.)
	for name, n := range map[string]int{"b1": b1.Peers(), "b2": b2.Peers()} {
		if n != 1 {
			t.Errorf("%s has %d peers, want 1 (the other member only)", name, n)
		}
	}

	// The rogue sees no interest from the cluster...
	mustSubscribe(t, rogue, "srv.rogue")
	mustPublish(t, rogue, rendezvous.ClusterMessage{Subject: "peer.b2", Reply: "srv.rogue", Data: []byte("hi")})
	if m := recv(t, rogue); !m.NoResponders {
		t.Fatalf("rogue's request to the cluster: got %+v, want NoResponders", m)
	}
	// ...and the cluster none from the rogue.
	mustSubscribe(t, rogue, "peer.r")
	mustPublish(t, b1, rendezvous.ClusterMessage{Subject: "peer.r", Reply: "srv.01", Data: []byte("hi")})
	if m := recv(t, b1); !m.NoResponders {
		t.Fatalf("cluster's request to the rogue: got %+v, want NoResponders", m)
	}
	if s := b2.Stats(); s.Delivered != 0 {
		t.Fatalf("b2 received %d messages", s.Delivered)
	}
}

// startBareRoute starts a nats-server whose route to addr carries no credentials.
func startBareRoute(t *testing.T, addr string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		DontListen: false, Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		Cluster: server.ClusterOpts{Name: "t", Host: "127.0.0.1", Port: server.RANDOM_PORT},
		Routes:  server.RoutesFromStr("nats://" + addr),
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(waitLimit) {
		t.Fatal("bare nats-server not ready")
	}
	return s
}

// Neither the secret nor the derived route password appears in the logs of a
// cluster forming.
func TestSecretNotLogged(t *testing.T) {
	logs := &logRecorder{}
	cluster(t, 2, func(i int, c *Config) { c.Log = logs.log })
	_, password := routeCredentials(secretA, "t")
	all := logs.all()
	if all == "" {
		t.Fatal("no log lines: the test sees nothing")
	}
	for _, s := range []string{string(secretA), password} {
		if strings.Contains(all, s) {
			t.Fatalf("%q logged:\n%s", s, all)
		}
	}
}

// Configurations that cannot work are refused by Start with a named error.
func TestConfigRefused(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want error
	}{
		{"listen without secret", Config{ClusterListen: "127.0.0.1:0"}, ErrNoSecret},
		{"peers without listen", Config{ClusterPeers: []string{"nats://127.0.0.1:1"}, Secret: secretA}, ErrPeersNeedListen},
		{"short secret", Config{ClusterListen: "127.0.0.1:0", Secret: []byte("short")}, ErrShortSecret},
		{"dotted name", Config{ClusterName: "a.b"}, ErrClusterName},
		{"wildcard name", Config{ClusterName: "*"}, ErrClusterName},
		{"url and cluster", Config{URL: "nats://127.0.0.1:4222", ClusterListen: "127.0.0.1:0", Secret: secretA}, ErrExternalCluster},
		{"token without url", Config{Token: "x"}, ErrCredsNeedURL},
	}
	for _, c := range cases {
		if _, err := Start(c.cfg); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	for _, peer := range []string{"nats://user:pw@127.0.0.1:1", "127.0.0.1:1", "tls://127.0.0.1:1", "nats://127.0.0.1"} {
		cfg := Config{ClusterListen: "127.0.0.1:0", Secret: secretA, ClusterPeers: []string{peer}}
		if _, err := Start(cfg); err == nil || strings.Contains(err.Error(), "user:pw") {
			t.Errorf("peer %q: %v", peer, err)
		}
	}
}

// A route port already in use fails Start at once, with nats-server's reason.
func TestRoutePortInUse(t *testing.T) {
	b := start(t, Config{ClusterListen: "127.0.0.1:0", Secret: secretA})
	_, err := Start(Config{ClusterListen: b.ClusterAddr(), Secret: secretA})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start on a used port: %v", err)
	}
}

// The route password depends on the secret and the cluster name and is pinned:
// a change splits a cluster during a rolling upgrade, so it must be deliberate.
func TestRouteCredentials(t *testing.T) {
	user, pw := routeCredentials(secretA, "t")
	if _, pw2 := routeCredentials(secretB, "t"); pw2 == pw {
		t.Error("another secret, same password")
	}
	if _, pw3 := routeCredentials(secretA, "u"); pw3 == pw {
		t.Error("another cluster name, same password")
	}
	const golden = "9835c8c84aa8268e2452303e04253ddfa2cf57642bca24053ec06ca061a88aff" // python3 hmac.new(b"a"*32, b"natpass natsbus route password v1\x00t", sha256)
	if user != routeUser || pw != golden {
		t.Fatalf("routeCredentials(secretA, t) = %q, %q", user, pw)
	}
}
