package proto

import "errors"

// Sentinel errors returned by the parsers. Callers compare with errors.Is; the driver
// counts each kind and drops the datagram.
var (
	// ErrShort: the packet ends before a field does.
	ErrShort = errors.New("proto: packet too short")
	// ErrTrailing: bytes follow the last field of a message that has no padding.
	ErrTrailing = errors.New("proto: trailing bytes")
	// ErrMalformed: a field holds a value outside its range (bad address family,
	// unknown enum, non-zero reserved bits, non-canonical encoding).
	ErrMalformed = errors.New("proto: malformed field")
	// ErrTooLong: a length or count exceeds the bound PROTOCOL.md sets for it.
	ErrTooLong = errors.New("proto: length over bound")
	// ErrNotNatpass: the first byte is outside natpass's range (STUN or unknown).
	ErrNotNatpass = errors.New("proto: not a natpass packet")
	// ErrUnknownVersion: a natpass packet of a version this code does not speak.
	ErrUnknownVersion = errors.New("proto: unknown natpass version")
	// ErrUnknownType: a message type this version does not define.
	ErrUnknownType = errors.New("proto: unknown message type")
	// ErrWrongType: Parse was called on a packet of another message type.
	ErrWrongType = errors.New("proto: wrong message type")
)
