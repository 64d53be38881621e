package rudp

import (
	"fmt"

	"github.com/natpass/natpass/proto"
)

// HandleDatagram takes one received rudp packet. On error the packet is dropped and
// nothing changed; see the Conn doc for the error kinds.
func (c *Conn) HandleDatagram(now proto.Instant, p []byte) error {
	c.advance(now)
	if c.state == stateClosed {
		return ErrClosed
	}
	var h proto.RUDPHeader
	n, err := h.Decode(p)
	if err != nil {
		c.stats.InvalidDatagrams++
		return fmt.Errorf("rudp: packet number: %w", err)
	}
	pn := h.PacketNumber
	if c.recvd.contains(pn) {
		c.stats.DuplicatePackets++
		return ErrDuplicate
	}
	// Validate every frame before acting on any, so a bad packet changes nothing.
	info, err := c.validate(p[n:])
	if err != nil {
		c.stats.InvalidDatagrams++
		return err
	}
	c.stats.PacketsReceived++
	c.stats.BytesReceived += uint64(len(p))
	c.timers[timerIdle] = now.Add(c.cfg.IdleTimeout)
	if c.state == stateClosing {
		// RFC 9000 §10.2.1: answer with CLOSE again, at most once per RTT.
		if info.close {
			c.finish(c.closeReason)
		} else if now.Sub(c.closeLastSent) >= c.rtt.smooth {
			c.closePending = true
		}
		return nil
	}
	largest, had := c.recvd.largest()
	c.recvd.add(pn)
	if !had || pn > largest {
		c.largestRecvTime = now
	}
	// Frames first, so that an ACK-FREQUENCY frame already governs the
	// acknowledgement of the packet that carries it.
	c.apply(p[n:], now)
	if info.eliciting && c.state == stateOpen {
		// RFC 9000 §13.2.1 as the peer's ACK-FREQUENCY adjusts it (§7.9): at once
		// every second packet (or past the peer's threshold), on a gap (so the
		// sender's loss detection starts a round trip earlier) and on a PING (a
		// probe is waiting for it); otherwise within the max ack delay.
		c.onAckEliciting(now, pn, had, largest, info.ping)
	}
	return nil
}

// packetInfo is what validation learned about a packet.
type packetInfo struct {
	eliciting bool
	ping      bool
	close     bool
}

// validate parses every frame and checks it against the state without changing it.
func (c *Conn) validate(b []byte) (packetInfo, error) {
	var info packetInfo
	if len(b) == 0 {
		return info, ErrEmpty
	}
	var cost uint64
	c.parsed.reset()
	for len(b) > 0 {
		var n int
		var err error
		switch t := proto.RUDPFrameType(b[0]); {
		case t == proto.RUDPPadding:
			n, err = proto.RUDPPaddingLen(b)
		case t == proto.RUDPPing:
			n, info.eliciting, info.ping = 1, true, true
		case t == proto.RUDPAckType:
			n, err = c.ackIn.Decode(b)
			if err == nil && c.ackIn.Ranges[0].Largest >= c.nextPN {
				err = fmt.Errorf("%w: ACK of packet %d, not sent", ErrProtocol, c.ackIn.Ranges[0].Largest)
			}
		case t == proto.RUDPMaxDataType:
			var f proto.RUDPMaxData
			n, err = f.Decode(b)
			info.eliciting = true
		case t == proto.RUDPCloseType:
			var f proto.RUDPClose
			n, err = f.Decode(b)
			info.close = true
		case t == proto.RUDPAckFrequencyType:
			var f proto.RUDPAckFrequency
			n, err = f.Decode(b)
			info.eliciting = true
		case t >= proto.RUDPDataFirst && t <= proto.RUDPDataLast:
			f := c.parsed.slot()
			if n, err = f.Decode(b); err == nil {
				c.parsed.record(n)
				err = c.checkData(f, &cost)
			}
			info.eliciting = true
		default:
			err = proto.ErrMalformed
		}
		if err != nil {
			return info, fmt.Errorf("rudp: frame %#x: %w", b[0], err)
		}
		b = b[n:]
	}
	if cost > 0 && c.recvReliable+cost > c.advertisedMaxData {
		return info, fmt.Errorf("%w: flow control limit %d exceeded", ErrProtocol, c.advertisedMaxData)
	}
	return info, nil
}

