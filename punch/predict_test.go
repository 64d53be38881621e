package punch

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// PredictionCovers is the easy side's window as the hard side sees it: the 24 ports
// from the prediction, stepping by delta and wrapping from 65535 to 1024 as
// buildTargets does; none for delta 0.
func TestPredictionCovers(t *testing.T) {
	cases := []struct {
		predicted, port uint16
		delta           int
		want            bool
	}{
		{40000, 40000, 1, true},
		{40000, 40023, 1, true},
		{40000, 40024, 1, false},
		{40000, 39999, 1, false},
		{40000, 40046, 2, true},
		{40000, 40047, 2, false},
		{65530, 1024, 1, true}, // wraps: 65535 is followed by 1024
		{65530, 1041, 1, true},
		{65530, 1042, 1, false},
		{40000, 40000, 0, false},
	}
	for _, c := range cases {
		if got := PredictionCovers(c.predicted, c.port, c.delta); got != c.want {
			t.Errorf("PredictionCovers(%d, %d, %d) = %v, want %v", c.predicted, c.port, c.delta, got, c.want)
		}
	}
}

// Pending is what the node counts into its prediction (PROTOCOL.md §9.3): every
// target before the search starts; after the first, TTL-limited round, which
// skips LAN targets, the LAN ones it has yet to probe (a sequential NAT maps them
// too, so a peer introduced now finds our next mapping past them); none after the
// first full round. Counting a LAN target as already opened put a sequential
// peer's window one port short of our mapping toward it.
func TestPendingCountsTargetsNotYetProbed(t *testing.T) {
	seq := proto.NATBehavior{Mapping: proto.AddressAndPortDependent, Filtering: proto.AddressAndPortDependent,
		Allocation: proto.AllocationSequential, PortDelta: 1}
	srflx := netip.MustParseAddrPort("203.0.113.9:4000")
	start := proto.Instant(time.Second)
	a := NewAgent(AgentConfig{Key: testKey, Local: addrA, LocalNAT: seq, RemoteNAT: natRestricted, StartAt: start,
		Remote: []proto.Candidate{{Kind: proto.CandidateHost, Addr: lanB}, {Kind: proto.CandidateServerReflexive, Addr: srflx}},
		Seed:   [32]byte{3}})
	sentTo := func(now proto.Instant) []netip.AddrPort {
		var to []netip.AddrPort
		buf := make([]byte, 1500)
		for {
			tr, ok := a.PollTransmit(now, buf)
			if !ok {
				return to
			}
			to = append(to, tr.To)
		}
	}
	sortAddrs := func(s []netip.AddrPort) []netip.AddrPort {
		slices.SortFunc(s, func(x, y netip.AddrPort) int { return x.Compare(y) })
		return s
	}
	if got := sortAddrs(slices.Clone(a.Pending())); !slices.Equal(got, sortAddrs([]netip.AddrPort{lanB, srflx})) {
		t.Fatalf("before the start: Pending = %v, want both targets", got)
	}
	a.HandleTimeout(start)
	if got := sentTo(start); !slices.Equal(got, []netip.AddrPort{srflx}) {
		t.Fatalf("first round went to %v, want the server-reflexive address only", got)
	}
	if got := a.Pending(); !slices.Equal(got, []netip.AddrPort{lanB}) {
		t.Fatalf("after the first round: Pending = %v, want the LAN target", got)
	}
	now := a.Deadline()
	a.HandleTimeout(now)
	if got := sentTo(now); !slices.Contains(got, lanB) {
		t.Fatalf("second round went to %v, want the LAN target too", got)
	}
	if got := a.Pending(); len(got) != 0 {
		t.Fatalf("after a full round: Pending = %v, want none", got)
	}
}
