package rudp

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim"
	"github.com/natpass/natpass/sim/simtest"
)

// The acceptance scenarios on the project's simulator (sim/): hosts on the public
// core, each behind its own impaired link, running Conns through a small adapter.
// A path a→b crosses a's link upwards and b's link downwards, so impairments put on
// one host's link apply to both directions of the path.

// simConn is one Conn bound to one socket of a sim host, talking to one peer socket.
type simConn struct {
	c           *Conn
	local, peer netip.AddrPort
	onMsg       func(now proto.Instant, ev *EventMessage)
	closed      *proto.CloseReason
}

// connMux is a host's sim.Machine: the Conns bound to its sockets. Datagrams carry
// the rudp packet with Headroom bytes before it and Tailroom after, standing in for
// keyx's header and tag and relay framing, so link rates, queues and MTUs see
// datagrams of their real size.
type connMux struct {
	conns []*simConn
	next  int // round robin among Conns with something to send
}

var errNoConn = errors.New("no connection on this socket")

func (m *connMux) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	for _, sc := range m.conns {
		if sc.local == local && sc.peer == from {
			h, t := sc.c.cfg.Headroom, sc.c.cfg.Tailroom
			if len(p) < h+t {
				return proto.ErrShort
			}
			return sc.c.HandleDatagram(now, p[h:len(p)-t])
		}
	}
	return errNoConn
}

func (m *connMux) HandleTimeout(now proto.Instant) {
	for _, sc := range m.conns {
		if sc.c.Deadline() <= now {
			sc.c.HandleTimeout(now)
		}
	}
}

func (m *connMux) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	for i := range m.conns {
		sc := m.conns[(m.next+i)%len(m.conns)]
		if p, ok := sc.c.PollTransmit(now, buf); ok {
			m.next = (m.next + i + 1) % len(m.conns)
			n := sc.c.cfg.Headroom + len(p) + sc.c.cfg.Tailroom
			return proto.Transmit{From: sc.local, To: sc.peer, Payload: buf[:n]}, true
		}
	}
	return proto.Transmit{}, false
}

func (m *connMux) Deadline() proto.Instant {
	d := proto.Never
	for _, sc := range m.conns {
		d = min(d, sc.c.Deadline())
	}
	return d
}

// drainEvents is the host's AfterStep: every Conn's events to its handlers.
func (m *connMux) drainEvents(now proto.Instant) {
	for _, sc := range m.conns {
		pollEvents(sc.c, now, sc.onMsg, &sc.closed)
	}
}

// simWorld is a sim.Sim plus application ticks (sends at fixed intervals).
type simWorld struct {
	t     testing.TB
	s     *sim.Sim
	seed  uint64
	hosts []*sim.Host
	ticks []*ticker
}

func newSimWorld(t testing.TB, seed uint64) *simWorld {
	return &simWorld{t: t, seed: seed, s: sim.New(sim.Config{Seed: seed, Start: 1_000_000_000})}
}

func (w *simWorld) failf(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("%s\n%s", fmt.Sprintf(format, args...), simtest.ReplayLine(w.t.Name(), w.seed))
}

// host adds a host on the core behind a link, with n sockets.
func (w *simWorld) host(name string, link sim.LinkConfig, n int) *sim.Host {
	h := w.s.AddHost(name, w.s.Core(), link)
	for range n {
		h.OpenPort(0)
	}
	m := &connMux{}
	h.Attach(m)
	h.AfterStep = m.drainEvents
	w.hosts = append(w.hosts, h)
	return h
}

// connect makes a Conn on socket i of host a and one on socket j of host b, peers.
func (w *simWorld) connect(cfg Config, a *sim.Host, i int, b *sim.Host, j int) (*simConn, *simConn) {
	now := w.s.Now()
	x := &simConn{c: New(cfg, now), local: a.Sockets()[i], peer: b.Sockets()[j]}
	y := &simConn{c: New(cfg, now), local: b.Sockets()[j], peer: a.Sockets()[i]}
	a.Machine().(*connMux).conns = append(a.Machine().(*connMux).conns, x)
	b.Machine().(*connMux).conns = append(b.Machine().(*connMux).conns, y)
	a.Drain()
	b.Drain()
	return x, y
}

func (w *simWorld) every(start proto.Instant, period time.Duration, fn func(now proto.Instant) bool) {
	w.ticks = append(w.ticks, &ticker{next: start, period: period, fn: fn})
}

