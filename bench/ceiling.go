package main

import (
	"context"
	"fmt"
	"time"
)

// ceilingSegment is the datagram size of the GSO blast: natpass's largest
// (rudp.Config.DatagramSizeMax's default), which its bulk transfers use.
const ceilingSegment = 1452

// gsoSegments is how many segments one GSO send carries: as many as fit a 64 KiB
// UDP payload.
func gsoSegments(segSize int) int { return min(64, 65507/segSize) }

// runCeiling measures the raw GSO blast, then natpass and quic-go bulk (bulkBytes
// one way, connection set-up excluded) in the same run, and prints the ratios.
func runCeiling(dur time.Duration, bulkBytes int) error {
	mibps, loss, err := gsoBlast(ceilingSegment, dur)
	if err != nil {
		return fmt.Errorf("GSO blast: %w", err)
	}
	fmt.Printf("raw UDP GSO blast, loopback, one way, %d-byte segments × %d per send, %v: %.1f MiB/s arrived (%.1f%% lost)\n",
		ceilingSegment, gsoSegments(ceilingSegment), dur, mibps, 100*loss)
	bulk := map[string]float64{}
	for _, name := range []string{"natpass", "quic-go"} {
		v, err := bulkOf(name, bulkBytes)
		if err != nil {
			return err
		}
		bulk[name] = v
		fmt.Printf("%-8s bulk %d MiB one way: %.1f MiB/s\n", name, bulkBytes>>20, v)
	}
	fmt.Printf("natpass / quic-go bulk %.2f× (target ≥ 2.0×); natpass / GSO ceiling %.2f× (target ≥ 0.5×)\n",
		bulk["natpass"]/bulk["quic-go"], bulk["natpass"]/mibps)
	return nil
}

// bulkOf runs the side-by-side bulk test of one transport.
func bulkOf(name string, bulkBytes int) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, tr := range transports {
		if tr.name != name {
			continue
		}
		p, err := tr.dial(ctx, 0)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		defer p.close()
		return bulkOneWay(p, bulkBytes)
	}
	return 0, fmt.Errorf("no transport %q", name)
}
