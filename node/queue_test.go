package node

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/crypto/curve25519"

	"github.com/natpass/natpass/proto"
)

// registeredNode is a node the (fake) server admitted, its NAT measurement under way.
func registeredNode(t *testing.T) *Node {
	n := newTestNode()
	reg := (&proto.Registered{TxID: startNode(t, n), Observed: testLocal, Keepalive: 25}).Append(nil)
	if err := n.HandleDatagram(1, testLocal, testServer, reg); err != nil {
		t.Fatal(err)
	}
	drainTx(n, 1)
	for _, ok := n.PollEvent(); ok; _, ok = n.PollEvent() {
	}
	return n
}

// The signaling queue is bounded: an owner that stops draining transmits loses the
// excess, counted, and the node goes on (every such message has a timer that
// repeats it).
func TestSignalQueueIsBoundedAndCounted(t *testing.T) {
	n := registeredNode(t)
	const calls = 3 * maxSignalQueue
	for range calls {
		n.NetworkChanged(2) // one keepalive each; nobody drains
	}
	if got := len(drainTx(n, 2)); got > maxSignalQueue+8 { // + the classifier's probes
		t.Fatalf("%d datagrams queued, bound %d", got, maxSignalQueue)
	}
	if d := n.Stats().QueueDrops; d < calls-maxSignalQueue {
		t.Fatalf("QueueDrops %d, want at least %d", d, calls-maxSignalQueue)
	}
	// Still alive: the keepalive timer sends again.
	now := n.Deadline()
	n.HandleTimeout(now)
	if len(drainTx(n, now)) == 0 {
		t.Fatal("nothing sent after the queue overflowed")
	}
}

// Introductions asked for and not yet answered are bounded, before the NAT report
// and after it alike; one over the bound is refused with an event, never dropped.
func TestPendingIntroductionsAreBounded(t *testing.T) {
	n := registeredNode(t)
	refused := 0
	for i := range maxPendingIntros + 5 {
		n.Connect(3, fmt.Sprintf("peer-%d", i))
		for e, ok := n.PollEvent(); ok; e, ok = n.PollEvent() {
			if pe, isErr := e.(EventPeerError); isErr && pe.Code == proto.CodeRateLimited {
				refused++
			}
		}
	}
	if refused != 5 {
		t.Fatalf("%d Connect calls refused, want the 5 over the bound of %d", refused, maxPendingIntros)
	}
	if len(n.srv.waiting)+len(n.srv.intros) != maxPendingIntros {
		t.Fatalf("%d introductions pending, bound %d", len(n.srv.waiting)+len(n.srv.intros), maxPendingIntros)
	}
}

// Peers are bounded: an introduction past maxPeers is refused and counted, and the
// peers already there are untouched.
func TestPeersAreBounded(t *testing.T) {
	n := registeredNode(t)
	for i := range maxPeers + 3 {
		var priv [32]byte
		priv[1], priv[2], priv[3] = byte(i), byte(i>>8), 0x77
		pub, _ := curve25519.X25519(priv[:], curve25519.Basepoint)
		intro := proto.Introduction{PeerID: fmt.Appendf(nil, "peer-%d", i)}
		copy(intro.PeerKey[:], pub)
		err := n.HandleDatagram(4, testLocal, testServer, intro.Append(nil))
		if i < maxPeers && err != nil {
			t.Fatalf("introduction %d: %v", i, err)
		}
		if i >= maxPeers && !errors.Is(err, ErrUnexpected) {
			t.Fatalf("introduction %d past the bound: %v", i, err)
		}
		drainTx(n, 4)
	}
	if got := len(n.Peers()); got != maxPeers || n.Stats().Unexpected != 3 {
		t.Fatalf("%d peers, %d refused; want %d and 3", got, n.Stats().Unexpected, maxPeers)
	}
}
