package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/natsbus"
	"github.com/natpass/natpass/relayframe"
)

// runServer runs a rendezvous server until SIGINT or SIGTERM:
//
//	natpass server --listen HOST:PORT [--listen2 HOST:PORT] (--secret-file FILE | --insecure-dev)
//	    [--cluster-listen HOST:PORT --cluster-peers URL[,URL...] --cluster-secret-file FILE | --nats URL]
//
// In a cluster, SIGTERM drains: the nodes are told to move to another server, and
// the server exits 0 once they have (or --drain-timeout has passed).
func runServer(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serverMain(ctx, args, stdout, stderr, nil)
}

// serverMain is runServer with the context and, for tests, a hook that learns the
// server (and its cluster bus, nil when alone) once it listens.
func serverMain(ctx context.Context, args []string, stdout, stderr io.Writer, started func(*driver.Server, *natsbus.Bus)) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "primary socket IP:PORT (required; a specific IP on multi-homed hosts)")
	listen2 := fs.String("listen2", "", "socket on a second IP of this host, for NAT filtering/mapping tests")
	altPort := fs.String("alt-port", "", `second socket on the primary IP (default: an ephemeral port; "off" for none)`)
	secretFile := fs.String("secret-file", "", "file holding the ticket secret")
	insecure := fs.Bool("insecure-dev", false, "run without a secret: anyone may register under any ID (development only)")
	quiet := fs.Bool("quiet", false, "do not log registrations and introductions")
	statsEvery := fs.Duration("stats", 0, "print the counters this often (0: only at exit)")
	sessionMbps := fs.Float64("relay-session-mbps", 0, "relay budget of each session, Mbit/s (0: the default, 33.5)")
	totalMbps := fs.Float64("relay-total-mbps", 0, "relay budget of the whole server, Mbit/s (0: the default, 537)")
	var cluster clusterFlags
	cluster.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *listen == "" || (*secretFile == "") == !*insecure || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: natpass server --listen HOST:PORT [--listen2 HOST:PORT] (--secret-file FILE | --insecure-dev)")
		return 2
	}
	cfg := driver.ServerConfig{Listen: *listen, AltAddr: *listen2, AltPort: *altPort, InsecureDev: *insecure}
	if code := serverBudgetsAndSecret(&cfg, *sessionMbps, *totalMbps, *secretFile, stderr); code != 0 {
		return code
	}
	var logMu sync.Mutex
	logf := func(format string, a ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.000")}, a...)...)
	}
	if !*quiet {
		cfg.Log = func(line string) { logf("%s", line) }
	}
	bus, err := cluster.start(&cfg, logf)
	if err != nil {
		fmt.Fprintln(stderr, "natpass server:", err)
		return 2
	}
	if bus != nil {
		defer bus.Close()
	}
	s, err := driver.ListenServer(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "natpass server:", err)
		return 1
	}
	defer s.Close()
	fmt.Fprintf(stdout, "natpass server listening on %v\n", s.Addrs())
	if bus != nil {
		fmt.Fprintf(stdout, "natpass server: cluster %q, routes on %s\n", cluster.name, bus.ClusterAddr())
	}
	if *insecure {
		fmt.Fprintln(stderr, "natpass server: --insecure-dev: tickets are not checked; do not expose this server")
	}
	if started != nil {
		started(s, bus)
	}
	serveUntilDone(ctx, s, *statsEvery, stdout, func() {
		if bus != nil {
			cluster.drain(s, logf)
		}
	})
	return 0
}

