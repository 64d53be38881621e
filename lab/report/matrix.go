package report

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/natpass/natpass/lab"
	"github.com/natpass/natpass/sim"
)

// Matrix is one run of the lab's matrix, as natpass lab prints it.
type Matrix struct {
	Runs    int // runs per cell
	Seed    uint64
	Loss    float64 // on every access link
	Servers int
	Cells   []lab.Cell // in any order; pairs of presets and the same-NAT cells
}

// defaultLoss is natpass lab's --loss default: replay commands name any other.
const defaultLoss = 0.01

// Sizes of the heat map, in SVG pixels.
const (
	cellW, cellH = 96, 64
	labelsW      = 190 // row labels left of the grid
	labelsH      = 130 // rotated column labels above it
	sameGap      = 40  // between the grid and the same-NAT row
)

// WriteMatrix writes the matrix page: a heat map of every cell's direct share
// (upper triangle: A is the row, B the column, in preset order; the same-NAT cells
// in a row of their own), each cell with its target, and on hover its counts,
// p50/p95 to direct, strategy and the seeds that missed; a legend; and the cells
// that missed their target with the command that replays them.
func WriteMatrix(w io.Writer, m Matrix) error {
	var p page
	p.head("natpass lab: direct share per NAT pair")
	missed := 0
	for i := range m.Cells {
		if !m.Cells[i].MetTarget() {
			missed++
		}
	}
	p.printf("<h1>natpass lab: direct share per NAT pair</h1>\n")
	p.printf("<p class=\"sub\">%d runs per cell, seed %d, %.0f%% loss, RTTs 20–150 ms, %d server(s), simulated. "+
		"%d cells, %d missed their target. Hover a cell for its numbers.</p>\n",
		m.Runs, m.Seed, 100*m.Loss, max(m.Servers, 1), len(m.Cells), missed)
	names, same := axis(m.Cells)
	gridW, gridH := len(names)*cellW, len(names)*cellH
	sameY := labelsH + gridH + sameGap
	legendY := sameY + cellH + 30
	if len(same) == 0 {
		legendY = labelsH + gridH + 30
	}
	width, height := labelsW+max(gridW, 2*cellW)+140, legendY+70 // room for the last rotated label
	p.printf("<svg id=\"matrix\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"direct share per NAT pair\">\n",
		width, height, width, height)
	p.gradient("share")
	p.axisLabels(names)
	for _, c := range m.Cells {
		if i := slices.Index(same, c.A); i >= 0 {
			p.cell(c, labelsW+i*cellW, sameY, sameNATName(c.A), m.Loss)
			continue
		}
		r, k := slices.Index(names, c.A), slices.Index(names, c.B)
		p.cell(c, labelsW+max(r, k)*cellW, labelsH+min(r, k)*cellH, "", m.Loss)
	}
	if len(same) > 0 {
		p.printf(`<text x="%d" y="%d" text-anchor="end" font-size="13">same NAT (both behind one</text>`, labelsW-8, sameY+cellH/2-2)
		p.printf(`<text x="%d" y="%d" text-anchor="end" font-size="13">port-restricted cone)</text>`+"\n", labelsW-8, sameY+cellH/2+14)
	}
	p.matrixLegend(legendY)
	p.printf("</svg>\n")
	p.missedList(m.Cells, m.Loss)
	p.tail()
	_, err := io.WriteString(w, p.String())
	return err
}

// axis returns the presets the pair cells name, in sim's preset order (the IPv4
// presets, then the IPv6 ones; unknown names after them, sorted), and the same-NAT
// cells present.
func axis(cells []lab.Cell) (names, same []string) {
	seen := map[string]bool{}
	for _, c := range cells {
		if c.A == lab.SameNATHairpin || c.A == lab.SameNATNoHairpin {
			same = append(same, c.A)
			continue
		}
		seen[c.A], seen[c.B] = true, true
	}
	for _, n := range append(sim.PresetNames(), sim.IPv6PresetNames()...) {
		if seen[n] {
			names = append(names, n)
			delete(seen, n)
		}
	}
	var rest []string
	for n := range seen {
		rest = append(rest, n)
	}
	slices.Sort(rest)
	return append(names, rest...), same
}

func sameNATName(cell string) string {
	if cell == lab.SameNATHairpin {
		return "hairpin"
	}
	return "no hairpin"
}

