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

// loadPhase is one registration run: n nodes started at once against a fresh
// server, from spread addresses or from one.
type loadPhase struct {
	name       string
	n          int
	registered int           // by the end of the run
	within10s  int           // registered within 10 s of the start
	p50, p95   time.Duration // registration times of those that registered
	last       time.Duration
	closed     int // nodes that gave up (EventClosed)
	sendErrors uint64
	// retries, retriesWaited: the nodes' node.Stats of the admission challenge.
	retries, retriesWaited int
}

// loadIdle is the server at rest with the nodes registered.
type loadIdle struct {
	window               time.Duration
	rssBefore, rssWith   int64  // the server's RSS before any node and with all registered
	heapBefore, heapWith uint64 // its live heap after a collection, the same two moments
	cpuSeconds           float64
	datagramsIn          uint64 // what the server received in the window
}

// maxOneAddressNodes: past this many nodes -load skips its one-address phase, whose
// sockets all take ephemeral ports of 127.0.0.1 (Linux gives 28,232 by default),
// and its spread nodes share one socket (newSharedLoadGen): one socket each would
// pass the descriptor limit.
const maxOneAddressNodes = 18000

// loadAddr is node i's address of the spread phase: 127.2.0.1 onwards, 250 to a
// /24 (Linux routes all of 127.0.0.0/8 to lo).
func loadAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(2 + i/62500), byte(i / 250 % 250), byte(i%250 + 1)})
}