// run advances the simulation until stop holds or until passes, firing ticks on the
// way (each followed by the drain of every host); it reports whether stop held.
func (w *simWorld) run(until proto.Instant, stop func() bool) bool {
	if stop == nil {
		stop = func() bool { return false }
	}
	for {
		next := until
		for _, t := range w.ticks {
			if t.fn != nil {
				next = min(next, t.next)
			}
		}
		if err := w.s.RunUntil(next, stop); err != nil {
			w.failf("sim: %v", err)
		}
		if stop() {
			return true
		}
		now := w.s.Now()
		if now >= until {
			return false
		}
		for _, t := range w.ticks {
			if t.fn != nil && t.next <= now {
				if !t.fn(now) {
					t.fn = nil
				}
				t.next = t.next.Add(t.period)
			}
		}
		for _, h := range w.hosts {
			h.Drain()
		}
	}
}

// pathLoss is the per-link loss that gives a path (two links) loss p.
func pathLoss(p float64) float64 { return 1 - math.Sqrt(1-p) }

// TestSimSeededImpairments is TestSeededImpairments on the simulator: over path loss
// 0–30 %, duplication, reordering and jitter, both ways at once, every reliable
// message arrives exactly once (ordered ones in order), unreliable-sequenced ones never
// go backwards, and once the impairment ends all outstanding messages arrive within
// stallBound. 200 seeds; 10,000 with NATPASS_LONG=1.
func TestSimSeededImpairments(t *testing.T) {
	var total sim.Stats
	var retransmits uint64
	runs := 0
	simtest.Seeds(t, 1, 200, 50, func(t *testing.T, seed uint64) {
		st, rtx := runSimImpairedSeed(t, seed)
		total.Duplicated += st.Duplicated
		total.Reordered += st.Reordered
		total.Delivered += st.Delivered
		for i := range st.Dropped {
			total.Dropped[i] += st.Dropped[i]
		}
		retransmits += rtx
		runs++
	})
	t.Logf("%d runs: %d datagrams delivered, %d dropped, %d duplicated, %d reordered; %d retransmissions",
		runs, total.Delivered, total.TotalDropped(), total.Duplicated, total.Reordered, retransmits)
	// The runs must have exercised recovery, or they prove nothing.
	if runs > 1 && (total.TotalDropped() == 0 || total.Duplicated == 0 || total.Reordered == 0 || retransmits == 0) {
		t.Fatalf("impairments did not bite")
	}
}

func runSimImpairedSeed(t *testing.T, seed uint64) (sim.Stats, uint64) {
	w := newSimWorld(t, seed)
	r := newNetwork(t, seed).rng // the same parameter stream as the in-memory soak
	impairFor := time.Duration(2+r.IntN(6)) * time.Second
	end := w.s.Now().Add(impairFor)
	mtu := 0
	if r.IntN(3) == 0 {
		mtu = defaultDatagramSizeBase + r.IntN(300)
	}
	var outages []sim.Window
	if r.IntN(4) == 0 {
		from := w.s.Now().Add(time.Duration(r.Int64N(int64(impairFor))))
		outages = []sim.Window{{From: from, Until: from.Add(time.Duration(500+r.IntN(1500)) * time.Millisecond)}}
	}
	mk := func() sim.LinkConfig {
		return sim.LinkConfig{
			MTU:          mtu,
			Outages:      outages,
			Latency:      time.Duration(1+r.IntN(50)) * time.Millisecond,
			Jitter:       time.Duration(r.IntN(20)) * time.Millisecond,
			Loss:         pathLoss(r.Float64() * 0.30),
			Duplicate:    r.Float64() * 0.03,
			Reorder:      r.Float64() * 0.05,
			ReorderDelay: time.Duration(r.IntN(50)) * time.Millisecond,
		}
	}
	la, lb := mk(), mk()
	ha, hb := w.host("a", la, 1), w.host("b", lb, 1)
	lanes := make([]LaneConfig, 1+r.IntN(3))
	for i := range lanes {
		lanes[i] = LaneConfig{Priority: uint8(r.IntN(2)), Weight: uint16(1 + r.IntN(4)), Redundant: r.IntN(3) == 0}
	}
	a, b := w.connect(Config{Lanes: lanes}, ha, 0, hb, 0)
	oa, ob := newOracle(w.failf), newOracle(w.failf)
	a.onMsg, b.onMsg = oa.receive, ob.receive
	// The impairment ends: links keep their latency only.
	w.every(end, time.Hour, func(proto.Instant) bool {
		ha.Link().Set(sim.LinkConfig{Latency: la.Latency, MTU: mtu, Outages: outages})
		hb.Link().Set(sim.LinkConfig{Latency: lb.Latency, MTU: mtu, Outages: outages})
		return false
	})
	buf := make([]byte, 8192)
	count := 20 + r.IntN(60)
	sent := 0
	w.every(w.s.Now(), impairFor/time.Duration(count), func(now proto.Instant) bool {
		for _, side := range []struct {
			c *simConn
			o *oracle
		}{{a, ob}, {b, oa}} {
			if err := side.o.sendRandom(r, side.c.c, now, len(lanes), buf); err != nil {
				w.failf("send: %v", err)
			}
		}
		sent++
		return sent < count
	})
	if !w.run(end.Add(stallBound), func() bool { return sent == count && oa.complete() && ob.complete() }) {
		w.failf("stall: %d/%d reliable messages to b, %d/%d to a, %v after the impairment ended\nlinks %+v %+v\na %+v\nb %+v",
			ob.arrived, ob.expected, oa.arrived, oa.expected, stallBound, la, lb, a.c.Stats(), b.c.Stats())
	}
	if a.closed != nil || b.closed != nil {
		w.failf("closed: %v %v", a.closed, b.closed)
	}
	return w.s.Stats(), a.c.Stats().Retransmits + b.c.Stats().Retransmits
}

