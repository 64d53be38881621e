package machinetest

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

var (
	addrA = netip.MustParseAddrPort("192.0.2.1:1000")
	addrB = netip.MustParseAddrPort("192.0.2.2:2000")
	addrC = netip.MustParseAddrPort("192.0.2.3:3000")
)

// The kit passes a machine that keeps the contract.
func TestCheckPassesOnAToyThatKeepsTheContract(t *testing.T) {
	Check(t, Spec{Seed: 1, New: func(t *testing.T) *Subject {
		p := newPinger(addrA, addrB, 0, time.Second)
		p.HandleTimeout(0) // the first ping is out; the next is due in a second
		var buf [8]byte
		m, ping := Of(p), []byte{msgPing} // a ping is answered with no event: steady state
		return &Subject{
			Machine:  m,
			Now:      0,
			Local:    addrA,
			From:     addrB,
			Snapshot: func() any { return [2]any{p.next, p.got} },
			Rejected: [][]byte{nil, {'x'}, {msgPing, msgPing}},
			Inputs:   [][]byte{{msgPing}, {msgPong}},
			Idle:     func(now proto.Instant) proto.Instant { p.Close(); return now },
			Steady: func(now proto.Instant) proto.Instant {
				now = max(now, p.Deadline())
				p.HandleTimeout(now)
				Discard(m, now, buf[:])
				if err := p.HandleDatagram(now, addrA, addrB, ping); err != nil {
					t.Fatal(err)
				}
				Discard(m, now, buf[:])
				return now
			},
		}
	}})
}

func TestNetDeliversAfterLatencyAndFiresDeadlines(t *testing.T) {
	n := NewNet(t, 0, 15*time.Millisecond)
	a := n.Add("a", Of(newPinger(addrA, addrB, 0, time.Second)), addrA)
	b := n.Add("b", Of(newPinger(addrB, addrA, proto.Never, time.Second)), addrB)
	n.RunUntil(proto.Instant(2500 * time.Millisecond))
	// Pings at 0, 1 s and 2 s; each pong is back 30 ms later.
	if len(a.Events) != 3 {
		t.Fatalf("a's events %#v, want three pongs", a.Events)
	}
	for _, e := range a.Events {
		if e != (pongEvent{RTT: 30 * time.Millisecond}) {
			t.Fatalf("event %#v, want an RTT of two latencies", e)
		}
	}
	if len(b.Events) != 0 || n.Sent != 6 || n.Now != proto.Instant(2500*time.Millisecond) {
		t.Fatalf("b's events %v, %d sent, now %d", b.Events, n.Sent, n.Now)
	}
}

// Datagrams due at one instant arrive in the order they were sent, whoever sent them.
func TestNetBreaksTiesBySendOrder(t *testing.T) {
	n := NewNet(t, 0, time.Millisecond)
	b := n.Add("b", Of(newPinger(addrB, addrA, proto.Never, time.Second)), addrB)
	senders := []*pinger{newPinger(addrC, addrB, proto.Never, 0), newPinger(addrA, addrB, proto.Never, 0)}
	for _, s := range senders {
		n.Add(s.local.String(), Of(s), s.local)
	}
	order := []*pinger{senders[1], senders[0], senders[1]}
	for _, s := range order {
		s.queue(addrB, msgNote)
		n.Drain() // each send is drained before the next: the send order is order
	}
	if !n.Step() {
		t.Fatal("nothing to step")
	}
	if len(b.Events) != 3 || n.Now != proto.Instant(time.Millisecond) {
		t.Fatalf("b got %v at %d", b.Events, n.Now)
	}
	for i, s := range order {
		if b.Events[i] != (gotEvent{Msg: msgNote, From: s.local}) {
			t.Fatalf("arrival %d from %v, want %v", i, b.Events[i], s.local)
		}
	}
	if n.Step() {
		t.Fatal("a step with nothing pending")
	}
}

func TestNetKeepsUnroutedAndDropped(t *testing.T) {
	n := NewNet(t, 0, 0)
	a := newPinger(addrA, addrC, 0, time.Second)
	n.Add("a", Of(a), addrA)
	n.Drop = func(tx proto.Transmit) bool { return n.Now >= proto.Instant(time.Second) }
	n.RunUntil(proto.Instant(1500 * time.Millisecond))
	if n.Sent != 2 || len(n.Unrouted) != 1 || n.Unrouted[0].To != addrC || string(n.Unrouted[0].Payload) != "P" {
		t.Fatalf("%d sent, unrouted %v", n.Sent, n.Unrouted)
	}
	if err := n.Deliver(n.nodes[0], addrA, addrB, []byte{'?'}); err == nil {
		t.Fatal("Deliver hid the machine's error")
	}
}

// stuck's deadline never advances: a driver would spin on it.
type stuck struct{ pinger }

func (*stuck) Deadline() proto.Instant { return 5 }

// chatty always has another datagram.
type chatty struct{ pinger }

func (c *chatty) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	return proto.Transmit{To: addrB, Payload: buf[:0]}, true
}

func TestKitReportsBrokenMachines(t *testing.T) {
	msg := failure(func(tb TB) {
		n := NewNet(tb, 0, 0)
		n.StepBound = 1000
		n.Add("stuck", Of(&stuck{}), addrA)
		n.RunUntil(10)
	})
	if !strings.Contains(msg, "deadline does not advance") {
		t.Errorf("a stuck deadline: %q", msg)
	}
	msg = failure(func(tb TB) { Drain(tb, Of(&chatty{}), 0, make([]byte, 8)) })
	if !strings.Contains(msg, "PollTransmit still true") {
		t.Errorf("an endless PollTransmit: %q", msg)
	}
	p := newPinger(addrA, addrB, 0, time.Second)
	if msg := failure(func(tb TB) { Drain(tb, Of(p), 0, make([]byte, 8)) }); msg != "" {
		t.Errorf("a good machine failed the drain: %q", msg)
	}
}