// axisLabels draws the row labels (A) left of the grid and the column labels (B)
// above it, rotated.
func (p *page) axisLabels(names []string) {
	for i, n := range names {
		p.printf(`<text x="%d" y="%d" text-anchor="end" font-size="13">%s</text>`,
			labelsW-8, labelsH+i*cellH+cellH/2+5, esc(n))
		x, y := labelsW+i*cellW+cellW/2, labelsH-8
		p.printf(`<text x="%d" y="%d" font-size="13" transform="rotate(-35 %d %d)">%s</text>`+"\n", x, y, x, y, esc(n))
	}
	p.printf(`<text x="%d" y="%d" font-size="12" fill="#666" text-anchor="end">A ↓   B →</text>`+"\n", labelsW-8, labelsH-8)
}

// cell draws one lab cell at (x, y) with its data attributes and hover title.
func (p *page) cell(c lab.Cell, x, y int, caption string, loss float64) {
	share := 0.0
	if c.Runs > 0 {
		share = float64(c.Direct) / float64(c.Runs)
	}
	p.printf(`<g class="cell" data-a="%s" data-b="%s" data-runs="%d" data-direct="%d" data-relay="%d" data-failed="%d" `+
		`data-share="%.4f" data-target="%.4f" data-p50-ms="%s" data-p95-ms="%s" data-met="%t">`,
		esc(c.A), esc(c.B), c.Runs, c.Direct, c.Relay, c.Failed, share, c.Expected, ms(c.DirectP50), ms(c.DirectP95), c.MetTarget())
	p.printf("<title>%s</title>", esc(cellTitle(c, share, loss)))
	p.printf(`<rect class="fill" x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="#fff" stroke-width="1"/>`,
		x+1, y+1, cellW-2, cellH-2, shareColor(share))
	cx := x + cellW/2
	if caption != "" {
		p.printf(`<text x="%d" y="%d" text-anchor="middle" font-size="10" fill="#333">%s</text>`, cx, y+12, esc(caption))
	}
	p.printf(`<text x="%d" y="%d" text-anchor="middle" font-size="17" font-weight="bold">%s</text>`, cx, y+29, pct(share))
	p.printf(`<text x="%d" y="%d" text-anchor="middle" font-size="10">%s</text>`, cx, y+44, esc(targetText(c.Expected)))
	p.printf(`<text x="%d" y="%d" text-anchor="middle" font-size="10">%s</text>`, cx, y+57, esc(p50Text(c)))
	if !c.MetTarget() {
		p.printf(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#000" stroke-width="3" stroke-dasharray="6 3"/>`,
			x+3, y+3, cellW-6, cellH-6)
		p.printf(`<text x="%d" y="%d" text-anchor="end" font-size="14" font-weight="bold">✗</text>`, x+cellW-7, y+17)
	}
	p.printf("</g>\n")
}

// targetText is the cell's target for people: the share it must reach.
func targetText(expected float64) string {
	switch expected {
	case 0:
		return "no target"
	case 1:
		return "target 100%"
	}
	return "target ≥ " + pct(expected)
}

func p50Text(c lab.Cell) string {
	if c.Direct == 0 {
		return "relay only"
	}
	return "p50 " + short(c.DirectP50)
}

// cellTitle is the hover text of a cell: everything natpass lab prints of it.
func cellTitle(c lab.Cell, share, loss float64) string {
	var b strings.Builder
	name := c.A + " × " + c.B
	if c.B == "" {
		name = c.A + " (both behind one NAT)"
	}
	fmt.Fprintf(&b, "%s\n%d of %d runs direct (%s), %d relay, %d failed\n", name, c.Direct, c.Runs, pct(share), c.Relay, c.Failed)
	verdict := "met"
	if !c.MetTarget() {
		verdict = "MISSED: " + missReasons(c)
	}
	fmt.Fprintf(&b, "%s: %s\n", targetText(c.Expected), verdict)
	fmt.Fprintf(&b, "Connect to direct: p50 %s, p95 %s\nfirst message p95 %s\n", short(c.DirectP50), short(c.DirectP95), short(c.FirstMsgP95))
	fmt.Fprintf(&b, "strategy %v (oracle: %v)", c.Strategy, lab.OracleStrategy(c.A, c.B))
	if len(c.Misses) > 0 {
		fmt.Fprintf(&b, "\nnot direct: seeds %v\nreplay: %s", firstSeeds(c.Misses), replayCommand(c, loss))
	}
	return b.String()
}

