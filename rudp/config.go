package rudp

import (
	"time"

	"github.com/natpass/natpass/proto"
)

// Mode is a message's delivery mode.
type Mode = proto.RUDPMode

const (
	// ReliableOrdered messages arrive exactly once, in the order they were sent on
	// their lane.
	ReliableOrdered = proto.RUDPReliableOrdered
	// ReliableUnordered messages arrive exactly once, each as soon as it is complete.
	ReliableUnordered = proto.RUDPReliableUnordered
	// UnreliableSequenced messages may be lost, and one older than a message already
	// delivered on its lane is dropped: the newest state wins.
	UnreliableSequenced = proto.RUDPUnreliableSequenced
	// Unreliable messages may be lost or arrive in any order.
	Unreliable = proto.RUDPUnreliable
)

// LaneConfig describes one lane. A lane with a higher Priority always sends first;
// lanes of equal priority share the path in proportion to Weight (1..1000).
//
// Redundant is for game inputs: every packet that carries new data also repeats the
// four oldest of the lane's reliable messages that fit in one fragment and are still
// unacknowledged, as long as the window has room for them. A lost input then arrives
// with the next packet instead of after a loss-detection round trip. The price is
// bandwidth: each small message goes out once per packet sent until it is
// acknowledged (twice at 20 Hz and 50 ms RTT), never more than four extra messages
// per packet, and never in a flow that fills its window.
type LaneConfig struct {
	Priority  uint8
	Weight    uint16
	Redundant bool
}

// Config is the fixed configuration of a Conn. Both ends must configure the same
// lanes and MaxMessageSize (a receiver drops data for a lane it lacks or a message
// larger than its maximum, as a protocol violation) and should use the same
// MaxAckDelay, because each computes its probe timeout with the other's (RFC 9002
// §6.2.1); the rest is local. Zero fields take the defaults listed.
type Config struct {
	// Lanes, at most proto.RUDPMaxLanes. Default: one lane {Priority 0, Weight 1}.
	Lanes []LaneConfig

	// DatagramSizeBase is the UDP payload size every path is assumed to carry
	// (default 1200, the IPv6 minimum MTU less headers, RFC 9000 §14).
	DatagramSizeBase int
	// DatagramSizeMax is where PMTU probing stops (default 1452: a 1500-byte Ethernet
	// MTU less IPv4 and UDP headers... and a margin for IPv6); equal to the base turns
	// probing off.
	DatagramSizeMax int
	// Headroom and Tailroom are the bytes the caller adds around each rudp packet:
	// keyx's transport header (14) and relay framing (4) before it, the AEAD tag (16)
	// after. PollTransmit writes the packet at buf[Headroom:] and leaves Tailroom
	// bytes of the datagram budget free. Defaults 18 and 16.
	Headroom, Tailroom int

	// MaxMessageSize bounds one message (default 1 MiB). Send refuses larger ones.
	MaxMessageSize int
	// SendBufferBytes bounds the bytes of messages queued or unacknowledged (default
	// 16 MiB). Send returns ErrSendBufferFull beyond it.
	SendBufferBytes int
	// SendQueueBytes, when positive, bounds per lane the bytes of queued messages that
	// have not yet left once, as Linux's TCP_NOTSENT_LOWAT: while a lane has this
	// many such bytes, Send on it returns ErrSendBufferFull (a lane below the bound
	// takes a message whole, whatever its size, so the queue holds at most
	// SendQueueBytes + MaxMessageSize). The send buffer still covers the
	// unacknowledged bytes of a long fat path; this keeps what waits to leave short,
	// so a message's bytes are still in the CPU's caches when its packets are built
	// and sealed (issue 18: a bulk sender keeping 16 MiB queued spent ≈ 10 % more CPU
	// per byte). It suits a caller that blocks on ErrSendBufferFull until packets
	// leave (SendQueueBlocking); the default, 0, is no bound but SendBufferBytes, for
	// callers that queue a burst at once and run the connection afterwards.
	SendQueueBytes int
	// RecvWindow is the flow-control window: reliable bytes the peer may have in
	// flight beyond what the application has taken (default 4 MiB). It must be at
	// least 2 × MaxMessageSize and at least 4 KiB: the sender cannot finish a message
	// whose fragments the window cannot hold at once, and the receiver cannot hand
	// over a part, so a smaller window could stall for good.
	//
	// A window below 64 KiB bounds memory only once the connection is under way:
	// every sender may send 64 KiB before it hears the receiver's window (PROTOCOL.md
	// §7.6), and a limit once in force never falls, so such a Conn holds up to 64 KiB
	// of reliable data until the application has taken 64 KiB − RecvWindow, and at
	// most RecvWindow after that.
	RecvWindow int

	InitialRTT        time.Duration // RFC 9002 §6.2.2 kInitialRtt; default 333 ms
	MaxAckDelay       time.Duration // RFC 9000 §18.2 max_ack_delay; default 10 ms
	PTOMax            time.Duration // cap on the backed-off probe timeout; default 2 s
	KeepaliveInterval time.Duration // PING after this long without sending; default 10 s
	IdleTimeout       time.Duration // close after this long without receiving; default 30 s

	// FixedAckFrequency keeps the peer at RFC 9000's acknowledgement rule (every
	// second ack-eliciting packet, within MaxAckDelay) for the whole connection:
	// this end never sends ACK-FREQUENCY (PROTOCOL.md §7.9), which otherwise asks
	// for an acknowledgement every few packets during bulk. For comparisons; a Conn
	// always honours its peer's requests.
	FixedAckFrequency bool

	// Buffers, if not nil, supplies every received message's buffer and takes back
	// the ones the Conn is done with, including SendOwned messages' (see Buffers).
	// nil: the Conn allocates, and keeps a bounded free list of its own.
	Buffers Buffers
}

