package node

import (
	"time"

	"github.com/natpass/natpass/proto"
)

// The first contact with a peer is a chain of small requests to the server, each
// answered at once: the introduce-request, the keepalive carrying our NAT report,
// the relay-allocate and its ready polls. At 1 % loss per access link about one
// connection in ten loses a datagram of that chain, and the repeat's delay is then
// most of the time to the first message. A fixed delay must cover the slowest
// server a node may have (300 ms); measured, it is a couple of our own round trips.
//
// serverRTT is the node's round trip to its server, measured as RFC 6298 does with
// Karn's rule: only an answer that can belong to one send is a sample (a register
// sent once, the latest keepalive acknowledged by its sequence number).
type serverRTT struct {
	srtt time.Duration // smoothed; 0 until the first sample
	// regSentAt and regSends: the current register's first send and how many
	// went (a repeated one keeps its TxID: its answer is no sample).
	regSentAt proto.Instant
	regSends  int
	// kaSentAt is when keepalive kaSeq went.
	kaSentAt proto.Instant
}

// First-contact repeat timing: firstContactPerRTT round trips, at least
// firstContactMin (the server answers at once; this leaves room for a late answer
// on a jittery link), at most the fixed delay the request had without a
// measurement.
const (
	firstContactPerRTT = 2
	firstContactMin    = 50 * time.Millisecond
)

// sample takes one round-trip measurement (RFC 6298 §2: the first one is the
// estimate, later ones move it by an eighth).
func (r *serverRTT) sample(d time.Duration) {
	if d <= 0 {
		return
	}
	if r.srtt == 0 {
		r.srtt = d
		return
	}
	r.srtt += (d - r.srtt) / 8
}

// forget drops the estimate: a node registering with another server (or from
// another address) knows nothing of the new round trip.
func (r *serverRTT) forget() { *r = serverRTT{} }

// firstContactRTO is when an unanswered first-contact request to the server is
// first repeated: firstContactPerRTT measured round trips within [firstContactMin,
// fixed], or fixed while nothing is measured. Repeats double from there.
func (r *serverRTT) firstContactRTO(fixed time.Duration) time.Duration {
	if r.srtt == 0 {
		return fixed
	}
	return min(max(firstContactPerRTT*r.srtt, firstContactMin), fixed)
}

// measuredRTO is firstContactRTO for a request whose fixed delay lives elsewhere
// (relayframe's): 0 while nothing is measured, which keeps that default.
func (r *serverRTT) measuredRTO() time.Duration {
	if r.srtt == 0 {
		return 0
	}
	return max(firstContactPerRTT*r.srtt, firstContactMin)
}

// registerSent notes a send of the current register (first: a new registration).
func (r *serverRTT) registerSent(now proto.Instant, first bool) {
	if first {
		r.regSends = 0
	}
	if r.regSends == 0 {
		r.regSentAt = now
	}
	r.regSends++
}

// registered: the server admitted us; a register sent once measures the round trip.
func (r *serverRTT) registered(now proto.Instant) {
	if r.regSends == 1 {
		r.sample(now.Sub(r.regSentAt))
	}
	r.regSends = 0
}

// keepaliveAcked: the server acknowledged keepalive seq, latest being the latest
// sent; only the latest one's send time is known.
func (r *serverRTT) keepaliveAcked(now proto.Instant, seq, latest uint32) {
	if seq == latest && r.kaSentAt != 0 {
		r.sample(now.Sub(r.kaSentAt))
		r.kaSentAt = 0 // a repeated ack is no second sample
	}
}
