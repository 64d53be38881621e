package sim

import (
	"flag"
	"os"
	"testing"

	"github.com/natpass/natpass/sim/simtest"
)

// TestMain makes NATPASS_LONG=1 the heavy run: 5,000 rapid checks per property
// instead of 100 (unless -rapid.checks says otherwise), from a fixed rapid seed
// (unless -rapid.seed says otherwise), and five times the seeds of simtest.Seeds.
// The seed is fixed so that the gate CI runs is the same every time: random ones
// found two rare bugs in two CI runs (port prediction across 65535, fixed with
// proto.StepPort; the box's mapping cache answering for a pooled mapping's old key,
// TestExpiredMappingNotFoundThroughItsReusedObject). Explore with another seed by
// hand: NATPASS_LONG=1 go test ./sim -rapid.seed=$RANDOM.
func TestMain(m *testing.M) {
	flag.Parse()
	if simtest.Long() {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{"rapid.checks": "5000", "rapid.seed": "1"} {
			if !set[name] {
				if err := flag.Set(name, v); err != nil {
					panic(err)
				}
			}
		}
	}
	os.Exit(m.Run())
}
