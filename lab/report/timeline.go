package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/natpass/natpass/lab"
	"github.com/natpass/natpass/proto"
)

// Run is one replayed run: its result and what lab.RunTimeline recorded.
type Run struct {
	Result   lab.Result
	Timeline *lab.Timeline
	Loss     float64 // on every access link
	Servers  int
}

// Sizes of the timeline, in SVG pixels.
const (
	tlWidth      = 1200
	tlPlotX      = 150 // the time axis starts here; lane names left of it
	tlPlotRight  = 30
	labelRowH    = 15
	maxLabelRows = 8
	charW        = 6.3 // a label's width per character at font-size 11, roughly
)

// pathColors colour the path bar: no path yet (or lost), relay, direct.
var pathColors = map[proto.PathKind]string{proto.PathNone: "#c8c8c8", proto.PathRelay: "#f0a040", proto.PathDirect: "#3a9a5a"}

// markColors colour the event dots by kind.
var markColors = map[lab.MarkKind]string{
	lab.MarkRegistered: "#607d8b", lab.MarkNATReport: "#607d8b", lab.MarkConnect: "#000",
	lab.MarkIntroduced: "#1f6fb4", lab.MarkConnected: "#7b3fa0", lab.MarkFirstMessage: "#7b3fa0",
	lab.MarkServerChanged: "#c0392b", lab.MarkPeerError: "#c0392b", lab.MarkClosed: "#c0392b",
}

// scale maps virtual time onto the plot's x axis.
type scale struct{ end proto.Instant }

func (s scale) x(at proto.Instant) float64 {
	return tlPlotX + float64(at)/float64(s.end)*float64(tlWidth-tlPlotX-tlPlotRight)
}

// WriteTimeline writes the page of one run: a swimlane per side on the virtual-time
// axis with its events (registered, NAT measured, introduced, relay ready, session
// up, direct confirmed, path changes), a bar of its path over time and ticks for
// every probe it sent and received while it had no direct path; then every event
// as a table.
func WriteTimeline(w io.Writer, r Run) error {
	tl := r.Timeline
	var p page
	title := fmt.Sprintf("natpass lab run: %s, seed %d", cellName(tl.A, tl.B), tl.Seed)
	p.head(title)
	p.printf("<h1>%s</h1>\n<p class=\"sub\">%s</p>\n", esc(title), esc(outcome(r)))
	sc := scale{end: max(tl.End+tl.End/50, proto.Instant(time.Millisecond))}
	lanes := []lane{newLane("a", presetOf(tl, "a"), tl, sc), newLane("b", presetOf(tl, "b"), tl, sc)}
	y := 40
	for i := range lanes {
		lanes[i].top = y
		y += lanes[i].height() + 20
	}
	height := y + 80
	p.printf("<svg id=\"timeline\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"timeline of the run\">\n",
		tlWidth, height, tlWidth, height)
	for _, l := range lanes { // backgrounds first: the grid goes over them
		p.printf(`<rect x="4" y="%d" width="%d" height="%d" fill="#f4f4f4"/>`+"\n", l.top-6, tlWidth-8, l.height()+6)
	}
	p.timeAxis(sc, y)
	for _, l := range lanes {
		p.drawLane(l, sc, tl)
	}
	if tl.Connect != 0 {
		x := sc.x(tl.Connect)
		p.printf(`<line x1="%.1f" x2="%.1f" y1="24" y2="%d" stroke="#000" stroke-dasharray="4 3"/>`, x, x, y)
		p.printf(`<text x="%.1f" y="18" font-size="12" text-anchor="middle">A calls Connect</text>`+"\n", x)
	}
	p.timelineLegend(y + 60)
	p.printf("</svg>\n")
	p.markTable(tl)
	p.tail()
	_, err := io.WriteString(w, p.String())
	return err
}

func cellName(a, b string) string {
	if b == "" {
		return a + " (both behind one NAT)"
	}
	return a + " × " + b
}

// presetOf names the NAT in front of side.
func presetOf(tl *lab.Timeline, side string) string {
	if tl.B == "" {
		return "same NAT"
	}
	if side == "a" {
		return tl.A
	}
	return tl.B
}

// outcome says in one line how the run ended.
func outcome(r Run) string {
	res := r.Result
	var b strings.Builder
	switch {
	case res.Direct && res.Delivered:
		fmt.Fprintf(&b, "Direct: both sides confirmed a direct path %s after Connect", short(res.ToDirect))
	case res.Relay:
		b.WriteString("Relayed: every message arrived through the server, no direct path")
	default:
		fmt.Fprintf(&b, "Failed: %s", res.Err)
	}
	fmt.Fprintf(&b, "; first message %s after Connect; strategy %v; peer RTT %s; %.0f%% loss, %d server(s), simulated. "+
		"Hover a dot for its details.", short(res.FirstMessage), res.Strategy, short(res.PeerRTT), 100*r.Loss, max(r.Servers, 1))
	return b.String()
}

// timeAxis draws the axis under the lanes at y, with gridlines up to the top.
func (p *page) timeAxis(sc scale, y int) {
	step := niceStep(time.Duration(sc.end) / 10)
	p.printf(`<g id="axis"><line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`, tlPlotX, tlWidth-tlPlotRight, y, y)
	for t := time.Duration(0); proto.Instant(t) <= sc.end; t += step {
		x := sc.x(proto.Instant(t))
		p.printf(`<line x1="%.1f" x2="%.1f" y1="30" y2="%d" stroke="#eee"/>`, x, x, y)
		p.printf(`<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#333"/>`, x, x, y, y+5)
		p.printf(`<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%v</text>`, x, y+18, t)
	}
	p.printf(`<text x="%d" y="%d" font-size="12" fill="#555">virtual time since the simulation began</text></g>`+"\n", tlPlotX, y+34)
}

// niceStep rounds d up to 1, 2 or 5 times a power of ten milliseconds (at least 1 ms).
func niceStep(d time.Duration) time.Duration {
	for unit := time.Millisecond; ; unit *= 10 {
		for _, k := range []time.Duration{1, 2, 5} {
			if k*unit >= d {
				return k * unit
			}
		}
	}
}

// timelineLegend explains the colours at y.
func (p *page) timelineLegend(y int) {
	x := tlPlotX
	p.printf(`<g id="legend">`)
	for _, k := range []proto.PathKind{proto.PathNone, proto.PathRelay, proto.PathDirect} {
		p.printf(`<rect x="%d" y="%d" width="22" height="10" fill="%s"/><text x="%d" y="%d" font-size="12">path %v</text>`,
			x, y-9, pathColors[k], x+28, y, k)
		x += 110
	}
	p.printf(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#1f4fa0" stroke-width="2"/>`, x, x, y-10, y)
	p.printf(`<text x="%d" y="%d" font-size="12">probe sent</text>`, x+8, y)
	x += 90
	p.printf(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#b0308a" stroke-width="2"/>`, x, x, y-10, y)
	p.printf(`<text x="%d" y="%d" font-size="12">probe received (a packet from the peer, not the server, before the side's direct path)</text>`, x+8, y)
	p.printf("</g>\n")
}
