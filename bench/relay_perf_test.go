package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// With perfStatEnv set, a measured window's perf stat counts land in the named
// directory, one file per window named after the server; stopping twice is fine.
func TestServerPerfStatWritesCounts(t *testing.T) {
	if _, err := exec.LookPath("perf"); err != nil {
		t.Skip("perf not installed (Debian's linux-perf)")
	}
	dir := t.TempDir()
	t.Setenv(perfStatEnv, dir)
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	stop := startServerPerf(&childServer{name: "probe", cmd: cmd})
	stop()
	stop()
	files, err := filepath.Glob(filepath.Join(dir, "*-probe.txt"))
	if err != nil || len(files) != 1 {
		t.Fatalf("files %v (%v), want one *-probe.txt", files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if out := string(b); strings.Contains(out, "not supported") || strings.Contains(out, "ermission") {
		t.Skipf("perf cannot count here:\n%s", out)
	}
	if !strings.Contains(string(b), "context-switches") || !strings.Contains(string(b), "sys_enter_recvmmsg") {
		t.Fatalf("perf stat output lacks the counts:\n%s", b)
	}
}

// Without either variable, startServerPerf starts nothing.
func TestServerPerfOffByDefault(t *testing.T) {
	t.Setenv(perfEnv, "")
	t.Setenv(perfStatEnv, "")
	before := perfWindows.Load()
	startServerPerf(&childServer{name: "probe", cmd: exec.Command("true")})()
	if perfWindows.Load() != before {
		t.Fatal("a window was counted with profiling off")
	}
}
