package main

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/rudp"
)

// setupNatpass starts the natpass server child (relay budgets raised to relayMbps
// when > 0) and n relayed sessions through it: 2n driver nodes with the relay
// forced, each on its own loopback address (127.1.0.0/16: the server's per-source
// registration limit would otherwise pace them at 10 a second), the first of each
// pair connecting to the second and sending on lane 0 with mode.
func setupNatpass(n int, relayMbps float64, mode rudp.Mode) (*relaySetup, error) {
	srv, err := startNatpassServer(relayMbps, 0)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	nodes := make([]*driver.Node, 2*n)
	flows := make([]*relayFlow, n)
	var readers sync.WaitGroup
	closeAll := func() {
		cancel()
		for _, nd := range nodes {
			if nd != nil {
				nd.Close()
			}
		}
		readers.Wait()
		srv.stop()
	}
	err = parallel(2*n, 32, func(i int) error {
		nd, err := driver.Listen(ctx, driver.Config{
			Server: srv.addr.String(), ID: natpassNodeID(i), InsecureDev: true,
			Listen: netip.AddrPortFrom(spreadAddr(i), 0).String(), Relay: node.RelayForce,
		})
		nodes[i] = nd
		return err
	})
	if err == nil {
		err = parallel(n, 32, func(i int) error {
			f, err := connectRelayed(ctx, nodes[2*i], nodes[2*i+1], mode, &readers)
			flows[i] = f
			return err
		})
	}
	if err == nil {
		err = warmUp(flows, 64)
	}
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("natpass: %w", err)
	}
	return &relaySetup{server: srv, flows: flows, close: closeAll}, nil
}

// natpassNodeID names node i of the relay sessions: pairs 2k, 2k+1.
func natpassNodeID(i int) string { return fmt.Sprintf("s%d-%c", i/2, 'a'+byte(i%2)) }

// spreadAddr is the i-th address of 127.1.0.0/16 (i < 65000): Linux routes all of
// 127.0.0.0/8 to lo, so each is a distinct source the server sees.
func spreadAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(i%250 + 1)})
}

// connectRelayed connects a to b (relay forced on both) and starts a reader on b's
// end counting into the returned flow; sending goes a → b on lane 0 with mode.
func connectRelayed(ctx context.Context, a, b *driver.Node, mode rudp.Mode, readers *sync.WaitGroup) (*relayFlow, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	accepted := make(chan *driver.Conn, 1)
	go func() {
		c, _ := b.Accept(cctx)
		accepted <- c
	}()
	ca, err := a.Connect(cctx, b.ID())
	cb := <-accepted
	if err != nil || cb == nil {
		return nil, fmt.Errorf("connect %s → %s: %v (accepted %v)", a.ID(), b.ID(), err, cb != nil)
	}
	// With the relay forced the server shares no addresses: the relay is the only
	// path (RelayOnly), so every datagram crosses the server.
	if !ca.RelayOnly() {
		return nil, fmt.Errorf("%s → %s: not relay-only with the relay forced", a.ID(), b.ID())
	}
	f := &relayFlow{send: func(p []byte) error { return ca.SendContext(ctx, 0, mode, p) }}
	readers.Go(func() {
		for {
			m, err := cb.Recv(ctx)
			if err != nil {
				return
			}
			f.received.Add(1)
			f.bytes.Add(uint64(len(m.Data)))
		}
	})
	return f, nil
}
