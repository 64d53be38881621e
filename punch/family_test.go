package punch

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/proto"
)

var (
	addrA6 = netip.MustParseAddrPort("[2001:db8:1::2]:4000")
	addrB6 = netip.MustParseAddrPort("[2001:db8:2::2]:5000")
)

// dualCands is a dual-stack peer's candidates as the server introduces it: its
// registered (IPv4) address, then its other-family address, both server-reflexive.
func dualCands(v4, v6 netip.AddrPort) []proto.Candidate {
	return []proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: v4}, {Kind: proto.CandidateServerReflexive, Addr: v6}}
}

// dualPair returns agents A and B, each with an IPv4 Local and, when otherA/otherB,
// an IPv6 OtherLocal, behind the given IPv4 behaviours.
func dualPair(nat proto.NATBehavior, otherA, otherB bool) (*Agent, *Agent) {
	cfgA := AgentConfig{Key: testKey, Controlling: true, Local: addrA, LocalNAT: nat, RemoteNAT: nat,
		Remote: dualCands(addrB, addrB6), Seed: [32]byte{1}}
	cfgB := AgentConfig{Key: testKey, Local: addrB, LocalNAT: nat, RemoteNAT: nat,
		Remote: dualCands(addrA, addrA6), Seed: [32]byte{2}}
	if otherA {
		cfgA.OtherLocal = addrA6
	}
	if otherB {
		cfgB.OtherLocal = addrB6
	}
	return NewAgent(cfgA), NewAgent(cfgB)
}

// dualWire puts a and b on a virtual-time network, each receiving on its Local and,
// when set, its OtherLocal.
func dualWire(t *testing.T, a, b *Agent) *machinetest.Net {
	w := machinetest.NewNet(t, 0, 20*time.Millisecond)
	for _, ag := range []*Agent{a, b} {
		addrs := []netip.AddrPort{ag.cfg.Local}
		if ag.cfg.OtherLocal.IsValid() {
			addrs = append(addrs, ag.cfg.OtherLocal)
		}
		w.Add(ag.cfg.Local.String(), machinetest.Of(ag), addrs...)
	}
	return w
}

// Both families answer: the pair ends on IPv6, and every IPv6 probe leaves from
// OtherLocal (a socket never sends to the other family).
func TestAgentDualStackPrefersIPv6(t *testing.T) {
	a, b := dualPair(natOpen, true, true)
	w := dualWire(t, a, b)
	var crossed int
	w.Drop = func(tx proto.Transmit) bool {
		if is6(tx.From) != is6(tx.To) {
			crossed++
			return true
		}
		return false
	}
	w.RunUntil(proto.Instant(3 * time.Second))
	for name, ag := range map[string]*Agent{"a": a, "b": b} {
		p, ok := ag.Active()
		if !ok || !is6(p.Remote) || !is6(p.Local) {
			t.Errorf("%s: active path %+v (ok=%v), want IPv6", name, p, ok)
		}
		if st := ag.Strategy(); st != proto.StrategySimultaneousOpen {
			t.Errorf("%s: strategy %v", name, st)
		}
	}
	if crossed != 0 {
		t.Errorf("%d probes crossed families", crossed)
	}
}

// Random symmetric NATs on both IPv4 sides leave no IPv4 strategy, but the IPv6
// candidates are still probed: the pair ends direct over IPv6, and no probe goes
// to an IPv4 candidate.
func TestAgentNoIPv4StrategyStillSearchesIPv6(t *testing.T) {
	a, b := dualPair(natSymRandom, true, true)
	if a.Plan().Strategy != proto.StrategyNone || a.Strategy() != proto.StrategySimultaneousOpen {
		t.Fatalf("plan %v, strategy %v; want none over IPv4, simultaneous open overall", a.Plan().Strategy, a.Strategy())
	}
	w := dualWire(t, a, b)
	var v4 int
	w.Drop = func(tx proto.Transmit) bool {
		if !is6(tx.To) {
			v4++
		}
		return false
	}
	w.RunUntil(proto.Instant(3 * time.Second))
	for name, ag := range map[string]*Agent{"a": a, "b": b} {
		if p, ok := ag.Active(); !ok || !is6(p.Remote) {
			t.Errorf("%s: active path %+v (ok=%v), want IPv6", name, p, ok)
		}
	}
	if v4 != 0 {
		t.Errorf("%d probes to IPv4 candidates with no IPv4 strategy", v4)
	}
}

// A node without OtherLocal skips the peer's IPv6 candidates, counts them, and
// finds the IPv4 path; a pair with no strategy and nothing to probe gives up at
// once, as before dual stack.
func TestAgentSkipsFamilyWithoutSocket(t *testing.T) {
	a, b := dualPair(natOpen, false, true)
	w := dualWire(t, a, b)
	w.RunUntil(proto.Instant(3 * time.Second))
	if n := a.Stats().NoSocket; n != 1 {
		t.Errorf("NoSocket %d, want 1 (B's IPv6 candidate)", n)
	}
	if p, ok := a.Active(); !ok || is6(p.Remote) {
		t.Errorf("a: active path %+v (ok=%v), want IPv4", p, ok)
	}
	if a.Strategy() != proto.StrategySimultaneousOpen {
		t.Errorf("a: strategy %v", a.Strategy())
	}
	s, _ := dualPair(natSymRandom, false, false)
	s.HandleTimeout(0)
	if e, ok := s.PollEvent(); !ok {
		t.Error("no event from a pair with no strategy and no IPv6 socket")
	} else if np, ok := e.(EventNoPath); !ok || np.Strategy != proto.StrategyNone {
		t.Errorf("event %#v, want EventNoPath{none}", e)
	}
}

