package sim

import (
	"flag"
	"os"
	"testing"

	"github.com/natpass/natpass/sim/simtest"
)

// TestMain makes NATPASS_LONG=1 the heavy run: 5,000 rapid checks per property
// instead of 100 (unless -rapid.checks says otherwise), and five times the seeds of
// simtest.Seeds.
func TestMain(m *testing.M) {
	flag.Parse()
	if simtest.Long() {
		set := false
		flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
		if !set {
			if err := flag.Set("rapid.checks", "5000"); err != nil {
				panic(err)
			}
		}
	}
	os.Exit(m.Run())
}
