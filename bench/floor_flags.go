package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// floorFlags registers -relay-floor and its flags; the function it returns
// runs the floor measurement (floor_run_linux.go) with rc's game-rate
// settings after flag.Parse when -relay-floor was given, and says whether it did.
func floorFlags(rc *relayConfig) func() bool {
	on := flag.Bool("relay-floor", false, "the game-rate relay floor: coturn, a netpoller+recvmmsg relay and io_uring relays (-floor-holds) of the least work per datagram, alternating (issue 18)")
	rounds := flag.Int("floor-rounds", 3, "rounds of -relay-floor")
	holds := flag.String("floor-holds", "0s,200us,500us", "the io_uring floor relays' holds, each hold[/min_complete] (0s: woken per arrival; min_complete default 64)")
	minWait := flag.Bool("floor-min-wait", false, "bound the io_uring holds with min_wait_usec (Linux 6.12) instead of a timeout")
	natpass := flag.Bool("floor-natpass", true, "-relay-floor measures the natpass server with raw relay-send frames (as -relay -raw) too")
	stamp := flag.Bool("floor-stamp", false, "the floor relays measure each datagram's hold with kernel arrival stamps (costs CPU: a separate run)")
	return func() bool {
		if !*on {
			return false
		}
		cfg := floorConfig{sessions: rc.gameSessions, size: rc.gameSize, dur: rc.gameDur, rounds: *rounds, minWait: *minWait, natpass: *natpass, stamp: *stamp}
		for _, h := range strings.Split(*holds, ",") {
			hold, batch, _ := strings.Cut(strings.TrimSpace(h), "/")
			d, err := time.ParseDuration(hold)
			b := 0
			if err == nil && batch != "" {
				b, err = strconv.Atoi(batch)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench: -floor-holds:", err)
				os.Exit(2)
			}
			cfg.holds, cfg.batches = append(cfg.holds, d), append(cfg.batches, b)
		}
		fmt.Printf("%s, load average %s\n\n", time.Now().UTC().Format(time.RFC3339), loadAverage())
		if err := runFloor(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Printf("\nload average at the end %s\n", loadAverage())
		return true
	}
}
