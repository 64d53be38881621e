package lab

import (
	"time"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// Scenario is one VOPR-style run (TigerBeetle's src/vopr.zig): a seeded world, the
// traffic, and a fault schedule, all fixed up front so that the run replays exactly.
// The fuzz package derives scenarios from fuzz inputs; a test can write one out.
type Scenario struct {
	Seed            uint64
	A, B            string // sim preset names
	Loss, Duplicate float64
	Jitter          time.Duration
	Relay           node.RelayPolicy
	Lanes           []rudp.LaneConfig // both nodes' lanes (nil: one)
	Streams         []Stream
	Faults          []Fault
	// Servers: 0 or 1 for one server; more form a cluster with A and B on different
	// servers (RunConfig.Servers), which the cluster faults need.
	Servers int
	// Settle is how long the run may go on after the last fault ended and the last
	// message was sent, for the reliable streams to complete and a direct path to
	// be found again (0: 2 minutes).
	Settle time.Duration
	// Log, when set, receives every node event with its virtual time (replaying).
	Log func(line string)
}

// Stream is one sender's messages on one lane in one mode. A scenario has at most
// one stream per direction, lane and mode: the receiver tells them apart by lane and
// mode alone, so a message needs no stream tag and may be empty.
type Stream struct {
	FromB            bool
	Lane             int
	Mode             rudp.Mode
	Count            int
	MinSize, MaxSize int           // message sizes, drawn per message in [MinSize, MaxSize]
	Start            time.Duration // after both sides are connected
	Interval         time.Duration // between messages; 0 sends them all at once
}

// ScenarioResult is what a run saw. Violations is empty when every check held.
type ScenarioResult struct {
	Violations []string
	Direct     bool // both sides ended on a direct path
	Oracle     proto.Strategy
	Sent       []int // per stream
	Received   []int
	MaxPending int // most node events waiting at once, either side
	End        time.Duration
	Err        string // the run itself failed (setup, simulator limits)
}

// Check bounds of a scenario run.
const (
	defaultSettle = 2 * time.Minute
	// minDirectSettle: the fault-free time at the end a run needs before a direct
	// path is demanded: a retry of the direct path after a fallback comes 30–60 s
	// after it (DESIGN §6.6), then punching, with margin.
	minDirectSettle = 90 * time.Second
	// sendRetry is how soon a sender whose send buffer was full tries again.
	sendRetry = 5 * time.Millisecond
	// pendingSlack bounds the node events that are not reliable messages waiting at
	// once: path news, unreliable messages (their receive queue is bounded) and the
	// like.
	pendingSlack = 4096
	// reliableCost is what one reliable message costs at least of the flow-control
	// window (PROTOCOL.md §7.6: length + 32).
	reliableCost = 32
)

// RunScenario performs sc and checks it (see the fuzz package doc for the checks).
func RunScenario(sc Scenario) ScenarioResult {
	res := ScenarioResult{Oracle: OracleStrategy(sc.A, sc.B)}
	cfg := RunConfig{A: sc.A, B: sc.B, Seed: sc.Seed, Loss: sc.Loss, Jitter: sc.Jitter, Duplicate: sc.Duplicate,
		Relay: sc.Relay, Messages: -1, Log: sc.Log, RUDP: rudp.Config{Lanes: sc.Lanes}, Servers: sc.Servers}
	w, err := newWorld(cfg)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	r := newScenarioRun(w, sc, &res)
	if err := r.run(); err != nil {
		res.Err = err.Error()
	}
	r.finish()
	return res
}
