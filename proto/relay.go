package proto

import "encoding/binary"

// Relay frames (relayframe), 0x20–0x2F; PROTOCOL.md §8.
const (
	TypeRelayAllocate  MsgType = 0x20
	TypeRelayAllocated MsgType = 0x21
	TypeRelaySend      MsgType = 0x22
	TypeRelayDeliver   MsgType = 0x23
)

// Relay frame bounds (PROTOCOL.md §8.3).
const (
	// RelayDataHeaderLen is the whole per-packet overhead of the relay: the common
	// header and the channel.
	RelayDataHeaderLen = HeaderLen + 2
	// MaxRelayFrameLen is the largest relay-send or relay-deliver: a 1500-byte IPv4
	// MTU less the IPv4 (20) and UDP (8) headers.
	MaxRelayFrameLen = 1472
	// MaxRelayPacketLen is the largest packet a relay frame carries.
	MaxRelayPacketLen = MaxRelayFrameLen - RelayDataHeaderLen
)

// RelayPeerReady is the relay-allocated flag "the peer holds a channel of this pair
// too": frames sent now are delivered.
const RelayPeerReady = 0x01

// RelayAllocate (client → server, 0x20) asks for the sender's channel of the pair
// its relay token names; repeated, it refreshes the channel (PROTOCOL.md §8.1).
// PeerID and Token alias the parsed packet.
type RelayAllocate struct {
	Session Session
	TxID    uint64
	PeerID  []byte // 1–MaxPeerIDLen: who the token was issued for
	Token   []byte // 1–MaxRelayTokenLen, opaque to the client
}

func (m *RelayAllocate) Append(b []byte) []byte {
	b = AppendHeader(b, TypeRelayAllocate)
	b = append(b, m.Session[:]...)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = appendVec8(b, "relay-allocate peer ID", m.PeerID, 1, MaxPeerIDLen)
	return appendVec16(b, "relay-allocate token", m.Token, 1, MaxRelayTokenLen)
}

func (m *RelayAllocate) Parse(p []byte) error {
	rest, err := body(p, TypeRelayAllocate)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	r.array(m.Session[:])
	m.TxID = r.u64()
	m.PeerID = r.vec8(1, MaxPeerIDLen)
	m.Token = r.vec16(1, MaxRelayTokenLen)
	return r.done()
}

// RelayAllocated (server → client, 0x21) answers a relay-allocate; the server
// repeats the answer with RelayPeerReady when the peer links (PROTOCOL.md §8.2).
// Token is the renewed token to refresh with; it aliases the parsed packet.
type RelayAllocated struct {
	TxID      uint64
	Channel   uint16 // 1–65535
	Flags     uint8  // RelayPeerReady
	LifetimeS uint32 // seconds until the channel expires, ≥ 1
	Token     []byte // 1–MaxRelayTokenLen
}

func (m *RelayAllocated) Append(b []byte) []byte {
	if m.Channel == 0 || m.Flags&^RelayPeerReady != 0 || m.LifetimeS == 0 {
		panic("proto: invalid RelayAllocated")
	}
	b = AppendHeader(b, TypeRelayAllocated)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = binary.BigEndian.AppendUint16(b, m.Channel)
	b = append(b, m.Flags)
	b = binary.BigEndian.AppendUint32(b, m.LifetimeS)
	return appendVec16(b, "relay-allocated token", m.Token, 1, MaxRelayTokenLen)
}

func (m *RelayAllocated) Parse(p []byte) error {
	rest, err := body(p, TypeRelayAllocated)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.TxID = r.u64()
	m.Channel = r.u16()
	m.Flags = r.u8()
	m.LifetimeS = r.u32()
	if r.err == nil && (m.Channel == 0 || m.Flags&^RelayPeerReady != 0 || m.LifetimeS == 0) {
		r.fail(ErrMalformed)
	}
	m.Token = r.vec16(1, MaxRelayTokenLen)
	return r.done()
}

// RelayData is a relay-send (client → server, 0x22) or relay-deliver (server →
// client, 0x23): a channel and one opaque packet that runs to the end of the
// datagram (PROTOCOL.md §8.3). Packet aliases the parsed datagram. The hot paths
// (the server's forwarding, the node's send and receive) use the copy-free helpers of
// package relayframe instead; this struct is the reference form for vectors and ports.
type RelayData struct {
	Deliver bool   // false: relay-send (0x22); true: relay-deliver (0x23)
	Channel uint16 // 1–65535
	Packet  []byte // 1–MaxRelayPacketLen bytes
}

func (m *RelayData) Append(b []byte) []byte {
	if m.Channel == 0 {
		panic("proto: relay data on channel 0")
	}
	mustLen("relay packet", len(m.Packet), 1, MaxRelayPacketLen)
	b = AppendRelayDataHeader(b, m.Deliver, m.Channel)
	return append(b, m.Packet...)
}

// AppendRelayDataHeader appends the four bytes that precede a relayed packet.
func AppendRelayDataHeader(b []byte, deliver bool, channel uint16) []byte {
	t := TypeRelaySend
	if deliver {
		t = TypeRelayDeliver
	}
	b = AppendHeader(b, t)
	return binary.BigEndian.AppendUint16(b, channel)
}

func (m *RelayData) Parse(p []byte) error {
	h, rest, err := ParseHeader(p)
	if err != nil {
		return err
	}
	switch h.Type {
	case TypeRelaySend, TypeRelayDeliver:
	default:
		return ErrWrongType
	}
	ch, pkt, err := ParseRelayDataBody(rest)
	if err != nil {
		return err
	}
	m.Deliver, m.Channel, m.Packet = h.Type == TypeRelayDeliver, ch, pkt
	return nil
}

// ParseRelayDataBody checks the part of a relay-send or relay-deliver after the
// common header and returns the channel and the packet (aliasing body).
func ParseRelayDataBody(body []byte) (channel uint16, packet []byte, err error) {
	if len(body) > MaxRelayFrameLen-HeaderLen {
		return 0, nil, ErrTooLong
	}
	if len(body) < 3 { // channel and at least one byte of packet
		return 0, nil, ErrShort
	}
	channel = binary.BigEndian.Uint16(body)
	if channel == 0 {
		return 0, nil, ErrMalformed
	}
	return channel, body[2:len(body):len(body)], nil
}
