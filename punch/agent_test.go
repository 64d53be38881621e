package punch

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/proto"
)

var (
	addrA   = netip.MustParseAddrPort("192.0.2.1:4000")
	addrB   = netip.MustParseAddrPort("198.51.100.2:5000")
	lanB    = netip.MustParseAddrPort("10.0.0.2:5000")
	testKey = Key{1, 2, 3}
)

func newPair(key Key, candsForA, candsForB []proto.Candidate) (*Agent, *Agent) {
	a := NewAgent(AgentConfig{Key: key, Controlling: true, Local: addrA, LocalNAT: natOpen, RemoteNAT: natOpen,
		Remote: candsForA, Seed: [32]byte{1}})
	b := NewAgent(AgentConfig{Key: key, Local: addrB, LocalNAT: natOpen, RemoteNAT: natOpen,
		Remote: candsForB, Seed: [32]byte{2}})
	return a, b
}

// onWire puts a and b on a virtual-time network with a fixed one-way delay; b also
// receives on its extra addresses. It is a harness for unit tests; NAT behaviour is
// tested on sim.
func onWire(t *testing.T, delay time.Duration, a, b *Agent, extraB ...netip.AddrPort) (w *machinetest.Net, na, nb *machinetest.Node) {
	w = machinetest.NewNet(t, 0, delay)
	na = w.Add("a", machinetest.Of(a), addrA)
	nb = w.Add("b", machinetest.Of(b), append([]netip.AddrPort{addrB}, extraB...)...)
	return w, na, nb
}

func TestAgentsConfirmDirectPath(t *testing.T) {
	a, b := newPair(testKey,
		[]proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrB}},
		[]proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrA}})
	w, na, nb := onWire(t, 20*time.Millisecond, a, b)
	w.RunUntil(proto.Instant(2 * time.Second))
	for i, ag := range []*Agent{a, b} {
		p, ok := ag.Active()
		if !ok {
			t.Fatalf("no active path; events %v", []*machinetest.Node{na, nb}[i].Events)
		}
		if p.RTT < 40*time.Millisecond || p.RTT > 60*time.Millisecond {
			t.Errorf("RTT %v, want about 40ms", p.RTT)
		}
	}
	if p, _ := a.Active(); p.Local != addrA || p.Remote != addrB {
		t.Errorf("A's path %v → %v", p.Local, p.Remote)
	}
}

func TestAgentPrefersLANPath(t *testing.T) {
	a, b := newPair(testKey,
		[]proto.Candidate{{Kind: proto.CandidateHost, Addr: lanB}, {Kind: proto.CandidateServerReflexive, Addr: addrB}},
		[]proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrA}})
	// B answers on both its LAN and its public address (one agent, two addresses).
	w, _, _ := onWire(t, 10*time.Millisecond, a, b, lanB)
	w.RunUntil(proto.Instant(3 * time.Second))
	p, ok := a.Active()
	if !ok || !p.LAN || p.Remote != lanB {
		t.Fatalf("A's active path %+v (ok=%v), want the LAN path to %v", p, ok, lanB)
	}
}

func TestAgentRejectsUnauthenticatedProbes(t *testing.T) {
	a, _ := newPair(testKey, []proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrB}}, nil)
	a.HandleTimeout(0)
	var buf [256]byte
	for {
		if _, ok := a.PollTransmit(0, buf[:]); !ok {
			break
		}
	}
	// A forger without the key, a probe of another pair, and A's own probe echoed.
	forger := NewAgent(AgentConfig{Key: Key{9}, Local: addrB})
	wrongPair := (&proto.Probe{Pair: a.Pair() + 1}).Append(nil)
	forged := (&proto.Probe{Pair: a.Pair()}).Append(nil)
	forger.mac.seal(forged)
	echoed := (&proto.Probe{Pair: a.Pair(), Flags: proto.ProbeControlling}).Append(nil)
	a.mac.seal(echoed)
	tests := []struct {
		name string
		p    []byte
		want error
	}{
		{"other pair", wrongPair, ErrOtherPair},
		{"forged MAC", forged, ErrBadMAC},
		{"reflected", echoed, ErrReflected},
		{"truncated", forged[:10], proto.ErrShort},
	}
	for _, tt := range tests {
		before := len(a.outstanding)
		err := a.HandleDatagram(1, addrA, addrB, tt.p)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err %v, want %v", tt.name, err, tt.want)
		}
		if _, ok := a.PollTransmit(1, buf[:]); ok {
			t.Errorf("%s: agent replied", tt.name)
		}
		if len(a.outstanding) != before || len(a.targets) != 1 {
			t.Errorf("%s: state changed", tt.name)
		}
	}
}