// simTransfer moves total bytes from a to b, a's link carrying the impairment.
func simTransfer(t *testing.T, seed uint64, link sim.LinkConfig, total int, limit time.Duration) (time.Duration, *simConn) {
	w := newSimWorld(t, seed)
	ha, hb := w.host("a", link, 1), w.host("b", sim.LinkConfig{}, 1)
	a, b := w.connect(Config{}, ha, 0, hb, 0)
	o := newOracle(w.failf)
	b.onMsg = o.receive
	bk := &bulk{c: a.c, o: o, total: total, msgSize: 64 << 10, buf: make([]byte, 64<<10)}
	start := w.s.Now()
	w.every(start, time.Millisecond, bk.feed)
	if !w.run(start.Add(limit), func() bool { return bk.queued == total && o.complete() }) {
		w.failf("transfer of %d bytes incomplete after %v: %d/%d messages\na %+v\nb %+v",
			total, limit, o.arrived, o.expected, a.c.Stats(), b.c.Stats())
	}
	return w.s.Now().Sub(start), a
}

// 10 Mbit/s with a 100-packet buffer, in sim's units.
const (
	bottleneckBytesPerSecond = 10_000_000 / 8
	bottleneckQueueBytes     = 100 * defaultDatagramSizeMax
)

func TestSimTransfer2MBAt2PercentLoss(t *testing.T) {
	seed := simtest.Seed(t, 2)
	d, a := simTransfer(t, seed, sim.LinkConfig{Latency: 20 * time.Millisecond, Loss: 0.02,
		Bandwidth: bottleneckBytesPerSecond, QueueBytes: bottleneckQueueBytes}, 2<<20, 60*time.Second)
	t.Logf("sim: 2 MB at 2%% loss each way, 40 ms RTT, 10 Mbit/s: %v; %+v", d, a.c.Stats())
}

func TestSimTransferAt30PercentLoss(t *testing.T) {
	seed := simtest.Seed(t, 3)
	d, a := simTransfer(t, seed, sim.LinkConfig{Latency: 20 * time.Millisecond, Loss: 0.30,
		Bandwidth: bottleneckBytesPerSecond, QueueBytes: bottleneckQueueBytes}, 1<<20, 300*time.Second)
	t.Logf("sim: 1 MiB at 30%% loss each way: %v; %+v", d, a.c.Stats())
}

// The link works for 5 s, then drops everything for 2 s, for as long as it takes.
func TestSimTransfer10MBThroughBlackhole(t *testing.T) {
	seed := simtest.Seed(t, 4)
	var outages []sim.Window
	start := proto.Instant(1_000_000_000)
	for c := range 30 {
		on := start.Add(time.Duration(7*c+5) * time.Second)
		outages = append(outages, sim.Window{From: on, Until: on.Add(2 * time.Second)})
	}
	d, a := simTransfer(t, seed, sim.LinkConfig{Latency: 15 * time.Millisecond, Bandwidth: bottleneckBytesPerSecond,
		QueueBytes: bottleneckQueueBytes, Outages: outages}, 10<<20, 200*time.Second)
	t.Logf("sim: 10 MB through 5 s on / 2 s off: %v; %+v", d, a.c.Stats())
}

