package rudp

import (
	"time"

	"github.com/natpass/natpass/proto"
)

// pacerBurst is how much sending time the pacer lets out at once: enough to cover
// timer slack, small enough that a burst does not fill a bottleneck buffer.
const pacerBurst = 2 * time.Millisecond

// pacer is a token bucket in bytes refilled at the congestion controller's pacing
// rate (RFC 9002 §7.7).
type pacer struct {
	tokens   int
	capacity int
	last     proto.Instant
}

func newPacer(initialWindow int, now proto.Instant) pacer {
	// The first flight (the initial window) may leave at once, as TCP and QUIC allow.
	return pacer{tokens: initialWindow, capacity: initialWindow, last: now}
}

// refill adds the tokens earned since the last call at rate bytes/s.
func (p *pacer) refill(now proto.Instant, rate uint64, mss int) {
	p.capacity = max(2*mss, int(rate*uint64(pacerBurst)/uint64(time.Second)))
	p.capacity = min(p.capacity, 64*mss)
	elapsed := now.Sub(p.last)
	if elapsed <= 0 {
		return
	}
	// Past the time it takes to fill the bucket the answer is "full"; below it the
	// product rate*elapsed stays under capacity*1e9 and cannot overflow. The clock
	// advances only by the time the whole bytes earned took, so frequent calls do not
	// round the rate down to nothing.
	if fill := time.Duration(uint64(p.capacity) * uint64(time.Second) / max(rate, 1)); elapsed >= fill {
		p.tokens = max(p.capacity, p.tokens)
		p.last = now
		return
	}
	earned := rate * uint64(elapsed) / uint64(time.Second)
	if earned == 0 {
		return
	}
	p.last = p.last.Add(time.Duration(earned * uint64(time.Second) / rate))
	p.tokens = min(p.tokens+int(earned), max(p.capacity, p.tokens))
}

// ready reports whether a packet of size bytes may go now; if not, the Instant at
// which it may.
func (p *pacer) ready(now proto.Instant, size int, rate uint64) (bool, proto.Instant) {
	if p.tokens >= size {
		return true, now
	}
	if rate == 0 {
		rate = 1
	}
	wait := time.Duration(uint64(size-p.tokens) * uint64(time.Second) / rate)
	return false, now.Add(max(wait, time.Microsecond))
}

// spend takes size bytes of tokens; the bucket may go negative for the one packet
// that overshoots, which the next refill pays back.
func (p *pacer) spend(size int) { p.tokens -= size }
