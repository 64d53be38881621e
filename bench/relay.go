package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// The relay comparison: the same traffic through a natpass server and through
// coturn, each a child process whose CPU time is read from /proc before and after
// the measured window. One session is one relayed flow, one way, from a sending end
// (a natpass node, or a pion/turn client writing through its allocation with a
// bound channel) to a receiving end (a natpass node; a plain UDP socket, the TURN
// peer). Each datagram crosses the server once either way.

// relayFlow is one session's sending end and the far end's count of what arrived.
type relayFlow struct {
	send func(p []byte) error // one message (natpass) or datagram (TURN); may block
	// sendBurst, where set (raw frames), sends k frames of payload p in one
	// UDP_SEGMENT write: the client's cost out of the way, the server sees k
	// datagrams (and may read them coalesced, with UDP_GRO).
	sendBurst func(p []byte, k int) error
	received  atomic.Uint64 // messages the far end took
	bytes     atomic.Uint64 // their bytes
}

// relaySetup is a server with its sessions established and warmed up.
type relaySetup struct {
	server *childServer
	flows  []*relayFlow
	close  func() // closes the clients and stops the server
}

// relayResult is one measured window.
type relayResult struct {
	server         string
	sessions       int
	window         time.Duration
	sent, received uint64
	bytes          uint64
	cpuSeconds     float64
	// counted: the server's own counters over the window (natpass only).
	counted                    bool
	serverIn, serverForwarded  uint64
	holdWakeups, holdDatagrams uint64 // the natpass server's holding reader (-read-hold)
}

func (r relayResult) lossPercent() float64 {
	if r.sent == 0 {
		return 0
	}
	return 100 * (1 - float64(r.received)/float64(r.sent))
}

// cpuPerDatagramMicros is server CPU per delivered datagram.
func (r relayResult) cpuPerDatagramMicros() float64 {
	return 1e6 * r.cpuSeconds / float64(max(r.received, 1))
}

// mibPerCPUSecond is MiB delivered per server CPU-second.
func (r relayResult) mibPerCPUSecond() float64 {
	return float64(r.bytes) / (1 << 20) / max(r.cpuSeconds, 1e-9)
}

func (r relayResult) mibPerSecond() float64 { return float64(r.bytes) / (1 << 20) / r.window.Seconds() }

// measureRelay runs traffic over s's flows for dur, then waits settle for the last
// datagrams, and reports what arrived and the server's CPU time over the whole.
func measureRelay(s *relaySetup, dur, settle time.Duration, traffic func(ctx context.Context, f *relayFlow, sent *atomic.Uint64)) (relayResult, error) {
	for _, f := range s.flows {
		f.received.Store(0)
		f.bytes.Store(0)
	}
	c0, err := s.server.readCounters()
	if err != nil {
		return relayResult{}, err
	}
	cpu0, err := s.server.cpu()
	if err != nil {
		return relayResult{}, err
	}
	stopPerf := startServerPerf(s.server)
	defer stopPerf()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var sent atomic.Uint64
	var wg sync.WaitGroup
	for _, f := range s.flows {
		wg.Go(func() { traffic(ctx, f, &sent) })
	}
	wg.Wait()
	time.Sleep(settle)
	stopPerf()
	cpu1, err := s.server.cpu()
	if err != nil {
		return relayResult{}, err
	}
	c1, err := s.server.readCounters()
	if err != nil {
		return relayResult{}, err
	}
	r := relayResult{server: s.server.name, sessions: len(s.flows), window: time.Since(start), sent: sent.Load(), cpuSeconds: cpu1 - cpu0,
		counted: s.server.counters != nil, serverIn: c1.datagramsIn - c0.datagramsIn, serverForwarded: c1.relayForwarded - c0.relayForwarded,
		holdWakeups: c1.holdWakeups - c0.holdWakeups, holdDatagrams: c1.holdDatagrams - c0.holdDatagrams}
	for _, f := range s.flows {
		r.received += f.received.Load()
		r.bytes += f.bytes.Load()
	}
	if r.received == 0 {
		return r, fmt.Errorf("%s: nothing arrived", s.server.name)
	}
	return r, nil
}

// gameTraffic sends a size-byte datagram every 50 ms (20 Hz) until ctx ends,
// starting at a phase drawn from the flow's position so that the sessions'
// datagrams spread over each 50 ms.
func gameTraffic(size int, phase func(*relayFlow) time.Duration) func(context.Context, *relayFlow, *atomic.Uint64) {
	return func(ctx context.Context, f *relayFlow, sent *atomic.Uint64) {
		msg := make([]byte, size)
		select {
		case <-ctx.Done():
			return
		case <-time.After(phase(f)):
		}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if f.send(msg) == nil {
				sent.Add(1)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}
}

// blastTraffic sends size-byte messages as fast as send returns until ctx ends,
// in bursts of as many as one GSO write holds where the flow has sendBurst.
func blastTraffic(size int) func(context.Context, *relayFlow, *atomic.Uint64) {
	return func(ctx context.Context, f *relayFlow, sent *atomic.Uint64) {
		msg := make([]byte, size)
		if k := gsoSegments(4 + size); f.sendBurst != nil {
			for ctx.Err() == nil {
				if f.sendBurst(msg, k) == nil {
					sent.Add(uint64(k))
				}
			}
			return
		}
		for ctx.Err() == nil {
			if f.send(msg) == nil {
				sent.Add(1)
			}
		}
	}
}

// spreadPhases gives flow i of n the phase i/n of 50 ms.
func spreadPhases(flows []*relayFlow) func(*relayFlow) time.Duration {
	at := make(map[*relayFlow]time.Duration, len(flows))
	for i, f := range flows {
		at[f] = time.Duration(i) * 50 * time.Millisecond / time.Duration(len(flows))
	}
	return func(f *relayFlow) time.Duration { return at[f] }
}

// parallel runs job(i) for i in [0, n) on up to width goroutines and returns the
// first error.
func parallel(n, width int, job func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  atomic.Int64
	)
	for range min(width, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := job(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
