package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/natpass/natpass/lab"
	"github.com/natpass/natpass/proto"
)

// lane is one side's swimlane: its marks with the label row of each, placed so
// that labels do not overlap (up to maxLabelRows rows; more share the last).
type lane struct {
	side, preset string
	marks        []lab.Mark
	rows         []int  // label row of each mark, 0 nearest the dots
	rightward    []bool // label starts at the dot (false: ends there, near the right edge)
	nrows        int
	top          int // y of the lane's top, set by the caller
}

func newLane(side, preset string, tl *lab.Timeline, sc scale) lane {
	l := lane{side: side, preset: preset, nrows: 1}
	var rowEnd []float64
	for _, m := range tl.Marks {
		if m.Side != side {
			continue
		}
		x, w := sc.x(m.At), charW*float64(len([]rune(m.Label)))+6
		right := x+w <= tlWidth-4
		lo := x
		if !right {
			lo = x - w
		}
		row := len(rowEnd)
		for r, end := range rowEnd {
			if end+4 <= lo {
				row = r
				break
			}
		}
		switch {
		case row < len(rowEnd):
		case row < maxLabelRows:
			rowEnd = append(rowEnd, 0)
		default:
			row = maxLabelRows - 1
		}
		rowEnd[row] = max(rowEnd[row], lo+w)
		l.marks, l.rows, l.rightward = append(l.marks, m), append(l.rows, row), append(l.rightward, right)
	}
	l.nrows = max(len(rowEnd), 1)
	return l
}

// Vertical layout of a lane below its labels.
func (l lane) dotY() int   { return l.top + l.nrows*labelRowH + 14 }
func (l lane) height() int { return l.nrows*labelRowH + 14 + 58 }

// drawLane draws one lane: its name, the path bar, the probes and the marks.
func (p *page) drawLane(l lane, sc scale, tl *lab.Timeline) {
	y := l.dotY()
	p.printf(`<g class="lane" data-side="%s">`, esc(l.side))
	p.printf(`<text x="12" y="%d" font-size="15" font-weight="bold">side %s</text>`, y-6, esc(l.side))
	p.printf(`<text x="12" y="%d" font-size="12" fill="#555">%s</text>`, y+9, esc(l.preset))
	p.printf(`<text x="%d" y="%d" font-size="10" fill="#555" text-anchor="end">path</text>`, tlPlotX-6, y+20)
	p.printf(`<text x="%d" y="%d" font-size="10" fill="#555" text-anchor="end">probes sent</text>`, tlPlotX-6, y+38)
	p.printf(`<text x="%d" y="%d" font-size="10" fill="#555" text-anchor="end">received</text>`, tlPlotX-6, y+52)
	p.pathBar(l, sc, y+11)
	i := 0
	if l.side == "b" {
		i = 1
	}
	p.probeTicks(tl, l.side, true, tl.ProbesSent[i], sc, y+30)
	p.probeTicks(tl, l.side, false, tl.ProbesReceived[i], sc, y+44)
	p.printf(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#bbb"/>`, tlPlotX, tlWidth-tlPlotRight, y, y)
	for k, m := range l.marks {
		p.mark(m, sc.x(m.At), y, y-10-l.rows[k]*labelRowH, l.rightward[k])
	}
	p.printf("</g>\n")
}

// pathBar draws the side's path over time at y: nothing before its first path
// event, then one segment per path, coloured by kind.
func (p *page) pathBar(l lane, sc scale, y int) {
	var from proto.Instant
	kind, started := proto.PathNone, false
	segment := func(to proto.Instant) {
		if started && to > from {
			x0, x1 := sc.x(from), sc.x(to)
			p.printf(`<rect class="path" data-path="%v" x="%.1f" y="%d" width="%.1f" height="12" fill="%s"><title>path %v from %s to %s</title></rect>`,
				kind, x0, y, max(x1-x0, 1), pathColors[kind], kind, short(time.Duration(from)), short(time.Duration(to)))
		}
	}
	for _, m := range l.marks {
		if m.Kind != lab.MarkPath {
			continue
		}
		segment(m.At)
		from, kind, started = m.At, m.Path, true
	}
	segment(sc.end)
}

// probeTicks draws one tick per probe the side sent (or received) at y, as one
// path; ticks closer than half a pixel merge.
func (p *page) probeTicks(tl *lab.Timeline, side string, sent bool, count int, sc scale, y int) {
	var d strings.Builder
	last, kept := -1.0, 0
	for _, pr := range tl.Probes {
		if pr.Side != side || pr.Sent != sent {
			continue
		}
		kept++
		if x := sc.x(pr.At); x-last >= 0.5 {
			fmt.Fprintf(&d, "M%.1f %dv10", x, y)
			last = x
		}
	}
	color, verb := "#1f4fa0", "sent"
	if !sent {
		color, verb = "#b0308a", "received"
	}
	title := fmt.Sprintf("%d probes %s by %s while it had no direct path", count, verb, side)
	if kept < count {
		title += fmt.Sprintf(" (%d drawn: the recording keeps the first %d of the run)", kept, lab.MaxProbes)
	}
	p.printf(`<g class="probes" data-side="%s" data-sent="%t" data-count="%d"><title>%s</title>`, esc(side), sent, count, esc(title))
	p.printf(`<rect x="%d" y="%d" width="%d" height="10" fill="transparent"/>`, tlPlotX, y, tlWidth-tlPlotX-tlPlotRight)
	if d.Len() > 0 {
		p.printf(`<path d="%s" stroke="%s" stroke-width="1" opacity="0.7"/>`, d.String(), color)
	}
	p.printf("</g>\n")
}

// mark draws one event: a dot on the lane's line at (x, y), its label at labelY
// joined to the dot, and its details on hover.
func (p *page) mark(m lab.Mark, x float64, y, labelY int, rightward bool) {
	color := markColors[m.Kind]
	if m.Kind == lab.MarkPath {
		color = pathColors[m.Path]
		if m.Path == proto.PathNone {
			color = "#777"
		}
	}
	p.printf(`<g class="mark" data-side="%s" data-kind="%v" data-at-ms="%s" data-label="%s">`,
		esc(m.Side), m.Kind, ms(time.Duration(m.At)), esc(m.Label))
	p.printf("<title>%s  side %s\n%s</title>", short(time.Duration(m.At)), esc(m.Side), esc(m.Detail))
	p.printf(`<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#aaa"/>`, x, x, labelY+3, y)
	anchor, tx := "start", x+2
	if !rightward {
		anchor, tx = "end", x-2
	}
	p.printf(`<text x="%.1f" y="%d" font-size="11" text-anchor="%s">%s</text>`, tx, labelY, anchor, esc(m.Label))
	p.printf(`<circle cx="%.1f" cy="%d" r="5" fill="%s" stroke="#fff"/>`, x, y, color)
	p.printf("</g>\n")
}

// markTable lists every mark, and the probe counts, below the picture.
func (p *page) markTable(tl *lab.Timeline) {
	p.printf("<table><tr><th>virtual time</th><th>side</th><th>event</th><th>details</th></tr>\n")
	for _, m := range tl.Marks {
		p.printf("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
			esc(short(time.Duration(m.At))), esc(m.Side), esc(m.Label), esc(m.Detail))
	}
	p.printf("</table>\n<p>Probes (packets between the peers before a side's direct path): a sent %d, received %d; "+
		"b sent %d, received %d.</p>\n", tl.ProbesSent[0], tl.ProbesReceived[0], tl.ProbesSent[1], tl.ProbesReceived[1])
}
