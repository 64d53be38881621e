package proto

// Version is the natpass wire version this code speaks.
const Version = 1

// HeaderLen is the size of the common header: the version byte and the message type.
const HeaderLen = 2

// Class is what the first byte of a datagram says it carries.
type Class uint8

const (
	// ClassUnknown: no protocol on a natpass socket starts with this byte.
	ClassUnknown Class = iota
	// ClassSTUN: RFC 7983 §7 assigns first bytes 0–3 to STUN.
	ClassSTUN
	// ClassNatpass: high nibble 0xE; the low nibble is the version.
	ClassNatpass
)

const (
	prefixMask = 0xF0
	prefix     = 0xE0
)

// Classify demultiplexes a datagram by its first byte (RFC 7983 §7). It does not look
// at the version: ParseHeader tells an unknown version from a good one.
func Classify(p []byte) Class {
	if len(p) == 0 {
		return ClassUnknown
	}
	switch b := p[0]; {
	case b <= 3:
		return ClassSTUN
	case b&prefixMask == prefix:
		return ClassNatpass
	}
	return ClassUnknown
}

// MsgType is the second byte of every natpass packet. Ranges are assigned per layer
// so that a port can dispatch on the high nibble (PROTOCOL.md, "Message types").
type MsgType uint8

// Rendezvous signaling, 0x01–0x0F (room messages in room.go, register-family in
// family.go, retry in retry.go).
const (
	TypeRegister         MsgType = 0x01
	TypeRegistered       MsgType = 0x02
	TypeKeepalive        MsgType = 0x03
	TypeKeepaliveAck     MsgType = 0x04
	TypeNATProbe         MsgType = 0x05
	TypeNATProbeReply    MsgType = 0x06
	TypeIntroduceRequest MsgType = 0x07
	TypeIntroduction     MsgType = 0x08
	TypeError            MsgType = 0x09
	TypeIntroductionAck  MsgType = 0x0A
)

// Handshake and transport data (keyx), 0x10–0x1F; layouts in proto/handshake.go.
const (
	TypeInitiation    MsgType = 0x10
	TypeResponse      MsgType = 0x11
	TypeCookieReply   MsgType = 0x12
	TypeTransportData MsgType = 0x13
	// TypeInitiationAESGCM is the initiation of a handshake in the AES-GCM suite: the
	// same layout as TypeInitiation; the type names the suite (PROTOCOL.md §6.3).
	TypeInitiationAESGCM MsgType = 0x14
)

// Ranges reserved for other layers; their messages are defined beside the layer's
// code and listed in PROTOCOL.md.
const (
	TypeKeyxFirst  MsgType = 0x10 // handshake, cookie reply, transport data
	TypeKeyxLast   MsgType = 0x1F
	TypeRelayFirst MsgType = 0x20 // relay allocation and data frames
	TypeRelayLast  MsgType = 0x2F
	TypePunchFirst MsgType = 0x30 // path probes and their replies
	TypePunchLast  MsgType = 0x3F
)

var typeNames = [...]string{
	TypeRegister:         "register",
	TypeRegistered:       "registered",
	TypeKeepalive:        "keepalive",
	TypeKeepaliveAck:     "keepalive-ack",
	TypeNATProbe:         "nat-probe",
	TypeNATProbeReply:    "nat-probe-reply",
	TypeIntroduceRequest: "introduce-request",
	TypeIntroduction:     "introduction",
	TypeError:            "error",
	TypeIntroductionAck:  "introduction-ack",
	TypeRegisterFamily:   "register-family",
	TypeRetry:            "retry",
	TypeRoomJoin:         "room-join",
	TypeRoomLeave:        "room-leave",
	TypeRoomState:        "room-state",
	TypeInitiation:       "initiation",
	TypeResponse:         "response",
	TypeCookieReply:      "cookie-reply",
	TypeTransportData:    "transport-data",
	TypeInitiationAESGCM: "initiation-aesgcm",
	TypeRelayAllocate:    "relay-allocate",
	TypeRelayAllocated:   "relay-allocated",
	TypeRelaySend:        "relay-send",
	TypeRelayDeliver:     "relay-deliver",
	TypeProbe:            "probe",
	TypeProbeReply:       "probe-reply",

	TypeClusterClaim:       "cluster-claim",
	TypeClusterIntroAsk:    "cluster-intro-ask",
	TypeClusterIntroAnswer: "cluster-intro-answer",
	TypeClusterRelayBind:   "cluster-relay-bind",
	TypeClusterRelayBound:  "cluster-relay-bound",
	TypeClusterRelayData:   "cluster-relay-data",
	TypeClusterRoomJoin:    "cluster-room-join",
	TypeClusterRoomLeave:   "cluster-room-leave",
	TypeClusterRoomState:   "cluster-room-state",
	TypeClusterRoomClaim:   "cluster-room-claim",
}

func (t MsgType) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "type-0x" + string(hexDigits[t>>4]) + string(hexDigits[t&0xF])
}

const hexDigits = "0123456789abcdef"

// Header is the common header of a natpass packet.
type Header struct {
	Version uint8
	Type    MsgType
}

// ParseHeader reads the common header of p and returns it with the body that follows.
// It allocates nothing. It does not check that the type is defined: layers own their
// ranges, and a dispatcher reports ErrUnknownType for what no layer claims.
func ParseHeader(p []byte) (Header, []byte, error) {
	switch Classify(p) {
	case ClassNatpass:
	case ClassUnknown:
		if len(p) == 0 {
			return Header{}, nil, ErrShort
		}
		return Header{}, nil, ErrNotNatpass
	default:
		return Header{}, nil, ErrNotNatpass
	}
	h := Header{Version: p[0] &^ prefixMask}
	if h.Version != Version {
		return h, nil, ErrUnknownVersion
	}
	if len(p) < HeaderLen {
		return h, nil, ErrShort
	}
	h.Type = MsgType(p[1])
	return h, p[HeaderLen:], nil
}

// AppendHeader appends the common header for a message of type t.
func AppendHeader(b []byte, t MsgType) []byte {
	return append(b, prefix|Version, byte(t))
}

// body checks the header of p against want and returns the body.
func body(p []byte, want MsgType) ([]byte, error) {
	h, rest, err := ParseHeader(p)
	if err != nil {
		return nil, err
	}
	if h.Type != want {
		return nil, ErrWrongType
	}
	return rest, nil
}
