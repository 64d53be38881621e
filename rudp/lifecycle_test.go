package rudp

import (
	"errors"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

func quietPair(t *testing.T, seed uint64, cfg Config, l linkConfig) (*network, *endpoint, *endpoint) {
	n := newNetwork(t, seed)
	a, b := n.pair(cfg, &link{cfg: l}, &link{cfg: l})
	return n, a, b
}

// An idle connection sends a PING every KeepaliveInterval, and the PINGs keep both
// ends from timing out.
func TestKeepaliveKeepsIdleConnectionOpen(t *testing.T) {
	n, a, b := quietPair(t, 10, Config{}, linkConfig{delay: 10 * time.Millisecond})
	if r := a.c.DeadlineReason(); r != "keepalive" {
		n.failf("a fresh connection waits for %q, want keepalive", r)
	}
	n.run(n.now.Add(5*time.Minute), nil)
	if a.closed != nil || b.closed != nil {
		n.failf("idle connection closed: %v %v", a.closed, b.closed)
	}
	// 300 s / 10 s keepalive: about 30 PINGs each (an ACK answers each one).
	if s := a.c.Stats(); s.PacketsSent < 25 || s.PacketsReceived < 25 {
		n.failf("keepalive traffic too small: %+v", s)
	}
}

// When the peer goes silent, the connection closes with CodeIdleTimeout after
// IdleTimeout, and PollEvent reports it exactly once.
func TestIdleTimeout(t *testing.T) {
	n, a, b := quietPair(t, 11, Config{}, linkConfig{delay: 10 * time.Millisecond,
		blackhole: func(proto.Instant) bool { return true }})
	start := n.now
	n.run(start.Add(time.Minute), func() bool { return a.closed != nil && b.closed != nil })
	if a.closed == nil || a.closed.Code != CodeIdleTimeout || !a.closed.Local {
		n.failf("a: %v, want a local idle timeout", a.closed)
	}
	if d := n.now.Sub(start); d != defaultIdleTimeout {
		n.failf("closed after %v, want %v", d, defaultIdleTimeout)
	}
	if _, ok := a.c.PollEvent(); ok {
		n.failf("event after EventClosed")
	}
	if err := a.c.Send(n.now, 0, ReliableOrdered, nil); !errors.Is(err, ErrClosed) {
		n.failf("Send after close: %v", err)
	}
	if a.c.Deadline() != proto.Never || a.c.DeadlineReason() != "" {
		n.failf("closed connection has a deadline (%s)", a.c.DeadlineReason())
	}
}

// A connection made long before its peer can answer (node makes it at the
// introduction and queues messages while paths and keys are set up) counts its idle
// timeout from HeardPeer, when the session comes up: without the call it ends at
// once, with it the queued message is delivered and both ends stay open.
func TestIdleTimeoutCountsFromHeardPeer(t *testing.T) {
	for _, heard := range []bool{false, true} {
		n, a, b := quietPair(t, 15, Config{}, linkConfig{delay: 10 * time.Millisecond})
		n.now = n.now.Add(defaultIdleTimeout + 15*time.Second) // the setup took 45 s
		up := n.now
		if heard {
			a.c.HeardPeer(up)
			b.c.HeardPeer(up)
		}
		var got []string
		b.onMsg = func(_ proto.Instant, ev *EventMessage) { got = append(got, string(ev.Data)) }
		if err := a.c.Send(up, 0, ReliableOrdered, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		n.run(up.Add(time.Second), nil)
		if !heard {
			if a.closed == nil || a.closed.Code != CodeIdleTimeout || len(got) != 0 {
				n.failf("without HeardPeer: closed %v, delivered %q; want an idle timeout at once", a.closed, got)
			}
			continue
		}
		if a.closed != nil || b.closed != nil || len(got) != 1 || got[0] != "hello" {
			n.failf("with HeardPeer: closed %v %v, delivered %q; want both open and hello", a.closed, b.closed, got)
		}
		if d := a.c.IdleDeadline(); d < up.Add(defaultIdleTimeout) {
			n.failf("idle deadline %v after the session came up at %v", d.Sub(up), up)
		}
	}
}

// Close sends the code and reason to the peer, which reports them as remote; the
// closing side reports its own close after the closing period.
func TestCloseWithReason(t *testing.T) {
	n, a, b := quietPair(t, 12, Config{}, linkConfig{delay: 10 * time.Millisecond})
	if err := a.c.Close(n.now, 42, "game over"); err != nil {
		t.Fatal(err)
	}
	if err := a.c.Close(n.now, 1, "again"); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	n.run(n.now.Add(5*time.Second), func() bool { return a.closed != nil && b.closed != nil })
	want := proto.CloseReason{Code: 42, Text: "game over"}
	if b.closed == nil || *b.closed != want {
		n.failf("peer saw %v, want %v", b.closed, want)
	}
	if a.closed == nil || !a.closed.Local || a.closed.Code != 42 {
		n.failf("closer saw %v", a.closed)
	}
}

// A message that cannot leave before its expiry is dropped and counted; one that has
// started is delivered.
func TestExpiry(t *testing.T) {
	n, a, b := quietPair(t, 13, Config{}, linkConfig{delay: 10 * time.Millisecond})
	var got []string
	b.onMsg = func(_ proto.Instant, ev *EventMessage) { got = append(got, string(ev.Data)) }
	// Already expired at Send: never leaves.
	if err := a.c.SendBy(n.now, n.now, 0, Unreliable, []byte("stale")); err != nil {
		t.Fatal(err)
	}
	if err := a.c.SendBy(n.now, n.now.Add(time.Second), 0, Unreliable, []byte("fresh")); err != nil {
		t.Fatal(err)
	}
	n.run(n.now.Add(time.Second), nil)
	if len(got) != 1 || got[0] != "fresh" {
		n.failf("delivered %q, want only fresh", got)
	}
	if s := a.c.LaneStats(0); s.MessagesExpired != 1 || s.MessagesSent != 1 {
		n.failf("lane stats %+v, want 1 expired and 1 sent", s)
	}
}

// The sender never exceeds the receiver's flow-control window: with a receiver that
// polls, a transfer of ten windows completes; with one that never polls, the sender
// stops at the window.
func TestFlowControlBlocksAndResumes(t *testing.T) {
	cfg := Config{MaxMessageSize: 64 << 10, RecvWindow: 256 << 10}
	n, a, b := quietPair(t, 14, cfg, linkConfig{delay: 5 * time.Millisecond})
	o := newOracle(n.failf)
	buf := make([]byte, 64<<10)
	for range 40 { // 2.5 MB, ten windows
		if err := o.send(a.c, n.now, 0, ReliableOrdered, 64<<10, buf); err != nil {
			t.Fatal(err)
		}
	}
	// First with a receiver that polls (the network drains every event).
	b.onMsg = o.receive
	n.run(n.now.Add(30*time.Second), o.complete)
	if !o.complete() {
		n.failf("flow-controlled transfer incomplete: %d/%d", o.arrived, o.expected)
	}
	// The sender's cost of first transmissions never exceeded what the receiver allowed.
	if a.c.reliableSent > b.c.advertisedMaxData {
		n.failf("sender used %d of credit, receiver advertised %d", a.c.reliableSent, b.c.advertisedMaxData)
	}

	// Now without polling: a fresh pair where b is never drained of events.
	now := proto.Instant(1)
	x, y := New(cfg, now), New(cfg, now)
	pbuf := make([]byte, 2048)
	for range 40 {
		_ = x.Send(now, 0, ReliableOrdered, buf)
	}
	for range 2000 {
		now = now.Add(time.Millisecond)
		for _, c := range []*Conn{x, y} {
			if c.Deadline() <= now {
				c.HandleTimeout(now)
			}
		}
		for {
			p, ok := x.PollTransmit(now, pbuf)
			if !ok {
				break
			}
			_ = y.HandleDatagram(now, p)
		}
		for {
			p, ok := y.PollTransmit(now, pbuf)
			if !ok {
				break
			}
			_ = x.HandleDatagram(now, p)
		}
	}
	if y.recvReliable > uint64(cfg.RecvWindow) || x.reliableSent > uint64(cfg.RecvWindow) {
		t.Fatalf("unpolled receiver buffered %d, sender sent %d; window %d", y.recvReliable, x.reliableSent, cfg.RecvWindow)
	}
	if y.events.len() == 0 {
		t.Fatalf("nothing delivered at all")
	}
	before := y.events.len()
	for {
		if _, ok := y.PollEvent(); !ok {
			break
		}
	}
	if before >= 40 {
		t.Fatalf("all %d messages were delivered without flow control", before)
	}
}

// Two lanes of equal priority share a saturated path in proportion to their weights.
func TestLaneWeights(t *testing.T) {
	cfg := Config{Lanes: []LaneConfig{{Weight: 1}, {Weight: 3}}}
	n, a, b := quietPair(t, 15, cfg, linkConfig{delay: 10 * time.Millisecond})
	a.out.cfg.rateBps, a.out.cfg.queuePackets = 5_000_000, 50
	o := newOracle(n.failf)
	b.onMsg = o.receive
	bk0 := &bulk{c: a.c, o: o, lane: 0, total: 1 << 40, msgSize: 8 << 10, buf: make([]byte, 8<<10)}
	bk1 := &bulk{c: a.c, o: o, lane: 1, total: 1 << 40, msgSize: 8 << 10, buf: make([]byte, 8<<10)}
	n.every(n.now, time.Millisecond, func(now proto.Instant) bool {
		// Keep each lane's own backlog short so both always have data queued.
		if a.c.LaneStats(0).Queued < 4 {
			bk0.feed(now)
		}
		if a.c.LaneStats(1).Queued < 4 {
			bk1.feed(now)
		}
		return true
	})
	n.run(n.now.Add(20*time.Second), nil)
	d0, d1 := b.c.LaneStats(0).BytesDelivered, b.c.LaneStats(1).BytesDelivered
	ratio := float64(d1) / float64(d0)
	t.Logf("lane bytes delivered: weight 1 %d, weight 3 %d, ratio %.2f", d0, d1, ratio)
	if ratio < 2.5 || ratio > 3.5 {
		n.failf("weights 1:3 gave a ratio of %.2f", ratio)
	}
}

// PMTU discovery finds the largest datagram a path carries: a link that drops
// anything over 1400 bytes ends with a datagram size in (1400-16, 1400].
func TestPMTUDiscovery(t *testing.T) {
	n, a, b := quietPair(t, 16, Config{}, linkConfig{delay: 10 * time.Millisecond, mtu: 1400})
	o := newOracle(n.failf)
	b.onMsg = o.receive
	bk := &bulk{c: a.c, o: o, total: 2 << 20, msgSize: 64 << 10, buf: make([]byte, 64<<10)}
	n.every(n.now, time.Millisecond, bk.feed)
	n.run(n.now.Add(30*time.Second), func() bool { return bk.queued == bk.total && o.complete() })
	if !o.complete() {
		n.failf("transfer incomplete")
	}
	got := a.c.Stats().DatagramSize
	if got > 1400 || got <= 1400-pmtuStep {
		n.failf("PMTU settled at %d, want within %d below 1400", got, pmtuStep)
	}
	// A path that carries the configured maximum gets it.
	n2, c, _ := quietPair(t, 17, Config{}, linkConfig{delay: 10 * time.Millisecond})
	_ = c.c.Send(n2.now, 0, ReliableOrdered, []byte("hello"))
	n2.run(n2.now.Add(5*time.Second), nil)
	if got := c.c.Stats().DatagramSize; got != defaultDatagramSizeMax {
		n2.failf("PMTU %d on an unconstrained path, want %d", got, defaultDatagramSizeMax)
	}
}

// Caller misuse panics; network input never does.
func TestMisuse(t *testing.T) {
	c := New(Config{}, 100)
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	mustPanic("time going backwards", func() { c.HandleTimeout(99) })
	mustPanic("small buffer", func() { c.PollTransmit(100, make([]byte, 100)) })
	mustPanic("17 lanes", func() { New(Config{Lanes: make([]LaneConfig, 17)}, 0) })
	mustPanic("window below 2 × MaxMessageSize", func() { New(Config{MaxMessageSize: 8 << 10, RecvWindow: 16<<10 - 1}, 0) })
	mustPanic("window below 4 KiB", func() { New(Config{MaxMessageSize: 100, RecvWindow: 4<<10 - 1}, 0) })
	New(Config{MaxMessageSize: 2 << 10, RecvWindow: 4 << 10}, 0) // the smallest window allowed
	if err := c.Send(100, 1, ReliableOrdered, nil); !errors.Is(err, ErrBadLane) {
		t.Errorf("lane 1 of 1: %v", err)
	}
	if err := c.Send(100, 0, Mode(4), nil); !errors.Is(err, ErrBadMode) {
		t.Errorf("mode 4: %v", err)
	}
	small := New(Config{MaxMessageSize: 1000, SendBufferBytes: 1500}, 0)
	if err := small.Send(0, 0, ReliableOrdered, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := small.Send(0, 0, ReliableOrdered, make([]byte, 1000)); !errors.Is(err, ErrSendBufferFull) {
		t.Errorf("over the send buffer: %v", err)
	}
}

// Lanes that all share one priority get no window overshoot: the reserve and the
// quarter-window overshoot exist only to let a higher lane past a lower one.
func TestNoOvershootWithOnePriority(t *testing.T) {
	cfg := Config{Lanes: []LaneConfig{{Priority: 3, Weight: 1}, {Priority: 3, Weight: 1}}}
	n, a, b := quietPair(t, 19, cfg, linkConfig{delay: 20 * time.Millisecond, rateBps: 10_000_000, queuePackets: 100})
	o := newOracle(n.failf)
	b.onMsg = o.receive
	bk := &bulk{c: a.c, o: o, lane: 1, total: 4 << 20, msgSize: 64 << 10, buf: make([]byte, 64<<10)}
	n.every(n.now, time.Millisecond, bk.feed)
	worst := 0
	n.afterStep = func() { worst = max(worst, a.c.overCwndBytes) }
	n.run(n.now.Add(30*time.Second), func() bool { return bk.queued == bk.total && o.complete() })
	if !o.complete() {
		n.failf("transfer incomplete")
	}
	if worst != 0 {
		n.failf("%d bytes were sent beyond the window with a single priority", worst)
	}
	if a.c.Stats().CongestionEvents == 0 {
		n.failf("the window never shrank, so the overshoot path was never tempted")
	}
}

// When the path's MTU drops under a live connection (a move from a direct path to a
// relay, or to another network), every message still arrives: fragments are sized
// for the base datagram, and losing packets above it three times in a row sends the
// connection back to the base size and a new search (RFC 8899 §4.3).
func TestPMTUDropMidTransfer(t *testing.T) {
	n, a, b := quietPair(t, 20, Config{}, linkConfig{delay: 10 * time.Millisecond})
	o := newOracle(n.failf)
	b.onMsg = o.receive
	small := make([]byte, 8<<10)
	start := n.now
	n.every(start, time.Millisecond, func(now proto.Instant) bool {
		// Small reliable messages pack four to a full-PMTU packet; every tenth is
		// large enough to be fragmented.
		for i := range 10 {
			size := 300
			if i == 0 {
				size = 5000
			}
			if err := o.send(a.c, now, 0, ReliableUnordered, size, small); err != nil {
				n.failf("send: %v", err)
			}
		}
		return now.Sub(start) < 4*time.Second
	})
	var before int
	n.every(start.Add(2*time.Second), time.Hour, func(proto.Instant) bool {
		before = a.c.Stats().DatagramSize
		a.out.cfg.mtu, b.out.cfg.mtu = 1250, 1250
		return false
	})
	if !n.run(start.Add(60*time.Second), func() bool { return n.now.Sub(start) > 4*time.Second && o.complete() }) {
		n.failf("stalled after the MTU drop: %d/%d delivered; %+v", o.arrived, o.expected, a.c.Stats())
	}
	s := a.c.Stats()
	t.Logf("PMTU %d before the drop, %d after; %d black holes detected", before, s.DatagramSize, s.PMTUBlackholes)
	if before <= 1250 || s.DatagramSize > 1250 || s.PMTUBlackholes == 0 {
		n.failf("PMTU %d before, %d after, %d black holes: the drop was not exercised or not handled", before, s.DatagramSize, s.PMTUBlackholes)
	}
}

// A receiver whose application polls messages but does not take them (Consumed)
// keeps the sender inside one window: credit returns when the application takes a
// message, not when the machine hands it out (DESIGN §11). Once taken, the rest flows.
func TestCreditReturnsOnlyWhenConsumed(t *testing.T) {
	cfg := Config{MaxMessageSize: 64 << 10, RecvWindow: 128 << 10}
	msg := make([]byte, 8<<10)
	now := proto.Instant(1)
	x, y := New(cfg, now), New(cfg, now)
	const total = 100 // 800 KiB: six windows
	for i := range total {
		msg[0] = byte(i)
		if err := x.Send(now, 0, ReliableOrdered, msg); err != nil {
			t.Fatal(err)
		}
	}
	var held Credit
	got := 0
	run := func(d time.Duration, consume bool) {
		pbuf := make([]byte, 2048)
		for end := now.Add(d); now < end; now = now.Add(time.Millisecond) {
			for _, c := range []*Conn{x, y} {
				if c.Deadline() <= now {
					c.HandleTimeout(now)
				}
			}
			for p, ok := x.PollTransmit(now, pbuf); ok; p, ok = x.PollTransmit(now, pbuf) {
				_ = y.HandleDatagram(now, p)
			}
			for p, ok := y.PollTransmit(now, pbuf); ok; p, ok = y.PollTransmit(now, pbuf) {
				_ = x.HandleDatagram(now, p)
			}
			for ev, ok := y.PollEvent(); ok; ev, ok = y.PollEvent() {
				m, isMsg := ev.(*EventMessage)
				if !isMsg {
					t.Fatalf("event %T", ev)
				}
				if m.Data[0] != byte(got) {
					t.Fatalf("message %d arrived as %d", got, m.Data[0])
				}
				got++
				held = held.Add(m.Credit)
			}
			if consume && !held.IsZero() {
				y.Consumed(now, held)
				held = Credit{}
			}
		}
	}
	run(5*time.Second, false)
	// The window is 128 KiB; each 8 KiB message costs 8 KiB + 32 bytes.
	if want := int(cfg.RecvWindow / (8<<10 + 32)); got > want || got == 0 {
		t.Fatalf("unread receiver got %d messages, want 1..%d (one window)", got, want)
	}
	if x.reliableSent > uint64(cfg.RecvWindow) {
		t.Fatalf("sender sent %d bytes of credit into a %d-byte window nobody read", x.reliableSent, cfg.RecvWindow)
	}
	if x.Closed() || y.Closed() {
		t.Fatal("a stopped reader closed the connection")
	}
	run(10*time.Second, true)
	if got != total {
		t.Fatalf("after the reader resumed: %d of %d messages", got, total)
	}
}

// Consumed refuses credit that was never polled: that is a caller bug.
func TestConsumedTooMuchPanics(t *testing.T) {
	c := New(Config{}, 0)
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	c.Consumed(0, Credit{reliable: 1})
}

// A probe timeout is reported as an event (once per poll), so the owner learns of it
// from the connection instead of diffing its counters.
func TestProbeTimeoutIsAnEvent(t *testing.T) {
	c := New(Config{}, 0)
	if err := c.Send(0, 0, ReliableOrdered, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	now, events := proto.Instant(0), 0
	for range 5 {
		for _, ok := c.PollTransmit(now, buf); ok; _, ok = c.PollTransmit(now, buf) {
		}
		for ev, ok := c.PollEvent(); ok; ev, ok = c.PollEvent() {
			if _, isPTO := ev.(*EventProbeTimeout); !isPTO {
				t.Fatalf("event %T", ev)
			}
			events++
		}
		now = c.Deadline()
		c.HandleTimeout(now)
	}
	if ptos := c.Stats().PTOs; ptos == 0 || uint64(events) > ptos || events < 3 {
		t.Fatalf("%d PTOs, %d events", ptos, events)
	}
}

// Unreliable messages a stopped reader has not taken count against the receive
// window too: past it they are dropped and counted, never queued without bound; once
// the reader takes them, new ones are delivered again.
func TestUnreliableQueueIsBoundedAndCounted(t *testing.T) {
	cfg := Config{MaxMessageSize: 16 << 10, RecvWindow: 64 << 10}
	p := newDirectPair(cfg, 1000)
	var held Credit
	delivered := 0
	for range 200 { // 200 × (1000 + 32) bytes: three windows' worth
		p.now = p.now.Add(time.Millisecond)
		if err := p.a.Send(p.now, 0, Unreliable, p.msg); err != nil {
			t.Fatal(err)
		}
		for pkt, ok := p.a.PollTransmit(p.now, p.bufA); ok; pkt, ok = p.a.PollTransmit(p.now, p.bufA) {
			_ = p.b.HandleDatagram(p.now, pkt)
		}
		for ev, ok := p.b.PollEvent(); ok; ev, ok = p.b.PollEvent() {
			if m, isMsg := ev.(*EventMessage); isMsg {
				delivered++
				held = held.Add(m.Credit)
			}
		}
		for pkt, ok := p.b.PollTransmit(p.now, p.bufB); ok; pkt, ok = p.b.PollTransmit(p.now, p.bufB) {
			_ = p.a.HandleDatagram(p.now, pkt)
		}
	}
	window := cfg.RecvWindow / (1000 + 32)
	dropped := p.b.Stats().UnreliableDropped
	if delivered > window || delivered == 0 || dropped == 0 || delivered+int(dropped) != 200 {
		t.Fatalf("a reader holding every message: %d delivered (window %d), %d dropped, of 200", delivered, window, dropped)
	}
	p.b.Consumed(p.now, held)
	before := p.received
	p.step(Unreliable, time.Millisecond)
	if p.received != before+1 {
		t.Fatal("after the reader took its messages, a new unreliable message was not delivered")
	}
}