// checkData validates a data frame against the receive state and adds the
// flow-control cost of a new reliable fragment to *cost.
func (c *Conn) checkData(f *proto.RUDPData, cost *uint64) error {
	if int(f.Lane) >= len(c.lanes) {
		return fmt.Errorf("%w: lane %d not configured", ErrProtocol, f.Lane)
	}
	if f.Total > uint64(c.cfg.MaxMessageSize) {
		return fmt.Errorf("%w: message of %d bytes over MaxMessageSize", ErrProtocol, f.Total)
	}
	if !f.Mode.Reliable() {
		return nil
	}
	r := &c.lanes[f.Lane].recvRel[f.Mode]
	if f.Seq < r.base {
		return nil // a duplicate: dropped when applied
	}
	if f.Seq-r.base >= messageWindow {
		return fmt.Errorf("%w: seq %d beyond window at %d", ErrProtocol, f.Seq, r.base)
	}
	s := r.peek(f.Seq)
	switch {
	case s == nil || (s.msg == nil && !s.delivered):
		*cost += uint64(flowCost(len(f.Data)))
	case s.msg != nil:
		if !sameShape(s.msg, f) {
			return fmt.Errorf("%w: fragment of seq %d disagrees on length", ErrProtocol, f.Seq)
		}
		if f.Count > 0 && !s.msg.got.has(uint32(f.Index)) {
			*cost += uint64(flowCost(len(f.Data)))
		}
	}
	return nil
}

// sameShape reports whether a frame belongs to the message m is assembling.
func sameShape(m *inMsg, f *proto.RUDPData) bool {
	return uint64(len(m.data)) == f.Total && uint64(m.count) == f.Count
}

// apply acts on the frames of a validated packet.
func (c *Conn) apply(b []byte, now proto.Instant) {
	for len(b) > 0 {
		var n int
		switch t := proto.RUDPFrameType(b[0]); {
		case t == proto.RUDPPadding:
			n = len(b)
		case t == proto.RUDPPing:
			n = 1
		case t == proto.RUDPAckType:
			n, _ = c.ackIn.Decode(b)
			c.onAckFrame(&c.ackIn, now)
		case t == proto.RUDPMaxDataType:
			var f proto.RUDPMaxData
			n, _ = f.Decode(b)
			c.peerMaxData = max(c.peerMaxData, f.Limit)
		case t == proto.RUDPCloseType:
			var f proto.RUDPClose
			_, _ = f.Decode(b)
			c.finish(proto.CloseReason{Code: f.Code, Text: string(f.Text)})
			return
		case t == proto.RUDPAckFrequencyType:
			var f proto.RUDPAckFrequency
			n, _ = f.Decode(b)
			c.onAckFrequency(&f, now)
		default:
			f, fn, ok := c.parsed.take()
			if !ok {
				f = &c.parsed.spare
				fn, _ = f.Decode(b)
			}
			n = fn
			c.onData(f)
		}
		b = b[n:]
	}
}

// onData files one data frame with its lane's receiver for its mode.
func (c *Conn) onData(f *proto.RUDPData) {
	l := &c.lanes[f.Lane]
	switch f.Mode {
	case ReliableOrdered, ReliableUnordered:
		c.onReliable(l, f)
	case UnreliableSequenced:
		c.onSequenced(l, f)
	default:
		c.onUnreliable(l, f)
	}
}

// newInMsg starts assembling the message f belongs to.
func (c *Conn) newInMsg(f *proto.RUDPData) *inMsg {
	m := c.pool.getIn(int(f.Total))
	m.lane, m.mode, m.seq, m.count = f.Lane, f.Mode, f.Seq, uint32(f.Count)
	if f.Count > 0 {
		m.got.reset(int(f.Count))
	}
	return m
}

// addFragment copies f's data into m; false if m already had it.
func (c *Conn) addFragment(m *inMsg, f *proto.RUDPData) bool {
	if m.count == 0 {
		if m.nGot == 1 {
			return false
		}
		copy(m.data, f.Data)
		m.nGot = 1
		return true
	}
	i := uint32(f.Index)
	if m.got.has(i) {
		return false
	}
	off, _, _ := proto.FragmentBounds(f.Total, f.Count, f.Index)
	copy(m.data[off:], f.Data)
	m.got.set(i)
	m.nGot++
	return true
}

func (c *Conn) deliver(m *inMsg) {
	l := &c.lanes[m.lane]
	l.stats.MessagesDelivered++
	l.stats.BytesDelivered += uint64(len(m.data))
	c.events.push(m)
}

