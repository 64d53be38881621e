package rudp

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

func TestOneMessageEachMode(t *testing.T) {
	n := newNetwork(t, 1)
	cfg := Config{Lanes: []LaneConfig{{Weight: 1}, {Weight: 1}}}
	ab, ba := &link{cfg: linkConfig{delay: 10 * time.Millisecond}}, &link{cfg: linkConfig{delay: 10 * time.Millisecond}}
	a, b := n.pair(cfg, ab, ba)
	o := newOracle(n.failf)
	b.onMsg = o.receive
	buf := make([]byte, 4096)
	for mode := ReliableOrdered; mode <= Unreliable; mode++ {
		if err := o.send(a.c, n.now, 1, mode, 100, buf); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	b.onMsg = func(now proto.Instant, ev *EventMessage) { o.receive(now, ev); got++ }
	if !n.run(n.now.Add(time.Second), func() bool { return got == 4 }) {
		n.failf("delivered %d of 4 messages", got)
	}
	// One-way delay is 10 ms and nothing was lost: everything arrives at 10 ms.
	for _, l := range o.latency {
		if time.Duration(l) != 10*time.Millisecond {
			n.failf("latency %v, want 10ms", time.Duration(l))
		}
	}
}

func TestLargeMessageFragments(t *testing.T) {
	n := newNetwork(t, 2)
	ab, ba := &link{cfg: linkConfig{delay: 5 * time.Millisecond}}, &link{cfg: linkConfig{delay: 5 * time.Millisecond}}
	a, b := n.pair(Config{}, ab, ba)
	o := newOracle(n.failf)
	b.onMsg = o.receive
	buf := make([]byte, 1<<20)
	for _, size := range []int{1000, 1200, 5000, 1 << 20} {
		if err := o.send(a.c, n.now, 0, ReliableOrdered, size, buf); err != nil {
			t.Fatal(err)
		}
	}
	if !n.run(n.now.Add(10*time.Second), o.complete) {
		n.failf("delivered %d of %d", o.arrived, o.expected)
	}
	if err := a.c.Send(n.now, 0, ReliableOrdered, make([]byte, 1<<20+1)); err != ErrMessageTooLarge {
		t.Fatalf("oversized message: %v, want ErrMessageTooLarge", err)
	}
	t.Logf("a: %+v", a.c.Stats())
}
