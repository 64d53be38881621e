//go:build linux

package main

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/internal/uring"
)

// TestFloorRelays runs a short game window through both floor relay styles
// (child processes of the test binary, started by init): everything the
// relay counted as forwarded arrived at most once, intact in length, and at
// least something arrived.
func TestFloorRelays(t *testing.T) {
	styles := []struct {
		name, child string
		env         []string
	}{
		{"poll", floorPollChild, []string{floorStampEnv + "=1"}},
		{"uring 200µs", floorUringChild, []string{floorHoldEnv + "=200", floorStampEnv + "=1"}},
		{"uring per arrival", floorUringChild, []string{floorHoldEnv + "=0"}},
	}
	for _, st := range styles {
		t.Run(st.name, func(t *testing.T) {
			if st.child == floorUringChild {
				skipWithoutDeferTaskrun(t)
			}
			s, lat, err := setupFloor(st.child, st.env, 20)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			lat.reset()
			if _, err := s.server.ask("holdreset"); err != nil {
				t.Fatal(err)
			}
			r, err := measureRelay(s, 300*time.Millisecond, 300*time.Millisecond, gameTraffic(200, spreadPhases(s.flows)))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: sent %d, received %d, forwarded %d, %.2f CPU-s", st.name, r.sent, r.received, r.serverForwarded, r.cpuSeconds)
			if r.received == 0 || r.received > r.sent || r.bytes != 200*r.received || r.serverForwarded < r.received {
				t.Fatalf("%s: %+v", st.name, r)
			}
			if p50, p99 := lat.quantiles(); p50 <= 0 || p99 < p50 {
				t.Fatalf("latencies p50 %v, p99 %v", p50, p99)
			}
			if slices.Contains(st.env, floorStampEnv+"=1") {
				var held uint64
				line, err := s.server.ask("holds")
				if err == nil {
					_, err = fmt.Sscan(line, &held)
				}
				if err != nil || held < r.serverForwarded {
					t.Fatalf("the relay stamped %d of the %d datagrams it forwarded (%q, %v)", held, r.serverForwarded, line, err)
				}
			}
			if w := floorWakes(s.server); w == nil || w[0] == 0 {
				t.Fatalf("the relay's loop counters: %v", w)
			}
		})
	}
}

// skipWithoutDeferTaskrun skips the test where the floor's io_uring relay
// cannot run.
func skipWithoutDeferTaskrun(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := uring.New(8, 16, uring.SetupCQSize|uring.SetupSingleIssuer|uring.SetupDeferTaskrun)
	if err != nil {
		t.Skipf("io_uring with DEFER_TASKRUN unavailable here (kernel ≥ 6.1, kernel.io_uring_disabled = 0): %v", err)
	}
	r.Close()
}
