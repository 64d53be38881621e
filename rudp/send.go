package rudp

import (
	"math"

	"github.com/natpass/natpass/proto"
)

const (
	// pnReserve is the packet-number space a fragment's size leaves free: the longest
	// varint, so a fragment sized at Send fits whatever number its packet gets.
	pnReserve = 8
	// ackReserve leaves room for a small ACK frame beside a full-size fragment, so a
	// connection sending both ways does not need a separate packet for each ACK.
	ackReserve = 16
	// maxDataHeader is the longest data-frame header of a fragment: type, lane,
	// seq(8), total(4), count(4), index(4), length(2).
	maxDataHeader = 2 + 8 + 4 + 4 + 4 + 2
	// wholeDataHeader is the longest header of an unfragmented data frame whose data
	// fits a packet: type, lane, seq(8), length(2).
	wholeDataHeader = 2 + 8 + 2
	// ackOnlyStreakMax: after this many packets carrying only an ACK, the next one
	// carries a PING, so the peer's ACK tells us which ranges it has seen and the
	// ranges we report stay few (RFC 9000 §13.2.4).
	ackOnlyStreakMax = 16
	// maxPTOProbes is the number of probe packets a fired PTO sends (RFC 9002 §6.2.4).
	maxPTOProbes = 2
	// redundantMax bounds the repeated messages in one packet (LaneConfig.Redundant).
	redundantMax = 4
)

// Send queues msg for delivery on lane with mode. The bytes are copied. It fails at
// once if the message is larger than Config.MaxMessageSize or the send buffer is full.
func (c *Conn) Send(now proto.Instant, lane int, mode Mode, msg []byte) error {
	return c.SendBy(now, proto.Never, lane, mode, msg)
}

// SendBy is Send with an expiry: if no byte of the message has left by expiry it is
// dropped (counted in LaneStats.MessagesExpired). Once its first fragment has left, a
// reliable message is delivered whatever the expiry, so the receiver never waits for
// a sequence number that will not come.
func (c *Conn) SendBy(now, expiry proto.Instant, lane int, mode Mode, msg []byte) error {
	if err := c.admit(now, lane, mode, len(msg)); err != nil {
		return err
	}
	m := c.pool.getOut(len(msg))
	copy(m.data, msg)
	c.enqueue(m, now, expiry, lane, mode)
	return nil
}

// SendOwned is SendBy without the copy: on success the Conn takes msg itself, and
// the caller must neither write nor read it again, for the Conn reads fragments from
// it until the message is acknowledged (reliable modes) or has left (unreliable
// ones), retransmissions included. Then it goes to Config.Buffers' Put, or without
// Buffers into the Conn's own free list (a later Send may copy into it). On an error
// nothing is taken and msg is the caller's again. A message closed with the Conn
// before it is done is dropped, not handed back (Buffers: Put is an offer).
func (c *Conn) SendOwned(now, expiry proto.Instant, lane int, mode Mode, msg []byte) error {
	if err := c.admit(now, lane, mode, len(msg)); err != nil {
		return err
	}
	c.enqueue(c.pool.getOwned(msg), now, expiry, lane, mode)
	return nil
}

// admit checks a message of n bytes for Send, SendBy and SendOwned.
func (c *Conn) admit(now proto.Instant, lane int, mode Mode, n int) error {
	c.advance(now)
	switch {
	case c.state != stateOpen:
		return ErrClosed
	case lane < 0 || lane >= len(c.lanes):
		return ErrBadLane
	case mode > Unreliable:
		return ErrBadMode
	case n > c.cfg.MaxMessageSize:
		return ErrMessageTooLarge
	case c.sendBuffered+n > c.cfg.SendBufferBytes:
		return ErrSendBufferFull
	case c.laneQueueFull(&c.lanes[lane]):
		return ErrSendBufferFull
	}
	return nil
}

// laneQueueFull reports whether lane l holds Config.SendQueueBytes or more bytes not
// yet sent once.
func (c *Conn) laneQueueFull(l *lane) bool {
	return c.cfg.SendQueueBytes > 0 && l.unsent >= c.cfg.SendQueueBytes
}

