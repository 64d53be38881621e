package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/natpass/natpass/driver"
)

// natpass server --read-hold reads its socket through the holding reader (or,
// where io_uring is unavailable, says it fell back) and /metrics shows which;
// a negative hold is refused.
func TestServerReadHoldFlag(t *testing.T) {
	up, log, _ := startAdminServer(t, "--listen", "127.0.0.1:0", "--alt-port", "off", "--insecure-dev", "--quiet",
		"--read-hold", "500us", "--admin-listen", "127.0.0.1:0")
	var h driver.HoldStats
	for range 200 {
		if h = up.srv.Stats().Hold; h.Readers+h.Fallbacks > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h.Readers+h.Fallbacks != 1 {
		t.Fatalf("hold stats %+v: want the one socket read through io_uring or fallen back; log: %s", h, log.String())
	}
	var sockets float64
	for _, m := range scrapeMetrics(t, up.admin)["natpass_server_read_hold_sockets"].GetMetric() {
		sockets += m.GetGauge().GetValue()
	}
	if sockets != 1 {
		t.Fatalf("natpass_server_read_hold_sockets sums to %v, want 1", sockets)
	}
	var stderr bytes.Buffer
	args := []string{"--listen", "127.0.0.1:0", "--insecure-dev", "--read-hold", "-1ms"}
	if code := serverMain(context.Background(), args, &stderr, nil); code != 2 {
		t.Fatalf("--read-hold -1ms: exit %d, want 2; stderr: %s", code, stderr.String())
	}
}