func TestAgentDetectsDeadPath(t *testing.T) {
	a, b := newPair(testKey,
		[]proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrB}},
		[]proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrA}})
	w, na, _ := onWire(t, 20*time.Millisecond, a, b)
	w.RunUntil(proto.Instant(2 * time.Second))
	if _, ok := a.Active(); !ok {
		t.Fatal("no path")
	}
	cut := w.Now
	w.Drop = func(proto.Transmit) bool { return true } // blackhole
	w.RunUntil(cut.Add(10 * time.Second))
	var down proto.Instant
	for _, e := range na.Events {
		if _, ok := e.(EventPathDown); ok {
			down = w.Now
		}
	}
	if down == 0 {
		t.Fatalf("no EventPathDown after 10 s of silence; events %v", na.Events)
	}
	if _, ok := a.Active(); ok {
		t.Error("a dead path is still active")
	}
	// The path comes back: the agent searches again and finds it.
	w.Drop = nil
	w.RunUntil(w.Now.Add(3 * time.Second))
	if _, ok := a.Active(); !ok {
		t.Error("path not recovered after the blackhole ended")
	}
}

func TestAgentStrategyNoneGivesUpAtOnce(t *testing.T) {
	a := NewAgent(AgentConfig{Key: testKey, Local: addrA, LocalNAT: natSymRandom, RemoteNAT: natSymRandom,
		Remote: []proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrB}}})
	a.HandleTimeout(0)
	e, ok := a.PollEvent()
	if nr, isNo := e.(EventNoPath); !ok || !isNo || nr.Strategy != proto.StrategyNone {
		t.Fatalf("got %v, want EventNoPath{none}", e)
	}
	if a.Deadline() != proto.Never {
		t.Errorf("deadline %v after giving up, want Never", a.Deadline())
	}
}

// The predicted window toward a sequential NAT whose registration mapping is 65535
// wraps to 1024 as the NAT does (RFC 4787 §4.2.1 REQ-3); it overflowed to ports 0–7
// (found by sim's TestPropertyOracleAgreesWithSimulation, see
// sim.TestOraclePortPredictionAcrossRangeEnd).
func TestAgentPredictionWrapsAtRangeEnd(t *testing.T) {
	seq := proto.NATBehavior{Mapping: proto.AddressDependent, Filtering: proto.AddressDependent,
		Allocation: proto.AllocationSequential, PortDelta: 2}
	prc := proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.AddressAndPortDependent,
		Allocation: proto.AllocationPreserving}
	srflx := netip.MustParseAddrPort("198.51.100.1:65533")
	a := NewAgent(AgentConfig{Local: netip.MustParseAddrPort("10.0.0.2:4000"), LocalNAT: prc, RemoteNAT: seq,
		Remote: []proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: srflx}}})
	if a.Plan().Strategy != proto.StrategyPortPrediction {
		t.Fatalf("plan %+v, want port prediction", a.Plan())
	}
	// The window: predictWindow ports from the guess (65533+2), stepping by 2 and
	// wrapping at 65535 to 1024; then the server-reflexive address itself.
	want := []uint16{65535}
	for p := uint16(1025); len(want) < predictWindow; p += 2 {
		want = append(want, p)
	}
	want = append(want, 65533)
	var got []uint16
	for _, tg := range a.targets {
		got = append(got, tg.addr.Port())
	}
	if !slices.Equal(got, want) {
		t.Errorf("targets %v, want %v", got, want)
	}
}
