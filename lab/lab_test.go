package lab

import (
	"testing"

	"github.com/natpass/natpass/sim/simtest"
)

func TestRunDirectOpenPair(t *testing.T) {
	simtest.Seeds(t, 1, 3, 10, func(t *testing.T, seed uint64) {
		r := Run(RunConfig{A: "port-restricted-cone", B: "linux", Seed: seed, Loss: 0.01})
		if !r.Direct || !r.Delivered {
			t.Fatalf("want a direct path and every message delivered: %+v", r)
		}
		t.Logf("%+v", r)
	})
}
