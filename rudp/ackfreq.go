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

	// A sparse flow of unreliable messages (a game's 20 Hz state) needs few
	// acknowledgements: an unreliable message is never retransmitted, so its
	// acknowledgement only frees congestion window and feeds the RTT and loss
	// estimates (RFC 9221 §5.2: DATAGRAM frames are ack-eliciting, but their
	// acknowledgement may be delayed). With the default rule each such packet draws an
	// ACK-only packet of its own, which on a relayed path doubles what the server
	// forwards. So while nothing reliable is outstanding, the sender of unreliable
	// messages asks for an acknowledgement only as often as its window needs: after
	// a delay at which its rate keeps at most 1/ackSparseFlightShare of the window in
	// flight and at most ackSparsePackets packets go unacknowledged, at most
	// ackSparseDelay, and only if that is more than twice MaxAckDelay (a faster flow
	// is bulk, and congestion control wants its acknowledgements).
	ackSparseDelay = time.Second
	// ackSparsePackets bounds the packets a sparse flow leaves unacknowledged; the
	// threshold asked is one less, so the count holds whatever the rate estimate.
	ackSparsePackets = 32
	// ackSparseFlightShare: a sparse flow keeps at most 1/ackSparseFlightShare of the
	// window in flight while its acknowledgements are delayed.
	ackSparseFlightShare = 2
	// ackRateWindow is the period over which the sender measures its own rate to
	// judge whether its flow is sparse.
	ackRateWindow = 100 * time.Millisecond
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

	// The sender's rate over the current window of ackRateWindow, and what it sent.
	rateAt        proto.Instant // start of the window
	rateBytes     uint64        // Stats.BytesSent at rateAt
	winUnreliable bool          // unreliable frames went out in the window
	winReliable   bool          // reliable frames went out in the window
	sparseOK      bool          // the last window that sent data carried unreliable messages
	rate          float64       // bytes per second sent in the last window that sent data
	packetRate    float64       // ... and packets per second
	ratePackets   uint64        // Stats.PacketsSent at rateAt

	// delayBound is the largest max ack delay the peer may be applying: a frame that
	// lowers it counts only once acknowledged (the peer may not have it yet), so
	// the probe timeout and the cap on a reported ack delay use the bound
	// (draft-ietf-quic-ack-frequency §6). lowerPN is the packet carrying the
	// latest frame below the bound, lowerDelay what it asked.
	delayBound time.Duration
	lowering   bool
	lowerPN    uint64
	lowerDelay time.Duration
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
// per window or per flight, whichever is smaller. A flow of unreliable messages
// with nothing reliable outstanding asks for one acknowledgement per sparseDelay,
// when that is long enough to matter, and none for order.
func (c *Conn) ackFreqTarget() ackFreq {
	def := defaultAckFreq(&c.cfg)
	o := &c.afOut
	if c.cfg.FixedAckFrequency || !c.rtt.sampled || c.ptoCount > 0 {
		return def
	}
	if o.sparseOK && !c.reliableOutstanding() {
		if d := c.sparseDelay(); d > 2*c.cfg.MaxAckDelay {
			return ackFreq{threshold: ackSparsePackets - 1, delay: d, reorder: 0}
		}
	}
	window := min(c.cc.cwnd/c.cc.mss, o.flightPeak)
	switch {
	case window < ackBulkMinWindow:
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
	if now.Sub(o.rateAt) >= ackRateWindow {
		c.rollAckRate(now)
	}
	if !o.any && o.flightPeak < ackBulkMinWindow && !o.sparseOK {
		return false // never busy nor sparse, never asked: the default stands (the per-packet fast path)
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
	case want.threshold <= 1, c.sparse(o.asked) && !c.sparse(want):
		return true // back to the default, or out of the sparse delay: with the next packet
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
	if want.delay >= o.delayBound {
		o.delayBound, o.lowering = want.delay, false
	} else {
		o.lowering, o.lowerPN, o.lowerDelay = true, c.nextPN, want.delay
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

// sparse reports whether f is the sparse flow's request (a delay beyond
// MaxAckDelay, which only that asks for).
func (c *Conn) sparse(f ackFreq) bool { return f.delay > c.cfg.MaxAckDelay }

// freqRidesAlong reports whether the due ACK-FREQUENCY frame waits for a packet
// that carries something else: one entering or leaving the sparse request never
// makes a packet of its own. Entering can wait; leaving too, because while the
// sparse request stands every packet whose acknowledgement is wanted at once
// carries a PING (wantsAckNow), and the rest is sent again only after the probe
// timeout, which counts the sparse delay until the change is acknowledged.
func (c *Conn) freqRidesAlong() bool { return c.sparse(c.afOut.want) || c.sparse(c.afOut.asked) }

// wantsAckNow reports whether the packet being built (size bytes) should carry a PING
// for an acknowledgement at once. Under the sparse request: what is sent again when
// lost (reliable data, MAX_DATA, probes; an unreliable message is never
// retransmitted, so nothing waits on its acknowledgement), and the packet that takes
// the bytes in flight to half the window, so that a flow grown faster than its rate
// estimate gets the window reopened a round trip later rather than a sparse delay
// later. Under the bulk request a probe, a top-priority message and a burst's last
// packet (draft-ietf-quic-ack-frequency §9.1: nothing then follows that would trip
// the threshold). Under the default rule (ack every second packet, else within
// max_ack_delay) a probe, and a lone packet: one that ends a burst when the previous
// ack-eliciting packet went at least the peer's ack delay ago. Nothing is likely to
// follow it within the delay, so the peer's ACK would come alone anyway, only that
// much later, and every lost lone packet would wait that much longer for its probe
// timeout (see lonePing).
func (c *Conn) wantsAckNow(now proto.Instant, probe, wroteData bool, sp *sentPacket, size int) bool {
	switch {
	case c.sparse(c.afOut.asked):
		return probe || c.packetHasReliable || sp.has(pktMaxData) ||
			(c.bytesInFlight+size)*ackSparseFlightShare >= c.cc.cwnd
	case c.peerDelaysAcks():
		return probe || c.packetHasTop || (wroteData && c.sendQueueEmpty())
	}
	return probe || c.lonePing(now, wroteData)
}

// lonePing reports whether a packet under the default rule is lone (see
// wantsAckNow). A flow of one packet per RTT or faster (request and response,
// bulk) is not: its next packet, or the peer's reply carrying the ACK, comes within
// the peer's ack delay, and a PING would cost an ACK-only packet per message. A
// lone packet's ACK comes in its own packet either way, so the PING costs one byte;
// in return its probe timeout leaves out the peer's ack delay (RFC 9002 §6.2.1 does
// so where the peer is not expected to delay: the PING makes that true).
func (c *Conn) lonePing(now proto.Instant, wroteData bool) bool {
	return wroteData && now.Sub(c.lastAckElicitingSent) >= c.peerAckDelayMax() && c.sendQueueEmpty()
}

// rollAckRate ends the rate window, noting the rate and whether the window
// carried unreliable messages (a flow of reliable ones alone keeps the default:
// each of its packets is retransmitted when lost, and loss recovery wants the
// acknowledgements). A window that sent no data changes neither: a flow slower
// than one message per window is still the flow it was.
func (c *Conn) rollAckRate(now proto.Instant) {
	o := &c.afOut
	if o.winUnreliable || o.winReliable {
		secs := now.Sub(o.rateAt).Seconds()
		o.rate = float64(c.stats.BytesSent-o.rateBytes) / secs
		o.packetRate = float64(c.stats.PacketsSent-o.ratePackets) / secs
		o.sparseOK = o.winUnreliable
	}
	o.rateAt, o.rateBytes, o.ratePackets = now, c.stats.BytesSent, c.stats.PacketsSent
	o.winUnreliable, o.winReliable = false, false
}

// sparseDelay is the acknowledgement delay a sparse flow asks for: with
// acknowledgements that late, the bytes in flight at the measured rate (over the
// delay and a round trip) stay within 1/ackSparseFlightShare of the window, and
// the packets sent within the delay within ackSparsePackets. At most
// ackSparseDelay.
func (c *Conn) sparseDelay() time.Duration {
	o := &c.afOut
	d := ackSparseDelay
	if share := float64(c.cc.cwnd / ackSparseFlightShare); o.rate*(d+c.rtt.smooth).Seconds() > share {
		d = time.Duration(share/o.rate*float64(time.Second)) - c.rtt.smooth
	}
	if o.packetRate*d.Seconds() > ackSparsePackets {
		d = time.Duration(ackSparsePackets / o.packetRate * float64(time.Second))
	}
	return d
}

// reliableOutstanding reports whether reliable data is unacknowledged or waiting
// to be sent again.
func (c *Conn) reliableOutstanding() bool {
	for i := range c.lanes {
		l := &c.lanes[i]
		if l.retx.len() > 0 || l.unacked[0].len() > 0 || l.unacked[1].len() > 0 {
			return true
		}
	}
	return false
}

// peerAckDelayMax is the max ack delay the peer may be applying now: the
// configured one, or a larger one this end asked for and has not seen superseded.
func (c *Conn) peerAckDelayMax() time.Duration { return max(c.cfg.MaxAckDelay, c.afOut.delayBound) }

// onAckFreqAcked lowers the delay bound once the packet carrying the latest
// lowering frame is acknowledged: the peer has applied it, or a newer one.
func (c *Conn) onAckFreqAcked(pn uint64) {
	o := &c.afOut
	if o.lowering && pn == o.lowerPN {
		o.delayBound, o.lowering = o.lowerDelay, false
	}
}

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