// runLoad registers n nodes (against servers whose presence table holds maxPeers,
// 0: the default) from n addresses and measures the server idle with
// them; then n nodes, each its own port, from 127.0.0.1 against a fresh server,
// for at most oneTimeout.
func runLoad(n int, idle, oneTimeout time.Duration, maxPeers int) error {
	spread := make([]netip.Addr, n)
	for i := range spread {
		spread[i] = loadAddr(i)
	}
	p, id, err := loadRegister("spread", spread, max(2*time.Minute, oneTimeout), idle, maxPeers, n > maxOneAddressNodes)
	if err != nil {
		return err
	}
	if n > maxOneAddressNodes {
		fmt.Printf("(the %d spread nodes share one socket, each sending from its own address with IP_PKTINFO)\n", n)
	}
	printLoadPhase(p)
	fmt.Printf("server idle with %d nodes registered, %v (keepalives every 25 s): %.2f%% of a core (%.2f CPU-s), %d datagrams in (%.0f/s)\n",
		n, id.window.Round(time.Millisecond), 100*id.cpuSeconds/id.window.Seconds(), id.cpuSeconds,
		id.datagramsIn, float64(id.datagramsIn)/id.window.Seconds())
	if rss, err := procRSSBytes(os.Getpid()); err == nil {
		fmt.Printf("the generator's own RSS with %d nodes: %.2f GB\n", n, float64(rss)/1e9)
	}
	fmt.Printf("server memory: RSS %.1f → %.1f MB (%.0f bytes per node); live heap %.2f → %.2f MB (%.0f bytes per node)\n",
		float64(id.rssBefore)/1e6, float64(id.rssWith)/1e6, float64(id.rssWith-id.rssBefore)/float64(n),
		float64(id.heapBefore)/1e6, float64(id.heapWith)/1e6, (float64(id.heapWith)-float64(id.heapBefore))/float64(n))
	if n > maxOneAddressNodes {
		fmt.Printf("one-address phase skipped: %d nodes are more ports than one address has to give (-load-one runs it alone)\n", n)
		return nil
	}
	one := slices.Repeat([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, n)
	p, _, err = loadRegister("one address", one, oneTimeout, 0, maxPeers, false)
	if err != nil {
		return err
	}
	printLoadPhase(p)
	return nil
}

// runLoadOne is the one-address phase alone: n nodes behind 127.0.0.1 (each its
// own port, as behind one carrier-grade NAT address) start at once against a freshly
// started server, which is what a restart looks like once its nodes know of it. It
// prints the registration times and the nodes' admission retries (PROTOCOL.md §5.13).
func runLoadOne(n int, timeout time.Duration, maxPeers int) error {
	one := slices.Repeat([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, n)
	p, _, err := loadRegister("one address", one, timeout, 0, maxPeers, false)
	if err != nil {
		return err
	}
	printLoadPhase(p)
	fmt.Printf("admission: %d registers repeated at once with a retry's token, %d retries kept for the next repetition\n",
		p.retries, p.retriesWaited)
	return nil
}

// loadRegister starts a server child and nodes on addrs (sharing one socket with
// shared, else each with its own), runs until all registered (or timeout), then,
// with idle > 0, measures the server at rest for idle.
func loadRegister(name string, addrs []netip.Addr, timeout, idle time.Duration, maxPeers int, shared bool) (loadPhase, loadIdle, error) {
	srv, err := startNatpassServer(0, maxPeers)
	if err != nil {
		return loadPhase{}, loadIdle{}, err
	}
	defer srv.stop()
	time.Sleep(200 * time.Millisecond) // let the child settle before its baseline
	var id loadIdle
	if id.rssBefore, err = procRSSBytes(srv.pid()); err != nil {
		return loadPhase{}, id, err
	}
	if id.heapBefore, err = srv.heapLive(); err != nil {
		return loadPhase{}, id, err
	}
	gen := newLoadGen
	if shared {
		gen = newSharedLoadGen
	}
	g, err := gen(srv.addr, addrs, name[:1]+"-", node.RelayAuto)
	if err != nil {
		return loadPhase{}, id, err
	}
	defer g.close()
	g.start = time.Now()
	g.startAll()
	n := len(addrs)
	if err := g.run(timeout, func() bool { return g.registered+g.closed == n }); err != nil {
		return loadPhase{}, id, err
	}
	p := g.phase(name)
	if idle <= 0 || p.registered < n {
		return p, id, nil
	}
	// NAT measurement follows registration; let it finish so that the window holds
	// only keepalives.
	if err := g.run(3*time.Second, func() bool { return false }); err != nil {
		return p, id, err
	}
	c0, err := srv.readCounters()
	if err != nil {
		return p, id, err
	}
	cpu0, err := srv.cpu()
	if err != nil {
		return p, id, err
	}
	t0 := time.Now()
	if err := g.run(idle, func() bool { return false }); err != nil {
		return p, id, err
	}
	cpu1, err := srv.cpu()
	if err != nil {
		return p, id, err
	}
	id.window, id.cpuSeconds = time.Since(t0), cpu1-cpu0
	c1, err := srv.readCounters()
	if err != nil {
		return p, id, err
	}
	id.datagramsIn = c1.datagramsIn - c0.datagramsIn
	if id.rssWith, err = procRSSBytes(srv.pid()); err != nil {
		return p, id, err
	}
	id.heapWith, err = srv.heapLive()
	return p, id, err
}

// phase sums up the registration times.
func (g *loadGen) phase(name string) loadPhase {
	p := loadPhase{name: name, n: len(g.nodes), registered: g.registered, closed: g.closed, sendErrors: g.sendErrors}
	var times []time.Duration
	for _, n := range g.nodes {
		st := n.m.Stats()
		p.retries += st.Retries
		p.retriesWaited += st.RetriesWaited
		if n.registeredAt > 0 {
			times = append(times, n.registeredAt)
			if n.registeredAt <= 10*time.Second {
				p.within10s++
			}
		}
	}
	slices.Sort(times)
	if len(times) > 0 {
		p.p50, p.p95, p.last = times[len(times)/2], times[len(times)*95/100], times[len(times)-1]
	}
	return p
}

func printLoadPhase(p loadPhase) {
	fmt.Printf("%-12s %5d nodes started at once: %d registered (%d within 10 s), p50 %v, p95 %v, last %v; %d gave up, %d send errors\n",
		p.name, p.n, p.registered, p.within10s, p.p50.Round(time.Millisecond), p.p95.Round(time.Millisecond),
		p.last.Round(time.Millisecond), p.closed, p.sendErrors)
}
