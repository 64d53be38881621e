package node

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/curve25519"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rendezvous"
	"github.com/natpass/natpass/rudp"
)

var (
	moveServers = []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:3478"), netip.MustParseAddrPort("198.51.100.2:3478")}
	moveAlts    = []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:3479"), netip.MustParseAddrPort("198.51.100.2:3479")}
	moveA       = netip.MustParseAddrPort("192.0.2.10:40000")
	moveB       = netip.MustParseAddrPort("203.0.113.20:40000")
	moveSecret  = []byte("natpass node failover test secret")
)

const moveWall = 1798761600

// moveWorld is two nodes on open addresses, relay forced, listing two independent
// servers that share the ticket secret, on machinetest.Net.
type moveWorld struct {
	t        *testing.T
	net      *machinetest.Net
	srvs     []*rendezvous.Server
	a, b     *Node
	na, nb   *machinetest.Node
	sent     int // messages a sent b
	received int // of those, delivered to b in order
	bad      int // delivered out of order or repeated
}

// newMoveWorld starts both servers (s2's wall clock skewed by skew2, which can
// make the tokens s1 minted expired there) and both nodes, measures their NATs
// and connects them through s1's relay.
func newMoveWorld(t *testing.T, skew2 time.Duration) *moveWorld {
	w := startMoveWorld(t, skew2)
	w.a.Connect(w.net.Now, "b")
	w.net.Drain()
	w.run(5 * time.Second)
	w.stream(20, 20*time.Millisecond)
	if ka, _ := w.a.Peer("b"); ka != proto.PathRelay || w.received != w.sent {
		t.Fatalf("no relayed session to test on: path %v, %d of %d messages; events a %v, b %v", ka, w.received, w.sent, w.na.Events, w.nb.Events)
	}
	return w
}

// startMoveWorld starts both servers and both nodes (tune, if given, adjusts each
// node's Config) and measures their NATs.
func startMoveWorld(t *testing.T, skew2 time.Duration, tune ...func(*Config)) *moveWorld {
	w := &moveWorld{t: t, net: machinetest.NewNet(t, 0, 10*time.Millisecond)}
	for i := range moveServers {
		wall := time.Unix(moveWall, 0)
		if i == 1 {
			wall = wall.Add(skew2)
		}
		srv, err := rendezvous.NewServer(rendezvous.Config{Secret: moveSecret, Seed: [32]byte{byte(9 + i)},
			Primary: moveServers[i], AltPort: moveAlts[i], WallClock: proto.WallClock{Time: wall}})
		if err != nil {
			t.Fatal(err)
		}
		w.srvs = append(w.srvs, srv)
		w.net.Add(fmt.Sprintf("s%d", i+1), machinetest.Of(srv), moveServers[i], moveAlts[i])
	}
	w.a, w.b = moveNode("a", moveA, 1, tune...), moveNode("b", moveB, 2, tune...)
	w.na, w.nb = w.net.Add("a", machinetest.Of(w.a), moveA), w.net.Add("b", machinetest.Of(w.b), moveB)
	w.a.Start(0)
	w.b.Start(0)
	w.net.Drain()
	w.run(15 * time.Second)
	return w
}

func moveNode(id string, local netip.AddrPort, seed byte, tune ...func(*Config)) *Node {
	priv := [32]byte{1: seed, 2: 0x5a}
	pub, _ := curve25519.X25519(priv[:], curve25519.Basepoint)
	tk := proto.Ticket{PeerID: []byte(id), ExpiryUnix: moveWall + 24*3600}
	copy(tk.PublicKey[:], pub)
	cfg := Config{ID: []byte(id), Ticket: rendezvous.MintTicket(moveSecret, tk),
		PrivateKey: priv, Local: local, Servers: moveServers, Seed: [32]byte{seed, 1}, Relay: RelayForce,
		Rand: rand.NewChaCha8([32]byte{seed, 2}), Wall: proto.WallClock{Time: time.Unix(moveWall, 0)},
		AESHardware: func() bool { return false }}
	for _, f := range tune {
		f(&cfg)
	}
	return New(cfg)
}

// run steps the net for d, answering the nodes' socket requests and counting b's
// messages.
func (w *moveWorld) run(d time.Duration) {
	for end := w.net.Now.Add(d); w.net.Now < end; {
		w.net.RunUntil(min(end, w.net.Now.Add(20*time.Millisecond)))
		for _, x := range []struct {
			nd *machinetest.Node
			n  *Node
		}{{w.na, w.a}, {w.nb, w.b}} {
			for i, e := range x.nd.Events {
				switch e := e.(type) {
				case EventOpenSockets:
					x.nd.Events[i] = nil
					addrs := make([]netip.AddrPort, e.N)
					for j := range addrs {
						addrs[j] = netip.AddrPortFrom(x.nd.Addrs[0].Addr(), x.nd.Addrs[0].Port()+uint16(len(x.nd.Addrs)))
						x.nd.Addrs = append(x.nd.Addrs, addrs[j])
					}
					x.n.HandleSockets(w.net.Now, e.Tag, addrs)
					w.net.Drain()
				case EventMessage:
					x.nd.Events[i] = nil
					if string(e.Data) == fmt.Sprint("message ", w.received) {
						w.received++
					} else {
						w.bad++
					}
				}
			}
		}
	}
}

