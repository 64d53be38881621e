package rudp

import (
	"time"

	"github.com/natpass/natpass/proto"
)

// Conn is one reliable-UDP connection to one peer, as a pure state machine. It knows
// no addresses: the caller (node, sim, a test) moves its packets, which travel inside
// an encrypted transport payload.
//
// # Methods
//
// Getters: Stats, LaneStats, Deadline (and DeadlineReason, for debugging), Closed.
//
// Inputs: HandleDatagram(now, p) takes one received rudp packet (p is borrowed for
// the call only); HandleTimeout(now) fires the timers that are due (calling it early
// is a no-op).
//
// Commands: Send(now, lane, mode, msg) and SendBy(now, expiry, lane, mode, msg) queue
// a message (copied; too large is ErrMessageTooLarge at once); SendOwned(now, expiry,
// lane, mode, msg) queues msg itself, which the caller gives up (no copy; it goes to
// Config.Buffers' Put when the Conn is done with it); Close(now, code, text) starts a
// graceful close.
//
// Outputs: PollTransmit(now, buf) writes the next packet p into buf at
// buf[Headroom:] and returns it; the caller fills buf[:Headroom] and the Tailroom
// bytes after p in place (keyx header and tag, relay framing), and the datagram
// buf[:Headroom+len(p)+Tailroom] is never larger than the current PMTU. buf must hold
// at least DatagramSizeMax bytes. PollEvent returns the next *EventMessage or the
// final *EventClosed; both are owned by the Conn and valid until the next call on it,
// except that TakeData right after PollEvent hands a message's Data over for good.
//
// # Drain rule
//
// After any Handle* call or command, call PollTransmit until it returns false, then
// PollEvent until it returns false, then read Deadline and call HandleTimeout when
// that instant arrives. now never decreases across calls (a decrease panics). Every
// timer lives in one fixed table indexed by an unexported enum; Deadline is its
// minimum, proto.Never once closed.
//
// # Errors
//
// A datagram that is malformed, a duplicate, or breaks the protocol returns an error
// (proto's sentinels wrapped, ErrDuplicate, ErrProtocol, ErrEmpty) and leaves the
// connection exactly as it was: the caller counts and drops it. Terminal conditions
// (Close, the peer's close, the idle timeout) end in one EventClosed.
//
// # Allocation
//
// In steady state nothing allocates: messages, packet records and fragment
// references come from free lists and rings that only grow, and events reuse two
// structs. A message the application takes with TakeData takes its buffer along, so
// the next message needs a new one: Config.Buffers lets the embedder recycle them.
type Conn struct {
	cfg   Config
	now   proto.Instant
	state connState

	timers timerTable

	// Sending.
	nextPN        uint64           // next packet number (RFC 9002 §2: never reused)
	sent          ring[sentPacket] // index = packet number; head = oldest not retired
	chunks        ring[chunkRef]   // fragments carried by the packets in sent
	lanes         []lane
	topPriority   uint8
	mixedPriority bool // lanes have more than one priority: the reserve and overshoot apply
	pool          pool
	sendBuffered  int    // bytes of messages from Send until acked or gone
	reliableSent  uint64 // flow-control cost of first transmissions (§7.6)
	peerMaxData   uint64 // the peer's flow-control limit
	// partlySent counts reliable messages whose first transmission has begun and not
	// ended; creditOwed is what their fragments never sent will still charge. A
	// second message starts only if all of them fit (§7.6 [FLOW-5]).
	partlySent    int
	creditOwed    uint64
	pingPending   bool
	ackOnlyStreak int // ack-only packets since the last ack-eliciting one
	afOut         ackFreqOut
	packetHasTop  bool // the packet being built carries a top-priority message (mixed priorities)
	// packetHasReliable: the packet being built carries reliable data.
	packetHasReliable    bool
	fragSize, fragSizeAt int  // fragmentSize's result and the packet budget it was for
	packetFull           bool // data filled the packet being built
	fullSize, fullSizeAt int  // the largest full packet since the budget was fullSizeAt (padFull)
	// packetChunkStart is where the fragments of the packet being built start in chunks.
	packetChunkStart uint64

	// Recovery (RFC 9002 §6) and congestion control (§7).
	rtt                  rttEstimator
	cc                   cubic
	pacer                pacer
	largestAcked         uint64 // RFC 9002 §6 largest_acked_packet
	anyAcked             bool
	lossTime             proto.Instant // RFC 9002 A.3 loss_time
	ptoCount             int           // RFC 9002 §6.2.1 pto_count
	ptoProbes            int           // probe packets still to send for a fired PTO
	lastAckElicitingSent proto.Instant // RFC 9002 A.3 time_of_last_ack_eliciting_packet
	lastAckElicitingPing bool          // ... and it carried a PING (its PTO leaves out the peer's ack delay)
	ackElicitingInFlight int
	bytesInFlight        int           // RFC 9002 §7 bytes_in_flight
	flightStart          proto.Instant // when bytesInFlight last rose from 0
	cwndLimited          bool
	overCwndBytes        int           // bytes in flight sent by top-priority lanes beyond the window
	firstSampleSent      proto.Instant // send time of the packet that gave the first RTT sample
	pmtu                 pmtuState
	lossRate             float64 // moving average of lost (1) and acknowledged (0) packets
	reorder              reorderState

	// Receiving.
	recvd               recvRanges
	largestRecvTime     proto.Instant // when the largest packet number arrived
	ackPending          bool          // something new to acknowledge
	ackImmediate        bool          // send the ACK now rather than at timerAck
	ackElicitingUnacked int
	ackSent             bool   // an ACK frame was sent
	ackSentLargest      uint64 // the largest packet number the last ACK frame reported
	afIn                ackFreqIn
	ackIn, ackOut       proto.RUDPAck // scratch frames: parse target and encoder
	parsed              parsedData    // data frames validate decoded, for apply
	recvReliable        uint64        // flow-control cost received (§7.6)
	recvPolled          uint64        // ... of it handed out with EventMessage.Credit
	recvConsumed        uint64        // ... of that given back with Consumed (taken by the application)
	advertisedMaxData   uint64
	sendMaxData         bool
	// unreliableQueued is the cost of unreliable messages assembling, queued, or
	// polled and not yet given back with Consumed: bounded by RecvWindow, past
	// which new ones are dropped and counted (Stats.UnreliableDropped).
	unreliableQueued int

	events     ring[*inMsg]
	held       *inMsg // the message of the last EventMessage, released on the next poll
	evMessage  EventMessage
	evClosed   EventClosed
	evPTO      EventProbeTimeout
	ptoEvent   bool // a probe timeout fired since the last PollEvent reported one
	closedSent bool // EventClosed returned

	// Closing.
	closeReason   proto.CloseReason
	closePending  bool // a CLOSE frame is to be sent
	closeLastSent proto.Instant

	stats Stats
}

