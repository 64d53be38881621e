package relayframe

import (
	"encoding/binary"

	"github.com/natpass/natpass/proto"
)

// DataHeaderLen is the relay's whole per-packet overhead: the four bytes that precede
// a relayed packet in relay-send and relay-deliver (PROTOCOL.md §8.3).
const DataHeaderLen = proto.RelayDataHeaderLen

// MaxFrameLen is the largest relay-send the server forwards (1472 bytes); the packet
// inside is at most MaxPacketLen.
const (
	MaxFrameLen  = proto.MaxRelayFrameLen
	MaxPacketLen = proto.MaxRelayPacketLen
)

// PutSendHeader writes the relay-send header for channel into b[0:4], in place. A
// node seals its keyx packet at buf[4:] and then calls PutSendHeader(buf, ch): the
// datagram is buf[:4+n], built without a copy. b must have at least DataHeaderLen
// bytes (shorter is caller misuse and panics).
func PutSendHeader(b []byte, channel uint16) { putDataHeader(b, proto.TypeRelaySend, channel) }

// PutDeliverHeader writes the relay-deliver header for channel into b[0:4]; the
// server uses it to turn a copy of a relay-send into the relay-deliver it forwards.
func PutDeliverHeader(b []byte, channel uint16) { putDataHeader(b, proto.TypeRelayDeliver, channel) }

func putDataHeader(b []byte, t proto.MsgType, channel uint16) {
	_ = b[DataHeaderLen-1] // one bounds check, and a panic on a buffer with no headroom
	b[0] = 0xE0 | proto.Version
	b[1] = byte(t)
	binary.BigEndian.PutUint16(b[2:4], channel)
}

// AppendSendHeader appends the relay-send header for channel to b; the caller then
// appends the packet.
func AppendSendHeader(b []byte, channel uint16) []byte {
	return proto.AppendRelayDataHeader(b, false, channel)
}

// ParseDeliver checks a relay-deliver (what a node receives from the server) and
// returns the receiver's channel and the packet, which aliases p. Errors are proto's
// sentinels: ErrShort, ErrTooLong, ErrMalformed (channel 0), ErrWrongType, and the
// header errors of proto.ParseHeader.
func ParseDeliver(p []byte) (channel uint16, packet []byte, err error) {
	return parseData(p, proto.TypeRelayDeliver)
}

// ParseSend checks a relay-send (what the server receives) and returns the sender's
// channel and the packet, which aliases p. Errors as for ParseDeliver.
func ParseSend(p []byte) (channel uint16, packet []byte, err error) {
	return parseData(p, proto.TypeRelaySend)
}

func parseData(p []byte, want proto.MsgType) (uint16, []byte, error) {
	h, body, err := proto.ParseHeader(p)
	if err != nil {
		return 0, nil, err
	}
	if h.Type != want {
		return 0, nil, proto.ErrWrongType
	}
	return proto.ParseRelayDataBody(body)
}
