//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// floorConfig is what -relay-floor measures: rounds of the game-rate traffic
// through coturn (raw ChannelData, as -relay -raw) and through each floor
// relay variant, one after the other in each round.
type floorConfig struct {
	sessions, size int
	dur            time.Duration
	rounds         int
	holds          []time.Duration // io_uring variants: one per hold (0: wake per arrival)
	batches        []int           // their min_complete (0: the child's default, 64)
	minWait        bool            // the io_uring holds as min_wait_usec rather than a timeout
	natpass        bool            // the natpass server with raw relay-send frames (-relay -raw) too
	stamp          bool            // the floor relays measure each datagram's hold (floor_hold_linux.go)
}

// floorVariant is one server of a round.
type floorVariant struct {
	name  string
	setup func() (*relaySetup, *floorLatency, error)
}

// floorRow is one measured window.
type floorRow struct {
	round             int
	name              string
	r                 relayResult
	ctxSwitches       uint64
	wakes, sendCalls  uint64
	p50, p99          time.Duration
	hold              string // the relay's hold histogram: "count p50-µs p99-µs", with cfg.stamp
	failed, dropped   uint64
	noBuffers, sqFull uint64 // io_uring: receives out of buffers, SQ full mid-batch
}

func floorVariants(cfg floorConfig) []floorVariant {
	var stampEnv []string
	if cfg.stamp {
		stampEnv = []string{floorStampEnv + "=1"}
	}
	vs := []floorVariant{
		{"coturn", func() (*relaySetup, *floorLatency, error) {
			s, err := setupCoturn(cfg.sessions, true)
			return s, nil, err
		}},
		{"poll", func() (*relaySetup, *floorLatency, error) { return setupFloor(floorPollChild, stampEnv, cfg.sessions) }},
	}
	if cfg.natpass {
		vs = append(vs, floorVariant{"natpass raw", func() (*relaySetup, *floorLatency, error) {
			s, err := setupNatpassRaw(cfg.sessions)
			return s, nil, err
		}})
	}
	for i, h := range cfg.holds {
		env := append([]string{floorHoldEnv + "=" + strconv.Itoa(int(h/time.Microsecond)), "GODEBUG=asyncpreemptoff=1"}, stampEnv...)
		name := fmt.Sprintf("uring %v", h)
		if b := cfg.batches[i]; b > 0 {
			env = append(env, floorBatchEnv+"="+strconv.Itoa(b))
			name += fmt.Sprintf(" /%d", b)
		}
		if cfg.minWait && h > 0 {
			env = append(env, floorMinWaitEnv+"=1")
			name += " min_wait"
		}
		vs = append(vs, floorVariant{name, func() (*relaySetup, *floorLatency, error) {
			return setupFloor(floorUringChild, env, cfg.sessions)
		}})
	}
	return vs
}

// runFloor measures every variant cfg.rounds times, alternating, and prints
// a row per window, then the medians.
func runFloor(cfg floorConfig) error {
	fmt.Printf("relay floor: %d sessions × 20 Hz × %d B one way, %v windows (+1 s settle), %d round(s); server CPU = the child's utime+stime\n",
		cfg.sessions, cfg.size, cfg.dur, cfg.rounds)
	fmt.Printf("%-5s %-22s %9s %9s %7s %10s %9s %8s %10s %10s %9s %9s  %s\n", "round", "server", "sent", "delivered",
		"loss", "µs/dgram", "×coturn", "dg/wake", "ctxsw/dg", "sends/wake", "p50", "p99", "load after")
	var rows []floorRow
	for round := 1; round <= cfg.rounds; round++ {
		var coturn float64
		for _, v := range floorVariants(cfg) {
			row, err := floorWindow(v, cfg)
			if errors.Is(err, errNoTurnserver) {
				fmt.Fprintln(os.Stderr, "bench: coturn skipped:", err)
				continue
			}
			if err != nil {
				return err
			}
			row.round = round
			if v.name == "coturn" {
				coturn = row.r.cpuPerDatagramMicros()
			}
			printFloorRow(row, coturn)
			rows = append(rows, row)
		}
	}
	printFloorMedians(rows)
	return nil
}

