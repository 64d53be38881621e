package rudp

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// The bottleneck: 10 Mbit/s with a 100-packet drop-tail buffer, 40 ms base RTT.
func bottleneck() linkConfig {
	return linkConfig{delay: 20 * time.Millisecond, rateBps: 10_000_000, queuePackets: 100}
}

// flow is one bulk transfer a→b whose delivered bytes are counted.
type flow struct {
	a, b   *endpoint
	o      *oracle
	bk     *bulk
	window int64 // bytes delivered inside the measuring window
}

func newFlow(n *network, shared *link, total int) *flow {
	f := &flow{}
	f.a, f.b = n.pair(Config{}, shared, &link{cfg: linkConfig{delay: 20 * time.Millisecond}})
	f.o = newOracle(n.failf)
	f.bk = &bulk{c: f.a.c, o: f.o, total: total, msgSize: 16 << 10, buf: make([]byte, 16<<10)}
	return f
}

// One flow alone fills at least 85 % of the bottleneck with goodput (message bytes,
// after rudp's, keyx's and relay framing's overheads), and its acknowledgements cost at
// most 5 % of that goodput on the reverse path.
func TestBottleneckOneFlow(t *testing.T) {
	n := newNetwork(t, 7)
	shared := &link{cfg: bottleneck()}
	f := newFlow(n, shared, 1<<40)
	const from, to = 5 * time.Second, 35 * time.Second
	start := n.now
	f.b.onMsg = func(now proto.Instant, ev *EventMessage) {
		f.o.receive(now, ev)
		if now.Sub(start) >= from {
			f.window += int64(len(ev.Data))
		}
	}
	n.every(start, time.Millisecond, f.bk.feed)
	n.run(start.Add(to), nil)
	goodput := float64(f.window) * 8 / (to - from).Seconds()
	share := goodput / 10e6
	sb := f.b.c.Stats()
	// Ack bytes as datagrams on the wire: the rudp packet plus keyx and relay overhead.
	ackWire := float64(sb.AckOnlyBytes + sb.AckOnlyPackets*uint64(defaultHeadroom+defaultTailroom))
	ackShare := ackWire / float64(f.o.arrived*(16<<10))
	t.Logf("one flow: goodput %.2f Mbit/s = %.1f %% of 10 Mbit/s; ack bytes %.2f %% of goodput; sender %+v",
		goodput/1e6, 100*share, 100*ackShare, f.a.c.Stats())
	if share < 0.85 {
		n.failf("one flow reached %.1f %% of the link, want ≥ 85 %%", 100*share)
	}
	if ackShare > 0.05 {
		n.failf("ack bytes are %.2f %% of goodput, want ≤ 5 %%", 100*ackShare)
	}
}

// Two flows through the same bottleneck share it fairly: Jain's index ≥ 0.9 over the
// measuring window, with the second flow starting two seconds after the first.
func TestBottleneckTwoFlowsFair(t *testing.T) {
	n := newNetwork(t, 8)
	shared := &link{cfg: bottleneck()}
	f1, f2 := newFlow(n, shared, 1<<40), newFlow(n, shared, 1<<40)
	const from, to = 20 * time.Second, 60 * time.Second
	start := n.now
	for _, f := range []*flow{f1, f2} {
		f := f
		f.b.onMsg = func(now proto.Instant, ev *EventMessage) {
			f.o.receive(now, ev)
			if now.Sub(start) >= from {
				f.window += int64(len(ev.Data))
			}
		}
	}
	n.every(start, time.Millisecond, f1.bk.feed)
	n.every(start.Add(2*time.Second), time.Millisecond, f2.bk.feed)
	n.run(start.Add(to), nil)
	x1, x2 := float64(f1.window), float64(f2.window)
	jain := (x1 + x2) * (x1 + x2) / (2 * (x1*x1 + x2*x2))
	secs := (to - from).Seconds()
	t.Logf("two flows: %.2f and %.2f Mbit/s, Jain %.3f, link %.1f %% used", x1*8/secs/1e6, x2*8/secs/1e6, jain, 100*(x1+x2)*8/secs/10e6)
	if jain < 0.9 {
		n.failf("Jain fairness %.3f < 0.9 (%.0f vs %.0f bytes)", jain, x1, x2)
	}
}

// Loss tolerance stays controlled: on a shallow buffer (5 packets, less queueing delay
// than the RTT-inflation test can see) the window still backs off once the loss rate
// passes lossRateCongestive, so overflow losses stay near that rate instead of
// growing, and with 1 % random loss on top the flow still fills the link.
func TestShallowBufferLossStaysBounded(t *testing.T) {
	for _, random := range []float64{0, 0.01} {
		n := newNetwork(t, 18)
		l := linkConfig{delay: 20 * time.Millisecond, rateBps: 10_000_000, queuePackets: 5, loss: random}
		shared := &link{cfg: l}
		f := newFlow(n, shared, 1<<40)
		const from, to = 5 * time.Second, 35 * time.Second
		start := n.now
		f.b.onMsg = func(now proto.Instant, ev *EventMessage) {
			f.o.receive(now, ev)
			if now.Sub(start) >= from {
				f.window += int64(len(ev.Data))
			}
		}
		n.every(start, time.Millisecond, f.bk.feed)
		n.run(start.Add(to), nil)
		goodput := float64(f.window) * 8 / (to - from).Seconds()
		lossRate := float64(shared.dropped) / float64(shared.sent)
		t.Logf("5-packet buffer, %.0f %% random loss: goodput %.2f Mbit/s, link loss %.2f %%, %+v",
			100*random, goodput/1e6, 100*lossRate, f.a.c.Stats())
		if lossRate > random+0.06 {
			n.failf("loss rate %.2f %% on a shallow buffer: the window does not back off", 100*lossRate)
		}
		if goodput < 0.7*10e6 {
			n.failf("goodput %.2f Mbit/s on a shallow buffer", goodput/1e6)
		}
	}
}
