package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/natpass/natpass/admin"
	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/natsbus"
	"github.com/natpass/natpass/relayframe"
)

// runServer runs a rendezvous server until SIGINT or SIGTERM:
//
//	natpass server --listen HOST:PORT [--listen HOST6:PORT] [--listen2 HOST:PORT] (--secret-file FILE | --insecure-dev)
//	    [--admin-listen HOST:PORT] [--log-format text|json] [--log-level LEVEL]
//	    [--cluster-listen HOST:PORT --cluster-peers URL[,URL...] --cluster-secret-file FILE | --nats URL]
//
// Every flag also comes from NATPASS_<FLAG> (env.go). Every line goes through
// log/slog on stderr. On SIGTERM /readyz turns 503 at once; in a cluster the nodes
// are told to move to another server, and the server exits 0 once they have (or
// --drain-timeout has passed); a server alone tells its nodes to register again
// (announceRestart) and exits within 5 s.
func runServer(args []string, _, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serverMain(ctx, args, stderr, nil)
}

// serverFlags are natpass server's flags.
type serverFlags struct {
	listen, listen2                  addrList
	altPort, secretFile, adminListen string
	insecure, quiet                  bool
	statsEvery, readHold             time.Duration
	sessionMbps, totalMbps           float64
	log                              logFlags
	cluster                          clusterFlags
	tcp                              serverTCPFlags
}

func (f *serverFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.listen, "listen", "primary socket IP:PORT (required; 0.0.0.0 answers from the address asked, on Linux); given twice, one IPv4 and one IPv6, the server serves both families (dual stack)")
	fs.Var(&f.listen2, "listen2", "socket on a second IP of this host, for NAT filtering/mapping tests; once per family, like --listen")
	fs.StringVar(&f.altPort, "alt-port", "", `second socket on the primary IP (default: an ephemeral port; "off" for none); an IP:PORT goes with the --listen of its family`)
	fs.StringVar(&f.secretFile, "secret-file", "", "file holding the ticket secret")
	fs.BoolVar(&f.insecure, "insecure-dev", false, "run without a secret: anyone may register under any ID (development only)")
	fs.BoolVar(&f.quiet, "quiet", false, "do not log registrations and introductions")
	fs.DurationVar(&f.statsEvery, "stats", 0, "log the counters this often (0: only at exit)")
	fs.Float64Var(&f.sessionMbps, "relay-session-mbps", 0, "relay budget of each session, Mbit/s (0: the default, 33.5)")
	fs.Float64Var(&f.totalMbps, "relay-total-mbps", 0, "relay budget of the whole server, Mbit/s (0: the default, 537)")
	fs.StringVar(&f.adminListen, "admin-listen", "", "HOST:PORT of the admin HTTP endpoint: /metrics (Prometheus), /healthz, /readyz (default: none)")
	fs.DurationVar(&f.readHold, "read-hold", 0, "longest a datagram may wait before the server reads it (Linux io_uring: one wake-up per hold while traffic flows, e.g. 500us; 0: read at each arrival)")
	f.log.register(fs)
	f.cluster.register(fs)
	f.tcp.register(fs)
}

// serverUp is what serverMain's started hook learns once the server listens.
type serverUp struct {
	srv   *driver.Server
	bus   *natsbus.Bus // nil when alone
	admin net.Addr     // nil without --admin-listen
}

