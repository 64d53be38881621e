package rudp

import (
	"time"

	"github.com/natpass/natpass/proto"
)

// ACK frequency (PROTOCOL.md §7.9, in the spirit of draft-ietf-quic-ack-frequency).
// The data sender knows its window and its RTT, so it tells the receiver how often
// to acknowledge: every second packet by default (RFC 9000 §13.2.1), every few
// packets during bulk, when the window holds many packets and each acknowledgement
// packet costs the receiver a system call and the sender a decryption. Whatever it
// asks, out-of-order arrival still gets an immediate acknowledgement (beyond the
// reordering threshold), and the sender adds a PING, which is always acknowledged at
// once, to the packet that ends a burst, to top-priority messages and to probes.
const (
	// ackBulkMinWindow is the window, in full packets, below which the sender asks
	// for the default: a small window needs every acknowledgement to open.
	ackBulkMinWindow = 16
	// ackPerWindow is how many acknowledgements per window bulk asks for: enough for
	// the window to grow smoothly and for HyStart++ to get its RTT samples.
	ackPerWindow = 8
	// ackThresholdMax caps the bulk threshold: an acknowledgement at least every
	// tenth ack-eliciting packet.
	ackThresholdMax = 9
	// ackDelayFloor is the smallest delay asked for, whatever the RTT (loopback
	// RTTs are tens of microseconds; the driver's timers are not that fine).
	ackDelayFloor = 250 * time.Microsecond
	// ackBulkReorder is the reordering threshold bulk asks for: the receiver acknowledges
	// at once when a missing packet has as many later ones as loss detection needs
	// to declare it lost (kPacketThreshold), rather than on every reordering.
	ackBulkReorder = packetThreshold
	// ackFreqFrameMax is the longest ACK-FREQUENCY frame: type, sequence (8),
	// threshold (2), delay (4), reordering threshold (2).
	ackFreqFrameMax = 1 + 8 + 2 + 4 + 2
)

// ackFreq is a set of acknowledgement parameters (the fields of ACK-FREQUENCY).
type ackFreq struct {
	threshold uint64        // acknowledge once more than this many ack-eliciting packets are unacknowledged
	delay     time.Duration // ... or this long after the first of them
	reorder   uint64        // ... or at once on a gap this many packets old (0: never, 1: any)
}

// defaultAckFreq is what a receiver does before any ACK-FREQUENCY: RFC 9000 §13.2.1.
func defaultAckFreq(cfg *Config) ackFreq {
	return ackFreq{threshold: 1, delay: cfg.MaxAckDelay, reorder: 1}
}

// ackFreqOut is what this end has asked of its peer.
type ackFreqOut struct {
	asked      ackFreq       // the values of the last frame sent
	want       ackFreq       // what ackFreqDue last chose
	any        bool          // a frame was sent
	nextSeq    uint64        // the next frame's sequence number
	askedAt    proto.Instant // when the last frame was sent
	resend     bool          // a packet carrying a frame was lost
	busyAt     proto.Instant // when ackBulkMinWindow packets were last seen in flight
	flightPeak int           // packets in flight, the most seen since the last frame
}

// ackFreqIn is the peer's request as this end honours it.
type ackFreqIn struct {
	params ackFreq
	seq    uint64 // the largest sequence number applied
	any    bool
}

// ackFreqTarget is what the sender wants of the receiver now. Bulk (a threshold
// above 1) needs a measured RTT, a window of ackBulkMinWindow packets, as many in
// flight within the last two RTTs (a flow limited by its window, by flow control or
// by the sender's CPU all qualify; a sparse one does not), no congestion event
// within the last RTT (loss recovery wants every acknowledgement) and no probe
// timeout outstanding. The threshold asks for about ackPerWindow acknowledgements
// per window or per flight, whichever is smaller.
func (c *Conn) ackFreqTarget() ackFreq {
	def := defaultAckFreq(&c.cfg)
	o := &c.afOut
	window := min(c.cc.cwnd/c.cc.mss, o.flightPeak)
	switch {
	case c.cfg.FixedAckFrequency, !c.rtt.sampled, window < ackBulkMinWindow, c.ptoCount > 0:
		return def
	case c.now.Sub(c.cc.recoveryStart) < c.rtt.smooth:
		return def
	case c.now.Sub(o.busyAt) > 2*c.rtt.smooth:
		return def
	}
	return ackFreq{
		threshold: uint64(min(ackThresholdMax, window/ackPerWindow-1)),
		delay:     min(c.cfg.MaxAckDelay, max(c.rtt.smooth/4, ackDelayFloor)),
		reorder:   ackBulkReorder,
	}
}