func TestSimTransferAt750msRTT(t *testing.T) {
	seed := simtest.Seed(t, 5)
	d, a := simTransfer(t, seed, sim.LinkConfig{Latency: 375 * time.Millisecond, Bandwidth: bottleneckBytesPerSecond,
		QueueBytes: 1000 * defaultDatagramSizeMax}, 4<<20, 120*time.Second)
	t.Logf("sim: 4 MB at 750 ms RTT: %v; %+v", d, a.c.Stats())
	if a.c.Stats().MinRTT < 750*time.Millisecond {
		t.Fatalf("min RTT %v below the path's 750 ms", a.c.Stats().MinRTT)
	}
}

// The game case on sim: 50 ms RTT, 5 % loss each way, 20 Hz × 200-byte reliable
// messages for ten minutes: p99 delivery latency at most 150 ms.
func TestSimGameLatency(t *testing.T) {
	t.Run("default", func(t *testing.T) { simGame(t, false, 150*time.Millisecond) })
	t.Run("redundant", func(t *testing.T) { simGame(t, true, 100*time.Millisecond) })
}

func simGame(t *testing.T, redundant bool, p99Max time.Duration) {
	seed := simtest.Seed(t, 6)
	w := newSimWorld(t, seed)
	ha, hb := w.host("a", sim.LinkConfig{Latency: 25 * time.Millisecond, Loss: 0.05}, 1), w.host("b", sim.LinkConfig{}, 1)
	a, b := w.connect(Config{Lanes: []LaneConfig{{Weight: 1, Redundant: redundant}}}, ha, 0, hb, 0)
	o := newOracle(w.failf)
	b.onMsg = o.receive
	buf := make([]byte, 256)
	const count = 20 * 600
	sent := 0
	w.every(w.s.Now(), 50*time.Millisecond, func(now proto.Instant) bool {
		if err := o.send(a.c, now, 0, ReliableOrdered, 200, buf); err != nil {
			w.failf("send: %v", err)
		}
		sent++
		return sent < count
	})
	if !w.run(w.s.Now().Add(700*time.Second), func() bool { return sent == count && o.complete() }) {
		w.failf("game: %d of %d delivered", o.arrived, o.expected)
	}
	p50, p99, worst := percentile(o.latency, 50), percentile(o.latency, 99), percentile(o.latency, 100)
	t.Logf("sim game (redundant %v): %d messages, p50 %v p99 %v max %v", redundant, count, p50, p99, worst)
	if p99 > p99Max {
		w.failf("p99 latency %v over %v", p99, p99Max)
	}
}

// simFlows runs n bulk flows from one sender host through its 10 Mbit/s link (100-
// packet buffer, 20 ms) to one receiver host, flow i starting i×stagger late, and
// returns the message bytes each delivered within [from, to].
func simFlows(t *testing.T, seed uint64, n int, stagger, from, to time.Duration) ([]int64, []*simConn, []*simConn, []*oracle) {
	w := newSimWorld(t, seed)
	hs := w.host("senders", sim.LinkConfig{Latency: 20 * time.Millisecond, Bandwidth: bottleneckBytesPerSecond,
		QueueBytes: bottleneckQueueBytes}, n)
	hr := w.host("receivers", sim.LinkConfig{}, n)
	start := w.s.Now()
	window := make([]int64, n)
	var snd, rcv []*simConn
	var os []*oracle
	for i := range n {
		a, b := w.connect(Config{}, hs, i, hr, i)
		o := newOracle(w.failf)
		b.onMsg = func(now proto.Instant, ev *EventMessage) {
			o.receive(now, ev)
			if now.Sub(start) >= from {
				window[i] += int64(len(ev.Data))
			}
		}
		bk := &bulk{c: a.c, o: o, total: 1 << 40, msgSize: 16 << 10, buf: make([]byte, 16<<10)}
		w.every(start.Add(time.Duration(i)*stagger), time.Millisecond, bk.feed)
		snd, rcv, os = append(snd, a), append(rcv, b), append(os, o)
	}
	w.run(start.Add(to), nil)
	return window, snd, rcv, os
}