type connState uint8

const (
	stateOpen    connState = iota
	stateClosing           // Close called: send CLOSE, wait out the closing period
	stateClosed            // EventClosed queued or returned; inert
)

// sentPacket is the record of one sent packet (RFC 9002 A.1.1).
type sentPacket struct {
	timeSent   proto.Instant
	size       int32
	flags      packetFlags
	chunkStart uint64 // fragments in chunks[chunkStart:chunkEnd]
	chunkEnd   uint64
	ackLargest uint64 // largest packet number in the ACK frame it carried
}

type packetFlags uint16

const (
	pktAckEliciting packetFlags = 1 << iota
	pktInFlight
	pktHasAck
	pktMaxData
	pktPMTUProbe
	pktOverCwnd // sent by a top-priority lane beyond the window
	pktAckFreq  // carried an ACK-FREQUENCY frame
	pktPing     // carried a PING: the peer acknowledges it at once
	pktAcked
	pktLost
)

func (p *sentPacket) has(f packetFlags) bool { return p.flags&f != 0 }
func (p *sentPacket) retired() bool          { return p.flags&(pktAcked|pktLost) != 0 }

// New returns an open connection at now.
func New(cfg Config, now proto.Instant) *Conn {
	cfg = cfg.WithDefaults()
	c := &Conn{
		cfg:                  cfg,
		now:                  now,
		timers:               newTimerTable(),
		lanes:                make([]lane, len(cfg.Lanes)),
		peerMaxData:          initialMaxData,
		rtt:                  newRTTEstimator(cfg.InitialRTT),
		lossTime:             proto.Never,
		lastAckElicitingSent: now,
		largestRecvTime:      now,
		advertisedMaxData:    initialMaxData,
		afIn:                 ackFreqIn{params: defaultAckFreq(&cfg)},
		// The real window goes out in the first packet (§7.6).
		sendMaxData: uint64(cfg.RecvWindow) > initialMaxData,
	}
	c.afOut.rateAt = now
	c.pool.bufs = cfg.Buffers
	c.pmtu = newPMTU(cfg)
	c.cc = newCubic(c.budget())
	c.pacer = newPacer(c.cc.cwnd, now)
	for i, l := range cfg.Lanes {
		c.lanes[i].cfg = l
		c.topPriority = max(c.topPriority, l.Priority)
		c.mixedPriority = c.mixedPriority || l.Priority != cfg.Lanes[0].Priority
	}
	c.timers[timerIdle] = now.Add(cfg.IdleTimeout)
	c.timers[timerKeepalive] = now.Add(cfg.KeepaliveInterval)
	return c
}

