package punch

import "github.com/natpass/natpass/proto"

// Strategy is how two peers try for a direct path (DESIGN §6.5).
type Strategy uint8

const (
	// StrategyNone: no direct path is practical (random × symmetric); stay on the relay.
	StrategyNone Strategy = iota
	// StrategySimultaneousOpen: both sides probe every candidate of the other at once.
	// Enough when each side's external address toward the peer is known in advance,
	// or when the side whose port is unknown can be reached anyway (its peer's
	// filtering admits any port of its address).
	StrategySimultaneousOpen
	// StrategyPrediction: a sequential-symmetric side's next ports are predicted from
	// the measured delta and the other side probes those.
	StrategyPrediction
	// StrategyBirthday: the random-symmetric side opens many sockets toward the other;
	// the other sprays paced probes at random ports until one meets an open mapping.
	StrategyBirthday
)

var strategyNames = [...]string{"none", "simultaneous-open", "port-prediction", "birthday"}

func (s Strategy) String() string {
	if int(s) < len(strategyNames) {
		return strategyNames[s]
	}
	return "invalid"
}

// Plan is the strategy for one pair as seen from the local side.
type Plan struct {
	Strategy Strategy
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
		return Plan{Strategy: StrategySimultaneousOpen}
	case le && !re:
		return chooseOneHard(remote, local, false)
	case !le && re:
		return chooseOneHard(local, remote, true)
	}
	// Both symmetric: only two sequential NATs leave anything to predict.
	if local.Allocation == proto.AllocationSequential && remote.Allocation == proto.AllocationSequential {
		return Plan{Strategy: StrategyPrediction, LocalHard: true, RemoteHard: true}
	}
	return Plan{Strategy: StrategyNone, LocalHard: true, RemoteHard: true}
}

// chooseOneHard: exactly one side (hard) maps per destination.
func chooseOneHard(hard, easySide proto.NATBehavior, localIsHard bool) Plan {
	p := Plan{LocalHard: localIsHard, RemoteHard: !localIsHard}
	switch {
	case admitsAnyPort(easySide):
		// The hard side's probe to the easy side's known address gets in from
		// whatever port the hard NAT picks; the easy side's reply goes back to it.
		p.Strategy = StrategySimultaneousOpen
	case hard.Allocation == proto.AllocationSequential:
		p.Strategy = StrategyPrediction
	default:
		p.Strategy = StrategyBirthday
	}
	return p
}
