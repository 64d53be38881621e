package lab

import (
	"fmt"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim"
)

// dualWorld builds the world of a cell (registered and measured) or fails the
// test, naming the seed that replays it.
func dualWorld(t *testing.T, a, b string, seed uint64) *world {
	t.Helper()
	w, err := newWorld(RunConfig{A: a, B: b, Seed: seed, Loss: 0.01})
	if err != nil {
		t.Fatalf("%s × %s seed %d: %v (replay: go run ./cmd/natpass lab --a %s --b %s --replay %d)", a, b, seed, err, a, b, seed)
	}
	return w
}

// replay names a run for a failure message.
func replay(w *world) string {
	return fmt.Sprintf("seed %d (replay: go run ./cmd/natpass lab --a %s --b %s --replay %d)", w.cfg.Seed, w.cfg.A, w.cfg.B, w.cfg.Seed)
}

// Issue 15's acceptance on the simulator: two hosts each behind a random-symmetric
// IPv4 NAT and an IPv6 stateful firewall register over both families, have each
// family measured, and end direct over IPv6, where every message arrives.
func TestDualSymmetricRandomEndsDirectOverIPv6(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		w := dualWorld(t, "dual-symmetric-random", "dual-symmetric-random", seed)
		// The IPv6 measurement follows the register-family answer: it may end
		// after the IPv4 one newWorld waited for.
		measured := func() bool { return w.a.nat.OtherObserved.IsValid() && w.b.nat.OtherObserved.IsValid() }
		if err := w.s.RunUntil(w.s.Now().Add(5*time.Second), measured); err != nil {
			t.Fatalf("%s: %v", replay(w), err)
		}
		for _, sd := range []*side{w.a, w.b} {
			v6, _ := sd.host.SocketOf(sim.IPv6)
			if got := sd.node.OtherObserved(); got != v6 {
				t.Errorf("%s: %s's other-family address at the server %v, want %v (its IPv6 socket, no translation)", replay(w), sd.name, got, v6)
			}
			nat := sd.nat
			if nat.Behavior.Mapping != proto.AddressAndPortDependent || nat.Behavior.NoTranslation {
				t.Errorf("%s: %s's IPv4 measured as %+v, want a symmetric NAT", replay(w), sd.name, nat.Behavior)
			}
			if !nat.OtherBehavior.NoTranslation || nat.OtherBehavior.Filtering != proto.AddressAndPortDependent || nat.OtherObserved != v6 {
				t.Errorf("%s: %s's IPv6 measured as %+v at %v, want a stateful firewall (no translation, address-and-port-dependent filtering)",
					replay(w), sd.name, nat.OtherBehavior, nat.OtherObserved)
			}
		}
		w.connect()
		r := w.res
		if !r.Direct || r.Family != sim.IPv6 || !r.Delivered || w.a.received != w.cfg.Messages || w.b.received != w.cfg.Messages {
			t.Errorf("%s: direct %v on %v, delivered %v (a got %d, b got %d of %d): want direct over IPv6, every message",
				replay(w), r.Direct, r.Family, r.Delivered, w.a.received, w.b.received, w.cfg.Messages)
		}
		if r.Strategy != proto.StrategySimultaneousOpen {
			t.Errorf("%s: strategy %v, want simultaneous open (over IPv6)", replay(w), r.Strategy)
		}
	}
}

// blockIPv6 loses every datagram on both hosts' IPv6 links from now on: a firewall
// that came up after the registration, or a broken IPv6 route.
func blockIPv6(w *world) {
	for _, sd := range []*side{w.a, w.b} {
		if l := sd.host.LinkOf(sim.IPv6); l != nil {
			l.Set(sim.LinkConfig{Loss: 1})
		}
	}
}

// Without a working IPv6 path a dual-stack pair falls back to IPv4: direct where
// IPv4 allows it, else the relay; every message arrives either way. One side with
// no IPv6 at all skips the other's IPv6 candidates and counts them.
func TestDualStackFallsBackToIPv4(t *testing.T) {
	cases := []struct {
		a, b   string
		block  bool
		direct bool
	}{
		{"dual-port-restricted-cone", "dual-port-restricted-cone", true, true},
		{"dual-symmetric-random", "dual-symmetric-random", true, false},
		{"dual-port-restricted-cone", "port-restricted-cone", false, true},
		{"dual-symmetric-random", "symmetric-random", false, false},
	}
	for _, c := range cases {
		for seed := uint64(1); seed <= 3; seed++ {
			w := dualWorld(t, c.a, c.b, seed)
			if c.block {
				blockIPv6(w)
			}
			w.connect()
			r := w.res
			if !r.Delivered || w.a.received != w.cfg.Messages || w.b.received != w.cfg.Messages {
				t.Errorf("%s: a got %d, b got %d of %d messages (%s)", replay(w), w.a.received, w.b.received, w.cfg.Messages, r.Err)
			}
			if r.Direct != c.direct || r.Direct && r.Family != sim.IPv4 {
				t.Errorf("%s: direct %v on %v, want direct %v over IPv4", replay(w), r.Direct, r.Family, c.direct)
			}
			if !c.block && w.b.node.Stats().NoSocket == 0 {
				t.Errorf("%s: B (IPv4 only) counted none of A's IPv6 candidates as skipped", replay(w))
			}
		}
	}
}
