package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/pion/turn/v4"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/relayframe"
)

// A server under measurement runs as a child process, so that its CPU time and
// memory are its own (procCPUSeconds, procRSSBytes), for natpass as for coturn.
// The natpass server is this very binary started again with childEnv set: the
// driver's server (what `natpass server` runs) on loopback, printing its address
// and serving until its standard input closes; each line "stats" it reads is
// answered with a line of counters (serverCounters), each line "heap" with the
// bytes live on its heap after a collection.

const (
	childEnv      = "NATPASS_BENCH_CHILD"      // "server": run as the natpass server
	childRelayEnv = "NATPASS_BENCH_RELAY_MBPS" // relay budgets, Mbit/s per session and in total (0: defaults)
	childPeersEnv = "NATPASS_BENCH_MAX_PEERS"  // rendezvous MaxPeers (0: the default)
	// childHoldEnv is the natpass server child's ServerConfig.ReadHold (a
	// time.Duration; the bench's -read-hold sets it in its own environment).
	childHoldEnv = "NATPASS_BENCH_READ_HOLD"
	// childProcsEnv, set in the bench's own environment, is the natpass server
	// child's GOMAXPROCS (what the Go runtime costs the server per wake-up).
	childProcsEnv = "NATPASS_BENCH_SERVER_GOMAXPROCS"
)

// childServer is a running server process.
type childServer struct {
	name string
	cmd  *exec.Cmd
	addr netip.AddrPort // where clients send (natpass primary, TURN listener)
	stop func()         // ends the process and waits for it
	// counters, where the server tells them (natpass): datagrams it received and
	// relay frames it forwarded so far; nil for coturn.
	counters func() (serverCounters, error)
	// heapLive is the natpass child's live heap after a collection.
	heapLive func() (uint64, error)
	// ask sends the natpass child one command line and returns its one-line answer
	// (load_restart.go: "drain", "nosession").
	ask func(cmd string) (string, error)
}

// serverCounters are a natpass server child's counters at one moment.
type serverCounters struct {
	datagramsIn, relayForwarded uint64
	// holdWakeups, holdDatagrams: the holding reader's (ServerConfig.ReadHold).
	holdWakeups, holdDatagrams uint64
}

func (c *childServer) pid() int { return c.cmd.Process.Pid }

func (c *childServer) cpu() (float64, error) { return procCPUSeconds(c.pid()) }

// readCounters returns the server's counters, zero where it tells none.
func (c *childServer) readCounters() (serverCounters, error) {
	if c.counters == nil {
		return serverCounters{}, nil
	}
	return c.counters()
}

// runChildIfAsked runs the natpass server and exits when this process was started
// as one (childEnv set); otherwise it returns at once.
func runChildIfAsked() {
	if os.Getenv(childEnv) != "server" {
		return
	}
	cfg := driver.ServerConfig{Listen: "127.0.0.1:0", AltAddr: "127.0.0.2:0", InsecureDev: true}
	if mbps, _ := strconv.ParseFloat(os.Getenv(childRelayEnv), 64); mbps > 0 {
		r := relayframe.ByteRate{BytesPerSecond: int64(mbps * 1e6 / 8), Burst: 64 << 20}
		cfg.Tune.RelaySessionRate, cfg.Tune.RelayServerRate = r, r
	}
	cfg.Tune.MaxPeers, _ = strconv.Atoi(os.Getenv(childPeersEnv))
	cfg.ReadHold, _ = time.ParseDuration(os.Getenv(childHoldEnv))
	if listen := os.Getenv(childListenEnv); listen != "" { // a restart on the same port (load_restart.go)
		cfg.Listen = listen
	}
	s, err := driver.ListenServer(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child server:", err)
		os.Exit(1)
	}
	fmt.Println(s.Addr())
	in := bufio.NewScanner(os.Stdin) // the parent closes it to stop us
	for in.Scan() {
		switch in.Text() {
		case "stats":
			st := s.Stats()
			fmt.Println(st.DatagramsIn, st.Relay.Forwarded, st.Hold.Wakeups, st.Hold.Datagrams)
		case "drain": // tell the nodes it goes, as natpass server alone does on SIGTERM ([SRV-16])
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := s.Drain(ctx)
			cancel()
			fmt.Println("drained", err == nil)
		case "nosession":
			st := s.Stats()
			fmt.Println(st.NoSession, st.DropNoSessionBusy, st.Registered)
		case "heap":
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Println(ms.HeapAlloc)
		}
	}
	s.Close()
	os.Exit(0)
}

// childProc is a child process of this binary speaking the bench's line protocol:
// it prints its address first, then answers one line per question on stdin.
type childProc struct {
	cmd   *exec.Cmd
	addr  netip.AddrPort
	stdin io.WriteCloser
	out   *bufio.Reader
	stop  func() // closes stdin (the child exits) and waits
}

