package punch

import (
	"testing"

	"github.com/natpass/natpass/proto"
)

var (
	natOpen        = proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.EndpointIndependent, NoTranslation: true}
	natFirewall    = proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.AddressAndPortDependent, NoTranslation: true}
	natFullCone    = proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.EndpointIndependent, Allocation: proto.AllocationPreserving}
	natRestricted  = proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.AddressDependent, Allocation: proto.AllocationPreserving}
	natPortRestr   = proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.AddressAndPortDependent, Allocation: proto.AllocationPreserving}
	natSymSeq      = proto.NATBehavior{Mapping: proto.AddressAndPortDependent, Filtering: proto.AddressAndPortDependent, Allocation: proto.AllocationSequential, PortDelta: 1}
	natSymRandom   = proto.NATBehavior{Mapping: proto.AddressAndPortDependent, Filtering: proto.AddressAndPortDependent, Allocation: proto.AllocationRandom}
	natCGNAT       = proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.AddressAndPortDependent, Allocation: proto.AllocationRandom}
	namedBehaviors = map[string]proto.NATBehavior{
		"open": natOpen, "firewall": natFirewall, "full-cone": natFullCone, "restricted-cone": natRestricted,
		"port-restricted-cone": natPortRestr, "symmetric-sequential": natSymSeq, "symmetric-random": natSymRandom,
		"cgnat": natCGNAT, "linux": natPortRestr,
	}
)

// The strategy table of DESIGN §6.5, cell by cell, including the expectations
// for symmetric-random × {open, full-cone, restricted-cone} (plain simultaneous open).
func TestChoose(t *testing.T) {
	tests := []struct {
		a, b string
		want proto.Strategy
	}{
		{"open", "open", proto.StrategySimultaneousOpen},
		{"linux", "linux", proto.StrategySimultaneousOpen},
		{"cgnat", "firewall", proto.StrategySimultaneousOpen},
		{"symmetric-sequential", "port-restricted-cone", proto.StrategyPortPrediction},
		{"symmetric-sequential", "full-cone", proto.StrategySimultaneousOpen},
		{"symmetric-random", "open", proto.StrategySimultaneousOpen},
		{"symmetric-random", "full-cone", proto.StrategySimultaneousOpen},
		{"symmetric-random", "restricted-cone", proto.StrategySimultaneousOpen},
		{"symmetric-random", "port-restricted-cone", proto.StrategyBirthday},
		{"symmetric-random", "firewall", proto.StrategyBirthday},
		{"symmetric-random", "cgnat", proto.StrategyBirthday},
		{"symmetric-random", "linux", proto.StrategyBirthday},
		{"symmetric-sequential", "symmetric-sequential", proto.StrategyPortPrediction},
		{"symmetric-random", "symmetric-random", proto.StrategyNone},
		{"symmetric-random", "symmetric-sequential", proto.StrategyNone},
	}
	for _, tt := range tests {
		a, b := namedBehaviors[tt.a], namedBehaviors[tt.b]
		pa, pb := Choose(a, b), Choose(b, a)
		if pa.Strategy != tt.want || pb.Strategy != tt.want {
			t.Errorf("%s × %s: got %v / %v, want %v", tt.a, tt.b, pa.Strategy, pb.Strategy, tt.want)
		}
		if pa.LocalHard != pb.RemoteHard || pa.RemoteHard != pb.LocalHard {
			t.Errorf("%s × %s: sides disagree on roles: %+v vs %+v", tt.a, tt.b, pa, pb)
		}
	}
}
