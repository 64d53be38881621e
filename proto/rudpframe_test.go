package proto

import (
	"errors"
	"testing"
)

// RFC 9000 §A.1 sample varints: the encodings below decode to the listed values.
func TestVarintRFC9000Samples(t *testing.T) {
	for _, c := range []struct {
		hex []byte
		v   uint64
	}{
		{[]byte{0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c}, 151288809941952652},
		{[]byte{0x9d, 0x7f, 0x3e, 0x7d}, 494878333},
		{[]byte{0x7b, 0xbd}, 15293},
		{[]byte{0x25}, 37},
	} {
		v, n, err := ConsumeVarint(c.hex)
		if err != nil || v != c.v || n != len(c.hex) {
			t.Errorf("%x: got %d (%d bytes, %v), want %d", c.hex, v, n, err, c.v)
		}
	}
	// RFC 9000 §A.1 also shows 37 encoded in two bytes (0x4025); that is legal QUIC
	// but not minimal, and rudp accepts only the minimal form.
	if _, _, err := ConsumeVarint([]byte{0x40, 0x25}); !errors.Is(err, ErrMalformed) {
		t.Errorf("non-minimal varint accepted: %v", err)
	}
}

func TestRUDPAckRejectsBadRanges(t *testing.T) {
	for name, p := range map[string][]byte{
		"first range below zero": {0x02, 5, 0, 0, 6},
		"gap below zero":         {0x02, 5, 0, 1, 0, 4, 0},
		"too many ranges":        {0x02, 5, 0, 32, 0},
		"short":                  {0x02, 5, 0},
	} {
		var a RUDPAck
		if err := a.Parse(p); err == nil {
			t.Errorf("%s: %x accepted as %+v", name, p, a)
		}
	}
}

func TestRUDPDataFragmentRules(t *testing.T) {
	for _, c := range []struct {
		total, count, index uint64
		ok                  bool
	}{
		{10, 3, 2, true},
		{10, 1, 0, false}, // one fragment is spelled "not fragmented"
		{10, 3, 3, false}, // index out of range
		{4, 4, 3, true},
		{9, 5, 4, true},  // ceil(9/5)=2: 2+2+2+2+1
		{8, 5, 4, false}, // ceil(8/5)=2, the fifth fragment would be empty
	} {
		_, _, ok := FragmentBounds(c.total, c.count, c.index)
		if ok != c.ok {
			t.Errorf("FragmentBounds(%d, %d, %d) ok=%v, want %v", c.total, c.count, c.index, ok, c.ok)
		}
	}
	var d RUDPData
	// Fragment 0 of (10, 3) must be 4 bytes; 3 is refused.
	if err := d.Parse([]byte{0x11, 0, 0, 10, 3, 0, 3, 1, 2, 3}); !errors.Is(err, ErrMalformed) {
		t.Errorf("wrong fragment length accepted: %v", err)
	}
	if err := d.Parse([]byte{0x10, 16, 0, 0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("lane 16 accepted: %v", err)
	}
	if err := d.Parse([]byte{0x18, 0, 0, 0}); !errors.Is(err, ErrWrongType) {
		t.Errorf("type 0x18 accepted: %v", err)
	}
}

// fragmentLenOK is fragmentBounds's length rule without its division: the two must
// agree on every (total, count, index, n), checked exhaustively for small messages
// (every length n up to total+2, so off-by-one lengths are covered) and at the edges
// of RUDPMaxMessageLen.
func TestFragmentLenOKMatchesFragmentBounds(t *testing.T) {
	check := func(total, count, index, n uint64) {
		_, want, ok := fragmentBounds(total, count, index)
		if got, exp := fragmentLenOK(total, count, index, n), ok && want == n; got != exp {
			t.Fatalf("fragmentLenOK(%d, %d, %d, %d) = %v, fragmentBounds says %v", total, count, index, n, got, exp)
		}
	}
	for total := uint64(0); total <= 70; total++ {
		for count := uint64(0); count <= total+2; count++ {
			for index := uint64(0); index <= count; index++ {
				for n := uint64(0); n <= total+2; n++ {
					check(total, count, index, n)
				}
			}
		}
	}
	for _, total := range []uint64{RUDPMaxMessageLen - 1, RUDPMaxMessageLen, RUDPMaxMessageLen + 1, 1 << 62} {
		for _, count := range []uint64{2, 3, 56, 1 << 20, total - 1, total} {
			for _, index := range []uint64{0, 1, count - 2, count - 1, count} {
				_, want, _ := fragmentBounds(total, count, index)
				for _, n := range []uint64{0, 1, want - 1, want, want + 1, total, 1 << 62} {
					check(total, count, index, n)
				}
			}
		}
	}
}

// VarintLen and AppendVarint agree with the encoding's boundaries on both sides of
// every one, and refuse values past MaxVarint.
func TestVarintLenBoundaries(t *testing.T) {
	for _, c := range []struct {
		v    uint64
		want int
	}{{0, 1}, {1<<6 - 1, 1}, {1 << 6, 2}, {1<<14 - 1, 2}, {1 << 14, 4}, {1<<30 - 1, 4}, {1 << 30, 8}, {MaxVarint, 8}} {
		if got := VarintLen(c.v); got != c.want {
			t.Errorf("VarintLen(%d) = %d, want %d", c.v, got, c.want)
		}
		enc := AppendVarint([]byte{0xaa}, c.v)
		if len(enc) != 1+c.want {
			t.Errorf("AppendVarint(%d) wrote %d bytes, want %d", c.v, len(enc)-1, c.want)
		}
		if v, n, err := ConsumeVarint(enc[1:]); err != nil || v != c.v || n != c.want {
			t.Errorf("AppendVarint(%d) = %x, decodes to %d, %d, %v", c.v, enc[1:], v, n, err)
		}
	}
	for _, v := range []uint64{MaxVarint + 1, 1 << 63, ^uint64(0)} {
		for name, f := range map[string]func(){"VarintLen": func() { VarintLen(v) }, "AppendVarint": func() { AppendVarint(nil, v) }} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%s(%d) did not panic", name, v)
					}
				}()
				f()
			}()
		}
	}
}