// enqueue queues m, whose data is the message, on its lane.
func (c *Conn) enqueue(m *outMsg, now, expiry proto.Instant, lane int, mode Mode) {
	m.lane, m.mode, m.queued, m.expiry = uint8(lane), mode, now, expiry
	m.count = math.MaxUint32 // not yet split: fragment sets it
	c.fragment(m)
	l := &c.lanes[lane]
	if l.idle() {
		// A lane waking up starts at the fair-queueing clock of its busy peers of the
		// same priority, rather than spending credit saved while it was idle.
		for i := range c.lanes {
			o := &c.lanes[i]
			if o != l && !o.idle() && o.cfg.Priority == l.cfg.Priority {
				l.vtime = max(l.vtime, o.vtime)
			}
		}
	}
	l.pending.push(m)
	l.stats.MessagesQueued++
	l.unsent += len(m.data)
	c.sendBuffered += len(m.data)
}

// maxFragmentsPerPacket bounds the fragments sized to share one packet.
const maxFragmentsPerPacket = 8

// fragmentSize is the most data a new message's fragments carry. Every fragment
// fits the base datagram, which every path carries, not only the current PMTU: a
// lost fragment must still fit when a path change (direct to relay, another
// network) or a black hole has lowered the PMTU, for its message's fragmentation
// is fixed. But a base-sized fragment alone in a packet at a larger PMTU wastes
// the rest of it (at 1452 bytes, 1118 of 1418): when k smaller fragments fill the
// PMTU with more data than one base-sized fragment, they are sized so that k fit
// in one packet (two of 673 bytes at 1452), and each still fits the base datagram.
// That is 20 % fewer packets per byte, and each packet costs a system call's share,
// a seal, an open and an acknowledgement's share.
func (c *Conn) fragmentSize() int {
	if c.fragSizeAt == c.budget() {
		return c.fragSize
	}
	baseSize := c.baseBudget() - pnReserve - ackReserve - maxDataHeader
	room := c.budget() - pnReserve - ackReserve
	best, size := baseSize, baseSize
	for k := 2; k <= maxFragmentsPerPacket; k++ {
		per := min(room/k-maxDataHeader, baseSize)
		if per <= 0 {
			break
		}
		if per*k > best {
			best, size = per*k, per
		}
	}
	c.fragSizeAt, c.fragSize = c.budget(), size
	return size
}

// fragment splits m for the current PMTU (fragmentSize) unless its first fragment
// has left: a message queued before the PMTU search ended still gets the larger
// packets when it starts.
func (c *Conn) fragment(m *outMsg) {
	count := uint32(0)
	if len(m.data)+wholeDataHeader > c.baseBudget()-pnReserve-ackReserve {
		size := c.fragmentSize()
		count = uint32((len(m.data) + size - 1) / size)
	}
	if count == m.count {
		return
	}
	m.count, m.fragLen = count, 0
	if count > 0 {
		m.fragLen = int(proto.FragmentLen(uint64(len(m.data)), uint64(count)))
	}
	if m.mode.Reliable() {
		m.acked.reset(int(m.pieces()))
	}
}

