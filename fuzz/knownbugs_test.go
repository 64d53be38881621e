package fuzz

import (
	"strings"
	"testing"

	"github.com/natpass/natpass/lab"
)

// knownBug is a FuzzWorld input that fails on a bug someone is fixing. It is kept
// out of the corpus (which must pass) and replayed here: while it still fails the
// test skips with the bug's name; once it passes the log says to move it into
// worldSeeds.
type knownBug struct {
	name, bug string
	worldSeed
}

var knownBugs = []knownBug{
	{"stopped-reader", "node.emit drops events past maxEvents (1024): a receiver that stops reading for 5 s loses reliable messages " +
		"(DESIGN §11: credit must return when the application takes a message)",
		worldSeed{7, plan(pFullCone, pOpen, 0, 0, [][4]byte{{0, count5000, size0to16, burst}}, [][3]byte{{fStopRead | fSideB, 0, 9}})}},
	{"burst-after-loss", "node.emit drops events past maxEvents (1024): with 2 % loss a 100,000-message burst fills a gap that releases " +
		"more than 1024 messages in one call, and the rest are lost",
		worldSeed{8, plan(pFullCone, pOpen, loss2pct, 0, [][4]byte{{0, count100k, size0to16, burst}}, nil)}},
}

// TestWorldKnownBugs replays the known-bug inputs: go test ./fuzz -run 'TestWorldKnownBugs/<name>' -v
func TestWorldKnownBugs(t *testing.T) {
	for _, kb := range knownBugs {
		t.Run(kb.name, func(t *testing.T) {
			sc := decodeScenario(kb.seed, kb.plan)
			res := lab.RunScenario(sc)
			if res.Err != "" || len(res.Violations) > 0 {
				t.Skipf("known bug: %s\nseed %d plan %x\n%s\nrun: %s\n  %s", kb.bug, kb.seed, kb.plan, describe(sc), res.Err,
					strings.Join(res.Violations, "\n  "))
			}
			t.Logf("passes now: move seed %d plan %x into worldSeeds", kb.seed, kb.plan)
		})
	}
}
