package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/natpass/natpass/lab"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim"
)

// labCell is one line of `natpass lab --json`; the field names are an interface other
// tools read.
type labCell struct {
	A           string   `json:"a"`
	B           string   `json:"b"`
	Runs        int      `json:"runs"`
	Servers     int      `json:"servers"`
	Direct      int      `json:"direct"`
	Relay       int      `json:"relay"`
	Failed      int      `json:"failed"`
	Strategy    string   `json:"strategy"`
	Expected    string   `json:"expected"`
	Target      float64  `json:"target_direct_pct"`
	DirectMsP50 float64  `json:"direct_ms_p50"`
	DirectMsP95 float64  `json:"direct_ms_p95"`
	FirstMsgP95 float64  `json:"first_msg_ms_p95"`
	Met         bool     `json:"met"`
	Misses      []uint64 `json:"miss_seeds,omitempty"`
}

func runLab(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runs := fs.Int("runs", 20, "runs per cell")
	seed := fs.Uint64("seed", 1, "seed every run derives from")
	asJSON := fs.Bool("json", false, "print one JSON object per cell instead of the table")
	a := fs.String("a", "", "only the cell with this preset (or same-nat-hairpin / same-nat-no-hairpin) as A")
	b := fs.String("b", "", "only the cell with this preset as B")
	loss := fs.Float64("loss", 0.01, "packet loss on every access link")
	room := fs.Int("room", 0, "run a room of this many members (2–16) instead of the pair matrix; presets drawn per run")
	servers := fs.Int("servers", 1, "rendezvous servers in the simulated cluster; A and B register on different ones")
	replay := fs.Uint64("replay", 0, "run only the run with this seed (from a MISSED line) for --a/--b, printing its events")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *runs < 1 {
		fmt.Fprintln(stderr, "natpass lab: --runs must be at least 1")
		return 2
	}
	if *servers < 1 || *servers > 64 {
		fmt.Fprintln(stderr, "natpass lab: --servers must be 1–64")
		return 2
	}
	if *room != 0 {
		return runRoomLab(*room, *runs, *seed, *loss, *asJSON, stdout, stderr)
	}
	cells := lab.Cells()
	if *a != "" || *b != "" {
		cells = nil
		for _, c := range lab.Cells() {
			if cellMatches(c, *a, *b) {
				cells = append(cells, c)
			}
		}
		if len(cells) == 0 {
			fmt.Fprintf(stderr, "natpass lab: no cell matches --a %q --b %q (presets: %v, %s, %s)\n",
				*a, *b, sim.PresetNames(), lab.SameNATHairpin, lab.SameNATNoHairpin)
			return 2
		}
	}
	if *replay != 0 {
		if len(cells) != 1 {
			fmt.Fprintln(stderr, "natpass lab: --replay needs --a and --b naming one cell")
			return 2
		}
		r := lab.Run(lab.RunConfig{A: cells[0][0], B: cells[0][1], Seed: *replay, Loss: *loss, Servers: *servers,
			Log: func(line string) { fmt.Fprintln(stdout, line) }})
		fmt.Fprintf(stdout, "%+v\n", r)
		if !r.Delivered {
			return 1
		}
		return 0
	}
	started := time.Now()
	if !*asJSON {
		fmt.Fprintf(stdout, "natpass lab: %d runs per cell, seed %d, %.0f%% loss, RTTs 20–150 ms, %d server(s) (simulated)\n\n",
			*runs, *seed, 100**loss, *servers)
		fmt.Fprintf(stdout, "%-22s %-22s %7s %6s %9s %9s %9s  %-18s %-18s %s\n",
			"A", "B", "direct", "relay", "p50", "p95", "1st msg", "strategy", "oracle", "target")
	}
	missed := 0
	for _, pair := range cells {
		c := lab.RunCell(lab.RunConfig{A: pair[0], B: pair[1], Seed: *seed, Loss: *loss, Servers: *servers}, *runs)
		out := labCell{
			A: c.A, B: c.B, Runs: c.Runs, Servers: c.Servers, Direct: c.Direct, Relay: c.Relay, Failed: c.Runs - c.Direct - c.Relay,
			FirstMsgP95: ms(c.FirstMsgP95),
			Strategy:    c.Strategy.String(), Expected: lab.OracleStrategy(c.A, c.B).String(), Target: 100 * c.Expected,
			DirectMsP50: ms(c.DirectP50), DirectMsP95: ms(c.DirectP95), Met: c.MetTarget(), Misses: c.Misses,
		}
		if !out.Met {
			missed++
		}
		if *asJSON {
			line, _ := json.Marshal(out)
			fmt.Fprintln(stdout, string(line))
			continue
		}
		b := c.B
		if b == "" {
			b = "(same NAT)"
		}
		target := "relay"
		if c.Expected > 0 {
			target = fmt.Sprintf("≥ %.0f%% direct", 100*c.Expected)
		}
		mark := ""
		if !out.Met {
			cell := "--a " + c.A
			if c.B != "" {
				cell += " --b " + c.B
			}
			mark = fmt.Sprintf("  MISSED (replay: natpass lab %s --replay SEED; seeds %v)", cell, c.Misses)
		}
		fmt.Fprintf(stdout, "%-22s %-22s %6.0f%% %5.0f%% %9s %9s %9s  %-18s %-18s %s%s\n", c.A, b,
			100*float64(c.Direct)/float64(c.Runs), 100*float64(c.Relay)/float64(c.Runs), dur(c.DirectP50),
			dur(c.DirectP95), dur(c.FirstMsgP95), c.Strategy, out.Expected, target, mark)
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "\n%d cells, %d missed their target, %.1fs\n", len(cells), missed, time.Since(started).Seconds())
	}
	if missed > 0 {
		return 1
	}
	return 0
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

