package node

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/proto"
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
		if x.n.Server() != moveServers[1] || !x.n.Registered() || !relayMoved(x.nd, moveServers[1]) {
			t.Errorf("%s: registered %v with %v; want registered with %v and the relay there (\"server changed\"); events %v",
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
// make the nodes check on it and move.
func TestServerDiesWhileRelayAllocates(t *testing.T) {
	connectThroughDeath(t, proto.TypeRelayAllocate)
}
