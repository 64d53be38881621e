package rudp

import (
	"os"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim/simtest"
)

// seededRuns is how many seeds TestSeededImpairments runs: 200 by default, 10,000
// with NATPASS_LONG=1 (the acceptance run).
func seededRuns() int {
	if os.Getenv("NATPASS_LONG") == "1" {
		return 10000
	}
	return 200
}

// TestSeededImpairments: over loss 0–30 %, duplication, reordering and jitter, in
// both directions at once, every reliable message arrives exactly once (ordered ones
// in order), unreliable-sequenced ones never go backwards, and once the impairment
// ends everything outstanding arrives within a bounded time (no stall).
func TestSeededImpairments(t *testing.T) {
	if seed, ok := simtest.Fixed(); ok {
		runImpairedSeed(t, seed)
		return
	}
	var total seedTotals
	for i := range seededRuns() {
		total.add(runImpairedSeed(t, uint64(i+1)))
		if t.Failed() {
			return
		}
	}
	t.Logf("%d runs: %+v", seededRuns(), total)
	// The runs must actually have exercised recovery, or they prove nothing.
	if total.dropped == 0 || total.retransmits == 0 || total.duplicates == 0 || total.reliable == 0 {
		t.Fatalf("impairments did not bite: %+v", total)
	}
}

type seedTotals struct {
	reliable, dropped, retransmits, duplicates, ptos uint64
}

func (s *seedTotals) add(o seedTotals) {
	s.reliable += o.reliable
	s.dropped += o.dropped
	s.retransmits += o.retransmits
	s.duplicates += o.duplicates
	s.ptos += o.ptos
}

// stallBound is how long after the impairment ends every reliable message must have
// arrived: a few capped PTOs (PTOMax 2 s) plus the longest path delay.
const stallBound = 10 * time.Second

func runImpairedSeed(t *testing.T, seed uint64) seedTotals {
	n := newNetwork(t, seed)
	r := n.rng
	impairFor := time.Duration(2+r.IntN(6)) * time.Second
	end := n.now.Add(impairFor)
	// Some runs add a path MTU below the probing maximum (PMTU discovery under loss)
	// and a blackhole of up to two seconds inside the impaired period.
	mtu := 0
	if r.IntN(3) == 0 {
		mtu = defaultDatagramSizeBase + r.IntN(300)
	}
	var hole func(proto.Instant) bool
	if r.IntN(4) == 0 {
		from := n.now.Add(time.Duration(r.Int64N(int64(impairFor))))
		until := from.Add(time.Duration(500+r.IntN(1500)) * time.Millisecond)
		hole = func(t proto.Instant) bool { return t >= from && t < until }
	}
	mk := func() *link {
		return &link{cfg: linkConfig{
			mtu:          mtu,
			blackhole:    hole,
			delay:        time.Duration(1+r.IntN(100)) * time.Millisecond,
			jitter:       time.Duration(r.IntN(20)) * time.Millisecond,
			loss:         r.Float64() * 0.30,
			dup:          r.Float64() * 0.05,
			reorder:      r.Float64() * 0.10,
			reorderDelay: time.Duration(r.IntN(50)) * time.Millisecond,
			impairUntil:  end,
		}}
	}
	lanes := make([]LaneConfig, 1+r.IntN(3))
	for i := range lanes {
		lanes[i] = LaneConfig{Priority: uint8(r.IntN(2)), Weight: uint16(1 + r.IntN(4)), Redundant: r.IntN(3) == 0}
	}
	cfg := Config{Lanes: lanes}
	ab, ba := mk(), mk()
	a, b := n.pair(cfg, ab, ba)
	oa, ob := newOracle(n.failf), newOracle(n.failf) // messages to a, to b
	a.onMsg, b.onMsg = oa.receive, ob.receive
	buf := make([]byte, 8192)
	count := 20 + r.IntN(60)
	period := impairFor / time.Duration(count)
	sent := 0
	n.every(n.now, period, func(now proto.Instant) bool {
		for _, side := range []struct {
			e *endpoint
			o *oracle
		}{{a, ob}, {b, oa}} {
			if err := side.o.sendRandom(r, side.e.c, now, len(lanes), buf); err != nil {
				n.failf("send: %v", err)
			}
		}
		sent++
		return sent < count
	})
	done := func() bool { return sent == count && oa.complete() && ob.complete() }
	if !n.run(end.Add(stallBound), done) {
		n.failf("stall: %d/%d reliable messages to b and %d/%d to a arrived %v after the impairment ended\n"+
			"links a→b %+v b→a %+v\na: %+v\nb: %+v",
			ob.arrived, ob.expected, oa.arrived, oa.expected, stallBound, ab.cfg, ba.cfg, a.c.Stats(), b.c.Stats())
	}
	if a.closed != nil || b.closed != nil {
		n.failf("connection closed: a %v b %v", a.closed, b.closed)
	}
	sa, sb := a.c.Stats(), b.c.Stats()
	return seedTotals{
		reliable:    uint64(oa.arrived + ob.arrived),
		dropped:     uint64(ab.dropped + ba.dropped),
		retransmits: sa.Retransmits + sb.Retransmits,
		duplicates:  sa.DuplicatePackets + sb.DuplicatePackets,
		ptos:        sa.PTOs + sb.PTOs,
	}
}
