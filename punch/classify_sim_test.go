package punch_test

import (
	"net/netip"
	"testing"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/punch"
	"github.com/natpass/natpass/sim"
	"github.com/natpass/natpass/sim/simtest"
)

// probeServer answers nat-probes the way PROTOCOL.md §5.5 says a server does:
// observed = source, sent from the socket the change flags ask for. It is the
// server's NAT-discovery duty only, enough to test the classifier against real NAT
// models; the full server lives in rendezvous.
type probeServer struct {
	primary, altPort, altAddr netip.AddrPort
	out                       []proto.Transmit
}

func (s *probeServer) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	var m proto.NATProbe
	if err := m.Parse(p); err != nil {
		return err
	}
	src := local
	switch m.Change {
	case proto.ChangePort:
		src = s.altPort
	case proto.ChangePort | proto.ChangeAddress:
		src = s.altAddr
	}
	reply := (&proto.NATProbeReply{TxID: m.TxID, Observed: from}).Append(nil)
	s.out = append(s.out, proto.Transmit{From: src, To: from, Payload: reply})
	return nil
}
func (s *probeServer) HandleTimeout(proto.Instant) {}
func (s *probeServer) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	if len(s.out) == 0 {
		return proto.Transmit{}, false
	}
	t := s.out[0]
	s.out = s.out[1:]
	t.Payload = append(buf[:0], t.Payload...)
	return t, true
}
func (s *probeServer) Deadline() proto.Instant { return proto.Never }

// classifyBehind runs a classifier on host A of a sim pair behind preset and returns
// what it measured.
func classifyBehind(t *testing.T, seed uint64, preset string, loss float64) proto.NATBehavior {
	t.Helper()
	access := sim.LinkConfig{Latency: 20_000_000, Loss: loss}
	pr := sim.NewPair(sim.PairConfig{Seed: seed, A: sim.MustPreset(preset), B: sim.MustPreset("open"), Access: access})
	socks := pr.Server.Sockets()
	srv := &probeServer{primary: socks[0], altPort: socks[1], altAddr: socks[2]}
	pr.Server.Attach(srv)
	host := pr.A.Host
	c := punch.NewClassifier(punch.ClassifierConfig{
		Local: host.Socket(), Hosts: []netip.AddrPort{host.Socket()},
		Server: socks[0], AltPort: socks[1], AltAddr: socks[2], Seed: pr.Sim.NewSeed32(),
	})
	host.Attach(c)
	host.AfterStep = func(now proto.Instant) {
		for {
			e, ok := c.PollEvent()
			if !ok {
				return
			}
			if n, ok := e.(punch.EventNeedSockets); ok {
				c.HandleSockets(now, host.OpenSockets(n.N))
			}
		}
	}
	c.Start(pr.Sim.Now())
	host.Drain()
	if err := pr.Sim.RunUntil(pr.Sim.Now().Add(30_000_000_000), c.Done); err != nil {
		t.Fatal(err)
	}
	if !c.Done() {
		t.Fatalf("%s: classification did not finish", preset)
	}
	return c.Result()
}

// TestClassifierMatchesPresets: the NAT report of a node matches its preset's mapping,
// filtering and allocation, for every preset (issue 6's acceptance), with 1 % loss.
func TestClassifierMatchesPresets(t *testing.T) {
	ei, ad, apd := proto.EndpointIndependent, proto.AddressDependent, proto.AddressAndPortDependent
	want := map[string]proto.NATBehavior{
		"open":                 {Mapping: ei, Filtering: ei, Allocation: proto.AllocationPreserving, NoTranslation: true},
		"firewall":             {Mapping: ei, Filtering: apd, Allocation: proto.AllocationPreserving, NoTranslation: true},
		"full-cone":            {Mapping: ei, Filtering: ei, Allocation: proto.AllocationPreserving},
		"restricted-cone":      {Mapping: ei, Filtering: ad, Allocation: proto.AllocationPreserving},
		"port-restricted-cone": {Mapping: ei, Filtering: apd, Allocation: proto.AllocationPreserving},
		"linux":                {Mapping: ei, Filtering: apd, Allocation: proto.AllocationPreserving},
		"cgnat":                {Mapping: ei, Filtering: apd, Allocation: proto.AllocationRandom},
		"symmetric-sequential": {Mapping: apd, Filtering: apd, Allocation: proto.AllocationSequential, PortDelta: 1},
		"symmetric-random":     {Mapping: apd, Filtering: apd, Allocation: proto.AllocationRandom},
	}
	for _, name := range sim.PresetNames() {
		w, ok := want[name]
		if !ok {
			t.Errorf("no expectation for preset %s", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			simtest.Seeds(t, 1, 5, 20, func(t *testing.T, seed uint64) {
				got := classifyBehind(t, seed, name, 0.01)
				got.Hairpin = proto.HairpinUnknown // reported, but not part of this check
				if got != w {
					t.Errorf("measured %+v\nwant     %+v", got, w)
				}
			})
		})
	}
}
