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
