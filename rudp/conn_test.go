package rudp

import (
	"bytes"
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

// TakeData hands a delivered message's memory over: it keeps its bytes however the
// Conn goes on (pooled buffers reused by later messages), is not a copy for a
// message that fills its buffer, and is a copy for a small message in a big
// pooled buffer.
func TestTakeData(t *testing.T) {
	p := newDirectPair(Config{}, 0)
	var taken [][]byte
	handedOver := 0
	p.onMessage = func(m *EventMessage) {
		d := p.b.TakeData()
		copied := len(d) > 0 && &d[0] != &m.Data[0]
		// Only a buffer much bigger than the message is copied out.
		if !bytes.Equal(d, m.Data) || copied != (cap(m.Data) > len(d)+len(d)/4+64) {
			t.Fatalf("TakeData gave %d bytes (copied: %t) from a buffer of %d", len(d), copied, cap(m.Data))
		}
		if !copied && len(d) > 0 {
			handedOver++
		}
		if cap(d) != len(d) {
			t.Fatalf("taken data has capacity %d for %d bytes: appending would reach into memory it does not own", cap(d), len(d))
		}
		taken = append(taken, d)
	}
	deliver := func(msg []byte) {
		p.msg = msg
		p.step(ReliableOrdered, time.Millisecond)
	}
	fill := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	// Big messages, then small ones that would reuse their pooled buffers.
	msgs := [][]byte{fill(64<<10, 1), fill(40<<10, 2), fill(100, 3), fill(64<<10, 4), fill(10, 5), nil}
	for _, m := range msgs {
		deliver(m)
	}
	if len(taken) != len(msgs) {
		t.Fatalf("%d messages delivered, want %d", len(taken), len(msgs))
	}
	for i, m := range msgs {
		if !bytes.Equal(taken[i], m) {
			t.Fatalf("message %d: taken data changed after later deliveries (%d bytes, first %v)", i, len(taken[i]), taken[i][:min(len(taken[i]), 4)])
		}
	}
	if handedOver < 2 {
		t.Fatalf("%d messages handed over without a copy, want at least the two fresh 64 KiB ones", handedOver)
	}
	for i, d := range taken {
		if d == nil {
			t.Fatalf("message %d taken as nil; an empty message is an empty slice", i)
		}
	}
	if ev, ok := p.b.PollEvent(); ok || p.b.TakeData() != nil {
		t.Fatalf("TakeData with no message polled: event %v, data not nil", ev)
	}
}
