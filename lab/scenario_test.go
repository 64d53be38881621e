package lab

import (
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim/simtest"
)

// connected builds a world for a × b and connects it, failing the test if the pair
// does not reach a direct path with every message delivered.
func connected(t *testing.T, a, b string, seed uint64, mappingTimeout time.Duration) *world {
	t.Helper()
	w, err := newWorld(RunConfig{A: a, B: b, Seed: seed, Loss: 0.01, Messages: 20, MappingTimeout: mappingTimeout})
	if err != nil {
		t.Fatal(err)
	}
	w.connect()
	if !w.res.Direct || !w.res.Delivered {
		t.Fatalf("not connected: %+v", w.res)
	}
	return w
}

// exchange has both sides send n more messages and runs until both arrived (or d
// passed); it returns how long that took.
func (w *world) exchange(t *testing.T, n int, d time.Duration) time.Duration {
	t.Helper()
	start := w.s.Now()
	wantA, wantB := w.b.sent+n, w.a.sent+n
	if err := w.a.sendMore(start, n); err != nil {
		t.Fatal(err)
	}
	if err := w.b.sendMore(start, n); err != nil {
		t.Fatal(err)
	}
	if err := w.s.RunUntil(start.Add(d), func() bool { return w.a.received >= wantA && w.b.received >= wantB }); err != nil {
		t.Fatal(err)
	}
	if w.a.received != wantA || w.b.received != wantB || w.a.corrupt+w.b.corrupt != 0 {
		t.Fatalf("after %v: a got %d/%d, b got %d/%d, %d out of order or altered",
			d, w.a.received, wantA, w.b.received, wantB, w.a.corrupt+w.b.corrupt)
	}
	return w.s.Now().Sub(start)
}

// Issue 6: an idle session survives 10 minutes behind NATs with a 30 s mapping
// timeout: heartbeats keep the mappings, the path never dies, and a message sent
// afterwards arrives at once. Issue 7: at most one flap (a brief move to the relay
// after three heartbeats in a row were lost) per 10 minutes.
func TestIdleSessionSurvivesTenMinutes(t *testing.T) {
	for _, c := range [][2]string{{"port-restricted-cone", "linux"}, {"cgnat", "symmetric-random"}, {"symmetric-sequential", "symmetric-sequential"}} {
		t.Run(c[0]+"×"+c[1], func(t *testing.T) {
			simtest.Seeds(t, 1, 2, 10, func(t *testing.T, seed uint64) {
				w := connected(t, c[0], c[1], seed, 30*time.Second)
				flaps := w.a.flaps + w.b.flaps
				deaths := w.a.deaths + w.b.deaths
				if err := w.s.RunFor(10 * time.Minute); err != nil {
					t.Fatal(err)
				}
				if d := w.a.deaths + w.b.deaths - deaths; d != 0 {
					t.Errorf("the direct path died %d times while idle", d)
				}
				for _, sd := range []*side{w.a, w.b} {
					if k, _ := sd.node.Peer(sd.peer); k != proto.PathDirect {
						t.Errorf("%s is on %v after 10 idle minutes", sd.name, k)
					}
				}
				if f := w.a.flaps + w.b.flaps - flaps; f > 1 {
					t.Errorf("%d path flaps in 10 idle minutes, at most 1", f)
				}
				if took := w.exchange(t, 5, 5*time.Second); took > time.Second {
					t.Errorf("messages after 10 idle minutes took %v", took)
				}
			})
		})
	}
}

