package keyx

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs the rapid property tests (the replay-window model and the chaos
// test) 30 times longer under NATPASS_LONG=1, as CI's long run does.
func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv("NATPASS_LONG") == "1" && flag.Lookup("rapid.checks").Value.String() == "100" {
		flag.Set("rapid.checks", "3000")
	}
	os.Exit(m.Run())
}