// An IPv4 path that confirmed first gives way to an IPv6 path at once, without
// waiting out the RTT hysteresis (switchHold), even when the IPv6 path is slower.
func TestAgentIPv6TakesOverFromIPv4(t *testing.T) {
	a, b := dualPair(natOpen, true, true)
	w := dualWire(t, a, b)
	blocked := true
	w.Drop = func(tx proto.Transmit) bool { return blocked && is6(tx.To) }
	w.RunUntil(proto.Instant(time.Second))
	p, ok := a.Active()
	if !ok || is6(p.Remote) {
		t.Fatalf("before IPv6 opens: active %+v (ok=%v), want IPv4", p, ok)
	}
	blocked = false
	w.Latency = 60 * time.Millisecond // the IPv6 path is slower: RTT alone would never switch
	w.RunUntil(proto.Instant(2 * time.Second))
	if p, ok := a.Active(); !ok || !is6(p.Remote) {
		t.Fatalf("after IPv6 opens: active %+v (ok=%v), want IPv6 within a second", p, ok)
	}
}

func TestPathRanking(t *testing.T) {
	v4 := Path{Remote: addrB, RTT: time.Millisecond}
	v6 := Path{Remote: addrB6, RTT: time.Second}
	lan4 := Path{Remote: lanB, LAN: true, RTT: time.Second}
	switch {
	case !ranksAbove(v6, v4) || ranksAbove(v4, v6):
		t.Error("IPv6 does not rank above IPv4")
	case !ranksAbove(lan4, v6) || ranksAbove(v6, lan4):
		t.Error("LAN does not rank above IPv6")
	case !sameRank(v4, Path{Remote: addrA}) || sameRank(v4, v6):
		t.Error("sameRank")
	}
}

// A classifier over a node's other-family socket gets no extra sockets; with no
// alternates either, the measurement ends as soon as the base answer is in.
func TestClassifierWithoutSocketsFinishes(t *testing.T) {
	server := netip.MustParseAddrPort("[2001:db8::1]:3478")
	c := NewClassifier(ClassifierConfig{Local: addrA6, Hosts: []netip.AddrPort{addrA, addrA6}, Server: server})
	c.Start(0)
	var buf [128]byte
	tx, ok := c.PollTransmit(0, buf[:])
	if !ok || tx.From != addrA6 || tx.To != server {
		t.Fatalf("first probe %+v (ok=%v)", tx, ok)
	}
	var probe proto.NATProbe
	if err := probe.Parse(tx.Payload); err != nil {
		t.Fatal(err)
	}
	reply := (&proto.NATProbeReply{TxID: probe.TxID, Observed: addrA6}).Append(nil)
	if err := c.HandleDatagram(1, addrA6, server, reply); err != nil {
		t.Fatal(err)
	}
	if e, ok := c.PollEvent(); !ok {
		t.Fatal("no EventNeedSockets")
	} else if _, need := e.(EventNeedSockets); !need {
		t.Fatalf("event %#v, want EventNeedSockets", e)
	}
	c.HandleSockets(1, nil)
	e, ok := c.PollEvent()
	cl, done := e.(EventClassified)
	if !ok || !done || !cl.Behavior.NoTranslation || cl.Observed != addrA6 || c.Deadline() != proto.Never {
		t.Fatalf("after no sockets: event %#v (ok=%v), deadline %v; want EventClassified, no translation, idle", e, ok, c.Deadline())
	}
}

// A peer that registered over the other family (an IPv6-only node facing a
// dual-stack one registered over IPv4) reports the NAT of a family this side does
// not meet: the plan ignores it, and a side with no candidate of its own family at
// all has no plan for it (no birthday sockets asked for, nothing sprayed).
func TestAgentPeerOfOtherFamily(t *testing.T) {
	v6only := NewAgent(AgentConfig{Key: testKey, Controlling: true, Local: addrA6, LocalNAT: natOpen,
		RemoteNAT: natSymRandom, Remote: dualCands(addrB, addrB6)})
	if p := v6only.Plan(); p.Strategy != proto.StrategySimultaneousOpen {
		t.Errorf("IPv6-only side: plan %+v, want simultaneous open (the peer's IPv4 NAT is not on its path)", p)
	}
	dual := NewAgent(AgentConfig{Key: testKey, Local: addrB, OtherLocal: addrB6, LocalNAT: natSymRandom,
		RemoteNAT: natOpen, Remote: []proto.Candidate{{Kind: proto.CandidateHost, Addr: addrA6}}})
	if p := dual.Plan(); p.Strategy != proto.StrategyNone || p.LocalHard {
		t.Errorf("dual side: plan %+v, want none over IPv4 (no IPv4 candidate)", p)
	}
	if st := dual.Strategy(); st != proto.StrategySimultaneousOpen {
		t.Errorf("dual side: strategy %v, want simultaneous open over IPv6", st)
	}
	w := dualWire(t, v6only, dual)
	w.RunUntil(proto.Instant(3 * time.Second))
	for name, ag := range map[string]*Agent{"v6only": v6only, "dual": dual} {
		if p, ok := ag.Active(); !ok || !is6(p.Remote) {
			t.Errorf("%s: active %+v (ok=%v), want IPv6", name, p, ok)
		}
	}
	if w.Sent > 100 {
		t.Errorf("%d datagrams in 3 s: more than plain rounds and heartbeats", w.Sent)
	}
}
