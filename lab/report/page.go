// Package report draws the lab as pictures: one self-contained HTML page per call,
// with inline SVG and inline CSS, no script and nothing fetched from the network, so
// the file opens anywhere (natpass lab --html FILE).
//
// WriteMatrix draws a matrix run (lab.RunCell per cell) as a heat map of the direct
// share; WriteTimeline draws one run recorded by lab.RunTimeline as a swimlane per
// side on the virtual-time axis. Every drawn cell and mark carries data-* attributes
// with its numbers, so tests (and other tools) read the picture back with
// encoding/xml: the <svg> elements are well-formed XML.
package report

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// page collects one HTML page; its methods append to it and never fail (the caller
// writes it out once).
type page struct{ strings.Builder }

// esc escapes text for HTML and for the XML of the SVG alike.
func esc(s string) string { return html.EscapeString(s) }

// printf appends a formatted piece of markup; arguments are escaped by the caller.
func (p *page) printf(format string, args ...any) { fmt.Fprintf(&p.Builder, format, args...) }

// css is the whole page's style: system fonts, a hover outline on cells and marks.
const css = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.sub { color: #555; margin: 0 0 16px; }
svg text { font-family: system-ui, sans-serif; }
svg .cell:hover rect.fill, svg .mark:hover circle { stroke: #000; stroke-width: 2.5; }
table { border-collapse: collapse; margin-top: 16px; font-size: 13px; }
td, th { padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }
th { border-bottom: 1px solid #999; }
code { background: #f3f3f3; padding: 0 3px; }
`

// head opens the page with its title and style.
func (p *page) head(title string) {
	p.printf("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	p.printf("<title>%s</title>\n<style>%s</style>\n</head>\n<body>\n", esc(title), css)
}

// tail closes the page.
func (p *page) tail() { p.printf("</body>\n</html>\n") }

// shareColor is the heat map's colour for a direct share in [0, 1]: red (relay
// only) through yellow to green (all direct), light enough for black text.
func shareColor(share float64) string {
	stops := [...][3]float64{{232, 89, 74}, {254, 224, 139}, {82, 184, 106}}
	share = math.Min(math.Max(share, 0), 1)
	k := 0
	f := share * 2
	if f > 1 {
		k, f = 1, f-1
	}
	var rgb [3]int
	for i := range rgb {
		rgb[i] = int(math.Round(stops[k][i] + f*(stops[k+1][i]-stops[k][i])))
	}
	return fmt.Sprintf("#%02x%02x%02x", rgb[0], rgb[1], rgb[2])
}

// gradient defines the legend's colour bar as SVG gradient id, from shareColor.
func (p *page) gradient(id string) {
	p.printf(`<defs><linearGradient id="%s" x1="0" x2="1" y1="0" y2="0">`, id)
	for _, s := range []float64{0, 0.25, 0.5, 0.75, 1} {
		p.printf(`<stop offset="%g" stop-color="%s"/>`, s, shareColor(s))
	}
	p.printf("</linearGradient></defs>\n")
}

// ms formats a duration in milliseconds for data attributes ("" for none).
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}

// short formats a duration for people: "-" for none, else rounded to the
// millisecond.
func short(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

// pct formats a share as a whole percentage.
func pct(share float64) string { return fmt.Sprintf("%.0f%%", 100*share) }
