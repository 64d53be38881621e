package rudp

import "time"

// Packetization-layer PMTU discovery (DPLPMTUD, RFC 8899) reduced to its search: the
// connection starts at DatagramSizeBase, which every path must carry, and once the
// path answers it probes larger sizes with PING+PADDING packets. A probe's loss is
// not congestion (RFC 9000 §14.4).
const (
	pmtuStep          = 16               // stop searching when the bounds are this close
	pmtuMaxProbes     = 3                // RFC 8899 §5.1.2 MAX_PROBES
	pmtuRaiseInterval = 10 * time.Minute // RFC 8899 §5.1.1 PMTU_RAISE_TIMER
)

type pmtuState struct {
	current int  // confirmed datagram size
	lo, hi  int  // search bounds: lo confirmed, hi not yet known to fail
	probing int  // size of the probe in flight, 0 if none
	fails   int  // consecutive losses at probing size
	started bool // the path has answered once
	due     bool // a probe should be sent when the window allows
	cfgMax  int  // DatagramSizeMax
}

func newPMTU(cfg Config) pmtuState {
	return pmtuState{current: cfg.DatagramSizeBase, lo: cfg.DatagramSizeBase, hi: cfg.DatagramSizeMax, cfgMax: cfg.DatagramSizeMax}
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
