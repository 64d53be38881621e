package proto

import (
	"encoding/binary"
	"math/bits"
)

// Reliable-UDP (rudp) packets travel inside the encrypted keyx transport payload, so
// they carry no natpass common header. A packet is a packet number followed by one or
// more frames (PROTOCOL.md §7):
//
//	+----------------------+---------+---------+-----+
//	| packet number varint | frame 1 | frame 2 | ... |
//	+----------------------+---------+---------+-----+
//
// Every frame starts with a one-byte type. Integers marked varint use the QUIC
// variable-length encoding (RFC 9000 §16) and must be minimal, so a parsed frame
// re-encodes to the same bytes.

// RUDPFrameType is the first byte of an rudp frame.
type RUDPFrameType uint8

const (
	// RUDPPadding fills the rest of a packet (PMTU probes); every byte after it is 0.
	RUDPPadding RUDPFrameType = 0x00
	// RUDPPing asks for an acknowledgement and carries nothing.
	RUDPPing RUDPFrameType = 0x01
	// RUDPAckType acknowledges packet-number ranges.
	RUDPAckType RUDPFrameType = 0x02
	// RUDPMaxDataType raises the sender's flow-control limit.
	RUDPMaxDataType RUDPFrameType = 0x03
	// RUDPCloseType ends the connection with a code and a reason.
	RUDPCloseType RUDPFrameType = 0x04
	// RUDPAckFrequencyType tells the peer how often to acknowledge.
	RUDPAckFrequencyType RUDPFrameType = 0x05
	// RUDPDataFirst..RUDPDataLast carry message data: 0x10 | mode<<1 | fragmented.
	RUDPDataFirst RUDPFrameType = 0x10
	RUDPDataLast  RUDPFrameType = 0x17
)

// Bounds of rudp fields (PROTOCOL.md §7).
const (
	MaxVarint         = 1<<62 - 1
	RUDPMaxLanes      = 16      // lane numbers 0..15
	RUDPMaxAckRanges  = 32      // ranges in one ACK frame
	RUDPMaxMessageLen = 1 << 30 // total length of one (fragmented) message
	RUDPMaxCloseText  = 128     // bytes of close reason text

	RUDPMaxAckThreshold     = 255       // ACK-FREQUENCY ack-eliciting threshold
	RUDPMaxAckDelayMicros   = 1_000_000 // ACK-FREQUENCY requested max ack delay (1 s)
	RUDPMaxReorderThreshold = 255       // ACK-FREQUENCY reordering threshold
)

// RUDPMode is the delivery mode of a message; it travels in bits 1–2 of a data frame's
// type byte.
type RUDPMode uint8

const (
	RUDPReliableOrdered     RUDPMode = 0 // every message once, in send order
	RUDPReliableUnordered   RUDPMode = 1 // every message once, as it completes
	RUDPUnreliableSequenced RUDPMode = 2 // some messages, never older after newer
	RUDPUnreliable          RUDPMode = 3 // some messages, any order
)

var rudpModeNames = [...]string{"reliable-ordered", "reliable-unordered", "unreliable-sequenced", "unreliable"}

func (m RUDPMode) String() string {
	if int(m) < len(rudpModeNames) {
		return rudpModeNames[m]
	}
	return "mode(?)"
}

// Reliable reports whether messages of this mode are retransmitted until acknowledged.
func (m RUDPMode) Reliable() bool { return m <= RUDPReliableUnordered }

// VarintLen is the encoded size of v (RFC 9000 §16): 1, 2, 4 or 8 bytes.
func VarintLen(v uint64) int {
	// A table by bit length instead of a chain of comparisons: senders ask for it
	// several times per packet (issue 18).
	n := varintLenByBits[bits.Len64(v)]
	if n == 0 {
		panic("proto: varint over 2^62-1")
	}
	return int(n)
}