// serverMain is runServer with the context and, for tests, a hook that learns the
// server once it listens.
func serverMain(ctx context.Context, args []string, stderr io.Writer, started func(serverUp)) int {
	fs := newFlagSet("server", stderr)
	var f serverFlags
	f.register(fs)
	applyLimits := registerLimitFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if len(f.listen) == 0 || (f.secretFile == "") == !f.insecure || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: natpass server --listen HOST:PORT [--listen HOST6:PORT] [--listen2 HOST:PORT] (--secret-file FILE | --insecure-dev) [--admin-listen HOST:PORT] [--tcp-listen HOST:PORT [--tls-cert FILE --tls-key FILE]]")
		return 2
	}
	log, err := f.log.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "natpass server:", err)
		return 2
	}
	if f.readHold < 0 {
		fmt.Fprintln(stderr, "natpass server: --read-hold must not be negative")
		return 2
	}
	cfg := driver.ServerConfig{InsecureDev: f.insecure, ReadHold: f.readHold}
	if err := applyListen(&cfg, f.listen, f.listen2, f.altPort); err != nil {
		log.Error("listen flags", "err", err)
		return 2
	}
	applyLimits(&cfg.Tune)
	if code := serverBudgetsAndSecret(&cfg, f.sessionMbps, f.totalMbps, f.secretFile, log); code != 0 {
		return code
	}
	if err := f.tcp.apply(&cfg); err != nil {
		log.Error("tcp flags", "err", err)
		return 2
	}
	if !f.quiet {
		cfg.Log = func(line string) { log.Info(line) }
	}
	var health admin.Health
	ops, err := startAdmin(f.adminListen, &health, log)
	if err != nil {
		log.Error("admin endpoint", "err", err)
		return 1
	}
	defer ops.close()
	up, code := startServer(&f, cfg, log)
	if code != 0 {
		return code
	}
	defer up.srv.Close()
	if up.bus != nil {
		defer up.bus.Close()
	}
	ops.serve(up.srv, up.bus)
	health.SetReady()
	if started != nil {
		up.admin = ops.addr()
		started(up)
	}
	serveUntilDone(ctx, up.srv, f.statsEvery, log, func() {
		health.StartDrain()
		if up.bus != nil {
			f.cluster.drain(up.srv, log)
		} else {
			announceRestart(up.srv, min(f.cluster.drainTimeout, restartNoticeMax), log)
		}
	})
	return 0
}

// startServer starts the cluster bus (when the flags ask for one) and the server;
// a non-zero code says it failed, and why was logged.
func startServer(f *serverFlags, cfg driver.ServerConfig, log *slog.Logger) (serverUp, int) {
	bus, err := f.cluster.start(&cfg, log)
	if err != nil {
		log.Error("cluster flags", "err", err)
		return serverUp{}, 2
	}
	s, err := driver.ListenServer(cfg)
	if err != nil {
		if bus != nil {
			bus.Close()
		}
		log.Error("listening", "err", err)
		return serverUp{}, 1
	}
	log.Info("natpass server listening", "addrs", s.Addrs())
	if tcp := s.TCPAddr(); tcp.IsValid() {
		log.Info("tcp listener", "addr", tcp, "tls", cfg.TLS != nil)
	}
	if bus != nil {
		log.Info("cluster", "name", f.cluster.name, "routes", bus.ClusterAddr())
	}
	if f.insecure {
		log.Warn("--insecure-dev: tickets are not checked; do not expose this server")
	}
	return serverUp{srv: s, bus: bus}, 0
}

// serverBudgetsAndSecret fills cfg's relay budgets and ticket secret from the
// flags; a non-zero result is the exit code of a bad flag (2) or an unreadable
// secret (1), already logged.
func serverBudgetsAndSecret(cfg *driver.ServerConfig, sessionMbps, totalMbps float64, secretFile string, log *slog.Logger) int {
	var ok bool
	if cfg.Tune.RelaySessionRate, ok = relayBudget(sessionMbps); !ok {
		log.Error(fmt.Sprintf("--relay-session-mbps must be between 0 and %g", maxRelayMbps))
		return 2
	}
	if cfg.Tune.RelayServerRate, ok = relayBudget(totalMbps); !ok {
		log.Error(fmt.Sprintf("--relay-total-mbps must be between 0 and %g", maxRelayMbps))
		return 2
	}
	if secretFile != "" {
		secret, err := readSecret(secretFile)
		if err != nil {
			log.Error("secret", "err", err)
			return 1
		}
		cfg.Secret = secret
	}
	return 0
}

