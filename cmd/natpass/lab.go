package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/natpass/natpass/lab"
	"github.com/natpass/natpass/lab/report"
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

// labFlags are natpass lab's options after parsing.
type labFlags struct {
	runs, room, servers int
	seed, replay        uint64
	loss                float64
	asJSON              bool
	a, b, html          string
}

func parseLabFlags(args []string, stderr io.Writer) (labFlags, bool) {
	var f labFlags
	fs := newFlagSet("lab", stderr)
	fs.IntVar(&f.runs, "runs", 20, "runs per cell")
	fs.Uint64Var(&f.seed, "seed", 1, "seed every run derives from")
	fs.BoolVar(&f.asJSON, "json", false, "print one JSON object per cell instead of the table")
	fs.StringVar(&f.a, "a", "", "only the cell with this preset (or same-nat-hairpin / same-nat-no-hairpin) as A")
	fs.StringVar(&f.b, "b", "", "only the cell with this preset as B")
	fs.Float64Var(&f.loss, "loss", 0.01, "packet loss on every access link")
	fs.IntVar(&f.room, "room", 0, "run a room of this many members (2–16) instead of the pair matrix; presets drawn per run")
	fs.IntVar(&f.servers, "servers", 1, "rendezvous servers in the simulated cluster; A and B (or the room's members, in turn) register on different ones")
	fs.Uint64Var(&f.replay, "replay", 0, "run only the run with this seed (from a MISSED line) for --a/--b, printing its events")
	fs.StringVar(&f.html, "html", "", "also write the matrix as a self-contained HTML page to this file "+
		"(with --replay: the run's timeline)")
	if err := parseFlags(fs, args); err != nil {
		return f, false
	}
	switch {
	case f.runs < 1:
		fmt.Fprintln(stderr, "natpass lab: --runs must be at least 1")
	case f.servers < 1 || f.servers > 64:
		fmt.Fprintln(stderr, "natpass lab: --servers must be 1–64")
	case f.room != 0 && f.html != "":
		fmt.Fprintln(stderr, "natpass lab: --html draws the pair matrix or a --replay run, not a room")
	default:
		return f, true
	}
	return f, false
}

func runLab(args []string, stdout, stderr io.Writer) int {
	f, ok := parseLabFlags(args, stderr)
	if !ok {
		return 2
	}
	if f.room != 0 {
		return runRoomLab(f.room, f.runs, f.servers, f.seed, f.loss, f.asJSON, stdout, stderr)
	}
	cells := lab.Cells()
	if f.a != "" || f.b != "" {
		cells = nil
		for _, c := range lab.Cells() {
			if cellMatches(c, f.a, f.b) {
				cells = append(cells, c)
			}
		}
		if len(cells) == 0 {
			fmt.Fprintf(stderr, "natpass lab: no cell matches --a %q --b %q (presets: %v, %s, %s)\n",
				f.a, f.b, sim.PresetNames(), lab.SameNATHairpin, lab.SameNATNoHairpin)
			return 2
		}
	}
	if f.replay != 0 {
		if len(cells) != 1 {
			fmt.Fprintln(stderr, "natpass lab: --replay needs --a and --b naming one cell")
			return 2
		}
		return runLabReplay(f, cells[0], stdout, stderr)
	}
	return runLabMatrix(f, cells, stdout, stderr)
}