// PollTransmit writes the next packet into buf and returns it (a sub-slice of buf
// starting at Headroom), or false if nothing may be sent now.
func (c *Conn) PollTransmit(now proto.Instant, buf []byte) ([]byte, bool) {
	c.advance(now)
	if len(buf) < c.cfg.DatagramSizeMax {
		panic("rudp: PollTransmit buffer smaller than DatagramSizeMax")
	}
	switch c.state {
	case stateClosed:
		return nil, false
	case stateClosing:
		return c.pollClose(now, buf)
	}
	c.packetChunkStart = c.chunks.tail
	budget := c.budget()
	out := buf[c.cfg.Headroom : c.cfg.Headroom : c.cfg.Headroom+budget]
	rate := c.cc.pacingRate(c.rtt.smooth)
	c.pacer.refill(now, rate, budget)
	paced, readyAt := c.pacer.ready(now, budget, rate)
	probe := c.ptoProbes > 0
	// Lanes below the top priority leave one packet of the window free. When a loss
	// has shrunk the window below the bytes already in flight, top-priority lanes may
	// still send up to a quarter window (at least two packets) beyond it: a message on
	// a top-priority lane never waits for an acknowledgement behind bulk data, and
	// bytes in flight stay within 1.25 windows, so the window still governs.
	overshoot := c.mixedPriority && c.overCwndBytes < max(c.cc.cwnd/4, 2*budget)
	allowTop := probe || (paced && (c.bytesInFlight < c.cc.cwnd || overshoot))
	allowLow := probe || (paced && c.bytesInFlight < c.cc.cwnd-budget)

	if c.pmtu.due && c.pmtu.probing == 0 && paced && c.bytesInFlight+c.pmtu.nextSize() <= c.cc.cwnd {
		return c.sendPMTUProbe(now, buf), true
	}

	ackFreqDue := c.ackFreqDue(now)
	freqAlone := ackFreqDue && !c.freqRidesAlong()
	work := c.sendMaxData || c.pingPending || probe || freqAlone || c.hasData(now, true)
	sendAck := c.ackPending && c.ackImmediate
	if !sendAck && !(work && allowTop) {
		c.timers[timerPacing] = proto.Never
		if work && !paced && c.bytesInFlight < c.cc.cwnd {
			c.timers[timerPacing] = readyAt
		}
		return nil, false
	}
	c.timers[timerPacing] = proto.Never

	pn := c.nextPN
	b := proto.AppendVarint(out, pn)
	sp := sentPacket{timeSent: now, chunkStart: c.chunks.tail}
	if c.ackPending {
		b = c.appendAck(b, now, budget/2, &sp)
	}
	c.packetFull = false
	eliciting := allowTop && c.fillEliciting(&b, &sp, budget, now, allowLow, probe, ackFreqDue)
	if len(b) == proto.VarintLen(pn) {
		return nil, false // nothing fitted after all; the packet number stays unused
	}
	if c.packetFull {
		b = c.padFull(b, budget)
	}
	sp.chunkEnd = c.chunks.tail
	if eliciting && c.bytesInFlight >= c.cc.cwnd && !probe {
		c.overCwndBytes += len(b)
		sp.flags |= pktOverCwnd
	}
	c.recordSent(now, &sp, len(b), eliciting)
	if !eliciting {
		c.stats.AckOnlyPackets++
		c.stats.AckOnlyBytes += uint64(len(b))
	}
	return b, true
}

// fillEliciting appends the ack-eliciting frames that fit after the header and ACK:
// MAX_DATA when due, data, redundant repeats, ACK-FREQUENCY when ackFreq, and a PING
// when one is due (keepalive, probe, too many ack-only packets in a row, or an
// acknowledgement wanted at once while the peer may hold it back). It reports
// whether it added any.
func (c *Conn) fillEliciting(b *[]byte, sp *sentPacket, budget int, now proto.Instant, allowLow, probe, ackFreq bool) bool {
	eliciting := false
	if c.sendMaxData && budget-len(*b) >= 9 {
		c.advertisedMaxData = c.nextMaxData()
		f := proto.RUDPMaxData{Limit: c.advertisedMaxData}
		*b = f.Append(*b)
		c.sendMaxData = false
		sp.flags |= pktMaxData
		eliciting = true
	}
	c.packetHasTop, c.packetHasReliable = false, false
	wroteData := c.fillData(b, budget, now, allowLow)
	if wroteData {
		eliciting = true
		c.fillRedundant(b, budget, sp.chunkStart)
	}
	if ackFreq && budget-len(*b) >= ackFreqFrameMax && (eliciting || !c.freqRidesAlong()) {
		*b = c.appendAckFreq(*b, now, sp)
		eliciting = true
	}
	ping := c.pingPending || (probe && !eliciting) || (c.ackOnlyStreak >= ackOnlyStreakMax && !eliciting)
	if !ping && eliciting && c.wantsAckNow(now, probe, wroteData, sp, len(*b)) {
		// The peer may hold this packet's acknowledgement back: ask for it at once.
		ping = true
		c.stats.ImmediateAckPings++
	}
	if ping && budget-len(*b) >= 1 {
		*b = append(*b, byte(proto.RUDPPing))
		c.pingPending = false
		sp.flags |= pktPing
		eliciting = true
	}
	return eliciting
}

// sendQueueEmpty reports whether no lane has anything left to send (neither new
// messages nor retransmissions).
func (c *Conn) sendQueueEmpty() bool {
	for i := range c.lanes {
		if !c.lanes[i].idle() {
			return false
		}
	}
	return true
}

