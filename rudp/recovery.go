package rudp

import (
	"time"

	"github.com/natpass/natpass/proto"
)

// packetThreshold is RFC 9002 §6.1.1 kPacketThreshold: a packet is lost once three
// later ones are acknowledged.
const packetThreshold = 3

// persistentCongestionThreshold is RFC 9002 §7.6.1 kPersistentCongestionThreshold.
const persistentCongestionThreshold = 3

// onAckFrame processes an ACK frame (RFC 9002 A.7 OnAckReceived). The frame was
// validated: its largest packet number was sent.
func (c *Conn) onAckFrame(ack *proto.RUDPAck, now proto.Instant) {
	largest := ack.Ranges[0].Largest
	if !c.anyAcked || largest > c.largestAcked {
		c.largestAcked, c.anyAcked = largest, true
	}
	if c.reorder.n > 0 {
		c.stats.SpuriousLosses += uint64(c.reorder.onAckRanges(ack.Ranges))
	}
	var sample time.Duration = -1
	newlyEliciting := false
	limited := c.cwndLimited
	for _, rg := range ack.Ranges {
		if rg.Largest < c.sent.head {
			break // ranges descend; the rest is older than anything still tracked
		}
		for pn := max(rg.Smallest, c.sent.head); pn <= rg.Largest && pn < c.sent.tail; pn++ {
			p := c.sent.at(pn)
			if p.has(pktAcked) {
				continue
			}
			if p.has(pktLost) {
				// Declared lost too early (reordering): its data was queued again, but
				// marking the fragments acknowledged now saves resending them.
				p.flags |= pktAcked
				c.ackChunks(p)
				continue
			}
			if p.has(pktAckFreq) {
				c.onAckFreqAcked(pn)
			}
			if c.ackPacket(p, now, limited) {
				newlyEliciting = true
				if pn == largest {
					sample = now.Sub(p.timeSent)
				}
			}
		}
	}
	c.cwndLimited = c.bytesInFlight*2 >= c.cc.cwnd
	if sample >= 0 {
		// RFC 9002 §5.3: the peer's ack delay counts only up to its max_ack_delay (the
		// one this end may have asked for, §7.9).
		ackDelay := min(time.Duration(min(ack.DelayMicros, uint64(time.Hour/time.Microsecond)))*time.Microsecond, c.peerAckDelayMax())
		if !c.rtt.sampled {
			c.firstSampleSent = now - proto.Instant(sample)
		}
		c.rtt.update(sample, ackDelay)
		c.cc.onRTTSample(c.rtt.latest)
	}
	if largest >= c.cc.roundEnd {
		c.cc.onRoundStart(c.nextPN)
	}
	if newlyEliciting {
		c.ptoCount = 0 // RFC 9002 §6.2.1: an acknowledgement resets the backoff
		c.ptoProbes = 0
	}
	if !c.pmtu.started {
		c.pmtu.started = true
		c.pmtu.due = c.pmtu.searching()
	}
	c.detectLoss(now)
	c.retireFront()
	c.setLossTimer()
}

// ackPacket takes one newly acknowledged packet out of flight (RFC 9002 A.7, per
// packet): congestion window, PMTU search, its ACK ranges and its fragments. It
// reports whether the packet was ack-eliciting.
func (c *Conn) ackPacket(p *sentPacket, now proto.Instant, limited bool) bool {
	p.flags |= pktAcked
	c.stats.PacketsAcked++
	if p.has(pktOverCwnd) {
		c.overCwndBytes -= int(p.size)
	}
	eliciting := p.has(pktAckEliciting)
	if eliciting {
		c.ackElicitingInFlight--
	}
	if p.has(pktInFlight) {
		c.bytesInFlight -= int(p.size)
		c.cc.onAck(int(p.size), p.timeSent, now, c.rtt.smooth, limited)
		c.lossRate -= c.lossRate / lossRateWindow
	}
	if p.has(pktHasAck) {
		// The peer has our ACK up to ackLargest: stop repeating those ranges.
		c.recvd.forgetBelow(p.ackLargest)
	}
	if !p.has(pktPMTUProbe) {
		c.pmtu.onBigAcked(int(p.size) + c.cfg.Headroom + c.cfg.Tailroom)
	} else {
		c.pmtu.onAcked(int(p.size) + c.cfg.Headroom + c.cfg.Tailroom)
		c.cc.setMSS(c.budget())
		c.armPMTUTimer(now)
	}
	c.ackChunks(p)
	return eliciting
}

