package node

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// killS1At has s1 die for good (every datagram to or from it lost) at the first
// datagram sent to it of type kind, that one included.
func (w *moveWorld) killS1At(kind proto.MsgType) {
	dead := false
	s1 := []netip.AddrPort{moveServers[0], moveAlts[0]}
	w.net.Drop = func(tx proto.Transmit) bool {
		if h, _, err := proto.ParseHeader(tx.Payload); !dead && err == nil && h.Type == kind && tx.To == moveServers[0] {
			dead = true
		}
		return dead && (slices.Contains(s1, tx.To) || slices.Contains(s1, tx.From))
	}
}

// connectThroughDeath connects a to b with s1 dying at the first datagram of type
// kind (the relay is forced), then streams 50 messages; it checks that both nodes
// moved to s2 and carry on there, every message arriving once and in order. Within
// 10 s: a node that waits for its keepalives to go unanswered sits on the dead
// server for 75 s.
func connectThroughDeath(t *testing.T, kind proto.MsgType) {
	w := startMoveWorld(t, 0)
	w.killS1At(kind)
	w.a.Connect(w.net.Now, "b")
	w.net.Drain()
	w.run(10 * time.Second)
	w.stream(50, 20*time.Millisecond)
	w.run(2 * time.Second)
	for _, x := range []struct {
		nd *machinetest.Node
		n  *Node
	}{{w.na, w.a}, {w.nb, w.b}} {
		onS2 := slices.ContainsFunc(x.nd.Events, func(e any) bool {
			p, ok := e.(EventPathChanged)
			return ok && p.Kind == proto.PathRelay && p.Remote == moveServers[1]
		})
		if x.n.Server() != moveServers[1] || !x.n.Registered() || !onS2 {
			t.Errorf("%s: registered %v with %v; want registered with %v and the relay there; events %v",
				x.nd.Name, x.n.Registered(), x.n.Server(), moveServers[1], x.nd.Events)
		}
	}
	if w.received != w.sent || w.bad != 0 {
		t.Errorf("b got %d of %d in order, %d out of order or repeated", w.received, w.sent, w.bad)
	}
}

// Issue 14: the server dies with the first handshake in flight over the relay it
// has just made ready. Nothing is in flight for a relay stall to notice; the
// unfinished handshake itself makes each node check on its server, move to the
// next and allocate again with the token it holds, and the handshake completes
// there.
func TestServerDiesWithRelayHandshakeInFlight(t *testing.T) {
	connectThroughDeath(t, proto.TypeRelaySend)
}

// The server dies as the relay is being allocated: the unanswered relay-allocates
// make the nodes check on it and move. Their channels were never linked, so each
// asks the new server for a new introduction (the pair its new registration
// makes: new PSK and token) and both start over from it (rebase).
func TestServerDiesWhileRelayAllocates(t *testing.T) {
	connectThroughDeath(t, proto.TypeRelayAllocate)
}

// The server dies with b's copy of the introduction lost (every copy: the server
// repeated it until it died): a has a peer for b, b knows nothing of a and asks
// for it, which the dead server leaves unanswered. Both move to s2; a asks for a
// new introduction (its relay channel was never linked), b's request goes there
// too, and s2 introduces them as the pair of their new registrations: b meets a
// for the first time, a starts its peer over from it (Stats.Rebased), and the
// messages a queued before arrive.
func TestPeerWhoseIntroductionDiedWithServerMeetsOnNext(t *testing.T) {
	w := startMoveWorld(t, 0)
	w.killS1At(proto.TypeRelayAllocate)
	kill := w.net.Drop
	w.net.Drop = func(tx proto.Transmit) bool {
		h, _, err := proto.ParseHeader(tx.Payload)
		lostCopy := err == nil && h.Type == proto.TypeIntroduction && tx.From == moveServers[0] && tx.To == moveB
		return kill(tx) || lostCopy
	}
	w.a.Connect(w.net.Now, "b")
	w.net.Drain()
	w.run(100 * time.Millisecond)
	if slices.Contains(w.b.Peers(), "a") || !slices.Contains(w.a.Peers(), "b") {
		t.Fatalf("peers a %v, b %v: want a to know b and b nothing", w.a.Peers(), w.b.Peers())
	}
	w.b.Connect(w.net.Now, "a") // to the dead server: b notices it and moves
	w.net.Drain()
	for i := range 10 { // queued before any session
		if err := w.a.Send(w.net.Now, "b", 0, rudp.ReliableOrdered, fmt.Append(nil, "message ", i)); err != nil {
			t.Fatal(err)
		}
		w.sent++
	}
	w.run(10 * time.Second)
	w.stream(20, 20*time.Millisecond)
	w.run(2 * time.Second)
	if w.received != w.sent || w.bad != 0 {
		t.Errorf("b got %d of %d in order, %d out of order or repeated; events a %v, b %v", w.received, w.sent, w.bad, w.na.Events, w.nb.Events)
	}
	if w.a.Stats().Rebased != 1 || w.a.Server() != moveServers[1] || w.b.Server() != moveServers[1] {
		t.Errorf("a rebased %d peers (want 1); servers a %v, b %v", w.a.Stats().Rebased, w.a.Server(), w.b.Server())
	}
}