// stream has a send n messages to b, one every interval.
func (w *moveWorld) stream(n int, interval time.Duration) {
	for range n {
		if err := w.a.Send(w.net.Now, "b", 0, rudp.ReliableOrdered, fmt.Append(nil, "message ", w.sent)); err != nil {
			w.t.Fatal(err)
		}
		w.sent++
		w.net.Drain()
		w.run(interval)
	}
}

// relayMoved reports whether nd's events say the relay is back, on server, after a
// server change.
func relayMoved(nd *machinetest.Node, server netip.AddrPort) bool {
	return slices.ContainsFunc(nd.Events, func(e any) bool {
		p, ok := e.(EventPathChanged)
		return ok && p.Kind == proto.PathRelay && p.Reason == "server changed" && p.Remote == server
	})
}

// checkMoved checks that both nodes are on s2 with their relay, every message
// arrived once and in order, and no new handshake was made.
func (w *moveWorld) checkMoved(handshakes int) {
	t := w.t
	t.Helper()
	for _, x := range []struct {
		nd *machinetest.Node
		n  *Node
	}{{w.na, w.a}, {w.nb, w.b}} {
		if x.n.Server() != moveServers[1] || !x.n.Registered() || !relayMoved(x.nd, moveServers[1]) {
			t.Errorf("%s: registered %v with %v; want registered with %v and the relay there (\"server changed\")",
				x.nd.Name, x.n.Registered(), x.n.Server(), moveServers[1])
		}
	}
	if w.received != w.sent || w.bad != 0 {
		t.Errorf("b got %d of %d in order, %d out of order or repeated", w.received, w.sent, w.bad)
	}
	if h := w.a.Stats().Handshakes + w.b.Stats().Handshakes; h != handshakes {
		t.Errorf("%d new handshakes: the session should have moved as it was", h-handshakes)
	}
	if st := w.srvs[1].Stats(); st.Relay.Forwarded == 0 {
		t.Error("s2 forwarded nothing")
	}
}

// A server that says it is moving (code 11, tagged with each node's session) has
// both nodes move at once: they register with s2, allocate their channels there
// with the relay token they hold, and the stream goes on with nothing lost and
// no new handshake.
func TestMovingMovesRelayedPair(t *testing.T) {
	w := newMoveWorld(t, 0)
	handshakes := w.a.Stats().Handshakes + w.b.Stats().Handshakes
	for _, x := range []struct {
		nd *machinetest.Node
		n  *Node
	}{{w.na, w.a}, {w.nb, w.b}} {
		moving := (&proto.Error{TxID: proto.SessionTag(&x.n.srv.session), Code: proto.CodeMoving}).Append(nil)
		if err := w.net.Deliver(x.nd, x.nd.Addrs[0], moveServers[0], moving); err != nil {
			t.Fatal(err)
		}
		if x.n.Server() != moveServers[1] {
			t.Fatalf("%s: still with %v after code 11", x.nd.Name, x.n.Server())
		}
	}
	w.stream(100, 20*time.Millisecond)
	w.run(3 * time.Second)
	w.checkMoved(handshakes)
	if st := w.srvs[1].Stats(); relayRefusals(st) != 0 || st.Introductions != 0 {
		t.Errorf("s2: %d relay refusals, %d introductions; want the tokens taken as they were", relayRefusals(st), st.Introductions)
	}
}

// A server that refuses the token the nodes hold (here: s2's clock is 20 minutes
// ahead, past the token's expiry; a cluster's servers would agree) makes them ask
// it for a fresh introduction, whose new token opens the relay there. The session
// and every message survive.
func TestRefusedTokenAfterMoveAsksForIntroduction(t *testing.T) {
	w := newMoveWorld(t, 20*time.Minute)
	handshakes := w.a.Stats().Handshakes + w.b.Stats().Handshakes
	w.net.Drop = func(tx proto.Transmit) bool { return tx.To == moveServers[0] || tx.From == moveServers[0] }
	w.stream(200, 20*time.Millisecond)
	w.run(5 * time.Second)
	w.checkMoved(handshakes)
	if st := w.srvs[1].Stats(); st.Relay.DeniedExpiredToken == 0 || st.Introductions == 0 {
		t.Errorf("s2: %d expired tokens refused, %d introductions; want the old token refused and a fresh introduction", st.Relay.DeniedExpiredToken, st.Introductions)
	}
}

func relayRefusals(st rendezvous.Stats) uint64 {
	r := st.Relay
	return r.DeniedDisabled + r.DeniedBadToken + r.DeniedExpiredToken + r.DeniedForeignToken + r.DeniedPeerKey
}

// Every server gone under a relayed pair: with no path left the connection still
// ends at its idle timeout (it must not wait for ever for a server to come back),
// and the application hears EventPeerClosed on both sides.
func TestRelayedPairWithNoServerLeftEnds(t *testing.T) {
	w := newMoveWorld(t, 0)
	w.net.Drop = func(tx proto.Transmit) bool {
		return slices.Contains(moveServers, tx.To) || slices.Contains(moveServers, tx.From) ||
			slices.Contains(moveAlts, tx.To) || slices.Contains(moveAlts, tx.From)
	}
	w.run(45 * time.Second) // past rudp's 30 s idle timeout
	for _, nd := range []*machinetest.Node{w.na, w.nb} {
		closed := false
		for _, e := range nd.Events {
			if c, ok := e.(EventPeerClosed); ok && c.Reason.Code == rudp.CodeIdleTimeout {
				closed = true
			}
		}
		if !closed {
			t.Errorf("%s: no EventPeerClosed for the idle timeout; events %v", nd.Name, nd.Events)
		}
	}
}