// firstSeeds lists up to ten seeds, saying how many more there are.
func firstSeeds(seeds []uint64) string {
	if len(seeds) <= 10 {
		return fmt.Sprint(seeds)
	}
	return fmt.Sprintf("%v and %d more", seeds[:10], len(seeds)-10)
}

// replayCommand is the natpass lab command that draws the timeline of one of the
// cell's runs that was not direct.
func replayCommand(c lab.Cell, loss float64) string {
	cmd := "natpass lab --a " + c.A
	if c.B != "" {
		cmd += " --b " + c.B
	}
	if c.Servers > 1 {
		cmd += fmt.Sprintf(" --servers %d", c.Servers)
	}
	if loss != defaultLoss {
		cmd += fmt.Sprintf(" --loss %g", loss)
	}
	seed := "SEED"
	if len(c.Misses) > 0 {
		seed = fmt.Sprint(c.Misses[0])
	}
	return cmd + " --replay " + seed + " --html run.html"
}

// matrixLegend draws the colour bar and the missed-target marking at y.
func (p *page) matrixLegend(y int) {
	x, barW := labelsW, 240
	p.printf(`<g id="legend"><text x="%d" y="%d" font-size="12">share of runs with a direct path (the rest relayed)</text>`, x, y)
	p.printf(`<rect x="%d" y="%d" width="%d" height="14" fill="url(#share)" stroke="#999"/>`, x, y+8, barW)
	for _, s := range []float64{0, 0.25, 0.5, 0.75, 1} {
		tx := x + int(s*float64(barW))
		p.printf(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`, tx, tx, y+22, y+27)
		p.printf(`<text x="%d" y="%d" font-size="11" text-anchor="middle">%s</text>`, tx, y+39, pct(s))
	}
	mx := x + barW + 40
	p.printf(`<rect x="%d" y="%d" width="28" height="20" fill="#eee" stroke="#000" stroke-width="3" stroke-dasharray="6 3"/>`, mx, y+5)
	p.printf(`<text x="%d" y="%d" font-size="12">✗ missed its target: too few direct runs, a run that `+
		`failed, or first message p95 over %v</text>`, mx+36, y+20, lab.FirstMsgTarget)
	p.printf(`<text x="%d" y="%d" font-size="12">target: the share the cell must reach (issue 6); `+
		`p50: Connect to direct, virtual time</text></g>`+"\n", mx+36, y+38)
}

// missedList lists the cells that missed their target with a command replaying one
// of their runs as a timeline page.
func (p *page) missedList(cells []lab.Cell, loss float64) {
	var missed []lab.Cell
	for _, c := range cells {
		if !c.MetTarget() {
			missed = append(missed, c)
		}
	}
	if len(missed) == 0 {
		p.printf("<p>Every cell met its target.</p>\n")
		return
	}
	p.printf("<h2>Missed their target</h2>\n<table><tr><th>cell</th><th>why</th><th>seeds not direct</th><th>timeline of one</th></tr>\n")
	for _, c := range missed {
		seeds, cmd := "-", "-"
		if len(c.Misses) > 0 {
			seeds, cmd = firstSeeds(c.Misses), replayCommand(c, loss)
		}
		p.printf("<tr><td>%s</td><td>%s</td><td>%s</td><td><code>%s</code></td></tr>\n",
			esc(cellName(c.A, c.B)), esc(missReasons(c)), esc(seeds), esc(cmd))
	}
	p.printf("</table>\n")
}

// missReasons says which of MetTarget's conditions the cell broke.
func missReasons(c lab.Cell) string {
	var why []string
	if c.Expected > 0 && float64(c.Direct) < c.Expected*float64(c.Runs) {
		why = append(why, fmt.Sprintf("%d of %d direct, under %s", c.Direct, c.Runs, pct(c.Expected)))
	}
	if n := c.Runs - c.Direct - c.Relay; n > 0 {
		why = append(why, fmt.Sprintf("%d run(s) failed", n))
	}
	if c.FirstMsgP95 > lab.FirstMsgTarget {
		why = append(why, fmt.Sprintf("first message p95 %s over %v", short(c.FirstMsgP95), lab.FirstMsgTarget))
	}
	return strings.Join(why, "; ")
}
