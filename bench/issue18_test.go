package main

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/natpass/natpass/rudp"
)

// TestMain lets the test binary serve as the natpass server child
// (startNatpassServer starts this very binary again).
func TestMain(m *testing.M) {
	runChildIfAsked()
	os.Exit(m.Run())
}

func TestParseStatCPUSeconds(t *testing.T) {
	// A command name with a space and a ')' in it, utime 250 and stime 130 ticks.
	stat := "4242 (we ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 3 0 100 1000 10"
	got, err := parseStatCPUSeconds(stat)
	if err != nil || got != 3.8 {
		t.Fatalf("parseStatCPUSeconds = %v, %v; want 3.8 s", got, err)
	}
	if _, err := parseStatCPUSeconds("4242 (short) S 1 2"); err == nil {
		t.Fatal("a truncated stat line parsed")
	}
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	if _, err := procCPUSeconds(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if rss, err := procRSSBytes(os.Getpid()); err != nil || rss <= 0 {
		t.Fatalf("own RSS %d, %v", rss, err)
	}
}

// relaySmoke runs a tiny game-rate window and a tiny blast over setup's sessions:
// something arrives, never more than was sent, and the server's CPU time was read.
func relaySmoke(t *testing.T, s *relaySetup, blastSize int) {
	t.Helper()
	defer s.close()
	r, err := measureRelay(s, 300*time.Millisecond, 300*time.Millisecond, gameTraffic(200, spreadPhases(s.flows)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s game: sent %d, received %d, %.2f CPU-s", r.server, r.sent, r.received, r.cpuSeconds)
	if r.received == 0 || r.received > r.sent || r.bytes != 200*r.received || r.cpuSeconds < 0 {
		t.Fatalf("%s game: %+v", r.server, r)
	}
	r, err = measureRelay(s, 300*time.Millisecond, 300*time.Millisecond, blastTraffic(blastSize))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s blast: sent %d, received %d (%d bytes)", r.server, r.sent, r.received, r.bytes)
	if r.received == 0 || r.received > r.sent || r.bytes != uint64(blastSize)*r.received {
		t.Fatalf("%s blast: %+v", r.server, r)
	}
}

func TestRelayNatpassSmoke(t *testing.T) {
	s, err := setupNatpass(2, 0, rudp.Unreliable)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range s.flows {
		if f.received.Load() < 2 {
			t.Fatalf("a session came out of the warm-up with %d datagrams", f.received.Load())
		}
	}
	relaySmoke(t, s, 1000)
}

func TestRelayCoturnSmoke(t *testing.T) {
	s, err := setupCoturn(2, false)
	if errors.Is(err, errNoTurnserver) {
		t.Skip("coturn is not installed (apt-get install coturn): ", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	relaySmoke(t, s, 1200)
}

func TestGSOBlast(t *testing.T) {
	mibps, loss, err := gsoBlast(ceilingSegment, 200*time.Millisecond)
	if err != nil && (runtime.GOOS != "linux" || strings.Contains(err.Error(), "protocol not available")) {
		t.Skip("no UDP GSO/GRO here: ", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%.0f MiB/s arrived, %.1f%% lost", mibps, 100*loss)
	if mibps <= 0 || loss < 0 || loss >= 1 {
		t.Fatalf("GSO blast: %.1f MiB/s, loss %.3f", mibps, loss)
	}
}

func TestRelayCoturnRawSmoke(t *testing.T) {
	s, err := setupCoturn(2, true)
	if errors.Is(err, errNoTurnserver) {
		t.Skip("coturn is not installed (apt-get install coturn): ", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	relaySmoke(t, s, 1200)
}