// runLabReplay runs the one run of --replay, printing its events (or, with --html,
// drawing its timeline); exit 1 when its messages did not all arrive.
func runLabReplay(f labFlags, cell [2]string, stdout, stderr io.Writer) int {
	cfg := lab.RunConfig{A: cell[0], B: cell[1], Seed: f.replay, Loss: f.loss, Servers: f.servers}
	var r lab.Result
	if f.html == "" {
		cfg.Log = func(line string) { fmt.Fprintln(stdout, line) }
		r = lab.Run(cfg)
	} else {
		var tl *lab.Timeline
		r, tl = lab.RunTimeline(cfg)
		run := report.Run{Result: r, Timeline: tl, Loss: f.loss, Servers: f.servers}
		if err := writeHTML(f.html, func(w io.Writer) error { return report.WriteTimeline(w, run) }); err != nil {
			fmt.Fprintf(stderr, "natpass lab: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote the run's timeline to %s\n", f.html)
	}
	fmt.Fprintf(stdout, "%+v\n", r)
	if !r.Delivered {
		return 1
	}
	return 0
}

// runLabMatrix runs every cell, printing the table (or JSON lines) and with --html
// drawing the page; exit 1 when a cell missed its target.
func runLabMatrix(f labFlags, cells [][2]string, stdout, stderr io.Writer) int {
	started := time.Now()
	if !f.asJSON {
		fmt.Fprintf(stdout, "natpass lab: %d runs per cell, seed %d, %.0f%% loss, RTTs 20–150 ms, %d server(s) (simulated)\n\n",
			f.runs, f.seed, 100*f.loss, f.servers)
		fmt.Fprintf(stdout, "%-22s %-22s %7s %6s %9s %9s %9s  %-18s %-18s %s\n",
			"A", "B", "direct", "relay", "p50", "p95", "1st msg", "strategy", "oracle", "target")
	}
	missed := 0
	var results []lab.Cell
	for _, pair := range cells {
		c := lab.RunCell(lab.RunConfig{A: pair[0], B: pair[1], Seed: f.seed, Loss: f.loss, Servers: f.servers}, f.runs)
		results = append(results, c)
		if !c.MetTarget() {
			missed++
		}
		printLabCell(c, f.asJSON, stdout)
	}
	if !f.asJSON {
		fmt.Fprintf(stdout, "\n%d cells, %d missed their target, %.1fs\n", len(cells), missed, time.Since(started).Seconds())
	}
	if f.html != "" {
		m := report.Matrix{Runs: f.runs, Seed: f.seed, Loss: f.loss, Servers: f.servers, Cells: results}
		if err := writeHTML(f.html, func(w io.Writer) error { return report.WriteMatrix(w, m) }); err != nil {
			fmt.Fprintf(stderr, "natpass lab: %v\n", err)
			return 1
		}
		if !f.asJSON {
			fmt.Fprintf(stdout, "wrote the matrix page to %s\n", f.html)
		}
	}
	if missed > 0 {
		return 1
	}
	return 0
}

// printLabCell prints one cell as a table line or a JSON line.
func printLabCell(c lab.Cell, asJSON bool, stdout io.Writer) {
	out := labCell{
		A: c.A, B: c.B, Runs: c.Runs, Servers: c.Servers, Direct: c.Direct, Relay: c.Relay, Failed: c.Runs - c.Direct - c.Relay,
		FirstMsgP95: ms(c.FirstMsgP95),
		Strategy:    c.Strategy.String(), Expected: lab.OracleStrategy(c.A, c.B).String(), Target: 100 * c.Expected,
		DirectMsP50: ms(c.DirectP50), DirectMsP95: ms(c.DirectP95), Met: c.MetTarget(), Misses: c.Misses,
	}
	if asJSON {
		line, _ := json.Marshal(out)
		fmt.Fprintln(stdout, string(line))
		return
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

// writeHTML writes a page to the file named path through draw, replacing it.
func writeHTML(path string, draw func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := draw(&buf); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
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
func runRoomLab(n, runs, servers int, seed uint64, loss float64, asJSON bool, stdout, stderr io.Writer) int {
	if n < 2 || n > proto.MaxRoomMembers {
		fmt.Fprintf(stderr, "natpass lab: --room must be 2–%d\n", proto.MaxRoomMembers)
		return 2
	}
	started := time.Now()
	sum := lab.RunRoomsOn(lab.RoomConfig{Size: n, Loss: loss, Servers: servers}, runs, seed)
	if asJSON {
		line, _ := json.Marshal(sum)
		fmt.Fprintln(stdout, string(line))
	} else {
		fmt.Fprintf(stdout, "natpass lab: %d runs of a room of %d on %d server(s), seed %d, %.0f%% loss (simulated)\n", runs, n, servers, seed, 100*loss)
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
