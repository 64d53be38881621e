// Command bench compares natpass with the transports its users would otherwise
// pick, in one process and one run on loopback: kcp-go (AES, no FEC, fast mode) and
// quic-go (TLS 1.3). It lives in its own module so that the core never depends on
// them.
//
//	cd bench && go run . [-bulk 64] [-pingpong 3s] [-game 10s] [-loss 0.05]
//
// Three measurements per transport: one-way bulk throughput (64 KiB messages,
// timed until the last byte arrives); 64-byte ping-pong round trips per second;
// 20 Hz × 200-byte messages with each end dropping -loss of the datagrams it
// receives, one-way latency p50/p99.
//
// Issue 18's measurements; any of their flags runs them instead of the above:
//
//	go run . -relay [-raw] [-game-sessions 1000] [-game-dur 10s] [-high-dur 5s] [-high-sessions 1] [-read-hold 500us]
//	go run . -ceiling [-bulk 256] [-ceiling-dur 3s]
//	go run . -load 2000 [-load-idle 30s] [-load-timeout 5m] [-load-max-peers 0]
//	go run . -load-one 10000 [-load-timeout 5m] [-load-restart]
//
// -relay: natpass's server and coturn (turnserver from apt; pion/turn v4 clients)
// relaying the same traffic, each server a child process whose CPU time comes from
// /proc: -high-sessions at high rate (MiB per server CPU-second), then -game-sessions
// sessions of 20 Hz × 200-byte datagrams (server CPU per relayed datagram). coturn
// is skipped with a message when turnserver is missing. With -raw, once the
// sessions are up the bench writes the relay frames itself (natpass relay-send from
// Sans-IO nodes' sockets, TURN ChannelData from the pion clients' sockets): no
// client protocol, each frame one datagram in and one out, the servers alone.
//
// -ceiling: a raw UDP GSO blast on loopback (UDP_SEGMENT sends, UDP_GRO receives,
// one way) as the ceiling, then natpass and quic-go bulk in the same run.
//
// -load N: N Sans-IO node machines (no driver, no goroutine each; one epoll loop)
// register with a natpass server child, each from its own 127.x.y.z address (then
// the server's RSS and CPU over -load-idle with them registered and keeping alive),
// then with a fresh server all from 127.0.0.1, one port each; registration times
// (skipped past 18,000 nodes, whose spread nodes share one socket: one each would pass the
// descriptor limit, and one address has fewer ports; -load-one takes it alone).
//
// -load-one N: that last phase alone (N nodes behind one address at once against a
// fresh server, as after a restart), with the nodes' admission retries. With
// -load-restart a real restart: the N nodes register with a server child (started
// evenly over one keepalive interval), the child is killed and a new one started on
// the same port, and the nodes' times to register again are measured.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"
)