// recordSent files a just-built packet in the sent ring and updates the in-flight
// accounting (RFC 9002 A.5 OnPacketSent).
func (c *Conn) recordSent(now proto.Instant, sp *sentPacket, size int, eliciting bool) {
	sp.size = int32(size)
	if eliciting {
		sp.flags |= pktAckEliciting | pktInFlight
		if c.bytesInFlight == 0 {
			c.flightStart = now
		}
		c.bytesInFlight += size
		c.ackElicitingInFlight++
		c.lastAckElicitingSent = now
		c.lastAckElicitingPing = sp.has(pktPing)
		c.pacer.spend(size)
		c.ackOnlyStreak = 0
		if c.ptoProbes > 0 {
			c.ptoProbes--
		}
		c.timers[timerKeepalive] = now.Add(c.cfg.KeepaliveInterval)
		if c.bytesInFlight*2 >= c.cc.cwnd {
			c.cwndLimited = true
		}
	} else {
		c.ackOnlyStreak++
	}
	c.sent.push(*sp)
	c.nextPN++
	c.stats.PacketsSent++
	c.stats.BytesSent += uint64(size)
	if eliciting {
		c.setLossTimer()
	}
}

// appendAck writes an ACK frame of at most limit bytes, dropping the oldest ranges if
// needed (RFC 9000 §13.2.3 lets a receiver report fewer ranges).
func (c *Conn) appendAck(b []byte, now proto.Instant, limit int, sp *sentPacket) []byte {
	ranges := c.recvd.ranges()
	c.ackOut.DelayMicros = durationMicros(now.Sub(c.largestRecvTime))
	for n := len(ranges); n > 0; n-- {
		c.ackOut.Ranges = ranges[:n]
		start := len(b)
		b = c.ackOut.Append(b)
		if len(b)-start <= limit || n == 1 {
			break
		}
		b = b[:start]
	}
	c.ackOut.Ranges = nil
	sp.flags |= pktHasAck
	sp.ackLargest = ranges[0].Largest
	c.ackSent, c.ackSentLargest = true, ranges[0].Largest
	c.ackPending, c.ackImmediate, c.ackElicitingUnacked = false, false, 0
	c.timers[timerAck] = proto.Never
	return b
}

// hasData reports whether some lane may send a frame now. It drops expired messages
// at the heads of the queues as it looks.
func (c *Conn) hasData(now proto.Instant, allowLow bool) bool {
	for i := range c.lanes {
		if c.laneReady(&c.lanes[i], now, allowLow) {
			return true
		}
	}
	return false
}

// laneReady reports whether lane l has a frame that may go now.
func (c *Conn) laneReady(l *lane, now proto.Instant, allowLow bool) bool {
	if l.cfg.Priority < c.topPriority && !allowLow {
		return false
	}
	for l.retx.len() > 0 {
		// A fragment queued twice (declared lost, then picked for a probe) goes once:
		// the receiver charges each copy in one packet against the window.
		if ref := *l.retx.front(); ref.live() && !c.chunkInPacket(ref) {
			return true
		}
		l.retx.pop()
	}
	for l.pending.len() > 0 {
		m := *l.pending.front()
		if !m.started && m.expiry <= now {
			l.pending.pop()
			l.stats.MessagesExpired++
			l.unsent -= len(m.data)
			c.sendBuffered -= len(m.data)
			c.pool.putOut(m)
			continue
		}
		if !m.started && m.count != 0 {
			c.fragment(m)
		}
		if !m.mode.Reliable() {
			return true
		}
		if !m.started {
			if u := &l.unacked[m.mode]; u.len() > 0 && l.nextSeq[m.mode]-(*u.front()).seq >= messageWindow {
				return false // §7.6: the receiver's window is full
			}
		}
		return c.creditAllows(m)
	}
	return false
}

// creditAllows reports whether the peer's flow-control limit lets reliable message
// m send its next fragment (§7.6 [FLOW-5]). A message under way only needs room
// for that fragment. A new one needs room for the fragment too when no other
// message is part-sent; otherwise it needs room for all of itself and everything
// the part-sent ones still owe. Without that, messages on several lanes could each
// get part of the window and none of them all of it: the receiver hands over only
// whole messages, so no credit would come back and the connection would stall for
// good. With it, at most one part-sent message lacks the credit to finish, and it
// gets it once everything else has been delivered.
func (c *Conn) creditAllows(m *outMsg) bool {
	if !m.started && c.partlySent > 0 {
		return c.reliableSent+c.creditOwed+m.unsentCost() <= c.peerMaxData
	}
	return c.reliableSent+uint64(flowCost(len(m.piece(m.next)))) <= c.peerMaxData
}

