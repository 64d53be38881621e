package rudp

import (
	"slices"
	"testing"

	"github.com/natpass/natpass/proto"
	"pgregory.net/rapid"
)

func TestRecvRangesMerge(t *testing.T) {
	var s recvRanges
	for _, pn := range []uint64{0, 1, 2, 5, 4, 9, 3} {
		s.add(pn)
	}
	want := []proto.RUDPAckRange{{Smallest: 9, Largest: 9}, {Smallest: 0, Largest: 5}}
	if !slices.Equal(s.ranges(), want) {
		t.Fatalf("ranges %v, want %v", s.ranges(), want)
	}
	if !s.contains(3) || s.contains(6) || s.contains(10) {
		t.Fatal("contains is wrong")
	}
	s.forgetBelow(9)
	// Dropped ranges count as received; the hole between them and 9 does not.
	if !slices.Equal(s.ranges(), []proto.RUDPAckRange{{Smallest: 9, Largest: 9}}) || !s.contains(5) || s.contains(7) {
		t.Fatalf("after forgetBelow(9): %v floor %d", s.ranges(), s.floor)
	}
}

// Property: recvRanges agrees with a plain set about every packet number it still
// reports, keeps its ranges descending, disjoint and non-adjacent, never holds more
// than the ACK frame's limit, and counts everything below its floor as received.
func TestRecvRangesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var s recvRanges
		seen := map[uint64]bool{}
		for range rapid.IntRange(1, 300).Draw(t, "n") {
			pn := rapid.Uint64Range(0, 200).Draw(t, "pn")
			if s.contains(pn) {
				if !seen[pn] && pn >= s.floor {
					t.Fatalf("contains %d, never added", pn)
				}
				continue
			}
			if seen[pn] {
				t.Fatalf("forgot %d above the floor %d", pn, s.floor)
			}
			seen[pn] = true
			s.add(pn)
		}
		r := s.ranges()
		if len(r) > proto.RUDPMaxAckRanges {
			t.Fatalf("%d ranges", len(r))
		}
		for i, rg := range r {
			if rg.Smallest > rg.Largest || (i > 0 && rg.Largest+1 >= r[i-1].Smallest) {
				t.Fatalf("ranges not canonical: %v", r)
			}
			for pn := rg.Smallest; pn <= rg.Largest; pn++ {
				if !seen[pn] {
					t.Fatalf("range %v reports %d, never added", rg, pn)
				}
			}
		}
		// The ranges must encode as an ACK frame (Append panics otherwise).
		if len(r) > 0 {
			_ = (&proto.RUDPAck{Ranges: r}).Append(nil)
		}
	})
}
