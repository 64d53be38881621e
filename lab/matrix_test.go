package lab

import (
	"os"
	"testing"

	"github.com/natpass/natpass/proto"
)

// TestMatrixMeetsTargets runs every cell of `natpass lab` and holds it to issues 6
// and 7's targets (direct share, time to direct, every run connected, first message). The default run is short (5 runs per cell); NATPASS_LONG=1 runs 200, as the
// issue asks for the ≥ 99 % rows. A miss prints the seeds that replay it.
func TestMatrixMeetsTargets(t *testing.T) {
	runs := 5
	if os.Getenv("NATPASS_LONG") == "1" {
		runs = 200
	}
	for _, c := range Cells() {
		cell := RunCell(RunConfig{A: c[0], B: c[1], Seed: 1, Loss: 0.01}, runs)
		if !cell.MetTarget() {
			t.Errorf("%s × %s: direct %d, relay %d of %d runs (direct target %.0f%%), first message p95 %v; replay seeds %v (go run ./cmd/natpass lab --a %s --b %s)",
				c[0], c[1], cell.Direct, cell.Relay, cell.Runs, 100*cell.Expected, cell.FirstMsgP95, cell.Misses, c[0], c[1])
		}
		if cell.Expected > 0 && cell.Strategy != OracleStrategy(c[0], c[1]) {
			t.Errorf("%s × %s: natpass chose %s, the oracle says %s", c[0], c[1], cell.Strategy, OracleStrategy(c[0], c[1]))
		}
		// Issue 6: time from Connect to a confirmed direct path, p95 ≤ 2 s for
		// simultaneous open, ≤ 5 s for prediction, ≤ 15 s for birthday.
		limit := map[proto.Strategy]float64{proto.StrategySimultaneousOpen: 2, proto.StrategyPortPrediction: 5, proto.StrategyBirthday: 15}[cell.Strategy]
		if limit > 0 && cell.DirectP95.Seconds() > limit {
			t.Errorf("%s × %s: p95 time to direct %v, target ≤ %.0f s", c[0], c[1], cell.DirectP95, limit)
		}
	}
}
