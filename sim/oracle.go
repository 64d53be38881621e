package sim

import "github.com/natpass/natpass/proto"

// Behavior returns what the chain of boxes looks like from the core, in the terms a
// node measures (DESIGN §6 step 2) and punch decides by:
//
//   - Mapping: the finest of the translating boxes (a new external endpoint is made
//     wherever any box makes a new one); endpoint-independent with no NAT.
//   - Filtering: the finest of all boxes, firewalls included (a packet must pass each).
//   - Allocation: what decides the port of a new external mapping as seen from the
//     core. It starts at the first box whose mapping is not endpoint-independent,
//     since that is where a new destination makes a new mapping; each box further
//     out re-allocates (sequential, random) or keeps (preserving) that port. With
//     endpoint-independent mapping throughout it is the outermost box's.
//   - Hairpin: the outermost translating box's, since the peers' server-reflexive
//     addresses are its.
//   - NoTranslation: no box translates (open, firewall).
//
// For the oracle this is exact for single boxes and for any box behind carrier NATs
// with endpoint-independent mapping (TestPropertyOracleAgreesWithSimulation checks
// thousands of such pairs). Other chains can admit more than the finest filter says:
// behind a per-destination NAT, an inner endpoint-independent mapping opens its
// filter to every destination at once (TestPropertyFiltering has the exact rule).
//
// Behavior is the behaviour of the preset's IPv4 chain, or of its IPv6 chain for an
// IPv6-only preset; BehaviorOf names the family.
func (p Preset) Behavior() proto.NATBehavior {
	if p.Stack == IPv6Only {
		return chainBehavior(p.Boxes6)
	}
	return chainBehavior(p.Boxes)
}

// BehaviorOf returns the behaviour of the chain in front of the host's address of
// family f (as Behavior describes it), and false when the host has none. An IPv6
// chain is firewalls only: no translation, its filtering the finest of them.
func (p Preset) BehaviorOf(f Family) (proto.NATBehavior, bool) {
	boxes, ok := p.Chain(f)
	if !ok {
		return proto.NATBehavior{}, false
	}
	return chainBehavior(boxes), true
}

func chainBehavior(boxes []NATConfig) proto.NATBehavior {
	b := proto.NATBehavior{
		Mapping:       proto.EndpointIndependent,
		Filtering:     proto.EndpointIndependent,
		Allocation:    proto.AllocationPreserving,
		Hairpin:       proto.HairpinUnknown,
		NoTranslation: true,
	}
	started := false // a box with per-destination mapping has been passed
	for _, c := range boxes {
		b.Filtering = max(b.Filtering, c.Filtering)
		if c.NoTranslation {
			continue
		}
		b.NoTranslation = false
		b.Mapping = max(b.Mapping, c.Mapping)
		b.Hairpin = proto.HairpinNo
		if c.Hairpin {
			b.Hairpin = proto.HairpinYes
		}
		delta := int16(c.PortDelta)
		if delta == 0 {
			delta = 1
		}
		switch {
		case !started && c.Mapping != proto.EndpointIndependent:
			started = true
			b.Allocation, b.PortDelta = c.Allocation, delta
		case !started || c.Allocation != proto.AllocationPreserving:
			b.Allocation, b.PortDelta = c.Allocation, delta
		}
	}
	// A preserving box with per-destination mapping can preserve the port only for
	// its first mapping; later ones fall back to random (nat.go's allocate), so to a
	// peer it is random.
	if b.Mapping != proto.EndpointIndependent && b.Allocation == proto.AllocationPreserving {
		b.Allocation = proto.AllocationRandom
	}
	if b.Allocation != proto.AllocationSequential {
		b.PortDelta = 0
	}
	return b
}

// reachable reports whether a side keeps one external endpoint for all remotes: the
// endpoint the server saw is the one the peer will see (RFC 4787 §4.1 EIM, or no
// translation at all).
func reachable(b proto.NATBehavior) bool {
	return b.NoTranslation || b.Mapping == proto.EndpointIndependent
}

// DirectStrategy says which strategy gives two peers with these behaviours a direct
// path, or proto.StrategyNone. The reasoning, from RFC 4787's definitions:
//
//   - Both keep one endpoint (EIM or no NAT): each sends to the other's
//     server-reflexive address, which is also where the other's packets come from,
//     so both filters open: simultaneous open.
//   - One (E) keeps one endpoint, the other (H) maps per destination: H's probes come
//     from a new port that E's filter has not seen. If E filters by address only or not
//     at all (EIF/ADF), E admits them, answers the peer-reflexive address, and H's
//     filter admits the answer, because H sent to exactly E's endpoint: simultaneous
//     open. Otherwise E must aim at H's new port: predict it if H allocates
//     sequentially, else birthday (H opens many mappings toward E, E sprays H's ports).
//   - Both map per destination: each must aim at the other's unknown new port. If one
//     admits anything on its server mapping (EIF) and the other filters by address
//     only, the first answers the second's peer-reflexive port and gets in
//     (simultaneous open). Two sequential NATs can both be predicted; one sequential
//     NAT can be predicted by a random one when its filter and mapping let the
//     prediction in and the answer out (see predictable); otherwise none.
func DirectStrategy(a, b proto.NATBehavior) proto.Strategy {
	ra, rb := reachable(a), reachable(b)
	switch {
	case ra && rb:
		return proto.StrategySimultaneousOpen
	case ra || rb:
		easy, hard := a, b
		if rb {
			easy, hard = b, a
		}
		switch {
		case easy.Filtering <= proto.AddressDependent:
			return proto.StrategySimultaneousOpen
		case hard.Allocation == proto.AllocationSequential:
			return proto.StrategyPortPrediction
		default:
			return proto.StrategyBirthday
		}
	default:
		switch {
		case a.Filtering == proto.EndpointIndependent && b.Filtering <= proto.AddressDependent,
			b.Filtering == proto.EndpointIndependent && a.Filtering <= proto.AddressDependent:
			return proto.StrategySimultaneousOpen
		case a.Allocation == proto.AllocationSequential && b.Allocation == proto.AllocationSequential,
			predictable(a, b), predictable(b, a):
			return proto.StrategyPortPrediction
		default:
			return proto.StrategyNone
		}
	}
}

