package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/natpass/natpass/lab"
)

// The JSON lines of `natpass lab --json` carry exactly the fields other tools read.
func TestLabJSONFields(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"lab", "--runs", "2", "--json", "--a", "linux", "--b", "cgnat"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want one cell: %q", len(lines), out.String())
	}
	var cell map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &cell); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "runs", "direct", "relay", "failed", "strategy", "expected",
		"direct_ms_p50", "direct_ms_p95", "first_msg_ms_p95"} {
		if _, ok := cell[k]; !ok {
			t.Errorf("field %q missing from %s", k, lines[0])
		}
	}
	if cell["a"] != "linux" || cell["b"] != "cgnat" || cell["runs"] != 2.0 || cell["direct"] != 2.0 {
		t.Errorf("cell %v: want 2 direct runs of linux × cgnat", cell)
	}
}

func TestLabRejectsUnknownPreset(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"lab", "--a", "no-such-nat"}, &out, &errOut); code != 2 {
		t.Errorf("exit %d for an unknown preset, want 2", code)
	}
	if !strings.Contains(errOut.String(), "no cell matches") {
		t.Errorf("stderr %q does not say why", errOut.String())
	}
}

// `natpass lab --room N --json` prints one summary line with the fields issue 14
// names, and every broadcast of the runs arrives.
func TestLabRoomJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"lab", "--room", "4", "--runs", "3", "--json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	var sum map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &sum); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	for _, k := range []string{"room_size", "runs", "links", "links_direct", "links_relay",
		"broadcasts_expected", "broadcasts_delivered", "mesh_ms_p95"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("field %q missing from %s", k, out.String())
		}
	}
	if sum["room_size"] != 4.0 || sum["runs"] != 3.0 || sum["links"] != 18.0 ||
		sum["broadcasts_delivered"] != sum["broadcasts_expected"] || sum["broadcasts_expected"] != 3*4*3*20.0 {
		t.Errorf("summary %v: want 3 runs of 4 members, 18 links, every broadcast delivered", sum)
	}
	if code := run([]string{"lab", "--room", "17"}, &out, &errOut); code != 2 {
		t.Errorf("--room 17: exit %d, want 2", code)
	}
}

// TestLabRoomOnServers: --servers spreads the room's members over a simulated
// cluster and the summary says how many servers held it.
func TestLabRoomOnServers(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"lab", "--room", "4", "--servers", "2", "--runs", "2", "--json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	var sum map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &sum); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if sum["servers"] != 2.0 || sum["links"] != 12.0 || sum["broadcasts_delivered"] != sum["broadcasts_expected"] {
		t.Errorf("summary %v: want 2 servers, 12 links, every broadcast delivered", sum)
	}
}

// svgElement is any XML element with its attributes and children, for reading the
// page's SVG back.
type svgElement struct {
	XMLName  xml.Name
	Attrs    []xml.Attr   `xml:",any,attr"`
	Children []svgElement `xml:",any"`
}

func (e svgElement) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// withClass returns every element below e (e included) whose class is class.
func (e svgElement) withClass(class string) []svgElement {
	var out []svgElement
	if e.attr("class") == class {
		out = append(out, e)
	}
	for _, c := range e.Children {
		out = append(out, c.withClass(class)...)
	}
	return out
}

// readSVG reads the page at path and parses its <svg id="id"> as XML.
func readSVG(t *testing.T, path, id string) svgElement {
	t.Helper()
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(page, []byte("://")) || bytes.Contains(page, []byte("<script")) {
		t.Errorf("%s is not self-contained: it names a URL or a script", path)
	}
	start := bytes.Index(page, []byte(`<svg id="`+id+`"`))
	end := bytes.Index(page[max(start, 0):], []byte("</svg>"))
	if start < 0 || end < 0 {
		t.Fatalf("no <svg id=%q> in %s", id, path)
	}
	var svg svgElement
	if err := xml.Unmarshal(page[start:start+end+len("</svg>")], &svg); err != nil {
		t.Fatalf("%s: the SVG is not well-formed XML: %v", path, err)
	}
	return svg
}

// `natpass lab --html FILE` draws one SVG cell per lab cell, holding the direct
// share the same run printed as JSON.
func TestLabHTMLMatrix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lab.html")
	var out, errOut bytes.Buffer
	code := run([]string{"lab", "--runs", "2", "--json", "--html", path}, &out, &errOut)
	if code != 0 && code != 1 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	printed := map[string]labCell{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var c labCell
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		printed[c.A+"|"+c.B] = c
	}
	drawn := readSVG(t, path, "matrix").withClass("cell")
	if len(drawn) != len(lab.Cells()) || len(printed) != len(lab.Cells()) {
		t.Fatalf("%d cells drawn, %d printed, the lab has %d", len(drawn), len(printed), len(lab.Cells()))
	}
	for _, g := range drawn {
		c, ok := printed[g.attr("data-a")+"|"+g.attr("data-b")]
		if !ok {
			t.Errorf("drawn cell %s × %s was not run", g.attr("data-a"), g.attr("data-b"))
			continue
		}
		delete(printed, c.A+"|"+c.B)
		share := fmt.Sprintf("%.4f", float64(c.Direct)/float64(c.Runs))
		if g.attr("data-direct") != strconv.Itoa(c.Direct) || g.attr("data-runs") != "2" || g.attr("data-share") != share ||
			g.attr("data-met") != strconv.FormatBool(c.Met) {
			t.Errorf("cell %s × %s drawn direct=%s runs=%s share=%s met=%s; the run printed %d of %d (%s), met %v",
				c.A, c.B, g.attr("data-direct"), g.attr("data-runs"), g.attr("data-share"), g.attr("data-met"), c.Direct, c.Runs, share, c.Met)
		}
	}
}

// `natpass lab --html FILE --replay SEED --a X --b Y` draws the run's timeline: both
// sides end on a direct path.
func TestLabHTMLReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.html")
	var out, errOut bytes.Buffer
	if code := run([]string{"lab", "--html", path, "--replay", "5", "--a", "linux", "--b", "cgnat"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	direct := map[string]bool{}
	for _, m := range readSVG(t, path, "timeline").withClass("mark") {
		if m.attr("data-label") == "direct confirmed" {
			direct[m.attr("data-side")] = true
		}
	}
	if !direct["a"] || !direct["b"] {
		t.Errorf("direct confirmed drawn on %v, want both sides", direct)
	}
	if code := run([]string{"lab", "--html", path, "--room", "4"}, &out, &errOut); code != 2 {
		t.Errorf("--html with --room: exit %d, want 2", code)
	}
}

// TestLabFlagsFromEnvironment: lab reads NATPASS_LAB_<FLAG> like every command,
// and the command line wins.
func TestLabFlagsFromEnvironment(t *testing.T) {
	t.Setenv("NATPASS_LAB_RUNS", "1")
	t.Setenv("NATPASS_LAB_ROOM", "2")
	var out, errOut bytes.Buffer
	if code := run([]string{"lab", "--json", "--room", "3"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	var sum map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &sum); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if sum["runs"] != 1.0 || sum["room_size"] != 3.0 {
		t.Errorf("summary %v: want runs 1 (NATPASS_LAB_RUNS) and room_size 3 (--room over NATPASS_LAB_ROOM)", sum)
	}
}
