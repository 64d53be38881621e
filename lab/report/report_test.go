package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natpass/natpass/lab"
	"github.com/natpass/natpass/proto"
)

// element is any XML element with its attributes and children, for reading the
// pages' SVG back.
type element struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []element  `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (e element) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// all returns every element below e (e included) whose class is class.
func (e element) all(class string) []element {
	var out []element
	if e.attr("class") == class {
		out = append(out, e)
	}
	for _, c := range e.Children {
		out = append(out, c.all(class)...)
	}
	return out
}

// title is the text of e's <title> child.
func (e element) title() string {
	for _, c := range e.Children {
		if c.XMLName.Local == "title" {
			return c.Text
		}
	}
	return ""
}

// parseSVG finds the page's <svg id="id"> element and parses it as XML: the page
// draws well-formed SVG, and a page that does not fails here.
func parseSVG(t *testing.T, page []byte, id string) element {
	t.Helper()
	start := bytes.Index(page, []byte(`<svg id="`+id+`"`))
	end := bytes.Index(page[max(start, 0):], []byte("</svg>"))
	if start < 0 || end < 0 {
		t.Fatalf("no <svg id=%q> in the page", id)
	}
	var svg element
	if err := xml.Unmarshal(page[start:start+end+len("</svg>")], &svg); err != nil {
		t.Fatalf("the SVG is not well-formed XML: %v", err)
	}
	return svg
}

// selfContained fails the test when the page would fetch anything: no URL with a
// scheme, no script, no stylesheet link, no import.
func selfContained(t *testing.T, page []byte) {
	t.Helper()
	for _, bad := range []string{"://", "<script", "<link", "@import", "<img", "<iframe"} {
		if i := bytes.Index(page, []byte(bad)); i >= 0 {
			t.Errorf("page holds %q: %q", bad, page[max(i-40, 0):min(i+40, len(page))])
		}
	}
}

// Every lab cell the matrix ran is one SVG cell carrying its numbers, and the page
// needs nothing from outside.
func TestMatrixCellsCarryTheirResults(t *testing.T) {
	var cells []lab.Cell
	for _, pair := range [][2]string{{"linux", "cgnat"}, {"symmetric-random", "symmetric-random"},
		{"firewall", "symmetric-random"}, {lab.SameNATNoHairpin, ""}} {
		cells = append(cells, lab.RunCell(lab.RunConfig{A: pair[0], B: pair[1], Seed: 3, Loss: 0.01}, 2))
	}
	// A made-up cell that missed, so the page has a miss to draw.
	cells = append(cells, lab.Cell{A: "open", B: "linux", Runs: 4, Direct: 1, Relay: 2, Failed: 1, Expected: 1,
		DirectP50: 700 * time.Millisecond, DirectP95: 700 * time.Millisecond, Misses: []uint64{11, 12, 13}})
	var buf bytes.Buffer
	if err := WriteMatrix(&buf, Matrix{Runs: 2, Seed: 3, Loss: 0.01, Servers: 1, Cells: cells}); err != nil {
		t.Fatal(err)
	}
	selfContained(t, buf.Bytes())
	drawn := parseSVG(t, buf.Bytes(), "matrix").all("cell")
	if len(drawn) != len(cells) {
		t.Fatalf("%d cells drawn, %d ran", len(drawn), len(cells))
	}
	for i, c := range cells {
		g := drawn[i]
		share := float64(c.Direct) / float64(c.Runs)
		want := map[string]string{"data-a": c.A, "data-b": c.B, "data-runs": strconv.Itoa(c.Runs),
			"data-direct": strconv.Itoa(c.Direct), "data-share": fmt.Sprintf("%.4f", share),
			"data-target": fmt.Sprintf("%.4f", c.Expected), "data-met": strconv.FormatBool(c.MetTarget())}
		for k, v := range want {
			if got := g.attr(k); got != v {
				t.Errorf("cell %s × %s: %s=%q, want %q", c.A, c.B, k, got, v)
			}
		}
		if !strings.Contains(g.title(), c.A) || !strings.Contains(g.title(), fmt.Sprintf("%d of %d runs direct", c.Direct, c.Runs)) {
			t.Errorf("cell %s × %s: hover text %q lacks its name or counts", c.A, c.B, g.title())
		}
	}
	if missed := drawn[len(drawn)-1].title(); !strings.Contains(missed, "MISSED") || !strings.Contains(missed, "--replay 11") {
		t.Errorf("the missed cell's hover text %q does not say so or how to replay it", missed)
	}
	if !bytes.Contains(buf.Bytes(), []byte("natpass lab --a open --b linux --replay 11 --html run.html")) {
		t.Errorf("the page does not list the missed cell's replay command")
	}
}

// The timeline page draws every mark of the run on its side, the probe counts and
// the path each side ended on.
func TestTimelinePageDrawsEveryMark(t *testing.T) {
	res, tl := lab.RunTimeline(lab.RunConfig{A: "linux", B: "cgnat", Seed: 5, Loss: 0.01})
	if !res.Direct {
		t.Fatalf("seed 5: linux × cgnat not direct: %+v", res)
	}
	var buf bytes.Buffer
	if err := WriteTimeline(&buf, Run{Result: res, Timeline: tl, Loss: 0.01, Servers: 1}); err != nil {
		t.Fatal(err)
	}
	selfContained(t, buf.Bytes())
	svg := parseSVG(t, buf.Bytes(), "timeline")
	marks := svg.all("mark")
	if len(marks) != len(tl.Marks) {
		t.Fatalf("%d marks drawn, %d recorded", len(marks), len(tl.Marks))
	}
	drawn := map[string]int{}
	for _, g := range marks {
		drawn[g.attr("data-side")+" "+g.attr("data-kind")+" "+g.attr("data-label")+" "+g.attr("data-at-ms")]++
	}
	for _, m := range tl.Marks {
		key := fmt.Sprintf("%s %v %s %s", m.Side, m.Kind, m.Label, ms(time.Duration(m.At)))
		if drawn[key] == 0 {
			t.Errorf("mark %q not drawn", key)
		}
		drawn[key]--
	}
	for _, g := range svg.all("probes") {
		i := map[string]int{"a": 0, "b": 1}[g.attr("data-side")]
		want := tl.ProbesReceived[i]
		if g.attr("data-sent") == "true" {
			want = tl.ProbesSent[i]
		}
		if g.attr("data-count") != strconv.Itoa(want) || want == 0 {
			t.Errorf("probes of %s (sent %s): drawn count %s, recorded %d", g.attr("data-side"), g.attr("data-sent"), g.attr("data-count"), want)
		}
	}
	for _, lane := range svg.all("lane") {
		paths := lane.all("path")
		if len(paths) == 0 || paths[len(paths)-1].attr("data-path") != proto.PathDirect.String() {
			t.Errorf("side %s: the path bar does not end direct", lane.attr("data-side"))
		}
	}
}

func TestNiceStep(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{0: time.Millisecond, 3 * time.Millisecond: 5 * time.Millisecond,
		190 * time.Millisecond: 200 * time.Millisecond, 3 * time.Second: 5 * time.Second, 10 * time.Second: 10 * time.Second} {
		if got := niceStep(d); got != want {
			t.Errorf("niceStep(%v) = %v, want %v", d, got, want)
		}
	}
}
