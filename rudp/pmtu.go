package rudp

import (
	"time"

	"github.com/natpass/natpass/proto"
)

// Packetization-layer PMTU discovery (DPLPMTUD, RFC 8899) reduced to its search: the
// connection starts at DatagramSizeBase, which every path must carry, and once the
// path answers it probes larger sizes with PING+PADDING packets. A probe's loss is
// not congestion (RFC 9000 §14.4).
const (
	pmtuStep          = 16               // stop searching when the bounds are this close
	pmtuMaxProbes     = 3                // RFC 8899 §5.1.2 MAX_PROBES
	pmtuRaiseInterval = 10 * time.Minute // RFC 8899 §5.1.1 PMTU_RAISE_TIMER
	// pmtuBlackholeLosses consecutive losses of packets larger than the base size,
	// with none of that size acknowledged in between, mean the path no longer carries
	// them (RFC 8899 §4.3 black-hole detection): fall back to the base size and search
	// again.
	pmtuBlackholeLosses = 3
)

type pmtuState struct {
	current int  // confirmed datagram size
	lo, hi  int  // search bounds: lo confirmed, hi not yet known to fail
	probing int  // size of the probe in flight, 0 if none
	fails   int  // consecutive losses at probing size
	started bool // the path has answered once
	due     bool // a probe should be sent when the window allows
	cfgMax  int  // DatagramSizeMax
	base    int  // DatagramSizeBase
	// bigLosses counts losses of packets above the base size since one of that size
	// was last acknowledged; packets sent before the last fall-back (resetAt) do not
	// count, since they were sized for the PMTU already given up.
	bigLosses int
	resetAt   proto.Instant
}

func newPMTU(cfg Config) pmtuState {
	return pmtuState{current: cfg.DatagramSizeBase, lo: cfg.DatagramSizeBase, hi: cfg.DatagramSizeMax, cfgMax: cfg.DatagramSizeMax, base: cfg.DatagramSizeBase}
}

// searching reports whether a larger size is still worth a probe.
func (p *pmtuState) searching() bool { return p.hi-p.lo >= pmtuStep }

// nextSize is the size of the next probe: the top first (most paths carry it), then
// binary search between what worked and what failed.
func (p *pmtuState) nextSize() int {
	if p.hi == p.cfgMax {
		return p.hi
	}
	return (p.lo + p.hi + 1) / 2
}

// onAcked records a probe of size that arrived.
func (p *pmtuState) onAcked(size int) {
	p.probing, p.fails = 0, 0
	if size > p.lo {
		p.lo, p.current = size, size
	}
	if size == p.hi {
		p.hi = p.lo // the top worked: nothing left to find
	}
	p.due = p.searching()
}

// onLost records a lost probe of size; after pmtuMaxProbes losses the size is taken
// to be too large.
func (p *pmtuState) onLost(size int) {
	p.probing = 0
	p.fails++
	if p.fails >= pmtuMaxProbes {
		p.fails = 0
		p.hi = size - 1
	}
	p.due = p.searching()
}

// onBigLost records the loss of an ordinary packet of datagram size; it reports true
// when the path looks like a black hole for the current PMTU, after resetting to the
// base size and restarting the search.
func (p *pmtuState) onBigLost(size int, sent, now proto.Instant) bool {
	if size <= p.base || sent < p.resetAt {
		return false
	}
	p.bigLosses++
	if p.bigLosses < pmtuBlackholeLosses {
		return false
	}
	p.bigLosses, p.fails, p.probing, p.resetAt = 0, 0, 0, now
	p.current, p.lo, p.hi = p.base, p.base, p.cfgMax
	p.due = p.searching()
	return true
}

// onBigAcked records an acknowledged ordinary packet of datagram size.
func (p *pmtuState) onBigAcked(size int) {
	if size > p.base {
		p.bigLosses = 0
	}
}