// budget is the largest rudp packet at the current PMTU.
func (c *Conn) budget() int { return c.pmtu.current - c.cfg.Headroom - c.cfg.Tailroom }

// baseBudget is the largest rudp packet every path carries.
func (c *Conn) baseBudget() int { return c.cfg.DatagramSizeBase - c.cfg.Headroom - c.cfg.Tailroom }

// advance moves the clock; a decrease is a caller bug.
func (c *Conn) advance(now proto.Instant) {
	if now < c.now {
		panic("rudp: time went backwards")
	}
	c.now = now
}

// Deadline is the next instant HandleTimeout must be called at, proto.Never if none.
func (c *Conn) Deadline() proto.Instant {
	_, at := c.timers.next()
	return at
}

// IdleDeadline is when the connection closes for having heard nothing (IdleTimeout
// after the last packet received), proto.Never once it has ended. An owner with no
// path to send on calls HandleTimeout only then: the connection may want to send
// sooner, but cannot, and must still end when the peer stays silent.
func (c *Conn) IdleDeadline() proto.Instant {
	if c.state == stateClosed {
		return proto.Never
	}
	return c.timers[timerIdle]
}

// HeardPeer tells the connection its peer was heard in a packet rudp did not see (a
// key-exchange handshake its owner processed): the idle timer restarts as for a
// received packet, for RFC 9000 §10.1 restarts it on every packet processed, the
// handshake's included. An owner that makes the connection before its peer can
// answer (node does, at the introduction, so messages queue while paths and keys
// are set up) calls it when the session comes up; otherwise the idle timeout would
// count the setup time and end a connection that has only just been able to start.
// A closing or closed connection ignores it.
func (c *Conn) HeardPeer(now proto.Instant) {
	c.advance(now)
	if c.state == stateOpen {
		c.timers[timerIdle] = now.Add(c.cfg.IdleTimeout)
	}
}

// DeadlineReason names the timer behind Deadline ("loss", "ack", "pacing",
// "keepalive", "idle", "pmtu", "close"), or "" when none is armed.
func (c *Conn) DeadlineReason() string {
	t, at := c.timers.next()
	if at == proto.Never {
		return ""
	}
	return t.String()
}

