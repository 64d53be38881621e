package lab

import (
	"github.com/natpass/natpass/node"
	"testing"
	"time"

	"github.com/natpass/natpass/rudp"
)

// A scenario with every mode, both directions and one fault of each kind holds every
// check (the fuzz package's FuzzWorld draws many more).
func TestScenarioEveryModeAndFault(t *testing.T) {
	start := time.Now()
	res := RunScenario(everyModeAndFault(1))
	t.Logf("%+v in %v", res, time.Since(start))
	if res.Err != "" || len(res.Violations) > 0 {
		t.Fatalf("%+v", res)
	}
}

// everyModeAndFault is TestScenarioEveryModeAndFault's scenario with seed: every
// delivery mode, a peer partition, a NAT reboot of the cgnat side, a server restart
// and flipped bytes.
func everyModeAndFault(seed uint64) Scenario {
	return Scenario{Seed: seed, A: "port-restricted-cone", B: "cgnat", Loss: 0.01,
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
}

// Regression (issue 15's re-punch from a fresh socket): in this scenario both sides
// rebind during the peer partition and again during the server outage, whose
// rebound introductions reach one side or none. Plain refreshes then left each side
// aiming at a fresh mapping the other no longer probed from (or one its NAT reboot
// replaced) and both stayed relayed for good: 19 of seeds 1–40 (23 on main before
// rudp's timing changed). Every refresh of a rebound peer now names its fresh
// socket's current mapping, and each side's retry runs on its own schedule.
func TestScenarioEveryModeAndFaultSeeds(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		if res := RunScenario(everyModeAndFault(seed)); res.Err != "" || len(res.Violations) > 0 {
			t.Errorf("seed %d (replay: RunScenario(everyModeAndFault(%d))): %s %v", seed, seed, res.Err, res.Violations)
		}
	}
}

// Found by FuzzWorld: after a NAT reboot next to a Linux (port-clash) NAT, the pair
// must find a direct path again. The peer's traffic to the rebooted NAT's old mapping
// leaves [UNREPLIED] entries that push the Linux side's next flow to another port,
// which the other side's port-dependent filter drops; on Linux such a clashed flow
// with no reply goes after 30 s and the port comes back, so the node's retry (30–60 s
// after giving up) finds the path. The simulator used to keep clashed flows for the
// 2-minute mapping timeout, and the pair stayed relayed (sim
// TestClashedFlowWithoutReplyLivesUnrepliedTimeout).
func TestNATRebootNextToLinuxRecoversDirect(t *testing.T) {
	for _, c := range []struct {
		a, b string
		side int
	}{{"cgnat", "linux", 0}, {"cgnat", "linux", 1}, {"port-restricted-cone", "linux", 1}} {
		for seed := uint64(1); seed <= 4; seed++ {
			sc := Scenario{Seed: seed, A: c.a, B: c.b,
				Streams: []Stream{{Mode: rudp.ReliableOrdered, Count: 20, MaxSize: 16, Interval: 100 * time.Millisecond}},
				Faults:  []Fault{{Kind: FaultNATReboot, Side: c.side, At: time.Second}}}
			if res := RunScenario(sc); len(res.Violations) > 0 || res.Err != "" {
				t.Errorf("seed %d: %s × %s, NAT of side %d rebooted: %v %s", seed, c.a, c.b, c.side, res.Violations, res.Err)
			}
		}
	}
}

// Found by FuzzWorld: with the relay forced (RelayForce, so no addresses are
// shared), a pair whose strategy would be birthday (one random-symmetric NAT) never
// gets going: the easy side's punch agent keeps its deadline at the current instant
// while HandleTimeout sends nothing and emits nothing (node.DeadlineReason: "peer a:
// agent"), so every owner spins on it; the simulator stops at its step limit. Seen
// for symmetric-random × firewall, × port-restricted-cone, cgnat × symmetric-random,
// in both orders; port prediction and simultaneous open under RelayForce are fine.
func TestRelayForceWithBirthdayPairDoesNotSpin(t *testing.T) {
	r := Run(RunConfig{A: "symmetric-random", B: "firewall", Seed: 1, Messages: 5, Relay: node.RelayForce})
	if !r.Delivered || r.Direct || r.Err != "" {
		t.Fatalf("relay forced on a birthday pair: %+v, want every message through the relay", r)
	}
}
