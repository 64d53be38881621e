package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/natpass/natpass/rudp"
)

// relayConfig is what -relay measures.
type relayConfig struct {
	gameSessions int           // sessions of 20 Hz × gameSize-byte datagrams
	gameSize     int           // bytes per game datagram
	gameDur      time.Duration // the measured window of the game run
	highDur      time.Duration // the measured window of the high-rate run
	highSessions int           // sessions of the high-rate run
	raw          bool          // the bench writes the relay frames itself (relay_raw_linux.go)
}

// relayReport is both servers' results of both runs, nil where a server was missing.
type relayReport struct {
	natpassGame, coturnGame *relayResult
	natpassHigh, coturnHigh *relayResult
}

// runRelayComparison measures natpass and coturn one after the other with the same
// traffic: first the high-rate run (cfg.highSessions sessions; natpass
// reliable-ordered 64 KiB messages, flow-controlled; pion/turn 1200-byte datagrams
// as fast as it writes; with cfg.raw 1200-byte raw frames for both), then the game
// run. coturn is skipped, with a message, when it is not installed.
func runRelayComparison(cfg relayConfig) (relayReport, error) {
	var rep relayReport
	var err error
	natpassHigh, highMsg := func() (*relaySetup, error) {
		return setupNatpass(cfg.highSessions, 1e5, rudp.ReliableOrdered)
	}, 64<<10
	natpassGame := func() (*relaySetup, error) { return setupNatpass(cfg.gameSessions, 0, rudp.Unreliable) }
	if cfg.raw {
		natpassHigh, highMsg = func() (*relaySetup, error) { return setupNatpassRaw(cfg.highSessions) }, 1200
		natpassGame = func() (*relaySetup, error) { return setupNatpassRaw(cfg.gameSessions) }
	}
	if rep.natpassHigh, err = relayRun(natpassHigh, cfg.highDur, blastTraffic(highMsg)); err != nil {
		return rep, err
	}
	if rep.coturnHigh, err = relayRun(func() (*relaySetup, error) { return setupCoturn(cfg.highSessions, cfg.raw) },
		cfg.highDur, blastTraffic(1200)); err != nil && !errors.Is(err, errNoTurnserver) {
		return rep, err
	}
	if cfg.gameSessions <= 0 {
		return rep, nil
	}
	game := func(s *relaySetup) (relayResult, error) {
		return measureRelay(s, cfg.gameDur, time.Second, gameTraffic(cfg.gameSize, spreadPhases(s.flows)))
	}
	if rep.natpassGame, err = relayRunWith(natpassGame, game); err != nil {
		return rep, err
	}
	if rep.coturnGame, err = relayRunWith(func() (*relaySetup, error) { return setupCoturn(cfg.gameSessions, cfg.raw) }, game); err != nil {
		if errors.Is(err, errNoTurnserver) {
			fmt.Fprintln(os.Stderr, "bench: coturn skipped:", err)
			return rep, nil
		}
		return rep, err
	}
	return rep, nil
}

// relayRun sets up, blasts for dur and tears down.
func relayRun(setup func() (*relaySetup, error), dur time.Duration, traffic func(context.Context, *relayFlow, *atomic.Uint64)) (*relayResult, error) {
	return relayRunWith(setup, func(s *relaySetup) (relayResult, error) {
		return measureRelay(s, dur, 500*time.Millisecond, traffic)
	})
}