// ackFreqDue reports whether an ACK-FREQUENCY frame should go in the next packet; the
// values it should carry are left in afOut.want. A return to the default goes at
// once; other changes at most once per smoothed RTT, and a delay only when it is off
// by more than a factor of two, so an RTT that wanders (loopback's does, by the
// scheduler) does not cost a frame per round trip.
func (c *Conn) ackFreqDue(now proto.Instant) bool {
	o := &c.afOut
	if c.bytesInFlight >= ackBulkMinWindow*c.cc.mss {
		o.busyAt = now
		o.flightPeak = max(o.flightPeak, c.bytesInFlight/c.cc.mss)
	}
	if !o.any && o.flightPeak < ackBulkMinWindow {
		return false // never busy, never asked: the default stands (the per-packet fast path)
	}
	want := c.ackFreqTarget()
	o.want = want
	switch {
	case !o.any:
		return want != defaultAckFreq(&c.cfg)
	case o.resend:
		return true
	case want == o.asked:
		return false
	case want.threshold <= 1:
		return true
	case want.threshold == o.asked.threshold && want.reorder == o.asked.reorder &&
		want.delay <= 2*o.asked.delay && o.asked.delay <= 2*want.delay:
		return false
	}
	return now.Sub(o.askedAt) >= c.rtt.smooth
}

// appendAckFreq writes an ACK-FREQUENCY frame asking for what ackFreqDue chose.
func (c *Conn) appendAckFreq(b []byte, now proto.Instant, sp *sentPacket) []byte {
	o := &c.afOut
	want := o.want
	f := proto.RUDPAckFrequency{
		Sequence:          o.nextSeq,
		Threshold:         want.threshold,
		MaxAckDelayMicros: durationMicros(want.delay),
		ReorderThreshold:  want.reorder,
	}
	o.asked, o.any, o.askedAt, o.resend = want, true, now, false
	o.flightPeak = c.bytesInFlight / c.cc.mss
	o.nextSeq++
	sp.flags |= pktAckFreq
	c.stats.AckFrequencySent++
	return f.Append(b)
}

// peerDelaysAcks reports whether the last request lets the peer hold back
// acknowledgements: then packets that want one at once carry a PING.
func (c *Conn) peerDelaysAcks() bool { return c.afOut.asked.threshold > 1 }

// onAckFrequency applies a received ACK-FREQUENCY frame unless a newer one was
// applied already (frames can arrive out of order; PROTOCOL.md §7.9).
func (c *Conn) onAckFrequency(f *proto.RUDPAckFrequency, now proto.Instant) {
	in := &c.afIn
	if in.any && f.Sequence <= in.seq {
		c.stats.AckFrequencyStale++
		return
	}
	in.any, in.seq = true, f.Sequence
	in.params = ackFreq{
		threshold: f.Threshold,
		delay:     time.Duration(f.MaxAckDelayMicros) * time.Microsecond,
		reorder:   f.ReorderThreshold,
	}
	c.stats.AckFrequencyReceived++
	if c.timers[timerAck] != proto.Never {
		c.timers[timerAck] = min(c.timers[timerAck], now.Add(in.params.delay))
	}
}

// onAckEliciting decides when to acknowledge an ack-eliciting packet pn: at once on a
// PING, past the threshold, or out of order beyond the reordering threshold;
// otherwise within the requested delay. had and largest describe the packets
// received before pn.
func (c *Conn) onAckEliciting(now proto.Instant, pn uint64, had bool, largest uint64, ping bool) {
	c.ackPending = true
	c.ackElicitingUnacked++
	p := &c.afIn.params
	if ping || uint64(c.ackElicitingUnacked) > p.threshold || c.outOfOrder(pn, had, largest) {
		c.ackImmediate = true
		return
	}
	if c.timers[timerAck] == proto.Never {
		c.timers[timerAck] = now.Add(p.delay)
	}
}

// outOfOrder applies the reordering threshold r to the arrival of pn. r = 1 is RFC
// 9000 §13.2.1: any packet other than the next one. For r ≥ 2: a packet filling a gap
// that an ACK already reported (the sender may have declared it lost), or a gap
// opened since the last ACK that now has r later packet numbers above it (the sender
// can declare it lost once it hears).
func (c *Conn) outOfOrder(pn uint64, had bool, largest uint64) bool {
	r := c.afIn.params.reorder
	switch {
	case r == 0 || !had:
		return false
	case r == 1:
		return pn != largest+1
	case pn < largest:
		return c.ackSent && pn <= c.ackSentLargest
	}
	from := uint64(0)
	if c.ackSent {
		from = c.ackSentLargest + 1
	}
	gap, ok := c.recvd.lowestGapFrom(from)
	return ok && pn-gap >= r
}