// varintLenByBits is VarintLen by bits.Len64(v); 0 past MaxVarint.
var varintLenByBits = [65]uint8{
	1, 1, 1, 1, 1, 1, 1, // up to 6 bits
	2, 2, 2, 2, 2, 2, 2, 2, // 7 to 14
	4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, // 15 to 30
	8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, // 31 to 46
	8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, // 47 to 62
	0, 0, // 63 and 64: over MaxVarint
}

// AppendVarint appends v in the minimal QUIC variable-length encoding.
func AppendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return append(b, byte(v>>8)|0x40, byte(v))
	case v < 1<<30:
		return binary.BigEndian.AppendUint32(b, uint32(v)|0x8000_0000)
	case v <= MaxVarint:
		return binary.BigEndian.AppendUint64(b, v|0xC000_0000_0000_0000)
	}
	panic("proto: varint over 2^62-1")
}

// varint reads a QUIC varint and rejects a longer-than-minimal encoding: a port that
// encodes minimally and a fuzzer that demands byte-exact round trips both rely on it.
// A failed reader has no bytes left (fail empties it), so a read after a failure
// fails again and keeps the first error without checking it here.
func (r *reader) varint() uint64 {
	v, n := decodeVarint(r.b)
	if n <= 0 {
		r.varintFailed(n)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varintFailed records decodeVarint's failure n: 0 for too few bytes, −1 for a
// non-minimal encoding.
func (r *reader) varintFailed(n int) {
	if n == 0 {
		r.fail(ErrShort)
		return
	}
	r.fail(ErrMalformed)
}

// decodeVarint decodes the varint at the start of b and returns it with its length,
// 0 if b is too short for it, or −1 if it is longer than minimal. It is the bulk
// receive path's most frequent parse (a packet number and four varints per data
// frame), hence one fixed-width load per length instead of a byte loop.
func decodeVarint(b []byte) (uint64, int) {
	if len(b) == 0 {
		return 0, 0
	}
	switch b[0] >> 6 {
	case 0:
		return uint64(b[0]), 1
	case 1:
		if len(b) < 2 {
			return 0, 0
		}
		v := uint64(binary.BigEndian.Uint16(b) & (1<<14 - 1))
		if v < 1<<6 {
			return 0, -1
		}
		return v, 2
	case 2:
		if len(b) < 4 {
			return 0, 0
		}
		v := uint64(binary.BigEndian.Uint32(b) & (1<<30 - 1))
		if v < 1<<14 {
			return 0, -1
		}
		return v, 4
	}
	if len(b) < 8 {
		return 0, 0
	}
	v := binary.BigEndian.Uint64(b) & MaxVarint
	if v < 1<<30 {
		return 0, -1
	}
	return v, 8
}

// ConsumeVarint decodes a varint at the start of p and returns it with its length, or
// an error for a short or non-minimal encoding.
func ConsumeVarint(p []byte) (uint64, int, error) {
	v, n := decodeVarint(p)
	switch {
	case n == 0:
		return 0, 0, ErrShort
	case n < 0:
		return 0, 0, ErrMalformed
	}
	return v, n, nil
}

// RUDPHeader is the start of every rudp packet: its packet number. Packet numbers
// start at 0, grow by one per packet and are never reused, so a retransmission always
// travels in a new packet (RFC 9002 §2 "monotonically increasing packet numbers").
type RUDPHeader struct {
	PacketNumber uint64
}

func (h *RUDPHeader) Append(b []byte) []byte { return AppendVarint(b, h.PacketNumber) }

// Decode reads the header at the start of p and returns its length.
func (h *RUDPHeader) Decode(p []byte) (int, error) {
	v, n, err := ConsumeVarint(p)
	if err != nil {
		return 0, err
	}
	h.PacketNumber = v
	return n, nil
}

// Parse accepts exactly one header and nothing after it (for vectors and fuzzing).
func (h *RUDPHeader) Parse(p []byte) error { return parseWhole(h.Decode, p) }

// parseWhole turns a Decode into a Parse that rejects trailing bytes.
func parseWhole(decode func([]byte) (int, error), p []byte) error {
	n, err := decode(p)
	if err != nil {
		return err
	}
	if n != len(p) {
		return ErrTrailing
	}
	return nil
}

// frameReader starts a reader on a frame whose type byte must satisfy ok.
func frameReader(p []byte, ok func(RUDPFrameType) bool) (reader, RUDPFrameType) {
	if len(p) == 0 {
		return reader{err: ErrShort}, 0
	}
	t := RUDPFrameType(p[0])
	if !ok(t) {
		return reader{err: ErrWrongType}, t
	}
	return reader{b: p[1:]}, t
}

// consumed is the number of bytes of p a reader has used, or the reader's error.
func consumed(r *reader, p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	return len(p) - len(r.b), nil
}

// RUDPAckRange is an inclusive range of acknowledged packet numbers.
type RUDPAckRange struct {
	Smallest, Largest uint64
}

// RUDPAck acknowledges packets (RFC 9000 §19.3 layout, without ECN counts). Ranges are
// in descending order, disjoint and non-adjacent: Ranges[0].Largest is the largest
// acknowledged packet number. DelayMicros is how long the receiver held the ACK after
// receiving that packet (RFC 9002 §5.3 ack_delay), in microseconds.
type RUDPAck struct {
	DelayMicros uint64
	Ranges      []RUDPAckRange
}

// Append encodes the frame; it panics on ranges that are empty, too many, unordered,
// overlapping or adjacent, because a peer would reject them.
func (f *RUDPAck) Append(b []byte) []byte {
	n := len(f.Ranges)
	if n == 0 || n > RUDPMaxAckRanges {
		panic("proto: rudp ack range count out of bounds")
	}
	first := f.Ranges[0]
	if first.Smallest > first.Largest {
		panic("proto: rudp ack range inverted")
	}
	b = append(b, byte(RUDPAckType))
	b = AppendVarint(b, first.Largest)
	b = AppendVarint(b, f.DelayMicros)
	b = AppendVarint(b, uint64(n-1))
	b = AppendVarint(b, first.Largest-first.Smallest)
	prev := first.Smallest
	for _, rg := range f.Ranges[1:] {
		// gap: packets between this range and the previous one, minus one
		// (RFC 9000 §19.3.1), which makes adjacent ranges unencodable.
		if rg.Smallest > rg.Largest || rg.Largest+2 > prev {
			panic("proto: rudp ack ranges not descending and disjoint")
		}
		b = AppendVarint(b, prev-rg.Largest-2)
		b = AppendVarint(b, rg.Largest-rg.Smallest)
		prev = rg.Smallest
	}
	return b
}

// Decode reads one ACK frame at the start of p into f (reusing f.Ranges) and returns
// its length.
func (f *RUDPAck) Decode(p []byte) (int, error) {
	if n, ok := f.decodeWellFormed(p); ok {
		return n, nil
	}
	return f.decodeChecked(p)
}

// decodeWellFormed is Decode for a frame decodeChecked accepts, with the same result;
// it only reports whether it succeeded (f.Ranges then holds scratch, which
// decodeChecked rewrites from the start). Straight-line index arithmetic instead of a
// reader: rudp decodes every ACK twice, to validate and to apply (issue 18).
func (f *RUDPAck) decodeWellFormed(p []byte) (int, bool) {
	if len(p) == 0 || RUDPFrameType(p[0]) != RUDPAckType {
		return 0, false
	}
	var head [4]uint64 // largest, delay, extra ranges, first range's length
	i := 1
	for k := range head {
		v, n := decodeVarint(p[i:])
		if n <= 0 {
			return 0, false
		}
		head[k], i = v, i+n
	}
	largest, extra, firstLen := head[0], head[2], head[3]
	if extra >= RUDPMaxAckRanges || firstLen > largest {
		return 0, false
	}
	prev := largest - firstLen
	ranges := append(f.Ranges[:0], RUDPAckRange{Smallest: prev, Largest: largest})
	for range extra {
		gap, n := decodeVarint(p[i:])
		if n <= 0 {
			return 0, false
		}
		length, m := decodeVarint(p[i+n:])
		if m <= 0 || gap+2 > prev || length > prev-gap-2 {
			return 0, false
		}
		i += n + m
		hi := prev - gap - 2
		ranges = append(ranges, RUDPAckRange{Smallest: hi - length, Largest: hi})
		prev = hi - length
	}
	f.DelayMicros, f.Ranges = head[1], ranges
	return i, true
}

// decodeChecked is Decode field by field through a reader, which names the first
// error of a frame decodeWellFormed refused.
func (f *RUDPAck) decodeChecked(p []byte) (int, error) {
	r, _ := frameReader(p, func(t RUDPFrameType) bool { return t == RUDPAckType })
	largest := r.varint()
	f.DelayMicros = r.varint()
	extra := r.varint()
	firstLen := r.varint()
	f.Ranges = f.Ranges[:0]
	if r.err == nil && extra >= RUDPMaxAckRanges {
		r.fail(ErrTooLong)
	}
	if r.err == nil && firstLen > largest {
		r.fail(ErrMalformed)
	}
	if r.err != nil {
		return 0, r.err
	}
	f.Ranges = append(f.Ranges, RUDPAckRange{Smallest: largest - firstLen, Largest: largest})
	prev := largest - firstLen
	for i := uint64(0); i < extra && r.err == nil; i++ {
		gap, length := r.varint(), r.varint()
		if r.err != nil {
			break
		}
		if gap+2 > prev || length > prev-gap-2 {
			r.fail(ErrMalformed)
			break
		}
		hi := prev - gap - 2
		f.Ranges = append(f.Ranges, RUDPAckRange{Smallest: hi - length, Largest: hi})
		prev = hi - length
	}
	return consumed(&r, p)
}

func (f *RUDPAck) Parse(p []byte) error { return parseWhole(f.Decode, p) }

// RUDPMaxData raises the flow-control limit: the sender may send reliable message
// bytes up to Limit in total over the connection's life (QUIC MAX_DATA, RFC 9000
// §19.9). Limits only grow; a smaller one is ignored.
type RUDPMaxData struct {
	Limit uint64
}

func (f *RUDPMaxData) Append(b []byte) []byte {
	return AppendVarint(append(b, byte(RUDPMaxDataType)), f.Limit)
}

func (f *RUDPMaxData) Decode(p []byte) (int, error) {
	r, _ := frameReader(p, func(t RUDPFrameType) bool { return t == RUDPMaxDataType })
	f.Limit = r.varint()
	return consumed(&r, p)
}

func (f *RUDPMaxData) Parse(p []byte) error { return parseWhole(f.Decode, p) }

// RUDPClose ends the connection. Code is the application's (0 = normal close); Text is
// for humans.
type RUDPClose struct {
	Code uint16
	Text []byte
}

func (f *RUDPClose) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(append(b, byte(RUDPCloseType)), f.Code)
	return appendVec8(b, "rudp close text", f.Text, 0, RUDPMaxCloseText)
}

func (f *RUDPClose) Decode(p []byte) (int, error) {
	r, _ := frameReader(p, func(t RUDPFrameType) bool { return t == RUDPCloseType })
	f.Code = r.u16()
	f.Text = r.vec8(0, RUDPMaxCloseText)
	return consumed(&r, p)
}

func (f *RUDPClose) Parse(p []byte) error { return parseWhole(f.Decode, p) }

// RUDPAckFrequency is the data sender's request for how its peer acknowledges (in the
// spirit of QUIC's ACK_FREQUENCY, draft-ietf-quic-ack-frequency §4; PROTOCOL.md
// §7.9). The receiver acknowledges once more than Threshold ack-eliciting packets are
// unacknowledged, or MaxAckDelayMicros after the first of them, and at once when a
// packet number is missing below ReorderThreshold later ones (0: never for order,
// 1: on any packet out of order). Sequence orders the requests: a receiver keeps the
// one with the largest.
type RUDPAckFrequency struct {
	Sequence          uint64
	Threshold         uint64 // 0..RUDPMaxAckThreshold
	MaxAckDelayMicros uint64 // 0..RUDPMaxAckDelayMicros
	ReorderThreshold  uint64 // 0..RUDPMaxReorderThreshold
}

// Append encodes the frame; it panics on a field out of range, which a peer rejects.
func (f *RUDPAckFrequency) Append(b []byte) []byte {
	if f.Threshold > RUDPMaxAckThreshold || f.MaxAckDelayMicros > RUDPMaxAckDelayMicros ||
		f.ReorderThreshold > RUDPMaxReorderThreshold {
		panic("proto: rudp ack-frequency field out of range")
	}
	b = AppendVarint(append(b, byte(RUDPAckFrequencyType)), f.Sequence)
	b = AppendVarint(b, f.Threshold)
	b = AppendVarint(b, f.MaxAckDelayMicros)
	return AppendVarint(b, f.ReorderThreshold)
}

// Decode reads one ACK-FREQUENCY frame at the start of p and returns its length. Each
// bound is checked as its field is read ([ACKFREQ-1], [WIRE-3]).
func (f *RUDPAckFrequency) Decode(p []byte) (int, error) {
	r, _ := frameReader(p, func(t RUDPFrameType) bool { return t == RUDPAckFrequencyType })
	bounded := func(limit uint64) uint64 {
		v := r.varint()
		if r.err == nil && v > limit {
			r.fail(ErrMalformed)
		}
		return v
	}
	f.Sequence = r.varint()
	f.Threshold = bounded(RUDPMaxAckThreshold)
	f.MaxAckDelayMicros = bounded(RUDPMaxAckDelayMicros)
	f.ReorderThreshold = bounded(RUDPMaxReorderThreshold)
	return consumed(&r, p)
}

func (f *RUDPAckFrequency) Parse(p []byte) error { return parseWhole(f.Decode, p) }

// RUDPData carries a message or one fragment of it.
//
// Seq numbers the messages of one lane and one mode (each pair counts from 0). A
// message longer than a packet travels as Count fragments of FragmentLen(Total, Count)
// bytes each (the last one shorter); Index says which. Count == 0 means "not
// fragmented": Data is the whole message and Total is len(Data).
type RUDPData struct {
	Mode  RUDPMode
	Lane  uint8
	Seq   uint64
	Total uint64 // message length; only on the wire when Count > 0
	Count uint64 // number of fragments, 0 or 2..
	Index uint64 // fragment index, < Count
	Data  []byte // aliases the parsed packet
}

// FragmentLen is the size of every fragment but the last of a message of total bytes
// split in count pieces.
func FragmentLen(total, count uint64) uint64 { return (total + count - 1) / count }

// fragmentBounds returns the offset and length fragment index of (total, count) must
// have, and whether (total, count, index) is a valid fragmentation at all: at least
// two fragments, none of them empty.
func fragmentBounds(total, count, index uint64) (off, n uint64, ok bool) {
	if count < 2 || index >= count || total > RUDPMaxMessageLen || total < count {
		return 0, 0, false
	}
	size := FragmentLen(total, count)
	if (count-1)*size >= total {
		return 0, 0, false // the last fragment would be empty
	}
	off = index * size
	return off, min(size, total-off), true
}

// FragmentBounds is the exported form of the fragmentation rule for senders and
// receivers: the byte offset and length of fragment index.
func FragmentBounds(total, count, index uint64) (off, n uint64, ok bool) {
	return fragmentBounds(total, count, index)
}

// Append encodes the frame; it panics on a mode, lane or fragmentation peers reject.
func (f *RUDPData) Append(b []byte) []byte {
	if f.Mode > RUDPUnreliable || f.Lane >= RUDPMaxLanes {
		panic("proto: rudp data mode or lane out of range")
	}
	t := byte(RUDPDataFirst) | byte(f.Mode)<<1
	if f.Count > 0 {
		if !fragmentLenOK(f.Total, f.Count, f.Index, uint64(len(f.Data))) {
			panic("proto: rudp data fragment inconsistent")
		}
		t |= 1
	}
	b = append(b, t, f.Lane)
	b = AppendVarint(b, f.Seq)
	if f.Count > 0 {
		b = AppendVarint(b, f.Total)
		b = AppendVarint(b, f.Count)
		b = AppendVarint(b, f.Index)
	}
	b = AppendVarint(b, uint64(len(f.Data)))
	return append(b, f.Data...)
}

// RUDPDataHeaderLen is the encoded size of a data frame without its data bytes.
func RUDPDataHeaderLen(seq, total, count, index, dataLen uint64) int {
	n := 2 + VarintLen(seq) + VarintLen(dataLen)
	if count > 0 {
		n += VarintLen(total) + VarintLen(count) + VarintLen(index)
	}
	return n
}

// Decode reads one data frame at the start of p into f and returns its length.
func (f *RUDPData) Decode(p []byte) (int, error) {
	if n, ok := f.decodeWellFormed(p); ok {
		return n, nil
	}
	return f.decodeChecked(p)
}

// decodeWellFormed is Decode for the frames every bulk packet carries: it accepts
// exactly what decodeChecked accepts and yields the same fields, but reports only
// whether it succeeded, leaving f untouched when not; decodeChecked then names the
// error. Straight-line index arithmetic instead of a reader, and no division for any
// fragment but a message's last (issue 18: the receiver's per-packet parse).
func (f *RUDPData) decodeWellFormed(p []byte) (int, bool) {
	if len(p) < 2 || RUDPFrameType(p[0]) < RUDPDataFirst || RUDPFrameType(p[0]) > RUDPDataLast || p[1] >= RUDPMaxLanes {
		return 0, false
	}
	fragmented := p[0]&1 == 1
	i := 2
	seq, n := decodeVarint(p[i:])
	if n <= 0 {
		return 0, false
	}
	i += n
	var total, count, index uint64
	if fragmented {
		var nt, nc, ni int
		total, nt = decodeVarint(p[i:])
		if nt <= 0 {
			return 0, false
		}
		count, nc = decodeVarint(p[i+nt:])
		if nc <= 0 {
			return 0, false
		}
		index, ni = decodeVarint(p[i+nt+nc:])
		if ni <= 0 {
			return 0, false
		}
		i += nt + nc + ni
	}
	size, n := decodeVarint(p[i:])
	if n <= 0 {
		return 0, false
	}
	i += n
	switch {
	case !fragmented && size > RUDPMaxMessageLen:
		return 0, false
	case fragmented && !fragmentLenOK(total, count, index, size):
		return 0, false
	case size > uint64(len(p)-i):
		return 0, false
	}
	if !fragmented {
		total = size
	}
	end := i + int(size)
	f.Mode, f.Lane, f.Seq = RUDPMode(p[0]>>1)&3, p[1], seq
	f.Total, f.Count, f.Index = total, count, index
	f.Data = p[i:end:end]
	if size == 0 {
		f.Data = nil // as decodeChecked: empty and absent encode alike
	}
	return end, true
}

// fragmentLenOK reports whether fragment index of (total, count) is n bytes long,
// fragmentBounds's rule: for every fragment but the last, n = ⌈total/count⌉ is
// checked as (n−1)·count < total ≤ n·count, and the last must not be empty,
// (count−1)·n < total. With n ≤ total ≤ RUDPMaxMessageLen = 2^30 no product overflows.
func fragmentLenOK(total, count, index, n uint64) bool {
	if count < 2 || index >= count || total > RUDPMaxMessageLen || total < count {
		return false
	}
	if index == count-1 || n == 0 || n > total {
		_, want, ok := fragmentBounds(total, count, index)
		return ok && want == n
	}
	return (n-1)*count < total && total <= n*count && (count-1)*n < total
}

// decodeChecked is Decode field by field through a reader, which names the first
// error of a frame decodeWellFormed refused.
func (f *RUDPData) decodeChecked(p []byte) (int, error) {
	r, t := frameReader(p, func(t RUDPFrameType) bool { return t >= RUDPDataFirst && t <= RUDPDataLast })
	f.Mode = RUDPMode(t>>1) & 3
	fragmented := t&1 == 1
	f.Lane = r.u8()
	if r.err == nil && f.Lane >= RUDPMaxLanes {
		r.fail(ErrMalformed)
	}
	f.Seq = r.varint()
	f.Total, f.Count, f.Index = 0, 0, 0
	if fragmented {
		f.Total, f.Count, f.Index = r.varint(), r.varint(), r.varint()
	}
	n := r.varint()
	if r.err != nil {
		return 0, r.err
	}
	if fragmented {
		if _, want, ok := fragmentBounds(f.Total, f.Count, f.Index); !ok || want != n {
			r.fail(ErrMalformed)
		}
	} else {
		if n > RUDPMaxMessageLen {
			r.fail(ErrTooLong)
		}
		f.Total = n
	}
	if r.err == nil && n > uint64(len(r.b)) {
		r.fail(ErrShort)
	}
	f.Data = r.bytes(int(n))
	if n == 0 {
		f.Data = nil // empty and absent encode alike; nil keeps round trips exact
	}
	return consumed(&r, p)
}

func (f *RUDPData) Parse(p []byte) error { return parseWhole(f.Decode, p) }

// RUDPPaddingLen checks that p (which starts with a PADDING frame) is all zero bytes
// and returns its length: padding always runs to the end of the packet.
func RUDPPaddingLen(p []byte) (int, error) {
	for _, c := range p {
		if c != 0 {
			return 0, ErrMalformed
		}
	}
	return len(p), nil
}

// RUDPPacket is a whole rudp packet: its packet number and its frames in order, each
// frame whole (type byte included). rudp checks and acts on frames in place; this
// type is the reference form of PROTOCOL.md §7.2 for vectors and ports, and its Parse
// applies exactly the syntax rules rudp applies before it looks at its own state
// ([RUDP-1], [RUDP-2]). Frames alias the parsed packet.
type RUDPPacket struct {
	PacketNumber uint64
	Frames       [][]byte
}

// Append encodes the packet; it panics on a packet without frames.
func (m *RUDPPacket) Append(b []byte) []byte {
	if len(m.Frames) == 0 {
		panic("proto: rudp packet without frames")
	}
	b = AppendVarint(b, m.PacketNumber)
	for _, f := range m.Frames {
		b = append(b, f...)
	}
	return b
}

// Parse reads a whole packet: a packet number and at least one well-formed frame.
func (m *RUDPPacket) Parse(p []byte) error {
	n, err := (&RUDPHeader{}).Decode(p)
	if err != nil {
		return err
	}
	m.PacketNumber, _, _ = ConsumeVarint(p)
	p = p[n:]
	if len(p) == 0 {
		return ErrShort // [RUDP-1]: at least one frame
	}
	m.Frames = m.Frames[:0]
	for len(p) > 0 {
		n, err := rudpFrameLen(p)
		if err != nil {
			return err
		}
		m.Frames = append(m.Frames, p[:n:n])
		p = p[n:]
	}
	return nil
}

// rudpFrameLen checks the frame at the start of p and returns its length.
func rudpFrameLen(p []byte) (int, error) {
	switch t := RUDPFrameType(p[0]); {
	case t == RUDPPadding:
		return RUDPPaddingLen(p)
	case t == RUDPPing:
		return 1, nil
	case t == RUDPAckType:
		var f RUDPAck
		return f.Decode(p)
	case t == RUDPMaxDataType:
		var f RUDPMaxData
		return f.Decode(p)
	case t == RUDPCloseType:
		var f RUDPClose
		return f.Decode(p)
	case t == RUDPAckFrequencyType:
		var f RUDPAckFrequency
		return f.Decode(p)
	case t >= RUDPDataFirst && t <= RUDPDataLast:
		var f RUDPData
		return f.Decode(p)
	}
	return 0, ErrMalformed // [RUDP-1]: a frame type §7.3 does not list
}