// relayRunWith sets up, measures and tears down.
func relayRunWith(setup func() (*relaySetup, error), measure func(*relaySetup) (relayResult, error)) (*relayResult, error) {
	s, err := setup()
	if err != nil {
		return nil, err
	}
	defer s.close()
	r, err := measure(s)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func printRelayReport(rep relayReport, cfg relayConfig) {
	fmt.Printf("relay, loopback, each server a child process, CPU = its utime+stime over the window\n")
	fmt.Printf("natpass server: read hold %s (-read-hold)\n\n", cmp.Or(os.Getenv(childHoldEnv), "0s"))
	if cfg.raw {
		fmt.Printf("raw frames written by the bench (no client protocol): relay-send to natpass, ChannelData to coturn\n")
		fmt.Printf("high rate, %d session(s), %v: 1200-byte payloads as fast as one sender per session writes them\n",
			cfg.highSessions, cfg.highDur)
	} else {
		fmt.Printf("high rate, %d session(s), %v: natpass reliable-ordered 64 KiB messages; coturn 1200-byte datagrams blasted via pion/turn\n",
			cfg.highSessions, cfg.highDur)
	}
	fmt.Printf("%-8s %10s %10s %12s %14s %8s\n", "", "MiB/s", "server CPU", "CPU-s", "MiB/CPU-s", "loss")
	for _, r := range []*relayResult{rep.natpassHigh, rep.coturnHigh} {
		if r != nil {
			loss := fmt.Sprintf("%7.1f%%", r.lossPercent())
			if r.server == "natpass" && !cfg.raw {
				loss = "reliable" // what was sent and not yet taken was in flight, not lost
			}
			fmt.Printf("%-8s %10.1f %9.0f%% %12.2f %14.1f %8s\n", r.server, r.mibPerSecond(),
				100*r.cpuSeconds/r.window.Seconds(), r.cpuSeconds, r.mibPerCPUSecond(), loss)
		}
	}
	if rep.natpassHigh != nil && rep.coturnHigh != nil {
		fmt.Printf("natpass / coturn MiB per server CPU-second: %.2f× (target ≥ 4×)\n",
			rep.natpassHigh.mibPerCPUSecond()/rep.coturnHigh.mibPerCPUSecond())
	}
	printCounted(rep.natpassHigh)
	if rep.natpassGame == nil {
		return
	}
	what := "natpass unreliable messages; coturn channel data"
	if cfg.raw {
		what = "raw frames"
	}
	fmt.Printf("\ngame rate, %d sessions × 20 Hz × %d B one way, %v: %s\n", cfg.gameSessions, cfg.gameSize, cfg.gameDur, what)
	fmt.Printf("%-8s %10s %10s %10s %12s %14s %8s\n", "", "sent", "delivered", "server CPU", "CPU-s", "µs/datagram", "loss")
	for _, r := range []*relayResult{rep.natpassGame, rep.coturnGame} {
		if r != nil {
			fmt.Printf("%-8s %10d %10d %9.1f%% %12.2f %14.2f %7.2f%%\n", r.server, r.sent, r.received,
				100*r.cpuSeconds/r.window.Seconds(), r.cpuSeconds, r.cpuPerDatagramMicros(), r.lossPercent())
		}
	}
	if rep.coturnGame != nil {
		fmt.Printf("natpass / coturn server CPU per relayed datagram: %.2f× (target ≤ 0.5×)\n",
			rep.natpassGame.cpuPerDatagramMicros()/rep.coturnGame.cpuPerDatagramMicros())
	}
	printCounted(rep.natpassGame)
}

// printCounted says what the natpass server counted over a window: every datagram
// it took in (relay frames, ACKs, keepalives) and the frames it forwarded, per
// message delivered.
func printCounted(r *relayResult) {
	if r == nil || !r.counted {
		return
	}
	fmt.Printf("natpass server counted: %d datagrams in, %d relay frames forwarded (%.2f and %.2f per message delivered); CPU per forwarded frame %.2f µs\n",
		r.serverIn, r.serverForwarded, float64(r.serverIn)/float64(max(r.received, 1)),
		float64(r.serverForwarded)/float64(max(r.received, 1)), 1e6*r.cpuSeconds/float64(max(r.serverForwarded, 1)))
	if r.holdWakeups > 0 {
		fmt.Printf("natpass server's holding reader: %d wake-ups, %.1f datagrams per wake-up\n",
			r.holdWakeups, float64(r.holdDatagrams)/float64(r.holdWakeups))
	}
}
