package proto

import (
	"bytes"
	"reflect"
	"slices"
	"testing"
)

func FuzzRUDPHeader(f *testing.F)  { fuzzMessage(f, func() message { return new(RUDPHeader) }) }
func FuzzRUDPAck(f *testing.F)     { fuzzMessage(f, func() message { return new(RUDPAck) }) }
func FuzzRUDPMaxData(f *testing.F) { fuzzMessage(f, func() message { return new(RUDPMaxData) }) }
func FuzzRUDPClose(f *testing.F)   { fuzzMessage(f, func() message { return new(RUDPClose) }) }
func FuzzRUDPData(f *testing.F)    { fuzzMessage(f, func() message { return new(RUDPData) }) }
func FuzzRUDPAckFrequency(f *testing.F) {
	fuzzMessage(f, func() message { return new(RUDPAckFrequency) })
}
func FuzzRUDPPacket(f *testing.F) { fuzzMessage(f, func() message { return new(RUDPPacket) }) }

// FuzzVarint: every accepted varint is minimal and re-encodes to the bytes it used.
func FuzzVarint(f *testing.F) {
	f.Add([]byte{0x25})
	f.Add([]byte{0x40, 0x25})
	f.Add([]byte{0xc0, 0, 0, 0, 0, 0, 0, 0x25})
	f.Fuzz(func(t *testing.T, p []byte) {
		v, n, err := ConsumeVarint(p)
		if err != nil {
			return
		}
		if got := AppendVarint(nil, v); !bytes.Equal(got, p[:n]) {
			t.Fatalf("varint %x decoded to %d re-encodes as %x", p[:n], v, got)
		}
	})
}

// referenceVarint is the byte-at-a-time decoder decodeVarint replaced (issue 18),
// kept as the oracle FuzzVarintDecoders compares it with.
func referenceVarint(p []byte) (uint64, int, error) {
	if len(p) == 0 {
		return 0, 0, ErrShort
	}
	n := 1 << (p[0] >> 6)
	if len(p) < n {
		return 0, 0, ErrShort
	}
	v := uint64(p[0] & 0x3f)
	for _, c := range p[1:n] {
		v = v<<8 | uint64(c)
	}
	if VarintLen(v) != n {
		return 0, 0, ErrMalformed
	}
	return v, n, nil
}

// FuzzVarintDecoders: ConsumeVarint agrees with the reference decoder on every input,
// value, length and error alike.
func FuzzVarintDecoders(f *testing.F) {
	for _, seed := range [][]byte{{}, {0x25}, {0x40}, {0x40, 0x25}, {0x7f, 0xff}, {0x80, 0, 0x40, 0}, {0x80, 0, 0x3f, 0xff},
		{0xc0, 0, 0, 0, 0x40, 0, 0, 0}, {0xc0, 0, 0, 0, 0x3f, 0xff, 0xff, 0xff}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		v, n, err := ConsumeVarint(p)
		rv, rn, rerr := referenceVarint(p)
		if v != rv || n != rn || err != rerr {
			t.Fatalf("ConsumeVarint(%x) = %d, %d, %v; reference %d, %d, %v", p, v, n, err, rv, rn, rerr)
		}
	})
}

// FuzzRUDPDataDecoders: the fast path accepts exactly what the checked path accepts,
// with the same length and fields, and leaves the frame untouched when it refuses.
func FuzzRUDPDataDecoders(f *testing.F) {
	f.Add(benchDataFrame())
	for _, d := range []RUDPData{{Seq: 1, Data: []byte("x")}, {Mode: RUDPUnreliable, Lane: 15}, {Seq: 64, Total: 5, Count: 2, Index: 1, Data: []byte("ab")}} {
		f.Add(d.Append(nil))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		var fast, checked RUDPData
		n, ok := fast.decodeWellFormed(p)
		cn, err := checked.decodeChecked(p)
		if ok != (err == nil) {
			t.Fatalf("%x: fast path ok=%v, checked path %v", p, ok, err)
		}
		if !ok {
			if !reflect.DeepEqual(fast, RUDPData{}) {
				t.Fatalf("%x: refused, but the fast path wrote %+v", p, fast)
			}
			return
		}
		if n != cn || !reflect.DeepEqual(fast, checked) || cap(fast.Data) != cap(checked.Data) {
			t.Fatalf("%x: fast path %d %+v, checked path %d %+v", p, n, fast, cn, checked)
		}
	})
}

// FuzzRUDPAckDecoders: Decode (the fast path, then the checked one when it refuses)
// gives exactly what the checked path alone gives, on a fresh frame and on one whose
// ranges are reused, and the fast path accepts only what the checked path accepts.
func FuzzRUDPAckDecoders(f *testing.F) {
	for _, a := range []RUDPAck{
		{DelayMicros: 1500, Ranges: []RUDPAckRange{{Smallest: 90200, Largest: 90310}, {Smallest: 90100, Largest: 90190}, {Smallest: 89000, Largest: 90050}}},
		{Ranges: []RUDPAckRange{{Smallest: 0, Largest: 0}}},
		{DelayMicros: 1 << 40, Ranges: []RUDPAckRange{{Smallest: 70, Largest: 80}, {Smallest: 2, Largest: 68}, {Smallest: 0, Largest: 0}}},
	} {
		f.Add(a.Append(nil))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		var checked RUDPAck
		cn, cerr := checked.decodeChecked(p)
		var fast RUDPAck
		if _, ok := fast.decodeWellFormed(p); ok != (cerr == nil) {
			t.Fatalf("%x: fast path ok=%v, checked path %v", p, ok, cerr)
		}
		reused := RUDPAck{DelayMicros: 7, Ranges: make([]RUDPAckRange, 5, 300)}
		for _, got := range []*RUDPAck{new(RUDPAck), &reused} {
			n, err := got.Decode(p)
			if n != cn || err != cerr || got.DelayMicros != checked.DelayMicros || !slices.Equal(got.Ranges, checked.Ranges) {
				t.Fatalf("%x: Decode %d %v %+v, checked path %d %v %+v", p, n, err, got, cn, cerr, checked)
			}
		}
	})
}