// fillData appends data frames to *b up to limit bytes: lanes by priority, equal
// priorities by weighted fair queueing, each lane's retransmissions before its new
// data. It reports whether it wrote any.
func (c *Conn) fillData(b *[]byte, limit int, now proto.Instant, allowLow bool) bool {
	wrote := false
	c.packetFull = true // unless the loop ends for want of data
	for limit-len(*b) > wholeDataHeader {
		var best *lane
		for i := range c.lanes {
			l := &c.lanes[i]
			if (best == nil || l.cfg.Priority > best.cfg.Priority ||
				(l.cfg.Priority == best.cfg.Priority && l.vtime < best.vtime)) && c.laneReady(l, now, allowLow) {
				best = l
			}
		}
		if best == nil || !c.writeFrame(best, b, limit, now) {
			c.packetFull = best != nil
			break
		}
		wrote = true
	}
	return wrote
}

// padFullMax is the most PADDING padFull adds to a packet.
const padFullMax = 32

// padFull pads a packet that data filled (the next frame did not fit) to the size of
// the largest such packet since the budget last changed, if that takes at most
// padFullMax bytes. Full packets then come out the same size, varint lengths,
// message seams and the odd last fragment notwithstanding, and the driver can send
// a whole burst as one GSO run (and the receiver read it as one GRO buffer): a run
// needs every datagram but the last exactly as long as the first.
func (c *Conn) padFull(b []byte, budget int) []byte {
	if c.fullSizeAt != budget {
		c.fullSize, c.fullSizeAt = 0, budget
	}
	switch {
	case len(b) >= c.fullSize:
		c.fullSize = len(b)
	case c.fullSize-len(b) <= padFullMax:
		b = append(b, padding[:c.fullSize-len(b)]...)
	}
	return b
}

// padding is padFullMax bytes of PADDING frames, appended in one copy.
var padding = func() (p [padFullMax]byte) {
	for i := range p {
		p[i] = byte(proto.RUDPPadding)
	}
	return p
}()

// writeFrame writes lane l's next frame if it fits in limit.
func (c *Conn) writeFrame(l *lane, b *[]byte, limit int, now proto.Instant) bool {
	space := limit - len(*b)
	if l.retx.len() > 0 {
		return c.writeRetransmit(l, b, space)
	}
	m := *l.pending.front()
	if !m.started {
		m.seq = l.nextSeq[m.mode] // tentative until the frame fits
	}
	need := m.frameLen(m.next)
	if need > space {
		return false
	}
	if c.mixedPriority && l.cfg.Priority == c.topPriority {
		c.packetHasTop = true
	}
	if m.mode.Reliable() {
		c.packetHasReliable, c.afOut.winReliable = true, true
	} else {
		c.afOut.winUnreliable = true
	}
	if !m.started {
		m.started = true
		l.nextSeq[m.mode]++
		if m.mode.Reliable() {
			l.unacked[m.mode].push(m)
			c.partlySent++
			c.creditOwed += m.unsentCost()
		}
		d := now.Sub(m.queued)
		l.stats.QueueDelay += (d - l.stats.QueueDelay) / 8
		l.stats.QueueDelayMax = max(l.stats.QueueDelayMax, d)
		l.stats.MessagesSent++
	}
	var n int
	*b, n = m.appendFrame(*b, m.next)
	l.charge(need)
	l.unsent -= n
	l.stats.BytesSent += uint64(n)
	if m.mode.Reliable() {
		c.chunks.push(chunkRef{msg: m, gen: m.gen, frag: m.next})
		c.reliableSent += uint64(flowCost(n))
		c.creditOwed -= uint64(flowCost(n))
	}
	m.next++
	if m.next == m.pieces() {
		if m.mode.Reliable() {
			c.partlySent--
		}
		l.pending.pop()
		if !m.mode.Reliable() {
			c.sendBuffered -= len(m.data)
			c.pool.putOut(m)
		}
	}
	return true
}

