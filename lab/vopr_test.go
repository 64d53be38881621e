package lab

import (
	"testing"
	"time"

	"github.com/natpass/natpass/rudp"
)

// A scenario with every mode, both directions and one fault of each kind holds every
// check (the fuzz package's FuzzWorld draws many more).
func TestScenarioEveryModeAndFault(t *testing.T) {
	sc := Scenario{Seed: 1, A: "port-restricted-cone", B: "cgnat", Loss: 0.01,
		Lanes: []rudp.LaneConfig{{Priority: 1}, {}, {}},
		Streams: []Stream{
			{Lane: 0, Mode: rudp.ReliableOrdered, Count: 200, MinSize: 0, MaxSize: 3000, Interval: 20 * time.Millisecond},
			{Lane: 1, Mode: rudp.ReliableUnordered, Count: 100, MinSize: 4, MaxSize: 100},
			{FromB: true, Lane: 2, Mode: rudp.UnreliableSequenced, Count: 100, MinSize: 4, MaxSize: 64, Interval: 50 * time.Millisecond},
			{FromB: true, Lane: 0, Mode: rudp.Unreliable, Count: 50, MinSize: 8, MaxSize: 8, Interval: 10 * time.Millisecond},
		},
		Faults: []Fault{
			{Kind: FaultPartitionPeers, At: time.Second, For: 3 * time.Second},
			{Kind: FaultNATReboot, Side: 1, At: 6 * time.Second},
			{Kind: FaultServerRestart, At: 8 * time.Second, For: 5 * time.Second},
			{Kind: FaultFlipBytes, Side: 0, At: 2 * time.Second, For: 2 * time.Second, Rate: 0.05},
		},
	}
	start := time.Now()
	res := RunScenario(sc)
	t.Logf("%+v in %v", res, time.Since(start))
	if res.Err != "" || len(res.Violations) > 0 {
		t.Fatalf("%+v", res)
	}
}
