package fuzz

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/natpass/natpass/lab"
	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/rudp"
	"github.com/natpass/natpass/sim"
)

// FuzzWorld: see the package doc.
func FuzzWorld(f *testing.F) {
	for _, s := range worldSeeds {
		f.Add(s.seed, s.plan)
	}
	f.Fuzz(func(t *testing.T, seed uint64, plan []byte) {
		checkWorld(t, seed, plan)
	})
}

// checkWorld runs the scenario seed and plan describe and fails with everything
// needed to replay it.
func checkWorld(t *testing.T, seed uint64, plan []byte) {
	sc := decodeScenario(seed, plan)
	res := lab.RunScenario(sc)
	if res.Err != "" || len(res.Violations) > 0 {
		t.Fatalf("seed %d plan %x\n%s\nrun: %s\n  %s", seed, plan, describe(sc), res.Err, strings.Join(res.Violations, "\n  "))
	}
}

// planReader hands out a plan's bytes, then zeros: any input is a plan.
type planReader []byte

func (r *planReader) byte() byte {
	if len(*r) == 0 {
		return 0
	}
	b := (*r)[0]
	*r = (*r)[1:]
	return b
}

// Plan tables. Counts lean to the small (one exec should take well under a
// second) but reach the largest burst the issue asks for; sizes reach rudp's largest
// message.
var (
	planCounts   = [16]int{1, 1, 2, 3, 5, 8, 13, 21, 50, 100, 200, 500, 1000, 5000, 20000, 100000}
	planSizes    = [8][2]int{{0, 0}, {0, 16}, {4, 64}, {64, 1200}, {1000, 4000}, {0, 64 << 10}, {maxMessage, maxMessage}, {0, maxMessage}}
	planInterval = [16]time.Duration{0, 0, 0, 0, 0, 1, 2, 5, 10, 20, 50, 100, 200, 0, 0, 0}
	planLoss     = [4]float64{0, 0.005, 0.01, 0.02}
	planRates    = [4]float64{0.01, 0.05, 0.2, 0.5}
)

const (
	maxMessage = 1 << 20 // rudp's default MaxMessageSize
	// streamBytesMax bounds one stream's bytes, so that large messages come few at
	// a time (the corpus holds the largest cases).
	streamBytesMax = 8 << 20
	// pacedMax bounds how long a paced stream sends: the virtual time of a run, and
	// so its cost, stays bounded.
	pacedMax = 30 * time.Second
)

// decodeScenario turns a fuzz input into a scenario:
//
//	presets A, B ‖ link ‖ lanes ‖ streams (n, then 4 bytes each) ‖ faults (n, then 3 bytes each)
func decodeScenario(seed uint64, plan []byte) lab.Scenario {
	r := planReader(plan)
	names := sim.PresetNames()
	sc := lab.Scenario{Seed: seed, A: names[int(r.byte())%len(names)], B: names[int(r.byte())%len(names)]}
	link := r.byte()
	sc.Loss, sc.Duplicate = planLoss[link&3], float64(link>>2&1)*0.02
	sc.Jitter = time.Duration(link>>3&3) * 5 * time.Millisecond
	if link>>5&3 == 3 {
		sc.Relay = node.RelayForce
	}
	if link>>7 == 1 {
		sc.Servers = 3 // a cluster: A and B on different servers
	}
	lanes := r.byte()
	for i := range int(lanes&3) + 1 {
		sc.Lanes = append(sc.Lanes, rudp.LaneConfig{Priority: lanes >> (2 + i) & 1, Weight: uint16(1 + i)})
	}
	seen := map[[3]int]bool{}
	for range int(r.byte()&3) + 1 {
		st := decodeStream(&r, len(sc.Lanes))
		key := [3]int{int(st.Lane), int(st.Mode), 0}
		if st.FromB {
			key[2] = 1
		}
		if !seen[key] {
			seen[key] = true
			sc.Streams = append(sc.Streams, st)
		}
	}
	for range int(r.byte()) % 5 {
		f0, f1, f2 := r.byte(), r.byte(), r.byte()
		// Every fault is shorter than rudp's 30 s idle timeout, so none may end the
		// connection: a close is always a finding.
		kind := lab.FaultKind(f0 & 7 % 6)
		if sc.Servers > 1 && f0>>4&1 == 1 {
			kind = lab.FaultServerKill + lab.FaultKind(f0>>5&1) // or FaultPartitionServers
		}
		sc.Faults = append(sc.Faults, lab.Fault{Kind: kind, Side: int(f0 >> 3 & 1),
			At: time.Duration(f1&31) * 500 * time.Millisecond, For: time.Duration(1+f2&15) * 500 * time.Millisecond,
			Rate: planRates[f2>>4&3]})
	}
	return sc
}

func decodeStream(r *planReader, lanes int) lab.Stream {
	s0, s1, s2, s3 := r.byte(), r.byte(), r.byte(), r.byte()
	size := planSizes[s2&7]
	st := lab.Stream{FromB: s0&1 == 1, Lane: int(s0>>1&3) % lanes, Mode: rudp.Mode(s0 >> 3 & 3),
		Count: planCounts[s1&15], MinSize: size[0], MaxSize: size[1],
		Start: time.Duration(s3&15) * 250 * time.Millisecond, Interval: planInterval[s3>>4] * time.Millisecond}
	if st.MaxSize > 0 {
		st.Count = max(1, min(st.Count, streamBytesMax/st.MaxSize))
	}
	if st.Interval > 0 {
		st.Count = max(1, min(st.Count, int(pacedMax/st.Interval)))
	}
	return st
}

// describe writes a scenario as Go, ready to paste into a lab test.
func describe(sc lab.Scenario) string {
	var b strings.Builder
	fmt.Fprintf(&b, "lab.Scenario{Seed: %d, A: %q, B: %q, Loss: %v, Duplicate: %v, Jitter: %v, Relay: %v, Servers: %d, Lanes: %d lanes,\n",
		sc.Seed, sc.A, sc.B, sc.Loss, sc.Duplicate, sc.Jitter, sc.Relay, sc.Servers, len(sc.Lanes))
	for _, s := range sc.Streams {
		fmt.Fprintf(&b, "  stream %+v\n", s)
	}
	for _, f := range sc.Faults {
		fmt.Fprintf(&b, "  fault %v side %d at %v for %v rate %v\n", f.Kind, f.Side, f.At, f.For, f.Rate)
	}
	return b.String()
}
