package lab

import (
	"slices"
	"strings"
	"testing"

	"github.com/natpass/natpass/proto"
)

// A recorded run is the same run as an unrecorded one, and its timeline tells the
// connection's story on both sides in order: registered, NAT measured, introduced,
// relay ready, session up, probes, direct confirmed.
func TestRunTimelineRecordsTheConnection(t *testing.T) {
	cfg := RunConfig{A: "linux", B: "cgnat", Seed: 5, Loss: 0.01}
	want := Run(cfg)
	got, tl := RunTimeline(cfg)
	if got != want {
		t.Fatalf("recorded run differs from the plain one (seed %d):\n got %+v\nwant %+v", cfg.Seed, got, want)
	}
	if !got.Direct {
		t.Fatalf("seed %d: linux × cgnat not direct: %+v", cfg.Seed, got)
	}
	if !slices.IsSortedFunc(tl.Marks, func(x, y Mark) int { return int(x.At - y.At) }) {
		t.Errorf("marks out of time order")
	}
	order := []string{"registered", "NAT measured", "introduced", "relay ready", "session up", "direct confirmed"}
	for _, side := range []string{"a", "b"} {
		var labels []string
		for _, m := range tl.Marks {
			if m.Side == side && slices.Contains(order, m.Label) {
				labels = append(labels, m.Label)
			}
		}
		if !slices.Equal(labels, order) {
			t.Errorf("side %s: marks %v, want %v (seed %d)", side, labels, order, cfg.Seed)
		}
	}
	if tl.Connect == 0 || tl.End <= tl.Connect || tl.End < tl.Marks[len(tl.Marks)-1].At {
		t.Errorf("connect %v, end %v: want 0 < connect < end ≥ last mark", tl.Connect, tl.End)
	}
	for i := range 2 {
		if tl.ProbesSent[i] == 0 || tl.ProbesReceived[i] == 0 {
			t.Errorf("side %d: %d probes sent, %d received; want both > 0", i, tl.ProbesSent[i], tl.ProbesReceived[i])
		}
	}
	if n := tl.ProbesSent[0] + tl.ProbesSent[1] + tl.ProbesReceived[0] + tl.ProbesReceived[1]; n != len(tl.Probes)+tl.ProbesNotKept {
		t.Errorf("%d probes counted, %d kept + %d not kept", n, len(tl.Probes), tl.ProbesNotKept)
	}
	for _, p := range tl.Probes {
		if p.At < tl.Connect {
			t.Errorf("probe at %v before connect %v: %+v", p.At, tl.Connect, p)
			break
		}
	}
}

// Every node event the text log shows that tells the story has its mark: none is
// lost, not even those of the nodes' first steps.
func TestTimelineMarksEveryLoggedEvent(t *testing.T) {
	var logged int
	story := []string{"EventRegistered", "EventNATReport", "EventIntroduced", "EventPathChanged",
		"EventConnected", "EventServerChanged", "EventPeerError", "EventClosed", "EventPeerClosed"}
	cfg := RunConfig{A: "symmetric-random", B: "port-restricted-cone", Seed: 11, Loss: 0.01, Log: func(line string) {
		for _, s := range story {
			if strings.Contains(line, "node."+s+" ") {
				logged++
			}
		}
	}}
	res, tl := RunTimeline(cfg)
	marks := 0
	for _, m := range tl.Marks {
		if m.Kind != MarkConnect && m.Kind != MarkFirstMessage {
			marks++
		}
	}
	if marks != logged || logged == 0 {
		t.Errorf("%d story marks, the log shows %d story events (seed %d, %+v)", marks, logged, cfg.Seed, res)
	}
}

// A cell that can only relay has a relay mark on both sides and no direct one.
func TestTimelineRelayOnlyCell(t *testing.T) {
	res, tl := RunTimeline(RunConfig{A: "symmetric-random", B: "symmetric-random", Seed: 3, Loss: 0.01})
	if !res.Relay {
		t.Fatalf("seed 3: symmetric-random pair not relayed: %+v", res)
	}
	relay := map[string]bool{}
	for _, m := range tl.Marks {
		if m.Kind == MarkPath && m.Path == proto.PathDirect {
			t.Errorf("direct mark in a relay-only run: %+v", m)
		}
		if m.Kind == MarkPath && m.Path == proto.PathRelay {
			relay[m.Side] = true
		}
	}
	if !relay["a"] || !relay["b"] {
		t.Errorf("relay marks on %v, want both sides", relay)
	}
}
