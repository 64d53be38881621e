package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
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
