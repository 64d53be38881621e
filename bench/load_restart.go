//go:build linux

package main

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/natpass/natpass/node"
)

// childListenEnv, when set in this process's environment as a server child starts,
// is the address the child listens on: the restart reuses the killed server's port.
const childListenEnv = "NATPASS_BENCH_LISTEN"

// restartSpreadOver is the keepalive interval the server tells its nodes: the nodes
// start evenly over it, so that at the restart their next keepalives are spread over
// one interval, as those of a server up for a while are.
const restartSpreadOver = 25 * time.Second

// runLoadRestart is a real restart behind one address: n nodes behind 127.0.0.1
// (each its own port) register with a server child, started evenly over one
// keepalive interval and then left idle for half of one. Then the child is killed
// (SIGKILL: nothing is said to the nodes) and a new one started on the same port;
// once all registered again and rested, the new one is stopped as natpass server
// alone stops on SIGTERM (it tells its nodes it goes, [SRV-16]) and a third started.
// For each restart it prints how long after the new server was up each node sent
// its first keepalive (when it could first learn of a silent restart), registered
// again, and the time between the two (the server's part), waiting at most timeout.
func runLoadRestart(n int, timeout time.Duration, maxPeers int) error {
	one := slices.Repeat([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, n)
	srv, err := startNatpassServer(0, maxPeers)
	if err != nil {
		return err
	}
	defer func() { srv.stop() }()
	g, err := newLoadGen(srv.addr, one, "r-", node.RelayAuto)
	if err != nil {
		return err
	}
	defer g.close()
	g.start = time.Now()
	g.startSpread(restartSpreadOver)
	if err := g.run(restartSpreadOver+timeout, func() bool { return g.registered+g.closed == n }); err != nil {
		return err
	}
	if g.registered < n {
		return fmt.Errorf("before the restart only %d of %d registered (%d gave up)", g.registered, n, g.closed)
	}
	p := g.phase("one address")
	fmt.Printf("before the restart: %d nodes behind one address started evenly over %v: all registered, last %v after the first started; %d send errors\n",
		n, restartSpreadOver, p.last.Round(time.Millisecond), p.sendErrors)
	for _, graceful := range []bool{false, true} {
		// Let the NAT measurements end and the keepalive phases settle into their cycle.
		if err := g.run(restartSpreadOver/2, func() bool { return false }); err != nil {
			return err
		}
		if srv, err = restartOnce(g, srv, maxPeers, graceful, timeout); err != nil {
			return err
		}
	}
	return nil
}

// restartOnce restarts srv (killed, or told to drain first with graceful) and
// waits for the nodes to register again with the new server, which it returns.
func restartOnce(g *loadGen, srv *childServer, maxPeers int, graceful bool, timeout time.Duration) (*childServer, error) {
	g.restartMarked()
	stopAt := time.Since(g.start)
	if graceful {
		if err := drainWhileRunning(g, srv); err != nil {
			return srv, err
		}
	} else {
		_ = srv.cmd.Process.Kill()
	}
	up, err := restartServer(srv, maxPeers)
	if err != nil {
		return srv, err
	}
	upAt := time.Since(g.start)
	n := len(g.nodes)
	if err := g.run(timeout, func() bool { return g.registeredAgain+g.closed == n }); err != nil {
		return up, err
	}
	how := "killed (SIGKILL), nothing said to the nodes"
	if graceful {
		how = "stopped as natpass server alone stops on SIGTERM (error 11 to every node, [SRV-16])"
	}
	fmt.Printf("\nserver %s and restarted on the same port: %v from the stop to the new server up\n", how, (upAt - stopAt).Round(time.Millisecond))
	printRestart(g, n, upAt, !graceful)
	if line, err := up.ask("nosession"); err == nil {
		fmt.Printf("  the new server: error-5 answers, unknown cookies dropped (no-session budget spent), registrations: %s\n", line)
	}
	return up, nil
}

// drainWhileRunning asks srv to drain and drives the nodes until it has.
func drainWhileRunning(g *loadGen, srv *childServer) error {
	done := make(chan error, 1)
	go func() {
		_, err := srv.ask("drain")
		done <- err
	}()
	var err error
	finished := false
	if runErr := g.run(10*time.Second, func() bool {
		select {
		case err = <-done:
			finished = true
		default:
		}
		return finished
	}); runErr != nil {
		return runErr
	}
	if !finished {
		return fmt.Errorf("the server child did not drain within 10 s")
	}
	return err
}

// restartServer waits for srv's process to end (killed, or stopped here) and
// starts a new server child on its address.
func restartServer(srv *childServer, maxPeers int) (*childServer, error) {
	srv.stop()
	prev, had := os.LookupEnv(childListenEnv)
	_ = os.Setenv(childListenEnv, srv.addr.String())
	next, err := startNatpassServer(0, maxPeers)
	if had {
		_ = os.Setenv(childListenEnv, prev)
	} else {
		_ = os.Unsetenv(childListenEnv)
	}
	if err != nil {
		return nil, fmt.Errorf("restart on %v: %w", srv.addr, err)
	}
	if next.addr != srv.addr {
		next.stop()
		return nil, fmt.Errorf("restarted server listens on %v, not %v", next.addr, srv.addr)
	}
	return next, nil
}

// printRestart sums up the nodes' times since the new server was up (upAt, since
// the generator started), and with keepalives (a silent restart) those of the
// nodes' first keepalives since.
func printRestart(g *loadGen, n int, upAt time.Duration, keepalives bool) {
	var notice, again, serverPart []time.Duration
	within10s := 0
	for _, nd := range g.nodes {
		if nd.keepaliveAfter > 0 {
			notice = append(notice, nd.keepaliveAfter-upAt)
		}
		if nd.registeredAgain > 0 {
			again = append(again, nd.registeredAgain-upAt)
			if nd.registeredAgain-upAt <= 10*time.Second {
				within10s++
			}
			if nd.keepaliveAfter > 0 {
				serverPart = append(serverPart, nd.registeredAgain-nd.keepaliveAfter)
			}
		}
	}
	fmt.Printf("registered again: %d of %d (%d within 10 s of the restart), %d gave up, %d send errors\n",
		len(again), n, within10s, g.closed, g.sendErrors)
	printSpread("registered again, since the restart", again)
	if keepalives {
		printSpread("first keepalive after the restart (the node can first learn of it)", notice)
		printSpread("registered again, since the node's first keepalive after the restart", serverPart)
	}
}

// printSpread prints p50, p95 and the largest of ds.
func printSpread(what string, ds []time.Duration) {
	if len(ds) == 0 {
		fmt.Printf("  %s: none\n", what)
		return
	}
	slices.Sort(ds)
	fmt.Printf("  %s: p50 %v, p95 %v, last %v\n", what, ds[len(ds)/2].Round(time.Millisecond),
		ds[len(ds)*95/100].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
}