// onReliable handles both reliable modes: fragments are assembled in the lane's
// window; an ordered message is delivered when every earlier one has been, an
// unordered one as soon as it is complete.
func (c *Conn) onReliable(l *lane, f *proto.RUDPData) {
	r := &l.recvRel[f.Mode]
	if f.Seq < r.base {
		return
	}
	s := r.slot(f.Seq)
	if s.delivered {
		return
	}
	if s.msg == nil {
		s.msg = c.newInMsg(f)
	} else if !sameShape(s.msg, f) {
		return // validated per frame; two disagreeing frames in one packet end here
	}
	if !c.addFragment(s.msg, f) {
		return
	}
	cost := flowCost(len(f.Data))
	s.msg.cost += cost
	c.recvReliable += uint64(cost)
	if f.Mode == ReliableUnordered {
		if s.msg.complete() {
			c.deliver(s.msg)
			s.msg, s.delivered = nil, true
		}
		for {
			s := r.peek(r.base)
			if s == nil || !s.delivered {
				break
			}
			s.delivered = false
			r.base++
		}
		return
	}
	for {
		s := r.peek(r.base)
		if s == nil || s.msg == nil || !s.msg.complete() {
			break
		}
		c.deliver(s.msg)
		s.msg = nil
		r.base++
	}
}

// onSequenced delivers a message only if it is newer than the last one delivered on
// the lane; a fragment of an older message is dropped, a newer message replaces the
// one being assembled.
func (c *Conn) onSequenced(l *lane, f *proto.RUDPData) {
	r := &l.recvSeqd
	if r.any && f.Seq <= r.last {
		return
	}
	if r.partial != nil && (r.partial.seq != f.Seq || !sameShape(r.partial, f)) {
		if f.Seq < r.partial.seq {
			return
		}
		c.unreliableQueued -= r.partial.cost
		c.pool.putIn(r.partial)
		r.partial = nil
	}
	if r.partial == nil {
		if !c.admitUnreliable(f) {
			return
		}
		r.partial = c.newInMsg(f)
		r.partial.cost = flowCost(int(f.Total))
		c.unreliableQueued += r.partial.cost
	}
	c.addFragment(r.partial, f)
	if r.partial.complete() {
		r.last, r.any = f.Seq, true
		c.deliver(r.partial)
		r.partial = nil
	}
}

// onUnreliable assembles and delivers unreliable messages, keeping at most
// unreliablePartials incomplete ones per lane.
func (c *Conn) onUnreliable(l *lane, f *proto.RUDPData) {
	r := &l.recvUnr
	var m *inMsg
	slot := -1
	if f.Count > 0 {
		for i, p := range r.partials {
			if p != nil && p.seq == f.Seq {
				if !sameShape(p, f) {
					return
				}
				m, slot = p, i
				break
			}
		}
	}
	if m == nil {
		if !c.admitUnreliable(f) {
			return
		}
		m = c.newInMsg(f)
		m.cost = flowCost(int(f.Total))
		c.unreliableQueued += m.cost
		if f.Count > 0 {
			// Take a free slot, or evict the oldest message being assembled.
			slot = 0
			for i, p := range r.partials {
				if p == nil {
					slot = i
					break
				}
				if r.partials[slot] != nil && p.seq < r.partials[slot].seq {
					slot = i
				}
			}
			if old := r.partials[slot]; old != nil {
				c.unreliableQueued -= old.cost
				c.pool.putIn(old)
			}
			r.partials[slot] = m
		}
	}
	c.addFragment(m, f)
	if m.complete() {
		if slot >= 0 {
			r.partials[slot] = nil
		}
		c.deliver(m)
	}
}

// admitUnreliable bounds the memory of unreliable messages: queued and assembling
// ones together stay within RecvWindow.
func (c *Conn) admitUnreliable(f *proto.RUDPData) bool {
	if c.unreliableQueued+flowCost(int(f.Total)) > c.cfg.RecvWindow {
		c.stats.UnreliableDropped++
		return false
	}
	return true
}

// parsedDataMax bounds the data frames of one packet that validate keeps decoded
// for apply; a packet with more decodes the rest twice.
const parsedDataMax = 4

// parsedData keeps the data frames validate decoded, so that apply acts on them
// without decoding them again (a bulk packet carries two or more). The frames alias
// the packet, which both see.
type parsedData struct {
	frames  [parsedDataMax]proto.RUDPData
	lens    [parsedDataMax]int
	n, next int            // frames decoded by validate; the next one apply takes
	spare   proto.RUDPData // where frames beyond parsedDataMax are decoded
}

func (p *parsedData) reset() { p.n, p.next = 0, 0 }

// slot is where validate decodes the next data frame.
func (p *parsedData) slot() *proto.RUDPData {
	if p.n < parsedDataMax {
		return &p.frames[p.n]
	}
	return &p.spare
}

// record keeps the frame just decoded into slot, n bytes long.
func (p *parsedData) record(n int) {
	if p.n < parsedDataMax {
		p.lens[p.n] = n
		p.n++
	}
}

// take returns the next data frame validate kept and its length, in packet order;
// false past the last one kept.
func (p *parsedData) take() (*proto.RUDPData, int, bool) {
	if p.next >= p.n {
		return nil, 0, false
	}
	p.next++
	return &p.frames[p.next-1], p.lens[p.next-1], true
}