// SendQueueBlocking is the Config.SendQueueBytes for a caller that blocks on
// ErrSendBufferFull until packets leave, as the driver's Send does: a millisecond
// of data at 8 Gbit/s, far more than leaves between two of its wake-ups.
const SendQueueBlocking = 1 << 20

// Defaults.
const (
	defaultDatagramSizeBase  = 1200
	defaultDatagramSizeMax   = 1452
	defaultHeadroom          = 18
	defaultTailroom          = 16
	defaultMaxMessageSize    = 1 << 20
	defaultSendBufferBytes   = 16 << 20
	defaultRecvWindow        = 4 << 20
	defaultInitialRTT        = 333 * time.Millisecond
	defaultMaxAckDelay       = 10 * time.Millisecond
	defaultPTOMax            = 2 * time.Second
	defaultKeepaliveInterval = 10 * time.Second
	defaultIdleTimeout       = 30 * time.Second

	// initialMaxData is the flow-control limit each end assumes of the other before a
	// MAX_DATA frame arrives, and honours as a receiver whatever its own window
	// (PROTOCOL.md §7.6 [FLOW-1]). A Conn whose window is larger sends it in its first
	// packets; a smaller window takes over only as the limit rises past 64 KiB.
	initialMaxData = 64 << 10

	// minRecvWindow is the smallest RecvWindow WithDefaults accepts. With
	// RecvWindow ≥ 2 × MaxMessageSize as well, the largest message's flow-control
	// cost (data plus 32 bytes per fragment, fragments of at least 208 bytes) stays
	// below the three quarters of the window a receiver always leaves open (it
	// raises the limit once a quarter is free), so the one message the sender may
	// have started without room for all of it always finishes (PROTOCOL.md §7.6
	// [FLOW-4], [FLOW-5]). 4 KiB also keeps MAX_DATA to one per KiB taken at most.
	minRecvWindow = 4 << 10

	// messageWindow bounds how far a reliable lane's sequence numbers may run ahead of
	// the oldest unacknowledged message, which bounds the receiver's reorder buffer
	// (PROTOCOL.md §7.6).
	messageWindow = 4096

	// minPacketPayload is the smallest packet budget that can carry a data frame.
	minPacketPayload = 256
)

// WithDefaults returns c with every zero field set to its default: the
// configuration a Conn made with c runs with. It panics on a configuration no Conn
// can run with: that is a programming error, not a network condition.
func (c Config) WithDefaults() Config {
	if len(c.Lanes) == 0 {
		c.Lanes = []LaneConfig{{Priority: 0, Weight: 1}}
	} else {
		c.Lanes = append([]LaneConfig(nil), c.Lanes...)
	}
	for i := range c.Lanes {
		if c.Lanes[i].Weight == 0 {
			c.Lanes[i].Weight = 1
		}
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setInt(&c.DatagramSizeBase, defaultDatagramSizeBase)
	setInt(&c.DatagramSizeMax, max(defaultDatagramSizeMax, c.DatagramSizeBase))
	setInt(&c.Headroom, defaultHeadroom)
	setInt(&c.Tailroom, defaultTailroom)
	setInt(&c.MaxMessageSize, defaultMaxMessageSize)
	setInt(&c.SendBufferBytes, max(defaultSendBufferBytes, 2*c.MaxMessageSize))
	setInt(&c.RecvWindow, max(defaultRecvWindow, 2*c.MaxMessageSize))
	setDur(&c.InitialRTT, defaultInitialRTT)
	setDur(&c.MaxAckDelay, defaultMaxAckDelay)
	setDur(&c.PTOMax, defaultPTOMax)
	setDur(&c.KeepaliveInterval, defaultKeepaliveInterval)
	setDur(&c.IdleTimeout, defaultIdleTimeout)

	switch {
	case len(c.Lanes) > proto.RUDPMaxLanes:
		panic("rudp: more than 16 lanes")
	case c.DatagramSizeMax < c.DatagramSizeBase:
		panic("rudp: DatagramSizeMax below DatagramSizeBase")
	case c.Headroom < 0 || c.Tailroom < 0:
		panic("rudp: negative headroom or tailroom")
	case c.DatagramSizeBase-c.Headroom-c.Tailroom < minPacketPayload:
		panic("rudp: datagram budget too small for a packet")
	case c.MaxMessageSize > proto.RUDPMaxMessageLen:
		panic("rudp: MaxMessageSize over 1 GiB")
	case c.RecvWindow < 2*c.MaxMessageSize:
		panic("rudp: RecvWindow below 2 × MaxMessageSize")
	case c.RecvWindow < minRecvWindow:
		panic("rudp: RecvWindow below 4 KiB")
	case c.SendBufferBytes < c.MaxMessageSize:
		panic("rudp: SendBufferBytes below MaxMessageSize")
	case c.SendQueueBytes < 0:
		panic("rudp: negative SendQueueBytes")
	case c.IdleTimeout <= c.KeepaliveInterval:
		panic("rudp: IdleTimeout must exceed KeepaliveInterval")
	}
	for _, l := range c.Lanes {
		if l.Weight > 1000 {
			panic("rudp: lane weight over 1000")
		}
	}
	return c
}