// startChild starts this binary as the child role (childEnv) with env added and
// reads the address it prints first.
func startChild(role string, env []string) (*childProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.SysProcAttr = childAttrs()
	cmd.Env = append(append(os.Environ(), childEnv+"="+role), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &childProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	c.stop = func() { stdin.Close(); _ = cmd.Wait() }
	line, err := c.out.ReadString('\n')
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("%s child: %w", role, err)
	}
	if c.addr, err = netip.ParseAddrPort(strings.TrimSpace(line)); err != nil {
		c.stop()
		return nil, fmt.Errorf("%s child said %q: %w", role, line, err)
	}
	return c, nil
}

// startNatpassServer starts the natpass server as a child process of this binary;
// relayMbps > 0 raises both relay budgets to it (high-rate runs), maxPeers > 0
// sets the presence table's size.
func startNatpassServer(relayMbps float64, maxPeers int) (*childServer, error) {
	env := []string{childRelayEnv + "=" + strconv.FormatFloat(relayMbps, 'f', -1, 64),
		childPeersEnv + "=" + strconv.Itoa(maxPeers)}
	if procs := os.Getenv(childProcsEnv); procs != "" {
		env = append(env, "GOMAXPROCS="+procs)
	}
	c, err := startChild("server", env)
	if err != nil {
		return nil, err
	}
	stdin, out := c.stdin, c.out
	counters := func() (serverCounters, error) {
		var sc serverCounters
		if _, err := io.WriteString(stdin, "stats\n"); err != nil {
			return sc, err
		}
		line, err := out.ReadString('\n')
		if err == nil {
			_, err = fmt.Sscan(line, &sc.datagramsIn, &sc.relayForwarded, &sc.holdWakeups, &sc.holdDatagrams)
		}
		return sc, err
	}
	heapLive := func() (uint64, error) {
		var n uint64
		if _, err := io.WriteString(stdin, "heap\n"); err != nil {
			return 0, err
		}
		line, err := out.ReadString('\n')
		if err == nil {
			_, err = fmt.Sscan(line, &n)
		}
		return n, err
	}
	ask := func(cmd string) (string, error) {
		if _, err := io.WriteString(stdin, cmd+"\n"); err != nil {
			return "", err
		}
		line, err := out.ReadString('\n')
		return strings.TrimSpace(line), err
	}
	return &childServer{name: "natpass", cmd: c.cmd, addr: c.addr, stop: c.stop, counters: counters, heapLive: heapLive, ask: ask}, nil
}

// TURN credentials of the coturn child.
const (
	turnUser, turnPass, turnRealm = "bench", "bench-pass", "natpass.bench"
)

// errNoTurnserver: coturn is not installed (apt-get install coturn).
var errNoTurnserver = errors.New("turnserver (coturn) not found in PATH")

// startCoturn starts coturn's turnserver on a free loopback port: UDP only, no TLS,
// long-term credentials for one user, relay addresses on 127.0.0.1, loopback peers
// allowed, every file it writes in a temporary directory. It returns once the
// server answers a STUN Binding.
func startCoturn() (*childServer, error) {
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		return nil, errNoTurnserver
	}
	port, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-coturn-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-n", "--listening-ip", "127.0.0.1", "--listening-port", strconv.Itoa(port),
		"--relay-ip", "127.0.0.1", "--min-port", "50000", "--max-port", "60000",
		"--lt-cred-mech", "--user", turnUser+":"+turnPass, "--realm", turnRealm,
		"--no-tls", "--no-dtls", "--no-tcp-relay", "--no-cli", "--allow-loopback-peers",
		"--no-stdout-log", "--log-file", filepath.Join(dir, "turn.log"),
		"--pidfile", filepath.Join(dir, "turn.pid"), "--db", filepath.Join(dir, "turndb"))
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &childServer{name: "coturn", cmd: cmd, addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))}
	c.stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	}
	if err := waitTurnReady(c.addr, 5*time.Second); err != nil {
		c.stop()
		return nil, fmt.Errorf("coturn did not answer (log in %s): %w", dir, err)
	}
	return c, nil
}

// waitTurnReady asks addr for STUN Bindings until one is answered.
func waitTurnReady(addr netip.AddrPort, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		cl, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr.String(), TURNServerAddr: addr.String(),
			Conn: conn, RTO: 100 * time.Millisecond})
		if err == nil {
			if err = cl.Listen(); err == nil {
				_, err = cl.SendBindingRequest()
			}
			cl.Close()
		}
		conn.Close()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort() (int, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}
