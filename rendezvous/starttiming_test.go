package rendezvous

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/punch"
)

// The server shortens the start delay only for pairs that punch by simultaneous
// open; it must agree with the nodes' own choice for every pair of behaviours.
func TestSimultaneousOpenAgreesWithPunch(t *testing.T) {
	var all []proto.NATBehavior
	for m := proto.Dependence(0); m < 4; m++ {
		for f := proto.Dependence(0); f < 4; f++ {
			for a := proto.Allocation(0); a < 4; a++ {
				for _, open := range []bool{false, true} {
					all = append(all, proto.NATBehavior{Mapping: m, Filtering: f, Allocation: a, NoTranslation: open})
				}
			}
		}
	}
	for _, x := range all {
		for _, y := range all {
			want := punch.Choose(x, y).Strategy == proto.StrategySimultaneousOpen
			if got := simultaneousOpen(x, y); got != want {
				t.Fatalf("simultaneousOpen(%+v, %+v) = %v, punch.Choose says %v", x, y, got, want)
			}
		}
	}
}

// startTimingPair registers alice and bob, each probing its NAT rttA and rttB after
// its registered reply (0: never), with the behaviours given.
func startTimingPair(t *testing.T, rttA, rttB time.Duration, natA, natB proto.NATBehavior) (*harness, proto.Registered) {
	h := newHarness(t, nil)
	alice := h.register("alice", 1, aliceNAT, aliceLAN)
	if rttA > 0 {
		h.now += proto.Instant(rttA)
		if err, _, _ := h.deliver(srvPrimary, aliceNAT, probeBytes(alice.Session, 7, 0)); err != nil {
			t.Fatal(err)
		}
	}
	bob := h.register("bob", 2, bobNAT, bobLAN)
	if rttB > 0 {
		h.now += proto.Instant(rttB)
		if err, _, _ := h.deliver(srvPrimary, bobNAT, probeBytes(bob.Session, 8, 0)); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []struct {
		s proto.Session
		n proto.NATBehavior
	}{{alice.Session, natA}, {bob.Session, natB}} {
		if err := h.s.ReportNAT(h.now, r.s, r.n); err != nil {
			t.Fatal(err)
		}
	}
	return h, alice
}

// introduceDelays introduces the pair and returns the start delays of alice's and
// bob's copies.
func introduceDelays(t *testing.T, h *harness, alice proto.Registered) (toAlice, toBob uint16) {
	err, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 31, "bob", 0))
	if err != nil || len(out) != 2 {
		t.Fatalf("introduce: %v, %d datagrams", err, len(out))
	}
	var a, b proto.Introduction
	if err := a.Parse(out[0].Payload); err != nil {
		t.Fatal(err)
	}
	if err := b.Parse(out[1].Payload); err != nil {
		t.Fatal(err)
	}
	return a.StartDelayMs, b.StartDelayMs
}

// Issue 18: with both round trips measured (register reply to first nat-probe), a
// simultaneous-open pair starts three of the longer round trip after the
// introduction (at least 150 ms), and an unacknowledged copy is repeated after 1.5
// of its side's round trip; an unmeasured side or another strategy keeps 500 ms.
func TestStartDelayFromRoundTrips(t *testing.T) {
	eim := proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.AddressAndPortDependent,
		Allocation: proto.AllocationPreserving}
	h, alice := startTimingPair(t, 40*time.Millisecond, 90*time.Millisecond, eim, eim)
	if a, b := introduceDelays(t, h, alice); a != 270 || b != 270 {
		t.Fatalf("start delays %d/%d ms, want 270 (3 × 90 ms)", a, b)
	}
	// Alice's copy is repeated after 60 ms, with the delay shortened by as much.
	h.now += proto.Instant(60 * time.Millisecond)
	h.s.HandleTimeout(h.now)
	out, _ := h.drain()
	if len(out) != 1 || out[0].To != aliceNAT {
		t.Fatalf("%d datagrams after 60 ms, want alice's repeat", len(out))
	}
	var m proto.Introduction
	if err := m.Parse(out[0].Payload); err != nil || m.StartDelayMs != 210 {
		t.Fatalf("repeat: %v, start delay %d ms, want 210", err, m.StartDelayMs)
	}

	h, alice = startTimingPair(t, 10*time.Millisecond, 20*time.Millisecond, eim, eim)
	if a, b := introduceDelays(t, h, alice); a != 150 || b != 150 {
		t.Fatalf("short round trips: start delays %d/%d ms, want the 150 ms floor", a, b)
	}
	h, alice = startTimingPair(t, 40*time.Millisecond, 0, eim, eim)
	if a, b := introduceDelays(t, h, alice); a != 500 || b != 500 {
		t.Fatalf("bob unmeasured: start delays %d/%d ms, want 500", a, b)
	}
	h, alice = startTimingPair(t, 40*time.Millisecond, 90*time.Millisecond, bobBehavior, bobBehavior)
	if a, b := introduceDelays(t, h, alice); a != 500 || b != 500 {
		t.Fatalf("port prediction: start delays %d/%d ms, want 500", a, b)
	}
}

// Dual-stack peers whose IPv4 NATs map per destination still punch IPv6 by
// simultaneous open: their pair gets the shorter start delay too.
func TestV6SimultaneousOpen(t *testing.T) {
	random := proto.NATBehavior{Mapping: proto.AddressAndPortDependent, Filtering: proto.AddressAndPortDependent,
		Allocation: proto.AllocationRandom}
	firewall := proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.AddressAndPortDependent,
		NoTranslation: true}
	v4 := netip.MustParseAddrPort("198.51.100.7:4000")
	v6a, v6b := netip.MustParseAddrPort("[2001:db8::1]:4000"), netip.MustParseAddrPort("[2001:db8::2]:4000")
	dual := func(v6 netip.AddrPort) *session {
		return &session{addr: v4, nat: random, addr2: v6, nat2: firewall}
	}
	v6only := &session{addr: v6b, nat: firewall}
	v4only := &session{addr: v4, nat: random}
	mapped := &session{addr: v4, nat: random, addr2: netip.MustParseAddrPort("[::ffff:198.51.100.8]:4000"), nat2: firewall}
	for _, c := range []struct {
		name string
		a, b *session
		want bool
	}{
		{"dual × dual", dual(v6a), dual(v6b), true},
		{"dual × IPv6 registration", dual(v6a), v6only, true},
		{"dual × IPv4 only", dual(v6a), v4only, false},
		{"IPv4-mapped is no IPv6", dual(v6a), mapped, false},
	} {
		if got := v6SimultaneousOpen(c.a, c.b); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