// cellMatches: with both presets given, the cell of exactly that pair (either
// order); with one, every cell that has it on either side.
func cellMatches(c [2]string, a, b string) bool {
	switch {
	case a != "" && b != "":
		return c[0] == a && c[1] == b || c[0] == b && c[1] == a
	case a != "":
		return c[0] == a || c[1] == a
	default:
		return c[0] == b || c[1] == b
	}
}

// runRoomLab is `natpass lab --room N`: runs seeded runs of a room of n members on
// the simulator, printing one summary (one JSON line with --json); exit 1 when a
// broadcast went missing.
func runRoomLab(n, runs int, seed uint64, loss float64, asJSON bool, stdout, stderr io.Writer) int {
	if n < 2 || n > proto.MaxRoomMembers {
		fmt.Fprintf(stderr, "natpass lab: --room must be 2–%d\n", proto.MaxRoomMembers)
		return 2
	}
	started := time.Now()
	sum := lab.RunRooms(n, runs, seed, loss)
	if asJSON {
		line, _ := json.Marshal(sum)
		fmt.Fprintln(stdout, string(line))
	} else {
		fmt.Fprintf(stdout, "natpass lab: %d runs of a room of %d, seed %d, %.0f%% loss (simulated)\n", runs, n, seed, 100*loss)
		fmt.Fprintf(stdout, "links %d: %d direct, %d relay (the pair table predicts %.1f direct)\n",
			sum.Links, sum.LinksDirect, sum.LinksRelay, sum.LinksDirectExpected)
		fmt.Fprintf(stdout, "broadcasts delivered %d of %d; mesh p95 %.0f ms; %.1fs\n",
			sum.BroadcastsDelivered, sum.BroadcastsExpected, sum.MeshMsP95, time.Since(started).Seconds())
		if len(sum.Failed) > 0 {
			fmt.Fprintf(stdout, "FAILED runs (replay with --runs 1 --seed is not enough: seeds are derived) %v\n", sum.Failed)
		}
	}
	if sum.BroadcastsDelivered != sum.BroadcastsExpected || sum.Links != sum.LinksDirect+sum.LinksRelay {
		return 1
	}
	return 0
}
