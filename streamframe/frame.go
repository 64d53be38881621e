package streamframe

import (
	"encoding/binary"
	"errors"

	"github.com/natpass/natpass/proto"
)

const (
	// HeaderLen is the size of a frame's length field.
	HeaderLen = 2
	// MaxDatagramLen is the largest datagram a frame carries: the largest datagram a
	// node and its server exchange, a relay frame (proto.MaxRelayFrameLen, 1472).
	MaxDatagramLen = proto.MaxRelayFrameLen
	// MaxFrameLen is the largest frame on the stream.
	MaxFrameLen = HeaderLen + MaxDatagramLen
)

var (
	// ErrEmpty: AppendFrame was given no bytes; a zero length is not a frame.
	ErrEmpty = errors.New("streamframe: empty datagram")
	// ErrTooLong: AppendFrame was given more than MaxDatagramLen bytes.
	ErrTooLong = errors.New("streamframe: datagram longer than MaxDatagramLen")
	// ErrZeroLength: the stream held a frame of length 0; it is unusable.
	ErrZeroLength = errors.New("streamframe: frame length 0 on the stream")
	// ErrOversized: the stream held a frame longer than MaxDatagramLen; it is unusable.
	ErrOversized = errors.New("streamframe: frame length above MaxDatagramLen on the stream")
)

// AppendFrame appends datagram as one frame (length ‖ datagram) to dst and returns
// the extended slice. A datagram of 0 or more than MaxDatagramLen bytes is refused
// with ErrEmpty or ErrTooLong, and dst comes back unchanged. It allocates only when
// dst lacks capacity.
func AppendFrame(dst, datagram []byte) ([]byte, error) {
	switch {
	case len(datagram) == 0:
		return dst, ErrEmpty
	case len(datagram) > MaxDatagramLen:
		return dst, ErrTooLong
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(datagram)))
	return append(dst, datagram...), nil
}
