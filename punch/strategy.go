package punch

import "github.com/natpass/natpass/proto"

// Plan is the strategy for one pair as seen from the local side.
type Plan struct {
	Strategy proto.Strategy
	// LocalHard: the local side is the symmetric one (it opens birthday sockets, or
	// its ports are the predicted ones). For symmetric × symmetric prediction both
	// sides predict and both are hard.
	LocalHard bool
	// RemoteHard: the remote side's ports toward us cannot be known in advance.
	RemoteHard bool
}

// easy reports whether a NAT keeps one external address for every remote, so that the
// server-reflexive address is the address the peer will see.
func easy(n proto.NATBehavior) bool {
	return n.NoTranslation || n.Mapping == proto.EndpointIndependent || n.Mapping == proto.DependenceUnknown
}

// admitsAnyPort reports whether the NAT admits a packet from a port of the peer's
// address it has not sent to, once it sent to that address (RFC 4787 §5: endpoint-
// independent or address-dependent filtering).
func admitsAnyPort(n proto.NATBehavior) bool {
	return n.Filtering == proto.EndpointIndependent || n.Filtering == proto.AddressDependent
}

// Choose picks the strategy for a pair from both sides' NAT behaviour. Both sides run
// it with the arguments swapped and must agree; sameNAT (equal server-reflexive IP)
// means host candidates are tried too, which simultaneous open always includes.
func Choose(local, remote proto.NATBehavior) Plan {
	le, re := easy(local), easy(remote)
	switch {
	case le && re:
		return Plan{Strategy: proto.StrategySimultaneousOpen}
	case le && !re:
		return chooseOneHard(remote, local, false)
	case !le && re:
		return chooseOneHard(local, remote, true)
	}
	// Both symmetric: only two sequential NATs leave anything to predict.
	if local.Allocation == proto.AllocationSequential && remote.Allocation == proto.AllocationSequential {
		return Plan{Strategy: proto.StrategyPortPrediction, LocalHard: true, RemoteHard: true}
	}
	return Plan{Strategy: proto.StrategyNone, LocalHard: true, RemoteHard: true}
}

// chooseOneHard: exactly one side (hard) maps per destination.
func chooseOneHard(hard, easySide proto.NATBehavior, localIsHard bool) Plan {
	p := Plan{LocalHard: localIsHard, RemoteHard: !localIsHard}
	switch {
	case admitsAnyPort(easySide):
		// The hard side's probe to the easy side's known address gets in from
		// whatever port the hard NAT picks; the easy side's reply goes back to it.
		p.Strategy = proto.StrategySimultaneousOpen
	case hard.Allocation == proto.AllocationSequential:
		p.Strategy = proto.StrategyPortPrediction
	default:
		p.Strategy = proto.StrategyBirthday
	}
	return p
}
