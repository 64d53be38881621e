package rudp

import "github.com/natpass/natpass/proto"

// recvRanges is the set of packet numbers received, as disjoint ranges in descending
// order, with at most proto.RUDPMaxAckRanges of them: what an ACK frame reports and
// what duplicate detection consults. When it would hold more, the oldest range is
// forgotten and everything at or below floor counts as already received: a late
// packet from there is dropped unacknowledged and its sender retransmits its data.
type recvRanges struct {
	r     [proto.RUDPMaxAckRanges]proto.RUDPAckRange
	n     int
	floor uint64 // packet numbers below floor are treated as received (0: none)
}

// contains reports whether pn was already received (or is below the floor).
func (s *recvRanges) contains(pn uint64) bool {
	if pn < s.floor {
		return true
	}
	for i := 0; i < s.n; i++ {
		if pn > s.r[i].Largest {
			return false
		}
		if pn >= s.r[i].Smallest {
			return true
		}
	}
	return false
}

func (s *recvRanges) largest() (uint64, bool) {
	if s.n == 0 {
		return 0, false
	}
	return s.r[0].Largest, true
}

// add inserts pn, which must not be contained, merging it with the ranges it touches.
func (s *recvRanges) add(pn uint64) {
	i := 0
	for i < s.n && s.r[i].Largest > pn {
		i++
	}
	// Now r[i] (if any) is the first range whose Largest < pn; r[i-1] lies above pn.
	above := i > 0 && s.r[i-1].Smallest == pn+1
	below := i < s.n && s.r[i].Largest+1 == pn
	switch {
	case above && below:
		s.r[i-1].Smallest = s.r[i].Smallest
		copy(s.r[i:s.n], s.r[i+1:s.n])
		s.n--
	case above:
		s.r[i-1].Smallest = pn
	case below:
		s.r[i].Largest = pn
	default:
		if s.n == len(s.r) {
			if i == s.n {
				// pn is older than every range we can hold: count it below the floor.
				s.floor = max(s.floor, pn+1)
				return
			}
			s.dropOldest()
		}
		copy(s.r[i+1:s.n+1], s.r[i:s.n])
		s.r[i] = proto.RUDPAckRange{Smallest: pn, Largest: pn}
		s.n++
	}
}

func (s *recvRanges) dropOldest() {
	s.n--
	s.floor = max(s.floor, s.r[s.n].Largest+1)
}

// forgetBelow drops ranges entirely below pn: the peer has seen an ACK covering them
// (RFC 9000 §13.2.4), so they need not be reported again.
func (s *recvRanges) forgetBelow(pn uint64) {
	for s.n > 1 && s.r[s.n-1].Largest < pn {
		s.dropOldest()
	}
	if s.n > 0 && s.r[s.n-1].Smallest < pn && s.r[s.n-1].Largest >= pn {
		s.floor = max(s.floor, pn)
		s.r[s.n-1].Smallest = pn
	}
}

// ranges returns the ranges to put in an ACK frame.
func (s *recvRanges) ranges() []proto.RUDPAckRange { return s.r[:s.n] }

// lowestGapFrom returns the smallest packet number at or above from that has not
// arrived and lies below the largest one received, if there is one. Packet numbers
// below the floor count as received.
func (s *recvRanges) lowestGapFrom(from uint64) (uint64, bool) {
	from = max(from, s.floor)
	for i := s.n - 1; i >= 0; i-- { // ascending
		r := s.r[i]
		if from < r.Smallest {
			return from, true
		}
		if from <= r.Largest {
			from = r.Largest + 1
		}
	}
	return 0, false
}