// writeRetransmit appends lane l's oldest fragment due for retransmission to *b if
// it fits in space, and reports whether it did (writeFrame's first choice).
func (c *Conn) writeRetransmit(l *lane, b *[]byte, space int) bool {
	ref := *l.retx.front()
	need := ref.msg.frameLen(ref.frag)
	if need > space {
		return false
	}
	if c.mixedPriority && l.cfg.Priority == c.topPriority {
		c.packetHasTop = true
	}
	c.packetHasReliable = true // only reliable fragments are retransmitted
	l.retx.pop()
	*b, _ = ref.msg.appendFrame(*b, ref.frag)
	c.chunks.push(ref)
	l.charge(need)
	l.stats.Retransmits++
	c.stats.Retransmits++
	return true
}

// sendPMTUProbe builds a PING padded to the next probe size (RFC 8899 §4.1).
func (c *Conn) sendPMTUProbe(now proto.Instant, buf []byte) []byte {
	size := c.pmtu.nextSize()
	payload := size - c.cfg.Headroom - c.cfg.Tailroom
	out := buf[c.cfg.Headroom : c.cfg.Headroom : c.cfg.Headroom+payload]
	b := proto.AppendVarint(out, c.nextPN)
	b = append(b, byte(proto.RUDPPing))
	for len(b) < payload {
		b = append(b, byte(proto.RUDPPadding))
	}
	sp := sentPacket{timeSent: now, flags: pktPMTUProbe, chunkStart: c.chunks.tail, chunkEnd: c.chunks.tail}
	c.pmtu.probing, c.pmtu.due = size, false
	c.recordSent(now, &sp, len(b), true)
	return b
}

// pollClose sends the CLOSE frame while closing (once per trigger).
func (c *Conn) pollClose(now proto.Instant, buf []byte) ([]byte, bool) {
	if !c.closePending {
		return nil, false
	}
	c.closePending = false
	c.closeLastSent = now
	out := buf[c.cfg.Headroom : c.cfg.Headroom : c.cfg.Headroom+c.budget()]
	b := proto.AppendVarint(out, c.nextPN)
	f := proto.RUDPClose{Code: c.closeReason.Code, Text: []byte(c.closeReason.Text)}
	b = f.Append(b)
	c.nextPN++
	c.stats.PacketsSent++
	c.stats.BytesSent += uint64(len(b))
	return b, true
}

// fillRedundant repeats unacknowledged single-fragment reliable messages of Redundant
// lanes in the packet being built, oldest first, as long as the packet still fits in
// the congestion window with them (an application-limited game flow has room; a bulk
// flow, which fills the window, never repeats). Messages already in this packet
// (references from chunkStart on) are skipped.
func (c *Conn) fillRedundant(b *[]byte, limit int, chunkStart uint64) {
	added := 0
	for i := range c.lanes {
		l := &c.lanes[i]
		if !l.cfg.Redundant {
			continue
		}
		for mode := range l.unacked {
			u := &l.unacked[mode]
			for k := u.head; k < u.tail && added < redundantMax; k++ {
				m := *u.at(k)
				if m.count != 0 || m.done || m.next == 0 || c.inPacket(m, chunkStart) {
					continue
				}
				need := m.frameLen(0)
				if need > limit-len(*b) || c.bytesInFlight+len(*b)+need > c.cc.cwnd {
					return
				}
				*b, _ = m.appendFrame(*b, 0)
				c.chunks.push(chunkRef{msg: m, gen: m.gen, frag: 0})
				l.charge(need)
				c.stats.RedundantFrames++
				added++
			}
		}
	}
}

// chunkInPacket reports whether the packet being built (or, between calls of
// PollTransmit, the last one) already carries fragment ref.
func (c *Conn) chunkInPacket(ref chunkRef) bool {
	for i := max(c.packetChunkStart, c.chunks.head); i < c.chunks.tail; i++ {
		if *c.chunks.at(i) == ref {
			return true
		}
	}
	return false
}

// inPacket reports whether the packet being built already carries m.
func (c *Conn) inPacket(m *outMsg, chunkStart uint64) bool {
	for i := chunkStart; i < c.chunks.tail; i++ {
		if c.chunks.at(i).msg == m {
			return true
		}
	}
	return false
}