func main() {
	bulkMiB := flag.Int("bulk", 64, "MiB sent one way in the bulk test")
	ppDur := flag.Duration("pingpong", 3*time.Second, "duration of the ping-pong test")
	gameDur := flag.Duration("game", 10*time.Second, "duration of the 20 Hz test")
	loss := flag.Float64("loss", 0.05, "share of datagrams each end drops in the 20 Hz test")
	only := flag.String("only", "", "run only this transport")
	flag.BoolVar(&natpassBuffers, "natpass-buffers", true, "natpass nodes recycle received messages' buffers (driver.Config.RecycleBuffers)")
	var rc relayConfig
	relay := flag.Bool("relay", false, "measure natpass's relay against coturn (issue 18)")
	flag.IntVar(&rc.gameSessions, "game-sessions", 1000, "sessions of the -relay game-rate run (0: skip it)")
	flag.IntVar(&rc.gameSize, "game-size", 200, "bytes per datagram of the -relay game-rate run")
	flag.DurationVar(&rc.gameDur, "game-dur", 10*time.Second, "measured window of the -relay game-rate run")
	flag.DurationVar(&rc.highDur, "high-dur", 5*time.Second, "measured window of the -relay high-rate run")
	flag.IntVar(&rc.highSessions, "high-sessions", 1, "sessions of the -relay high-rate run")
	flag.BoolVar(&rc.raw, "raw", false, "-relay with relay frames written by the bench: the servers alone")
	ceiling := flag.Bool("ceiling", false, "raw UDP GSO blast ceiling, then natpass and quic-go bulk")
	ceilingDur := flag.Duration("ceiling-dur", 3*time.Second, "duration of the GSO blast")
	loadN := flag.Int("load", 0, "register this many Sans-IO nodes, spread and from one address (0: off)")
	loadIdle := flag.Duration("load-idle", 30*time.Second, "window of the -load idle measurement")
	loadTimeout := flag.Duration("load-timeout", 5*time.Minute, "longest wait for the one-address registrations of -load")
	loadMaxPeers := flag.Int("load-max-peers", 0, "the -load servers' presence table size (0: rendezvous.DefaultMaxPeers)")
	loadOne := flag.Int("load-one", 0, "only the one-address phase of -load: this many nodes behind 127.0.0.1 start at once against a freshly started server, as after a restart (0: off)")
	loadRestart := flag.Bool("load-restart", false, "with -load-one: a real restart instead: the nodes register (started over one keepalive interval), the server child is killed and restarted on the same port, and the time until all registered again is measured")
	readHold := flag.Duration("read-hold", time.Millisecond, "the natpass server children's ServerConfig.ReadHold (natpass server --read-hold; 0: off, the server's default)")
	floor := floorFlags(&rc) // -relay-floor (floor_flags.go)
	runChildIfAsked()
	flag.Parse()
	os.Setenv(childHoldEnv, readHold.String()) // the server children read it (runChildIfAsked)
	if floor() {
		return
	}
	if *relay || *ceiling || *loadN > 0 || *loadOne > 0 {
		fmt.Printf("%s, load average %s, natpass server children's read hold %v (-read-hold)\n\n",
			time.Now().UTC().Format(time.RFC3339), loadAverage(), *readHold)
		err := runIssue18(*relay, rc, *ceiling, *ceilingDur, *bulkMiB<<20, *loadN, *loadIdle, *loadTimeout, *loadMaxPeers)
		switch {
		case err == nil && *loadOne > 0 && *loadRestart:
			err = runLoadRestart(*loadOne, *loadTimeout, *loadMaxPeers)
		case err == nil && *loadOne > 0:
			err = runLoadOne(*loadOne, *loadTimeout, *loadMaxPeers)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Printf("\nload average at the end %s\n", loadAverage())
		return
	}
	results, err := runAll(*bulkMiB<<20, *ppDur, *gameDur, *loss, *only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	printResults(results, *bulkMiB, *loss)
}

type result struct {
	name          string
	cipher        string
	bulkMiBps     float64
	pingsPerSec   float64
	p50, p99      time.Duration
	gameDelivered int
	gameSent      int
}

func runAll(bulk int, ppDur, gameDur time.Duration, loss float64, only string) ([]result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out []result
	for _, tr := range transports {
		if only != "" && tr.name != only {
			continue
		}
		r := result{name: tr.name}
		p, err := tr.dial(ctx, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tr.name, err)
		}
		mibps, err := bulkOneWay(p, bulk)
		if err != nil {
			return nil, fmt.Errorf("%s bulk: %w", tr.name, err)
		}
		r.bulkMiBps = mibps
		r.cipher = p.cipher
		if r.pingsPerSec, err = pingPong(p, ppDur); err != nil {
			return nil, fmt.Errorf("%s ping-pong: %w", tr.name, err)
		}
		p.close()
		if gameDur > 0 {
			lp, err := tr.dial(ctx, loss)
			if err != nil {
				return nil, fmt.Errorf("%s lossy: %w", tr.name, err)
			}
			if r.p50, r.p99, r.gameSent, r.gameDelivered, err = game(lp, gameDur); err != nil {
				return nil, fmt.Errorf("%s 20 Hz: %w", tr.name, err)
			}
			lp.close()
		}
		out = append(out, r)
	}
	return out, nil
}

// bulkOneWay sends size bytes client → server and returns MiB/s until the last
// byte was received.
func bulkOneWay(p *pair, size int) (float64, error) {
	msg := make([]byte, 64<<10)
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		for left := size; left > 0; left -= len(msg) {
			if err := p.client.Send(msg[:min(left, len(msg))]); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for got := 0; got < size; {
		m, err := p.server.Recv()
		if err != nil {
			return 0, err
		}
		got += len(m)
	}
	el := time.Since(start)
	if err := <-errc; err != nil {
		return 0, err
	}
	return float64(size) / (1 << 20) / el.Seconds(), nil
}

// pingPong counts 64-byte round trips in dur.
func pingPong(p *pair, dur time.Duration) (float64, error) {
	stop := make(chan struct{})
	echoErr := make(chan error, 1)
	go func() {
		for {
			m, err := p.server.Recv()
			if err == nil {
				err = p.server.Send(m)
			}
			select {
			case <-stop:
				echoErr <- nil
				return
			default:
			}
			if err != nil {
				echoErr <- err
				return
			}
		}
	}()
	ping := make([]byte, 64)
	n := 0
	start := time.Now()
	for time.Since(start) < dur {
		if err := p.client.Send(ping); err != nil {
			return 0, err
		}
		m, err := p.client.Recv()
		if err != nil {
			return 0, err
		}
		if len(m) != 64 {
			return 0, errShort
		}
		n++
	}
	el := time.Since(start)
	close(stop)
	// One more round trip lets the echo loop see stop.
	_ = p.client.Send(ping)
	_, _ = p.client.Recv()
	if err := <-echoErr; err != nil {
		return 0, err
	}
	return float64(n) / el.Seconds(), nil
}

// game sends 200-byte messages at 20 Hz for dur and returns the one-way latency
// quantiles of those that arrived within dur + 2 s.
func game(p *pair, dur time.Duration) (p50, p99 time.Duration, sent, delivered int, err error) {
	base := time.Now()
	lat := make(chan time.Duration, 4096)
	go func() {
		for {
			m, err := p.server.Recv()
			if err != nil || len(m) < 8 {
				close(lat)
				return
			}
			sentAt := time.Duration(binary.BigEndian.Uint64(m))
			lat <- time.Since(base) - sentAt
		}
	}()
	msg := make([]byte, 200)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for end := base.Add(dur); time.Now().Before(end); <-tick.C {
		binary.BigEndian.PutUint64(msg, uint64(time.Since(base)))
		if err := p.client.Send(msg); err != nil {
			return 0, 0, 0, 0, err
		}
		sent++
	}
	var all []time.Duration
	deadline := time.After(2 * time.Second)
collect:
	for len(all) < sent {
		select {
		case d, ok := <-lat:
			if !ok {
				break collect
			}
			all = append(all, d)
		case <-deadline:
			break collect
		}
	}
	if len(all) == 0 {
		return 0, 0, sent, 0, fmt.Errorf("nothing arrived")
	}
	slices.Sort(all)
	return all[len(all)/2], all[len(all)*99/100], sent, len(all), nil
}

func printResults(rs []result, bulkMiB int, loss float64) {
	fmt.Printf("loopback, one process; bulk %d MiB one way; ping-pong 64 B; 20 Hz × 200 B at %.0f%% receive loss per end\n\n", bulkMiB, 100*loss)
	fmt.Printf("%-8s %12s %14s %10s %10s %10s  %s\n", "", "bulk MiB/s", "round trips/s", "20Hz p50", "20Hz p99", "delivered", "cipher")
	for _, r := range rs {
		fmt.Printf("%-8s %12.1f %14.0f %10v %10v %5d/%d    %s\n", r.name, r.bulkMiBps, r.pingsPerSec,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.gameDelivered, r.gameSent, r.cipher)
	}
	if len(rs) < 2 || rs[0].name != "natpass" {
		return
	}
	fmt.Println()
	for _, o := range rs[1:] {
		fmt.Printf("natpass / %-8s bulk %.2f×, round trips %.2f×, p99 %.2f× (lower is better)\n", o.name,
			rs[0].bulkMiBps/o.bulkMiBps, rs[0].pingsPerSec/o.pingsPerSec, float64(rs[0].p99)/float64(max(o.p99, 1)))
	}
}
