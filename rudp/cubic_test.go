package rudp

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

func TestCubicReduction(t *testing.T) {
	c := newCubic(1000)
	// RFC 9002 §7.2: "the initial congestion window ... SHOULD be ... ten times the
	// maximum datagram size".
	if c.cwnd != 10*1000 {
		t.Fatalf("initial window %d", c.cwnd)
	}
	// Slow start: one byte of window per byte acknowledged (RFC 9002 §7.3.1).
	c.onAck(5000, 10, 20, 100*time.Millisecond, true)
	if c.cwnd != 15000 {
		t.Fatalf("slow start cwnd %d, want 15000", c.cwnd)
	}
	// An application-limited sender does not grow the window (RFC 9002 §7.8).
	c.onAck(5000, 10, 20, 100*time.Millisecond, false)
	if c.cwnd != 15000 {
		t.Fatalf("app-limited growth to %d", c.cwnd)
	}
	// RFC 9438 §4.6: "cwnd = cwnd * β_cubic", β_cubic = 0.7.
	if !c.onCongestion(30, 40) || c.cwnd != 10500 || c.ssthresh != 10500 {
		t.Fatalf("after loss cwnd %d ssthresh %d, want 10500", c.cwnd, c.ssthresh)
	}
	// RFC 9002 §7.3.2: losses of packets sent before the recovery period started do
	// not reduce the window again.
	if c.onCongestion(35, 50) || c.cwnd != 10500 {
		t.Fatalf("second reduction in one recovery period: %d", c.cwnd)
	}
	// Acks of packets sent before recovery started do not grow it either.
	c.onAck(1000, 39, 60, 100*time.Millisecond, true)
	if c.cwnd != 10500 {
		t.Fatalf("grew on an ack from before recovery: %d", c.cwnd)
	}
	// Never below the minimum window (RFC 9002 §7.2: two packets).
	for i := range 20 {
		c.onCongestion(proto.Instant(100+2*i), proto.Instant(101+2*i))
	}
	if c.cwnd != 2000 {
		t.Fatalf("window %d below the minimum", c.cwnd)
	}
}

// In congestion avoidance the window climbs back towards W_max along the cubic
// (RFC 9438 §4.2): after K seconds it is back at W_max. At a 200 ms RTT the cubic is
// above the Reno-friendly estimate (RFC 9438 §4.3), which at 20 ms would win.
func TestCubicRecoversToWMax(t *testing.T) {
	c := newCubic(1000)
	c.ssthresh = 0
	c.cwnd = 100 * 1000
	c.onCongestion(1, 2) // W_max = 100 packets, cwnd = 70
	srtt := 200 * time.Millisecond
	now := proto.Instant(3)
	k := time.Duration(0)
	for c.cwnd < 100*1000 && k < time.Minute {
		// Acknowledge a window's worth per RTT.
		for acked := 0; acked < c.cwnd; acked += 1000 {
			c.onAck(1000, now, now, srtt, true)
		}
		now = now.Add(srtt)
		k += srtt
	}
	// K = cbrt(W_max (1-β) / C) = cbrt(100 * 0.3 / 0.4) ≈ 4.2 s. The curve is flat
	// around K, so the last packet of window comes a few RTTs either side.
	if k < 3500*time.Millisecond || k > 5*time.Second {
		t.Fatalf("back at W_max after %v, want about 4.2 s", k)
	}
}

// HyStart++ (RFC 9406 §4.2) leaves slow start for conservative slow start when a
// round's minimum RTT exceeds the previous round's by eta, and then grows by 1/4.
func TestHyStartEntersCSS(t *testing.T) {
	c := newCubic(1000)
	c.onRoundStart(10)
	for range hystartNRTTSample {
		c.onRTTSample(50 * time.Millisecond)
	}
	c.onRoundStart(20)
	for range hystartNRTTSample {
		c.onRTTSample(60 * time.Millisecond) // +10 ms > eta = clamp(50/8, 4, 16) = 6.25 ms
	}
	if c.cssBaseline != 60*time.Millisecond {
		t.Fatalf("did not enter CSS (baseline %v)", c.cssBaseline)
	}
	before := c.cwnd
	c.onAck(4000, 10, 20, 60*time.Millisecond, true)
	if c.cwnd != before+1000 {
		t.Fatalf("CSS growth %d, want a quarter of 4000", c.cwnd-before)
	}
	for i := range hystartCSSRounds {
		c.onRoundStart(uint64(30 + i))
	}
	if c.inSlowStart() {
		t.Fatalf("still in slow start after %d CSS rounds", hystartCSSRounds)
	}
}

func TestPacerSpreadsPackets(t *testing.T) {
	const mss = 1000
	p := newPacer(10*mss, 0)
	rate := uint64(1_000_000) // 1 MB/s: one packet per millisecond
	now := proto.Instant(0)
	sent := 0
	for now < proto.Instant(100*time.Millisecond) {
		p.refill(now, rate, mss)
		if ok, at := p.ready(now, mss, rate); ok {
			p.spend(mss)
			sent++
		} else {
			now = at
		}
	}
	// 10 packets of initial burst, then 100 ms at one per millisecond.
	if sent < 105 || sent > 112 {
		t.Fatalf("sent %d packets in 100 ms at 1 packet/ms after a 10-packet burst", sent)
	}
}