// serverBudgetsAndSecret fills cfg's relay budgets and ticket secret from the
// flags; a non-zero result is the exit code of a bad flag (2) or an unreadable
// secret (1), already reported on stderr.
func serverBudgetsAndSecret(cfg *driver.ServerConfig, sessionMbps, totalMbps float64, secretFile string, stderr io.Writer) int {
	var ok bool
	if cfg.Tune.RelaySessionRate, ok = relayBudget(sessionMbps); !ok {
		fmt.Fprintf(stderr, "natpass server: --relay-session-mbps must be between 0 and %g\n", maxRelayMbps)
		return 2
	}
	if cfg.Tune.RelayServerRate, ok = relayBudget(totalMbps); !ok {
		fmt.Fprintf(stderr, "natpass server: --relay-total-mbps must be between 0 and %g\n", maxRelayMbps)
		return 2
	}
	if secretFile != "" {
		secret, err := readSecret(secretFile)
		if err != nil {
			fmt.Fprintln(stderr, "natpass server:", err)
			return 1
		}
		cfg.Secret = secret
	}
	return 0
}

// serveUntilDone prints the server's counters every statsEvery (0: never) until ctx
// ends, then drains (a cluster's servers tell their nodes to move), closes the
// server and prints them once more.
func serveUntilDone(ctx context.Context, s *driver.Server, statsEvery time.Duration, stdout io.Writer, drain func()) {
	var tick <-chan time.Time
	if statsEvery > 0 {
		t := time.NewTicker(statsEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-tick:
			printServerStats(stdout, s.Stats())
		case <-ctx.Done():
			drain()
			s.Close()
			printServerStats(stdout, s.Stats())
			return
		}
	}
}

// maxRelayMbps bounds the relay flags (100 Gbit/s): well inside what a relay
// budget can express.
const maxRelayMbps = 1e5

// relayBudget turns a rate in Mbit/s into a relay byte budget whose burst is an
// eighth of a second of it (at least one largest frame); 0 gives the zero budget,
// which the server replaces with its default. ok is false for a negative or
// non-finite rate.
func relayBudget(mbps float64) (r relayframe.ByteRate, ok bool) {
	if mbps < 0 || math.IsNaN(mbps) || math.IsInf(mbps, 0) || mbps > maxRelayMbps {
		return r, false
	}
	if mbps == 0 {
		return r, true
	}
	perSecond := max(int64(mbps*1e6/8), 1)
	return relayframe.ByteRate{BytesPerSecond: perSecond, Burst: max(perSecond/8, relayframe.MaxFrameLen+relayframe.FrameCostOverhead)}, true
}

func printServerStats(w io.Writer, st driver.ServerStats) {
	garbage := st.DropNotNatpass + st.DropUnknownVersion + st.DropMalformed + st.DropNotForServer +
		st.DropSTUNMalformed + st.DropSTUNNotRequest + st.DropSTUNBadFingerprint + st.DropSTUNUnknownAttr +
		st.DropSTUNTooSmall + st.TooLong
	fmt.Fprintf(w, "stats: in %d dgrams / %d B, out %d / %d B, sessions %d, registered %d, introductions %d, "+
		"stun %d, bad tickets %d, rate-limited %d, garbage dropped %d, relayed %d frames / %d B, "+
		"relay over budget %d\n",
		st.DatagramsIn, st.BytesIn, st.DatagramsOut, st.BytesOut, st.Sessions, st.Registered, st.Introductions,
		st.STUNBindings, st.BadTicket, st.DropRateLimited, garbage, st.Relay.Forwarded, st.Relay.BytesForwarded,
		st.Relay.DropSessionRate+st.Relay.DropServerRate)
	if c := st.Cluster; c.MessagesIn+c.MessagesOut > 0 {
		fmt.Fprintf(w, "cluster: in %d / out %d messages, intro asks %d sent / %d served, peer not here %d, "+
			"relay to other servers %d frames / %d B, from them %d / %d B, moved away %d, replaced %d, "+
			"dropped %d, bus errors %d\n",
			c.MessagesIn, c.MessagesOut, c.IntroAsks, c.IntroAsksServed, c.NoResponders,
			c.RelayFramesOut, c.RelayBytesOut, c.RelayFramesIn, c.RelayBytesIn, c.MovedAway, c.Replaced,
			c.DropMalformed+c.DropSubject+c.DropUnknownAsk+c.DropQueueFull+c.DropRelayNoLink+c.DropRelayRate+c.DropRelayTxFull,
			st.ClusterErrors)
	}
}
