package rudp

import (
	"time"

	"github.com/natpass/natpass/proto"
)

// Adaptive reordering window (RFC 8985 §6.2). Until the path has shown reordering,
// loss detection uses RFC 9002's rules: three packets or 9/8 RTT. A packet declared
// lost and then acknowledged after all proves reordering (RFC 8985's DSACK signal,
// which QUIC-style ACK ranges give directly): from then on the packet-count rule is
// dropped and the time window grows by a quarter of the minimum RTT per spurious loss,
// capped at one smoothed RTT, and shrinks back after reoWndPersist loss recoveries
// without another one.
const (
	reoWndPersist  = 16 // RFC 8985 §6.2: recoveries before reo_wnd_mult resets
	recentLostSize = 64 // lost packet numbers remembered for spurious-loss detection
)

type reorderState struct {
	seen    bool // RFC 8985 RACK.reordering_seen
	mult    int  // RFC 8985 RACK.reo_wnd_mult
	persist int  // RFC 8985 RACK.reo_wnd_persist
	// recentLost are the newest packets declared lost, oldest first; an ACK that
	// covers one of them shows the loss was spurious.
	recentLost [recentLostSize]uint64
	n, head    int
}

// window is the time a packet may trail a later acknowledged one before it counts as
// lost: RFC 9002's 9/8 RTT until reordering is seen, then RTT + reo_wnd.
func (s *reorderState) window(r *rttEstimator) time.Duration {
	base := max(r.smooth, r.latest)
	if !s.seen {
		return max(base+base/8, granularity)
	}
	reo := min(time.Duration(s.mult)*r.min/4, r.smooth)
	return max(base+reo, granularity)
}

// usePacketThreshold reports whether the kPacketThreshold rule still applies.
func (s *reorderState) usePacketThreshold() bool { return !s.seen }

func (s *reorderState) onLost(pn uint64) {
	i := (s.head + s.n) % recentLostSize
	if s.n == recentLostSize {
		s.head = (s.head + 1) % recentLostSize
	} else {
		s.n++
	}
	s.recentLost[i] = pn
}

// onAckRanges checks an ACK against the recently lost packets; each one it covers was
// a spurious loss. It returns their number.
func (s *reorderState) onAckRanges(ranges []proto.RUDPAckRange) int {
	spurious := 0
	for k := 0; k < s.n; {
		pn := s.recentLost[(s.head+k)%recentLostSize]
		covered := false
		for _, rg := range ranges {
			if pn >= rg.Smallest && pn <= rg.Largest {
				covered = true
				break
			}
		}
		if !covered {
			k++
			continue
		}
		// Remove entry k by moving the last one into its place (order is not needed).
		last := (s.head + s.n - 1) % recentLostSize
		s.recentLost[(s.head+k)%recentLostSize] = s.recentLost[last]
		s.n--
		spurious++
	}
	if spurious > 0 {
		s.seen = true
		s.mult = min(s.mult+spurious, 4)
		s.persist = reoWndPersist
	}
	return spurious
}

// onRecovery is called once per congestion event (RFC 8985 §6.2 step 4).
func (s *reorderState) onRecovery() {
	if s.persist > 0 {
		s.persist--
		if s.persist == 0 {
			s.mult = 1
		}
	}
}