// ackChunks marks the fragments a packet carried as acknowledged.
func (c *Conn) ackChunks(p *sentPacket) {
	for i := p.chunkStart; i < p.chunkEnd; i++ {
		ref := *c.chunks.at(i)
		if !ref.live() {
			continue
		}
		m := ref.msg
		m.acked.set(ref.frag)
		m.nAcked++
		if m.nAcked == m.pieces() {
			m.done = true
			c.releaseAcked(&c.lanes[m.lane], m.mode)
		}
	}
}

// releaseAcked frees the fully acknowledged messages at the front of a lane's
// unacked queue; their sequence numbers leave the window.
func (c *Conn) releaseAcked(l *lane, mode Mode) {
	u := &l.unacked[mode]
	for u.len() > 0 && (*u.front()).done {
		m := u.pop()
		c.sendBuffered -= len(m.data)
		c.pool.putOut(m)
	}
}

// detectLoss declares packets lost by the RACK rules as RFC 9002 §6.1 states them
// (RFC 8985 §6.2): a packet sent before the largest acknowledged one is lost when it
// is kPacketThreshold packets older, or older by the reordering window 9/8 RTT.
// Otherwise loss_time arms the timer for when it would be.
func (c *Conn) detectLoss(now proto.Instant) {
	c.lossTime = proto.Never
	if !c.anyAcked {
		return
	}
	lossDelay := c.reorder.window(&c.rtt)
	lostSendTime := now - proto.Instant(lossDelay)
	// Persistent congestion (RFC 9002 §7.6): ack-eliciting losses spanning more than
	// three PTOs with nothing acknowledged in between.
	var firstLost, lastLost proto.Instant = proto.Never, proto.Never
	ackedBetween := false
	for pn := c.sent.head; pn <= c.largestAcked && pn < c.sent.tail; pn++ {
		p := c.sent.at(pn)
		if p.retired() {
			if p.has(pktAcked) && firstLost != proto.Never {
				ackedBetween = true
			}
			continue
		}
		if p.timeSent <= lostSendTime || (c.reorder.usePacketThreshold() && c.largestAcked >= pn+packetThreshold) {
			if p.has(pktAckEliciting) && !ackedBetween {
				if firstLost == proto.Never {
					firstLost = p.timeSent
				}
				lastLost = p.timeSent
			}
			c.onPacketLost(p, now)
			c.reorder.onLost(pn)
			continue
		}
		c.lossTime = min(c.lossTime, p.timeSent.Add(lossDelay))
	}
	if firstLost != proto.Never && c.rtt.sampled && firstLost > c.firstSampleSent {
		period := (c.rtt.smooth + max(4*c.rtt.vari, granularity) + c.peerAckDelayMax()) * persistentCongestionThreshold
		if lastLost.Sub(firstLost) > period {
			c.cc.onPersistentCongestion(now)
			c.stats.PersistentCongestion++
		}
	}
}

// Loss that is not congestion. A wireless hop or a lossy tunnel drops packets without
// a queue behind them, and CUBIC, which takes every loss for a full buffer, then runs
// at the Mathis rate (≈ 2.4 Mbit/s at 2 % loss and 40 ms). A loss is taken as a
// congestion signal only when the path shows a queue (the latest RTT above the
// minimum by a quarter, at least lossQueueDelayMin) or the recent loss rate is above
// lossRateCongestive: with a queue building or heavy loss the window backs off as
// CUBIC says; random loss at a few percent on an empty path does not shrink it.
const (
	lossRateWindow     = 64   // packets in the loss-rate moving average
	lossRateCongestive = 0.05 // above this loss rate every loss is congestion
	lossQueueDelayMin  = 4 * time.Millisecond
)

// congestive reports whether a loss now should reduce the window.
func (c *Conn) congestive() bool {
	if !c.rtt.sampled || c.lossRate > lossRateCongestive {
		return true
	}
	return c.rtt.latest > c.rtt.min+max(c.rtt.min/4, lossQueueDelayMin)
}