// predictable reports whether x, mapping per destination with unpredictable ports,
// can still reach y, which allocates sequentially, by probing a window of y's next
// ports:
//
//   - y's new mapping toward x (made by y's probes to x's server-reflexive endpoint)
//     must admit x's probes, which come from x's own new ports: y filters by address
//     only, or not at all;
//   - y's answer must get back into the x mapping it answers: it leaves from the same
//     y mapping when y maps by address only; otherwise from y's next port, which x's
//     window opened only if the window went out through one x mapping (x maps by
//     address only) or x filters by address only.
func predictable(x, y proto.NATBehavior) bool {
	return y.Allocation == proto.AllocationSequential && y.Filtering <= proto.AddressDependent &&
		(y.Mapping <= proto.AddressDependent || x.Mapping <= proto.AddressDependent ||
			x.Filtering <= proto.AddressDependent)
}

// Oracle says which strategy gives hosts behind presets a and b a direct path in the
// layout NewPair builds for placement: the strategy of OracleFamily, the family a
// dual-stack pair ends on. For IPv4 presets that is OracleOf(a, b, placement, IPv4).
func Oracle(a, b Preset, placement Placement) proto.Strategy {
	_, st := OracleFamily(a, b, placement)
	return st
}

// OracleFamily returns the family on which hosts behind presets a and b get a direct
// path, and the strategy that gives it, preferring IPv6 as a dual-stack node does
// (DESIGN §14): IPv6 when both have it and OracleOf finds a strategy there, else
// IPv4 likewise; (IPv4, StrategyNone) when no family has a direct path, or the two
// share no family.
func OracleFamily(a, b Preset, placement Placement) (Family, proto.Strategy) {
	for _, f := range [...]Family{IPv6, IPv4} {
		if st, ok := OracleOf(a, b, placement, f); ok && st != proto.StrategyNone {
			return f, st
		}
	}
	return IPv4, proto.StrategyNone
}

// OracleOf says which strategy gives hosts behind presets a and b a direct path over
// family f in the layout NewPair builds for placement, and false when one of them
// has no address of f (with SameLAN, B has A's stack, whatever b says).
//
// Over IPv6 the chains are firewalls (no translation), so every pair that has IPv6 is
// simultaneous open, whatever the filtering: each side's address is its own, and
// its firewall opens to the peer's when it sends there. Placement matters only on
// one LAN (simultaneous open over the host addresses); a carrier shared over IPv4
// is no carrier for IPv6, where NewPair gives B its own chain on the core.
//
// Over IPv4 the rules are these:
//
//   - Apart: DirectStrategy of the presets' behaviours.
//   - SameLAN: the peers reach each other on their host candidates without any NAT:
//     simultaneous open, whatever the presets.
//   - SameCarrier: the peers' server-reflexive endpoints are both the carrier's, so
//     every path turns around inside it: none unless the carrier hairpins (RFC 4787
//     §6), and then, since a hairpinned packet is translated and filtered as if it
//     had crossed the core (REQ-9), the same as Apart with b behind a's carrier.
//     One caveat: a sequential carrier is one counter for both sides, so when both
//     make new mappings while predicting each other, whether the predictions hold
//     depends on timing and window size; the oracle does not model that (real
//     carriers allocate randomly or in port blocks, RFC 6888, RFC 7422).
func OracleOf(a, b Preset, placement Placement, f Family) (proto.Strategy, bool) {
	if placement == SameLAN {
		b = a
	}
	ab, aok := a.BehaviorOf(f)
	bb, bok := b.BehaviorOf(f)
	switch {
	case !aok || !bok:
		return proto.StrategyNone, false
	case placement == SameLAN:
		return proto.StrategySimultaneousOpen, true
	case placement == SameCarrier && f == IPv4:
		return sameCarrierStrategy(a, b), true
	}
	return DirectStrategy(ab, bb), true
}

// sameCarrierStrategy is OracleOf for IPv4 and two subscribers of a's carrier.
func sameCarrierStrategy(a, b Preset) proto.Strategy {
	if len(a.Boxes) < 2 || !a.Boxes[len(a.Boxes)-1].Hairpin {
		return proto.StrategyNone
	}
	return DirectStrategy(chainBehavior(a.Boxes), chainBehavior(sharingCarrier(a, b).Boxes))
}

// sharingCarrier returns b as NewPair builds it for SameCarrier: b's home setup
// behind a's carrier.
func sharingCarrier(a, b Preset) Preset {
	home := homeOf(b)
	b.Boxes = append(append([]NATConfig(nil), home.Boxes...), a.Boxes[len(a.Boxes)-1])
	return b
}