// floorWindow sets v up, runs one game window over it and tears it down.
func floorWindow(v floorVariant, cfg floorConfig) (floorRow, error) {
	s, lat, err := v.setup()
	if err != nil {
		return floorRow{}, err
	}
	defer s.close()
	row := floorRow{name: v.name}
	w0 := floorWakes(s.server)
	cs0 := procCtxSwitches(s.server.pid())
	if lat != nil {
		lat.reset()
	}
	if cfg.stamp && lat != nil {
		_, _ = s.server.ask("holdreset")
	}
	r, err := measureRelay(s, cfg.dur, time.Second, gameTraffic(cfg.size, spreadPhases(s.flows)))
	if err != nil {
		return row, err
	}
	row.r, row.ctxSwitches = r, procCtxSwitches(s.server.pid())-cs0
	if w1 := floorWakes(s.server); w0 != nil && w1 != nil {
		row.wakes, row.sendCalls = w1[0]-w0[0], w1[2]-w0[2]
		row.failed, row.dropped = w1[3]-w0[3], w1[4]-w0[4]
		row.noBuffers, row.sqFull = w1[5]-w0[5], w1[6]-w0[6]
	}
	if lat != nil {
		row.p50, row.p99 = lat.quantiles()
	}
	if cfg.stamp && lat != nil {
		row.hold, _ = s.server.ask("holds")
	}
	return row, nil
}

// floorWakes is a floor relay's loop counters (floorAnswer's "wakes"), nil
// for another server.
func floorWakes(c *childServer) []uint64 {
	if c.ask == nil || !strings.HasPrefix(c.name, "floor") {
		return nil
	}
	line, err := c.ask("wakes")
	if err != nil {
		return nil
	}
	var out []uint64
	for _, f := range strings.Fields(line) {
		v, _ := strconv.ParseUint(f, 10, 64)
		out = append(out, v)
	}
	if len(out) < 7 {
		return nil
	}
	return out
}

// procCtxSwitches is the voluntary and involuntary context switches of all a
// process's threads so far (/proc/<pid>/task/*/status); threads that ended are
// not counted.
func procCtxSwitches(pid int) uint64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var n uint64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				c, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

func printFloorRow(row floorRow, coturn float64) {
	us := row.r.cpuPerDatagramMicros()
	ratio, perWake, sendsPerWake, lat50, lat99 := "-", "-", "-", "-", "-"
	if coturn > 0 {
		ratio = fmt.Sprintf("%.2f×", us/coturn)
	}
	if row.wakes > 0 {
		perWake = fmt.Sprintf("%.2f", float64(row.r.serverForwarded)/float64(row.wakes))
		sendsPerWake = fmt.Sprintf("%.2f", float64(row.sendCalls)/float64(row.wakes))
	}
	if row.p50 > 0 {
		lat50, lat99 = fmtMicros(row.p50), fmtMicros(row.p99)
	}
	fmt.Printf("%-5d %-22s %9d %9d %6.2f%% %10.2f %9s %8s %10.3f %10s %9s %9s  %s\n", row.round, row.name, row.r.sent, row.r.received,
		row.r.lossPercent(), us, ratio, perWake, float64(row.ctxSwitches)/float64(max(row.r.received, 1)), sendsPerWake, lat50, lat99, loadAverage())
	if row.hold != "" {
		fmt.Printf("      (%s: hold in the relay, arrival to its loop's wake-up: count, p50 µs, p99 µs: %s)\n", row.name, row.hold)
	}
	if row.failed > 0 || row.dropped > 0 || row.noBuffers > 0 || row.sqFull > 0 {
		fmt.Printf("      (%s: %d sends refused, %d datagrams dropped, %d receives out of buffers, SQ full %d times)\n",
			row.name, row.failed, row.dropped, row.noBuffers, row.sqFull)
	}
}

func fmtMicros(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }

// printFloorMedians prints each variant's medians over the rounds: µs per
// datagram, its ratio to the same round's coturn, datagrams per wake-up and
// the latencies.
func printFloorMedians(rows []floorRow) {
	var names []string
	coturnOf := map[int]float64{}
	for _, r := range rows {
		if !slices.Contains(names, r.name) {
			names = append(names, r.name)
		}
		if r.name == "coturn" {
			coturnOf[r.round] = r.r.cpuPerDatagramMicros()
		}
	}
	fmt.Printf("\nmedians over the rounds\n%-22s %10s %9s %8s %9s %9s\n", "server", "µs/dgram", "×coturn", "dg/wake", "p50", "p99")
	for _, name := range names {
		var us, ratio, perWake, p50, p99 []float64
		for _, r := range rows {
			if r.name != name {
				continue
			}
			us = append(us, r.r.cpuPerDatagramMicros())
			if c := coturnOf[r.round]; c > 0 {
				ratio = append(ratio, r.r.cpuPerDatagramMicros()/c)
			}
			if r.wakes > 0 {
				perWake = append(perWake, float64(r.r.serverForwarded)/float64(r.wakes))
			}
			p50, p99 = append(p50, float64(r.p50)/1e3), append(p99, float64(r.p99)/1e3)
		}
		fmt.Printf("%-22s %10.2f %8.2f× %8.2f %6.0f µs %6.0f µs\n", name, median(us), median(ratio), median(perWake), median(p50), median(p99))
	}
}

// median of xs (0 when empty).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
