package lab

import (
	"slices"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim"
)

// Cell is one pair of the matrix, with its runs and its target.
type Cell struct {
	A, B     string
	Runs     int
	Servers  int // servers in the cluster (1: one server)
	Direct   int
	Relay    int // runs whose messages all arrived through the relay
	Failed   int // runs that ended in an error (no path at all, or a crash)
	Strategy proto.Strategy
	// Expected is the target share of direct runs (0: reported only).
	Expected float64
	// Family is the family the oracle says the pair's direct path is on
	// (sim.OracleFamily: IPv6 when both have it); OnFamily counts the direct runs
	// that ended on it.
	Family               sim.Family
	OnFamily             int
	DirectP50, DirectP95 time.Duration
	// FirstMsgP95 is the 95th percentile of Connect to the first delivered message.
	FirstMsgP95 time.Duration
	// Seeds of the runs that were not direct, to replay them.
	Misses []uint64
	times  []time.Duration
	first  []time.Duration
}

// FirstMsgTarget is issue 7's bound on the first message: p95 ≤ 1 s after Connect.
const FirstMsgTarget = time.Second

// MetTarget reports whether the cell reached its targets: its share of direct runs
// (issue 6), every run connected, direct or through the relay, the first message
// delivered within FirstMsgTarget at p95 (issue 7), and every direct run on the
// family the oracle names (issue 15: IPv6 when both have it).
func (c *Cell) MetTarget() bool {
	direct := c.Expected == 0 || float64(c.Direct) >= c.Expected*float64(c.Runs)
	return direct && c.Direct+c.Relay == c.Runs && c.FirstMsgP95 <= FirstMsgTarget && c.OnFamily == c.Direct
}

// Cells lists every unordered pair of IPv4 presets (in preset order), the two
// same-NAT cells, then FamilyCells.
func Cells() [][2]string {
	names := sim.PresetNames()
	var out [][2]string
	for i := range names {
		for j := i; j < len(names); j++ {
			out = append(out, [2]string{names[i], names[j]})
		}
	}
	out = append(out, [2]string{SameNATHairpin, ""}, [2]string{SameNATNoHairpin, ""})
	return append(out, FamilyCells()...)
}

// FamilyCells are the IPv6 and dual-stack cells (issue 15): every unordered pair of
// sim.IPv6Presets (IPv6 only, dual stack, and the two facing each other), then
// dual-stack hosts facing IPv4-only ones, which fall back to IPv4: direct when
// IPv4 allows it, else the relay.
func FamilyCells() [][2]string {
	names := sim.IPv6PresetNames()
	var out [][2]string
	for i := range names {
		for j := i; j < len(names); j++ {
			out = append(out, [2]string{names[i], names[j]})
		}
	}
	return append(out,
		[2]string{"dual-port-restricted-cone", "port-restricted-cone"},
		[2]string{"dual-symmetric-random", "symmetric-random"})
}

// isFamilyCell reports whether a cell has a preset with IPv6.
func isFamilyCell(a, b string) bool {
	pa, _ := sim.PresetByName(a)
	pb, _ := sim.PresetByName(b)
	return pa.Stack.Has(sim.IPv6) || pb.Stack.Has(sim.IPv6)
}

// familyExpected is Expected for a cell with IPv6: the target share of direct runs
// for the strategy the oracle names on the family the pair ends on.
func familyExpected(a, b string) float64 {
	_, st := OracleFamily(a, b)
	switch st {
	case proto.StrategySimultaneousOpen, proto.StrategyPortPrediction:
		return 1
	case proto.StrategyBirthday:
		return 0.99
	}
	return 0
}

// OracleFamily is the family and strategy the simulator's oracle says give the cell
// a direct path (IPv4 for every IPv4 cell).
func OracleFamily(a, b string) (sim.Family, proto.Strategy) {
	pa, pb, sameLAN, err := cellPresets(a, b)
	if err != nil {
		panic("lab: " + err.Error())
	}
	return sim.OracleFamily(pa, pb, placement(sameLAN))
}

// Expected is issue 6's target share of direct runs for a cell (0: reported only).
func Expected(a, b string) float64 {
	if a == SameNATHairpin || a == SameNATNoHairpin {
		return 1
	}
	if isFamilyCell(a, b) {
		return familyExpected(a, b)
	}
	sym := func(n string) bool { return n == "symmetric-sequential" || n == "symmetric-random" }
	switch {
	case !sym(a) && !sym(b):
		return 1
	case sym(a) && sym(b):
		if a == "symmetric-sequential" && b == "symmetric-sequential" {
			return 0.9
		}
		return 0
	}
	hard, easy := a, b
	if sym(b) {
		hard, easy = b, a
	}
	if hard == "symmetric-sequential" {
		return 1
	}
	switch easy {
	case "open", "full-cone", "restricted-cone":
		return 1
	}
	return 0.99 // birthday
}

// RunCell runs the cell of base (its presets, loss and servers) runs times, with
// seeds derived from base.Seed.
func RunCell(base RunConfig, runs int) Cell {
	a, b := base.A, base.B
	c := Cell{A: a, B: b, Runs: runs, Servers: max(base.Servers, 1), Expected: Expected(a, b)}
	c.Family, _ = OracleFamily(a, b)
	for i := 0; i < runs; i++ {
		cfg := base
		cfg.Seed = base.Seed*1_000_003 + uint64(i)
		s := cfg.Seed
		r := Run(cfg)
		if c.Strategy == proto.StrategyNone { // the first run that was introduced
			c.Strategy = r.Strategy
		}
		if r.FirstMessage > 0 {
			c.first = append(c.first, r.FirstMessage)
		}
		switch {
		case r.Direct && r.Delivered:
			c.Direct++
			c.times = append(c.times, r.ToDirect)
			if r.Family == c.Family {
				c.OnFamily++
			} else {
				c.Misses = append(c.Misses, s)
			}
		case r.Relay:
			c.Relay++
			c.Misses = append(c.Misses, s)
		case r.Err != "":
			c.Failed++
			c.Misses = append(c.Misses, s)
		default:
			c.Misses = append(c.Misses, s)
		}
	}
	slices.Sort(c.times)
	c.DirectP50, c.DirectP95 = quantile(c.times, 0.5), quantile(c.times, 0.95)
	slices.Sort(c.first)
	c.FirstMsgP95 = quantile(c.first, 0.95)
	return c
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// OracleStrategy is what the simulator's oracle says can give the cell a direct path.
// It panics on a preset name sim does not know (every cell of Cells is known).
func OracleStrategy(a, b string) proto.Strategy {
	pa, pb, sameLAN, err := cellPresets(a, b)
	if err != nil {
		panic("lab: " + err.Error())
	}
	return sim.Oracle(pa, pb, placement(sameLAN))
}