// Closed reports whether the connection has ended (EventClosed is queued or polled).
func (c *Conn) Closed() bool { return c.state == stateClosed }

// HandleTimeout fires every timer due at now.
func (c *Conn) HandleTimeout(now proto.Instant) {
	c.advance(now)
	for t := timer(0); t < timerCount; t++ {
		if c.timers[t] > now {
			continue
		}
		c.timers[t] = proto.Never
		switch t {
		case timerLoss:
			c.onLossTimeout(now)
		case timerAck:
			if c.ackPending {
				c.ackImmediate = true
			}
		case timerPacing:
			// PollTransmit asks the pacer again.
		case timerKeepalive:
			c.pingPending = true
		case timerIdle:
			c.finish(proto.CloseReason{Code: CodeIdleTimeout, Local: true, Text: "idle timeout"})
			return
		case timerPMTU:
			c.pmtu.hi = c.pmtu.cfgMax // RFC 8899 §5.1.1: look for a larger PMTU again
			c.pmtu.due = c.pmtu.searching()
		case timerClose:
			c.finish(c.closeReason)
			return
		}
	}
}

// Close starts a graceful close: queued messages are dropped, a CLOSE frame carrying
// code and text (at most 128 bytes; longer is cut) goes to the peer, and after three
// probe timeouts EventClosed reports the local reason.
func (c *Conn) Close(now proto.Instant, code uint16, text string) error {
	c.advance(now)
	if c.state != stateOpen {
		return ErrClosed
	}
	if len(text) > proto.RUDPMaxCloseText {
		text = text[:proto.RUDPMaxCloseText]
	}
	c.closeReason = proto.CloseReason{Code: code, Local: true, Text: text}
	c.state = stateClosing
	c.closePending = true
	c.dropSendState()
	c.timers = newTimerTable()
	// RFC 9000 §10.2: the closing period lasts three PTOs.
	c.timers[timerClose] = now.Add(3 * c.rtt.pto(c.cfg.MaxAckDelay))
	return nil
}

// finish ends the connection and queues EventClosed.
func (c *Conn) finish(r proto.CloseReason) {
	if c.state == stateClosed {
		return
	}
	c.state = stateClosed
	c.evClosed.Reason = r
	c.dropSendState()
	c.timers = newTimerTable()
}

// dropSendState forgets every queued message (their bytes are no longer wanted).
func (c *Conn) dropSendState() {
	for i := range c.lanes {
		l := &c.lanes[i]
		for l.pending.len() > 0 {
			l.pending.pop()
		}
		l.unsent = 0
		c.partlySent, c.creditOwed = 0, 0
		for l.retx.len() > 0 {
			l.retx.pop()
		}
		for k := range l.unacked {
			for l.unacked[k].len() > 0 {
				l.unacked[k].pop()
			}
		}
	}
	c.sent.reset(c.nextPN)
	c.chunks.reset(c.chunks.tail)
	c.sendBuffered, c.bytesInFlight, c.ackElicitingInFlight = 0, 0, 0
	c.ptoProbes = 0
}

// PollEvent returns the next event. Messages come first, in delivery order; after
// EventClosed nothing more. A message's flow-control credit stays held after it is
// polled: the caller gives it back with Consumed when the application has taken the
// message, so that a slow reader slows the sender (DESIGN §11).
func (c *Conn) PollEvent() (Event, bool) {
	if c.held != nil {
		c.pool.putIn(c.held)
		c.held = nil
	}
	if c.events.len() > 0 {
		m := c.events.pop()
		c.held = m
		cr := Credit{unreliable: int64(m.cost)}
		if m.mode.Reliable() {
			cr = Credit{reliable: int64(m.cost)}
			c.recvPolled += uint64(m.cost)
		}
		c.evMessage = EventMessage{Lane: int(m.lane), Mode: m.mode, Data: m.data, Credit: cr}
		return &c.evMessage, true
	}
	if c.ptoEvent {
		c.ptoEvent = false
		if c.state == stateOpen {
			return &c.evPTO, true
		}
	}
	if c.state == stateClosed && !c.closedSent {
		c.closedSent = true
		return &c.evClosed, true
	}
	return nil, false
}

