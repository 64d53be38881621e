package sim

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// Preset is a named NAT setup in front of a host: a chain of boxes from the host
// outward for each address family the host has. Boxes[0] is the host's own NAT or
// firewall; the last box is attached to the public core. No boxes: the host's
// address of that family is on the core.
type Preset struct {
	Name    string
	Summary string
	// Stack says which families the host has (zero: IPv4 only, as every preset of
	// Presets).
	Stack Stack
	// Boxes is the chain in front of the host's IPv4 address (empty for IPv6Only).
	Boxes []NATConfig
	// Boxes6 is the chain in front of its IPv6 address: IPv6 firewalls
	// (NATConfig.Family IPv6, NoTranslation). Used when Stack has IPv6.
	Boxes6 []NATConfig
}

// Chain returns the boxes in front of the host's address of family f, and false
// when the host has no such address.
func (p Preset) Chain(f Family) ([]NATConfig, bool) {
	switch {
	case !p.Stack.Has(f):
		return nil, false
	case f == IPv6:
		return p.Boxes6, true
	}
	return p.Boxes, true
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

// ipv6PresetTable defines the presets with IPv6, in the order IPv6Presets lists them
// (IPv6 alone, then dual stack from most to least reachable over IPv4). The IPv6
// side is what mobile carriers and home routers put in front of IPv6 (RFC 6092): no
// translation, a stateful firewall admitting only flows the inside opened, filtering
// by address and port, with the firewall preset's 2-minute timeout. A dual-stack
// preset's IPv4 side is the IPv4 preset after "dual-" exactly.
func ipv6PresetTable() []Preset {
	fw6 := NATConfig{Family: IPv6, NoTranslation: true, Filtering: proto.AddressAndPortDependent}
	dual := func(v4, summary string) Preset {
		p := MustPreset(v4)
		return Preset{Name: "dual-" + v4, Summary: summary, Stack: DualStack, Boxes: p.Boxes, Boxes6: []NATConfig{fw6}}
	}
	return []Preset{
		{Name: "ipv6-open", Summary: "public IPv6 address, nothing in front, no IPv4", Stack: IPv6Only},
		{Name: "ipv6-firewall", Summary: "IPv6 address behind a stateful firewall (address-and-port-dependent filtering), no IPv4",
			Stack: IPv6Only, Boxes6: []NATConfig{fw6}},
		dual("port-restricted-cone", "home router: IPv4 port-restricted cone NAT, IPv6 stateful firewall"),
		dual("cgnat", "IPv4 behind a home NAT and a carrier NAT, IPv6 stateful firewall"),
		dual("symmetric-random", "mobile carrier: IPv4 random symmetric NAT, IPv6 stateful firewall"),
	}
}

// Presets returns every IPv4 preset, in a fixed order: the ones natpass lab's matrix
// and the tests that predate IPv6 run. IPv6Presets has the others. The slices are
// fresh copies: a test may change one without affecting others.
func Presets() []Preset { return presetTable() }

// IPv6Presets returns the presets whose host has an IPv6 address (IPv6 only or dual
// stack), in a fixed order, as fresh copies.
func IPv6Presets() []Preset { return ipv6PresetTable() }

// IPv6PresetNames returns the names of IPv6Presets in order.
func IPv6PresetNames() []string {
	var names []string
	for _, p := range ipv6PresetTable() {
		names = append(names, p.Name)
	}
	return names
}

// PresetNames returns the preset names in the order of Presets.
func PresetNames() []string {
	var names []string
	for _, p := range presetTable() {
		names = append(names, p.Name)
	}
	return names
}

// PresetByName returns the preset with the given name, from Presets or IPv6Presets.
func PresetByName(name string) (Preset, bool) {
	for _, p := range presetTable() {
		if p.Name == name {
			return p, true
		}
	}
	for _, p := range ipv6PresetTable() {
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
