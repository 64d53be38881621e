//go:build linux

package main

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/node"
)

// Nodes from distinct addresses and from one (fewer than the per-source burst),
// each with its own socket, and nodes at distinct addresses sharing one socket all
// register, and the server sees each at the address and port it sent from.
func TestLoadGeneratorRegisters(t *testing.T) {
	spread := make([]netip.Addr, 20)
	for i := range spread {
		spread[i] = loadAddr(i)
	}
	one := slices.Repeat([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, 5)
	for _, c := range []struct {
		addrs  []netip.Addr
		shared bool
	}{{spread, false}, {one, false}, {spread, true}} {
		srv, err := startNatpassServer(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		gen := newLoadGen
		if c.shared {
			gen = newSharedLoadGen
		}
		g, err := gen(srv.addr, c.addrs, "t-", node.RelayAuto)
		if err != nil {
			srv.stop()
			t.Fatal(err)
		}
		g.startAll()
		err = g.run(30*time.Second, func() bool { return g.registered == len(c.addrs) })
		for i, n := range g.nodes {
			if n.registeredAt == 0 || n.m.Observed() != n.local {
				t.Errorf("shared %v, node %d on %v: registered after %v, server saw %v", c.shared, i, n.local, n.registeredAt, n.m.Observed())
			}
		}
		g.close()
		srv.stop()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Raw relay frames written on a relay-only session's channel from the Sans-IO
// sender's socket reach the receiver as relay-delivers, payload intact in length.
func TestRelayNatpassRawSmoke(t *testing.T) {
	s, err := setupNatpassRaw(2)
	if err != nil {
		t.Fatal(err)
	}
	relaySmoke(t, s, 1200)
}
