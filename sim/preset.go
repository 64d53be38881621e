package sim

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// Preset is a named NAT setup in front of a host: a chain of boxes from the host
// outward. Boxes[0] is the host's own NAT or firewall; the last box is attached to the
// public core. No boxes: the host is on the core.
type Preset struct {
	Name    string
	Summary string
	Boxes   []NATConfig
}

// presetTable is the single definition of the presets, in the order Presets lists
// them (from most to least reachable, which is also the order natpass lab prints).
func presetTable() []Preset {
	portRestricted := NATConfig{
		Mapping:    proto.EndpointIndependent,
		Filtering:  proto.AddressAndPortDependent,
		Allocation: proto.AllocationPreserving,
		Hairpin:    true, // RFC 4787 REQ-9
	}
	cone := func(f proto.Dependence) NATConfig { c := portRestricted; c.Filtering = f; return c }
	symmetric := func(a proto.Allocation) NATConfig {
		c := portRestricted
		c.Mapping = proto.AddressAndPortDependent
		c.Allocation = a
		return c
	}
	// Linux MASQUERADE (DESIGN §9): a port-restricted cone whose conntrack entries are
	// refreshed by traffic both ways, that does not hairpin without extra rules, and
	// whose unreplied entries clash with new flows.
	linux := portRestricted
	linux.Hairpin = false
	linux.InboundRefresh = true
	linux.PortClash = true
	linux.UnrepliedTimeout = 30 * time.Second
	// A carrier-grade NAT (RFC 6888): endpoint-independent mapping (REQ-1 via RFC 4787
	// REQ-1), random allocation from a pool, hairpinning (RFC 6888 REQ-9), and
	// endpoint-independent filtering for transparency (RFC 4787 REQ-8). Subscribers'
	// home NATs get addresses from the shared range 100.64.0.0/10 (RFC 6598).
	carrier := NATConfig{
		Mapping:    proto.EndpointIndependent,
		Filtering:  proto.EndpointIndependent,
		Allocation: proto.AllocationRandom,
		Hairpin:    true,
		Inside:     mustPrefix("100.64.0.0/10"),
	}
	return []Preset{
		{Name: "open", Summary: "public address, nothing in front"},
		{Name: "firewall", Summary: "public address behind a stateful firewall (address-and-port-dependent filtering)",
			Boxes: []NATConfig{{NoTranslation: true, Filtering: proto.AddressAndPortDependent}}},
		{Name: "full-cone", Summary: "endpoint-independent mapping and filtering",
			Boxes: []NATConfig{cone(proto.EndpointIndependent)}},
		{Name: "restricted-cone", Summary: "endpoint-independent mapping, address-dependent filtering",
			Boxes: []NATConfig{cone(proto.AddressDependent)}},
		{Name: "port-restricted-cone", Summary: "endpoint-independent mapping, address-and-port-dependent filtering",
			Boxes: []NATConfig{portRestricted}},
		{Name: "linux", Summary: "port-restricted cone with Linux conntrack's port clash",
			Boxes: []NATConfig{linux}},
		{Name: "cgnat", Summary: "port-restricted home NAT behind a carrier NAT (endpoint-independent, random ports)",
			Boxes: []NATConfig{portRestricted, carrier}},
		{Name: "symmetric-sequential", Summary: "address-and-port-dependent mapping and filtering, sequential ports (delta 1)",
			Boxes: []NATConfig{symmetric(proto.AllocationSequential)}},
		{Name: "symmetric-random", Summary: "address-and-port-dependent mapping and filtering, random ports",
			Boxes: []NATConfig{symmetric(proto.AllocationRandom)}},
	}
}

// Presets returns every preset, in a fixed order. The slices are fresh copies: a test
// may change one without affecting others.
func Presets() []Preset { return presetTable() }

// PresetNames returns the preset names in the order of Presets.
func PresetNames() []string {
	var names []string
	for _, p := range presetTable() {
		names = append(names, p.Name)
	}
	return names
}

// PresetByName returns the preset with the given name.
func PresetByName(name string) (Preset, bool) {
	for _, p := range presetTable() {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

// MustPreset is PresetByName for names known to exist; it panics otherwise.
func MustPreset(name string) Preset {
	p, ok := PresetByName(name)
	if !ok {
		panic("sim: no preset " + name)
	}
	return p
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
