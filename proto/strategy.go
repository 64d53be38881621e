package proto

import "fmt"

// Strategy is a way for two peers to get a direct path through their NATs (DESIGN
// §6.5). It lives here, not in punch, because two sides name it: punch chooses and
// runs one (punch.Choose), and the simulator's oracle says which one must work
// (sim.Oracle); the lab compares the two as values.
type Strategy uint8

const (
	// StrategyNone: no practical direct path (random × symmetric); the peers stay on
	// the relay.
	StrategyNone Strategy = iota
	// StrategySimultaneousOpen: both sides probe every candidate of the other at once
	// (host, server-reflexive) and answer whatever address a probe came from
	// (peer-reflexive). Enough when each side's external address toward the peer is
	// known in advance, or when the side whose port is unknown can be reached anyway
	// (its peer's filtering admits any port of its address). On Linux NATs it needs
	// the TTL-limited priming of DESIGN §9 unless the starts are synchronised.
	StrategySimultaneousOpen
	// StrategyPortPrediction: a side with sequential allocation is reached at its
	// next ports, predicted from the measured delta; the other side probes those.
	StrategyPortPrediction
	// StrategyBirthday: the side with random, per-destination mappings opens many
	// sockets (256) toward the other, which sprays paced probes at random ports until
	// one meets an open mapping.
	StrategyBirthday
)

// strategyNames are the names String gives and ParseStrategy takes; `natpass lab`
// prints them and its JSON carries them, so they are an interface.
var strategyNames = [...]string{"none", "simultaneous-open", "port-prediction", "birthday"}

func (s Strategy) String() string {
	if int(s) < len(strategyNames) {
		return strategyNames[s]
	}
	return "invalid"
}

// ParseStrategy is the inverse of String for the four strategies.
func ParseStrategy(name string) (Strategy, error) {
	for i, n := range strategyNames {
		if n == name {
			return Strategy(i), nil
		}
	}
	return 0, fmt.Errorf("proto: unknown strategy %q", name)
}