// recover measures, over seeds, how long after disrupt both sides are back on a
// direct path with messages flowing, and checks no message sent meanwhile is lost.
func recoverAfter(t *testing.T, a, b string, seeds int, disrupt func(w *world)) []time.Duration {
	t.Helper()
	var times []time.Duration
	simtest.Seeds(t, 1, seeds, 4, func(t *testing.T, seed uint64) {
		w := connected(t, a, b, seed, 0)
		if err := w.s.RunFor(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		t0 := w.s.Now()
		disrupt(w)
		// Traffic keeps flowing through the disruption: nothing may be lost.
		wantA, wantB := w.b.sent+10, w.a.sent+10
		if err := w.a.sendMore(t0, 10); err != nil {
			t.Fatal(err)
		}
		if err := w.b.sendMore(t0, 10); err != nil {
			t.Fatal(err)
		}
		// Back: both sides on a direct path (a new one, or the old one if it never
		// broke) and every message sent since the disruption delivered.
		direct := func(sd *side, peer string) bool {
			k, _ := sd.node.Peer(peer)
			return k == proto.PathDirect && sd.lastDirect >= sd.lastDown
		}
		back := func() bool {
			return direct(w.a, "b") && direct(w.b, "a") && w.a.received >= wantA && w.b.received >= wantB
		}
		if err := w.s.RunUntil(t0.Add(30*time.Second), back); err != nil {
			t.Fatal(err)
		}
		if !back() {
			t.Fatalf("not recovered after 30 s: a direct %v, b direct %v, a got %d/%d, b got %d/%d", direct(w.a, "b"),
				direct(w.b, "a"), w.a.received, wantA, w.b.received, wantB)
		}
		if w.a.corrupt+w.b.corrupt != 0 {
			t.Fatalf("%d messages out of order or altered", w.a.corrupt+w.b.corrupt)
		}
		times = append(times, w.s.Now().Sub(t0))
	})
	slices.Sort(times)
	return times
}

func p95(times []time.Duration) time.Duration {
	if len(times) == 0 {
		return 0
	}
	return times[min(len(times)-1, (len(times)*95+99)/100-1)]
}

// Issue 6: after a move to another NAT, the session recovers a direct path in p95 ≤ 2 s
// without losing a message. The move is A's NAT taking a new public address with no
// state (what a device sees when it changes network); the driver tells the node, as
// an OS network-change notification would.
func TestRecoversAfterMove(t *testing.T) {
	for _, c := range [][2]string{{"port-restricted-cone", "linux"}, {"cgnat", "full-cone"}} {
		t.Run(c[0]+"×"+c[1], func(t *testing.T) {
			times := recoverAfter(t, c[0], c[1], 10, func(w *world) {
				w.pr.A.Outer().Renumber()
				w.a.node.NetworkChanged(w.s.Now())
				w.a.host.Drain()
			})
			t.Logf("recovery after a move: p50 %v p95 %v (%d runs)", times[len(times)/2], p95(times), len(times))
			if p95(times) > 2*time.Second {
				t.Errorf("p95 recovery %v, target ≤ 2 s", p95(times))
			}
		})
	}
}

// After a NAT reboot (all mappings lost, nobody told), the peers notice the silence,
// get a fresh introduction and recover a direct path without losing a message.
func TestRecoversAfterNATReboot(t *testing.T) {
	for _, c := range [][2]string{{"port-restricted-cone", "port-restricted-cone"}, {"cgnat", "full-cone"}, {"symmetric-random", "full-cone"}} {
		t.Run(c[0]+"×"+c[1], func(t *testing.T) {
			times := recoverAfter(t, c[0], c[1], 10, func(w *world) {
				for _, b := range w.pr.A.Boxes {
					b.Reboot()
				}
			})
			t.Logf("recovery after a NAT reboot: p50 %v p95 %v (%d runs)", times[len(times)/2], p95(times), len(times))
			// Nobody tells the nodes: traffic that goes unacknowledged makes them check
			// the path at once (a heartbeat, then the address the peer was last seen
			// at), instead of waiting for the 2.5 s heartbeat to miss.
			if p95(times) > 2*time.Second {
				t.Errorf("p95 recovery after a NAT reboot %v, target ≤ 2 s", p95(times))
			}
		})
	}
}

// A network that repeats datagrams costs nothing but the copies: every message
// arrives once and in order, and the repeats are counted as duplicates, never as
// bad transport packets (which would hide an attack or a bug among them).
func TestDuplicatedDatagramsAreCountedNotRefused(t *testing.T) {
	simtest.Seeds(t, 1, 3, 2, func(t *testing.T, seed uint64) {
		w, err := newWorld(RunConfig{A: "port-restricted-cone", B: "full-cone", Seed: seed, Duplicate: 0.1, Messages: 20})
		if err != nil {
			t.Fatal(err)
		}
		w.connect()
		if !w.res.Delivered {
			t.Fatalf("not connected: %+v", w.res)
		}
		w.exchange(t, 200, 30*time.Second)
		for _, s := range []*side{w.a, w.b} {
			st := s.node.Stats()
			if st.Duplicates == 0 || st.BadTransport != 0 {
				t.Errorf("%s: %d duplicates, %d bad transport packets with 10 %% of datagrams repeated; want some duplicates and no bad ones", s.name, st.Duplicates, st.BadTransport)
			}
		}
	})
}