// onPacketLost retires a lost packet and queues its reliable fragments again.
func (c *Conn) onPacketLost(p *sentPacket, now proto.Instant) {
	p.flags |= pktLost
	c.stats.PacketsLost++
	if p.has(pktOverCwnd) {
		c.overCwndBytes -= int(p.size)
	}
	if p.has(pktAckEliciting) {
		c.ackElicitingInFlight--
	}
	if p.has(pktInFlight) {
		c.bytesInFlight -= int(p.size)
		if p.has(pktPMTUProbe) {
			// RFC 9000 §14.4: a lost probe says the size is too big, not that the path
			// is congested.
			c.pmtu.onLost(int(p.size) + c.cfg.Headroom + c.cfg.Tailroom)
			c.armPMTUTimer(now)
		} else if c.pmtu.onBigLost(int(p.size)+c.cfg.Headroom+c.cfg.Tailroom, p.timeSent, now) {
			// The path stopped carrying this size: not congestion.
			c.stats.PMTUBlackholes++
			c.cc.setMSS(c.budget())
		} else if !c.congestive() {
			c.stats.LossesTolerated++
		} else if c.cc.onCongestion(p.timeSent, now) {
			c.stats.CongestionEvents++
			c.reorder.onRecovery()
		}
		c.lossRate += (1 - c.lossRate) / lossRateWindow
	}
	if p.has(pktMaxData) {
		c.sendMaxData = true
	}
	if p.has(pktAckFreq) {
		c.afOut.resend = true
	}
	for i := p.chunkStart; i < p.chunkEnd; i++ {
		if ref := *c.chunks.at(i); ref.live() {
			c.lanes[ref.msg.lane].stats.FragmentsLost++
		}
	}
	c.requeueChunks(p)
}

// requeueChunks queues the packet's unacknowledged reliable fragments for
// retransmission on their lanes.
func (c *Conn) requeueChunks(p *sentPacket) {
	for i := p.chunkStart; i < p.chunkEnd; i++ {
		if ref := *c.chunks.at(i); ref.live() {
			c.lanes[ref.msg.lane].retx.push(ref)
		}
	}
}

// retireFront drops the records of acknowledged or lost packets from the front of the
// sent ring, and the fragment references they held.
func (c *Conn) retireFront() {
	for c.sent.len() > 0 && c.sent.front().retired() {
		end := c.sent.front().chunkEnd
		c.sent.discard()
		for c.chunks.head < end {
			c.chunks.discard()
		}
	}
}

// setLossTimer arms timerLoss (RFC 9002 A.8 SetLossDetectionTimer): the RACK time if
// a packet waits for it, else the PTO after the last ack-eliciting packet, doubled
// per consecutive PTO and capped at PTOMax.
func (c *Conn) setLossTimer() {
	switch {
	case c.lossTime != proto.Never:
		c.timers[timerLoss] = c.lossTime
	case c.ackElicitingInFlight == 0:
		c.timers[timerLoss] = proto.Never
	default:
		c.timers[timerLoss] = c.lastAckElicitingSent.Add(c.ptoPeriod())
	}
}

// ptoPeriod is the backed-off probe timeout (RFC 9002 §6.2.1), capped. When the last
// ack-eliciting packet carried a PING the peer acknowledges it without delay, so, as
// RFC 9002 §6.2.1 does for packets the peer will not delay, the period leaves out
// the peer's max ack delay: its ACK is due a round trip after it, and that ACK covers
// every packet before it too. The packets before it that the ACK reports missing are
// then RACK's (RFC 8985 §6.2), and if the PING packet itself is lost the probe is due.
func (c *Conn) ptoPeriod() time.Duration {
	ackDelay := c.peerAckDelayMax()
	if c.lastAckElicitingPing {
		ackDelay = 0
	}
	base := c.rtt.pto(ackDelay)
	limit := max(c.cfg.PTOMax, base)
	d := base
	for i := 0; i < c.ptoCount && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// onLossTimeout handles timerLoss (RFC 9002 A.9 OnLossDetectionTimeout).
func (c *Conn) onLossTimeout(now proto.Instant) {
	if c.lossTime != proto.Never {
		c.detectLoss(now)
		c.retireFront()
		c.setLossTimer()
		return
	}
	if c.ackElicitingInFlight == 0 {
		return
	}
	// PTO: send probes. RFC 9002 §6.2.4 suggests they carry data that is still
	// unacknowledged, which for a game is the input a tail loss swallowed: queue the
	// fragments of the oldest outstanding packets again (without declaring them lost).
	c.ptoCount++
	c.stats.PTOs++
	c.ptoEvent = true
	c.ptoProbes = maxPTOProbes
	queued := 0
	for pn := c.sent.head; pn < c.sent.tail && queued < maxPTOProbes; pn++ {
		p := c.sent.at(pn)
		if p.retired() || !p.has(pktAckEliciting) || p.chunkStart == p.chunkEnd {
			continue
		}
		c.requeueChunks(p)
		queued++
	}
	c.setLossTimer()
}

// armPMTUTimer schedules the next search step: at once while searching, after the
// raise interval once done (RFC 8899 §5.1.1).
func (c *Conn) armPMTUTimer(now proto.Instant) {
	if c.pmtu.searching() {
		c.timers[timerPMTU] = proto.Never
		c.pmtu.due = true
		return
	}
	c.pmtu.due = false
	c.timers[timerPMTU] = now.Add(pmtuRaiseInterval)
}
