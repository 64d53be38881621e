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
func (p Preset) Behavior() proto.NATBehavior {
	b := proto.NATBehavior{
		Mapping:       proto.EndpointIndependent,
		Filtering:     proto.EndpointIndependent,
		Allocation:    proto.AllocationPreserving,
		Hairpin:       proto.HairpinUnknown,
		NoTranslation: true,
	}
	started := false // a box with per-destination mapping has been passed
	for _, c := range p.Boxes {
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
// layout NewPair builds for placement:
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
func Oracle(a, b Preset, placement Placement) proto.Strategy {
	switch placement {
	case SameLAN:
		return proto.StrategySimultaneousOpen
	case SameCarrier:
		carrier := a.Boxes[len(a.Boxes)-1]
		if len(a.Boxes) < 2 || !carrier.Hairpin {
			return proto.StrategyNone
		}
		return DirectStrategy(a.Behavior(), sharingCarrier(a, b).Behavior())
	}
	return DirectStrategy(a.Behavior(), b.Behavior())
}

// sharingCarrier returns b as NewPair builds it for SameCarrier: b's home setup
// behind a's carrier.
func sharingCarrier(a, b Preset) Preset {
	home := homeOf(b)
	b.Boxes = append(append([]NATConfig(nil), home.Boxes...), a.Boxes[len(a.Boxes)-1])
	return b
}
