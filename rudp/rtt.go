package rudp

import "time"

// granularity is the timer granularity of RFC 9002 §6.1.2 (kGranularity).
const granularity = time.Millisecond

// ptoMin is the floor of the probe timeout. RFC 6298 §2.4 sets 1 s for TCP, which
// would turn one lost game input into a second-long stall; a PTO that fires a few
// milliseconds too early only costs one spurious probe. It binds only on sub-ms
// paths (loopback, a LAN) and only when the peer acknowledges at once (the last
// packet carried a PING; otherwise the peer's max_ack_delay is counted too): two
// timer granularities, for this end's loss timer and the peer's loop, each of which
// may run up to one late (Go's timers sleep in whole milliseconds when idle).
const ptoMin = 2 * granularity

// rttEstimator is the RFC 9002 §5 estimator (the RFC 6298 smoothing with QUIC's
// min_rtt and ack-delay correction).
type rttEstimator struct {
	latest  time.Duration // RFC 9002 §5.2 latest_rtt
	min     time.Duration // RFC 9002 §5.2 min_rtt
	smooth  time.Duration // RFC 9002 §5.3 smoothed_rtt
	vari    time.Duration // RFC 9002 §5.3 rttvar
	sampled bool          // at least one sample taken
}

func newRTTEstimator(initial time.Duration) rttEstimator {
	// RFC 9002 §5.3: before the first sample smoothed_rtt = kInitialRtt,
	// rttvar = kInitialRtt / 2.
	return rttEstimator{smooth: initial, vari: initial / 2}
}

// update takes one sample. ackDelay is the peer's reported delay, already capped at
// its max_ack_delay by the caller (RFC 9002 §5.3).
func (r *rttEstimator) update(latest, ackDelay time.Duration) {
	latest = max(latest, time.Microsecond) // a zero RTT would make pacing infinite
	r.latest = latest
	if !r.sampled {
		r.sampled = true
		r.min, r.smooth, r.vari = latest, latest, latest/2
		return
	}
	r.min = min(r.min, latest)
	adjusted := latest
	// RFC 9002 §5.3: subtract the ack delay only if the result is not below min_rtt.
	if latest >= r.min+ackDelay {
		adjusted = latest - ackDelay
	}
	diff := r.smooth - adjusted
	if diff < 0 {
		diff = -diff
	}
	r.vari = (3*r.vari + diff) / 4
	r.smooth = (7*r.smooth + adjusted) / 8
}

// pto is the base probe timeout of RFC 9002 §6.2.1:
// smoothed_rtt + max(4*rttvar, kGranularity) + max_ack_delay, floored at ptoMin.
func (r *rttEstimator) pto(maxAckDelay time.Duration) time.Duration {
	return max(r.smooth+max(4*r.vari, granularity)+maxAckDelay, ptoMin)
}