func TestSimBottleneckOneFlow(t *testing.T) {
	seed := simtest.Seed(t, 7)
	const from, to = 5 * time.Second, 35 * time.Second
	window, snd, rcv, os := simFlows(t, seed, 1, 0, from, to)
	goodput := float64(window[0]) * 8 / (to - from).Seconds()
	sb := rcv[0].c.Stats()
	ackWire := float64(sb.AckOnlyBytes + sb.AckOnlyPackets*uint64(defaultHeadroom+defaultTailroom))
	ackShare := ackWire / float64(os[0].arrived*(16<<10))
	t.Logf("sim one flow: goodput %.2f Mbit/s = %.1f %% of 10 Mbit/s; ack bytes %.2f %% of goodput; %+v",
		goodput/1e6, goodput/1e5, 100*ackShare, snd[0].c.Stats())
	if goodput < 0.85*10e6 {
		t.Fatalf("one flow reached %.1f %% of the link, want ≥ 85 %%\n%s", goodput/1e5, simtest.ReplayLine(t.Name(), seed))
	}
	if ackShare > 0.05 {
		t.Fatalf("ack bytes %.2f %% of goodput, want ≤ 5 %%\n%s", 100*ackShare, simtest.ReplayLine(t.Name(), seed))
	}
}

func TestSimBottleneckTwoFlowsFair(t *testing.T) {
	seed := simtest.Seed(t, 8)
	const from, to = 20 * time.Second, 60 * time.Second
	window, _, _, _ := simFlows(t, seed, 2, 2*time.Second, from, to)
	x1, x2 := float64(window[0]), float64(window[1])
	jain := (x1 + x2) * (x1 + x2) / (2 * (x1*x1 + x2*x2))
	secs := (to - from).Seconds()
	t.Logf("sim two flows: %.2f and %.2f Mbit/s, Jain %.3f, link %.1f %% used", x1*8/secs/1e6, x2*8/secs/1e6, jain, (x1+x2)*8/secs/1e5)
	if jain < 0.9 {
		t.Fatalf("Jain fairness %.3f < 0.9\n%s", jain, simtest.ReplayLine(t.Name(), seed))
	}
}

// The priority case on sim: during a 1 MB bulk transfer on a low-priority lane, every
// high-priority message leaves within one full packet's time at the pacing rate.
func TestSimPriorityLaneNotDelayedByBulk(t *testing.T) {
	seed := simtest.Seed(t, 9)
	w := newSimWorld(t, seed)
	ha := w.host("a", sim.LinkConfig{Latency: 20 * time.Millisecond, Bandwidth: bottleneckBytesPerSecond,
		QueueBytes: bottleneckQueueBytes}, 1)
	hb := w.host("b", sim.LinkConfig{}, 1)
	cfg := Config{Lanes: []LaneConfig{{Priority: 0, Weight: 1}, {Priority: 1, Weight: 1}}}
	a, b := w.connect(cfg, ha, 0, hb, 0)
	o := newOracle(w.failf)
	b.onMsg = o.receive
	bk := &bulk{c: a.c, o: o, lane: 0, total: 1 << 20, msgSize: 64 << 10, buf: make([]byte, 64<<10)}
	start := w.s.Now()
	w.every(start, time.Millisecond, bk.feed)
	type waiting struct {
		sent  proto.Instant
		limit time.Duration
	}
	var queue []waiting
	var left uint64
	worst := 0.0
	// Check after every step whether the oldest waiting message has left.
	ha.AfterStep = func(now proto.Instant) {
		ha.Machine().(*connMux).drainEvents(now)
		for sent := a.c.LaneStats(1).MessagesSent; left < sent; left++ {
			q := queue[0]
			queue = queue[1:]
			d := now.Sub(q.sent)
			worst = max(worst, float64(d)/float64(q.limit))
			if d > q.limit {
				w.failf("high-priority message waited %v behind bulk, more than one packet time %v", d, q.limit)
			}
		}
	}
	buf := make([]byte, 256)
	urgent := 0
	w.every(start.Add(5*time.Millisecond), 7*time.Millisecond, func(now proto.Instant) bool {
		st := a.c.Stats()
		limit := time.Duration(float64(st.DatagramSize-defaultHeadroom-defaultTailroom) / float64(st.PacingRate) * float64(time.Second))
		if err := o.send(a.c, now, 1, ReliableOrdered, 200, buf); err != nil {
			w.failf("send: %v", err)
		}
		queue = append(queue, waiting{sent: now, limit: limit + time.Microsecond})
		urgent++
		return b.c.LaneStats(0).BytesDelivered < uint64(bk.total)
	})
	if !w.run(start.Add(60*time.Second), func() bool { return b.c.LaneStats(0).BytesDelivered == uint64(bk.total) && o.complete() }) {
		w.failf("bulk incomplete")
	}
	t.Logf("sim: %d high-priority messages during 1 MB of bulk; worst wait %.2f of its one-packet bound", urgent, worst)
	if urgent < 50 || left != uint64(urgent) {
		w.failf("only %d urgent messages (%d left)", urgent, left)
	}
}