// TakeData returns the Data of the message the last PollEvent returned and gives it
// to the caller: the Conn never touches that memory again, so the caller may keep it
// instead of copying it (a 64 KiB message then costs no second copy). It must come
// before the next PollEvent; nil if the last event was not a message. Without
// Config.Buffers, a small message in a much larger pooled buffer is copied out
// instead, so that what the caller keeps never pins more than about its own size;
// with it, the caller always gets the buffer Buffers.Get returned (b[:cap(b)] is
// all of it) and gives it back to the embedder's pool when done.
func (c *Conn) TakeData() []byte {
	m := c.held
	if m == nil {
		return nil
	}
	d := m.data
	if c.pool.bufs == nil && cap(d) > len(d)+len(d)/4+64 {
		return append(make([]byte, 0, len(d)), d...)
	}
	m.data = nil
	if d == nil {
		return []byte{} // an empty message is a message: not nil
	}
	if c.pool.bufs != nil {
		return d
	}
	return d[:len(d):len(d)]
}

// Credit is the flow-control credit that polled messages hold until the application
// has taken them. Credits of one Conn add up (Add), so a caller may give back many
// messages' worth at once. The zero Credit holds nothing.
type Credit struct{ reliable, unreliable int64 }

// Add returns the credit of both.
func (cr Credit) Add(o Credit) Credit {
	return Credit{reliable: cr.reliable + o.reliable, unreliable: cr.unreliable + o.unreliable}
}

// IsZero reports whether cr holds nothing.
func (cr Credit) IsZero() bool { return cr == Credit{} }

// Consumed gives back the credit of messages the application has taken. Reliable
// credit reopens the peer's window (a MAX_DATA goes out once a quarter of the window
// is free again, so the sender never waits a round trip on a window that is already
// free); unreliable credit makes room for more unreliable messages. Giving back more
// than was polled is a caller bug and panics; after the close it is a no-op. Drain
// after it like after any command: the MAX_DATA it makes due goes out only from
// PollTransmit, and no timer fires for it (a sender blocked on the limit has nothing
// in flight that would make this side send anything else).
func (c *Conn) Consumed(now proto.Instant, cr Credit) {
	c.advance(now)
	if cr.reliable < 0 || cr.unreliable < 0 || c.recvConsumed+uint64(cr.reliable) > c.recvPolled ||
		int64(c.unreliableQueued) < cr.unreliable {
		panic("rudp: Consumed gives back credit that was not polled")
	}
	c.recvConsumed += uint64(cr.reliable)
	c.unreliableQueued -= int(cr.unreliable)
	if c.state == stateOpen && cr.reliable > 0 &&
		c.nextMaxData() >= c.advertisedMaxData+uint64(c.cfg.RecvWindow)/4 {
		c.sendMaxData = true
	}
}

// nextMaxData is the limit the next MAX_DATA advertises: the credit the application
// has given back plus the window, but never less than the limit already in force
// (§7.6). A limit only rises: the peer may already have sent up to the old one, so
// a lower one would refuse data the peer was allowed to send, and it would stall
// there. Below 64 KiB of window the limit therefore stays at the initial 65,536
// until the application has taken 65,536 − RecvWindow bytes of credit.
func (c *Conn) nextMaxData() uint64 {
	return max(c.advertisedMaxData, c.recvConsumed+uint64(c.cfg.RecvWindow))
}

// HandleDatagram is defined in recv.go, Send and PollTransmit in send.go, recovery in
// recovery.go.

// durationMicros converts a duration to the ACK frame's microseconds.
func durationMicros(d time.Duration) uint64 {
	if d < 0 {
		return 0
	}
	return uint64(d / time.Microsecond)
}