// restartNoticeMax bounds how long a server alone waits on SIGTERM for its nodes to
// hear that it goes: the drain's three rounds of notices take 2 s (PROTOCOL.md
// §12.6), and a node still relaying through the server must not hold it longer.
const restartNoticeMax = 5 * time.Second

// announceRestart tells a server's nodes, when it runs alone and stops, that it goes
// (error 11, the drain of PROTOCOL.md §12.6 and [SRV-16]): with no other server to
// move to, each registers again with this one at once and repeats the register (every
// 3 s at most) until a server answers on this address, so a restart that takes
// seconds costs them seconds, not the three missed keepalives (75 s) they would
// need to notice a silent server. It waits at most timeout (0: not at all).
func announceRestart(s *driver.Server, timeout time.Duration, log *slog.Logger) {
	n := s.Stats().Sessions
	if n == 0 || timeout <= 0 {
		return
	}
	log.Info("stopping: telling the nodes to register again", "nodes", n, "timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		log.Warn("stopping: nodes still active", "sessions", s.Stats().Sessions, "timeout", timeout)
	}
}

// serveUntilDone logs the server's counters every statsEvery (0: never) until ctx
// ends, then drains (readyz turns 503; a cluster's servers tell their nodes to
// move), closes the server and logs them once more.
func serveUntilDone(ctx context.Context, s *driver.Server, statsEvery time.Duration, log *slog.Logger, drain func()) {
	var tick <-chan time.Time
	if statsEvery > 0 {
		t := time.NewTicker(statsEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-tick:
			logServerStats(log, s.Stats())
		case <-ctx.Done():
			log.Info("shutting down")
			drain()
			s.Close()
			logServerStats(log, s.Stats())
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

// logServerStats logs the counters an operator reads first: one "stats" line, and a
// "cluster stats" line once the cluster carried anything. /metrics has them all.
func logServerStats(log *slog.Logger, st driver.ServerStats) {
	garbage := st.DropNotNatpass + st.DropUnknownVersion + st.DropMalformed + st.DropNotForServer +
		st.DropSTUNMalformed + st.DropSTUNNotRequest + st.DropSTUNBadFingerprint + st.DropSTUNChangeRequest +
		st.TooLong
	log.Info("stats", "datagrams_in", st.DatagramsIn, "bytes_in", st.BytesIn, "datagrams_out", st.DatagramsOut,
		"bytes_out", st.BytesOut, "sessions", st.Sessions, "registered", st.Registered,
		"introductions", st.Introductions, "stun", st.STUNBindings, "bad_tickets", st.BadTicket,
		"rate_limited", st.DropRateLimited, "garbage_dropped", garbage, "relayed_frames", st.Relay.Forwarded,
		"relayed_bytes", st.Relay.BytesForwarded, "relay_over_budget", st.Relay.DropSessionRate+st.Relay.DropServerRate)
	if h := st.Hold; h.Readers+h.Fallbacks > 0 {
		log.Info("read hold stats", "io_uring_sockets", h.Readers, "fallback_sockets", h.Fallbacks, "wakeups", h.Wakeups,
			"datagrams", h.Datagrams, "no_buffers", h.NoBuffers, "overflow", h.Overflow, "enter_errors", h.EnterErrors)
	}
	if c := st.Cluster; c.MessagesIn+c.MessagesOut > 0 {
		log.Info("cluster stats", "messages_in", c.MessagesIn, "messages_out", c.MessagesOut,
			"intro_asks_sent", c.IntroAsks, "intro_asks_served", c.IntroAsksServed, "peer_not_here", c.NoResponders,
			"relay_frames_out", c.RelayFramesOut, "relay_bytes_out", c.RelayBytesOut,
			"relay_frames_in", c.RelayFramesIn, "relay_bytes_in", c.RelayBytesIn,
			"moved_away", c.MovedAway, "replaced", c.Replaced,
			"dropped", c.DropMalformed+c.DropSubject+c.DropUnknownAsk+c.DropQueueFull+c.DropRelayNoLink+c.DropRelayRate+c.DropRelayTxFull,
			"bus_errors", st.ClusterErrors)
	}
}
