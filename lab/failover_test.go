package lab

import (
	"testing"
	"time"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim"
	"github.com/natpass/natpass/sim/simtest"
)

// stream has both sides send one message every interval for d.
func (w *world) stream(t *testing.T, d, interval time.Duration) {
	t.Helper()
	w.streamFrom(t, d, interval, w.a, w.b)
}

// streamFrom has each of senders send one message every interval for d.
func (w *world) streamFrom(t *testing.T, d, interval time.Duration, senders ...*side) {
	t.Helper()
	for end := w.s.Now().Add(d); w.s.Now() < end; {
		for _, sd := range senders {
			if err := sd.sendMore(w.s.Now(), 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.s.RunFor(interval); err != nil {
			t.Fatal(err)
		}
	}
}

// Issue 7: a direct path blackholed mid-transfer: traffic resumes through the relay
// within 3 s, no reliable message is lost or duplicated, no new handshake; when the
// path returns, traffic is back on it within 60 s.
func TestBlackholeFailsOverToRelay(t *testing.T) {
	for _, c := range [][2]string{{"port-restricted-cone", "linux"}, {"cgnat", "full-cone"}} {
		t.Run(c[0]+"×"+c[1], func(t *testing.T) {
			simtest.Seeds(t, 1, 3, 7, func(t *testing.T, seed uint64) {
				w := connected(t, c[0], c[1], seed, 0)
				w.stream(t, 3*time.Second, 50*time.Millisecond)
				handshakes := w.a.node.Stats().Handshakes + w.b.node.Stats().Handshakes
				t0 := w.s.Now()
				outage := sim.Window{From: t0, Until: t0.Add(20 * time.Second)}
				w.s.Partition(w.pr.A.Host, w.pr.B.Host, outage)
				// Resumed: a message sent after the blackhole began is delivered (the
				// stream is ordered, so everything before it arrived too).
				wantA, wantB := w.b.sent+1, w.a.sent+1
				var resumed proto.Instant
				for w.s.Now() < outage.Until {
					w.stream(t, 100*time.Millisecond, 50*time.Millisecond)
					if resumed == 0 && w.a.received >= wantA && w.b.received >= wantB {
						resumed = w.s.Now()
					}
				}
				t.Logf("traffic resumed through the relay %v after the blackhole began", resumed.Sub(t0))
				if resumed == 0 || resumed.Sub(t0) > 3*time.Second {
					t.Errorf("traffic resumed %v after the blackhole began (0: never), want ≤ 3 s", resumed.Sub(t0))
				}
				if h := w.a.node.Stats().Handshakes + w.b.node.Stats().Handshakes; h != handshakes {
					t.Errorf("%d new handshakes during the outage", h-handshakes)
				}
				w.stream(t, 65*time.Second, 50*time.Millisecond)
				if err := w.s.RunFor(5 * time.Second); err != nil {
					t.Fatal(err)
				}
				for _, sd := range []*side{w.a, w.b} {
					if sd.lastDirect < outage.Until || sd.lastDirect.Sub(outage.Until) > 60*time.Second {
						t.Errorf("%s back on a direct path %v after the outage (want ≤ 60 s)", sd.name, sd.lastDirect.Sub(outage.Until))
					}
				}
				if w.a.received != w.b.sent || w.b.received != w.a.sent || w.a.corrupt+w.b.corrupt != 0 {
					t.Errorf("a got %d of %d, b got %d of %d, %d out of order or altered",
						w.a.received, w.b.sent, w.b.received, w.a.sent, w.a.corrupt+w.b.corrupt)
				}
			})
		})
	}
}

// Issue 7: at most one path flap per 10 minutes under jitter (30 ms on every access
// link), with a message each way every second.
func TestJitterDoesNotFlap(t *testing.T) {
	simtest.Seeds(t, 1, 2, 10, func(t *testing.T, seed uint64) {
		w, err := newWorld(RunConfig{A: "port-restricted-cone", B: "cgnat", Seed: seed, Loss: 0.01, Messages: 20,
			Jitter: 30 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		w.connect()
		if !w.res.Direct || !w.res.Delivered {
			t.Fatalf("not connected: %+v", w.res)
		}
		flaps := w.a.flaps + w.b.flaps
		w.stream(t, 10*time.Minute, time.Second)
		if f := w.a.flaps + w.b.flaps - flaps; f > 1 {
			t.Errorf("%d path flaps in 10 minutes, at most 1", f)
		}
	})
}

// Issue 7: relay policy. force relays everything and shares no addresses with the
// peer (so no direct path can form even between two open hosts); never forbids the
// relay (two random-symmetric NATs then cannot talk at all, and say why).
func TestRelayPolicy(t *testing.T) {
	r := Run(RunConfig{A: "open", B: "open", Seed: 1, Loss: 0.01, Messages: 20, Relay: node.RelayForce})
	if !r.Delivered || r.Direct || !r.Relay {
		t.Errorf("force between open hosts: %+v, want every message through the relay and no direct path", r)
	}
	r = Run(RunConfig{A: "open", B: "open", Seed: 1, Loss: 0.01, Messages: 20, Relay: node.RelayNever})
	if !r.Delivered || !r.Direct {
		t.Errorf("never between open hosts: %+v, want a direct path", r)
	}
	r = Run(RunConfig{A: "symmetric-random", B: "symmetric-random", Seed: 1, Loss: 0.01, Messages: 20, Relay: node.RelayNever})
	if r.Delivered || r.Relay {
		t.Errorf("never between random-symmetric NATs: %+v, want nothing delivered", r)
	}
}

// Issue 8 (the state machines' part): a server restart does not end a relayed session.
// The server is unreachable for 10 s and comes back with no memory; the nodes say the
// relay was lost, register again, allocate their relay channels again, and every
// message sent meanwhile arrives, in order, on the same session.
func TestRelayedSessionSurvivesServerRestart(t *testing.T) {
	simtest.Seeds(t, 1, 3, 5, func(t *testing.T, seed uint64) {
		w, err := newWorld(RunConfig{A: "symmetric-random", B: "symmetric-random", Seed: seed, Loss: 0.01, Messages: 20})
		if err != nil {
			t.Fatal(err)
		}
		w.connect()
		if !w.res.Relay {
			t.Fatalf("want a relayed session: %+v", w.res)
		}
		w.stream(t, 2*time.Second, 100*time.Millisecond)
		t0 := w.s.Now()
		down := sim.Window{From: t0, Until: t0.Add(10 * time.Second)}
		w.s.Partition(w.pr.Server, w.pr.A.Host, down)
		w.s.Partition(w.pr.Server, w.pr.B.Host, down)
		handshakes := w.a.node.Stats().Handshakes + w.b.node.Stats().Handshakes
		w.stream(t, 10*time.Second, 100*time.Millisecond)
		if err := w.startServer(); err != nil { // back, with no sessions
			t.Fatal(err)
		}
		if w.a.lastDown < t0 || w.b.lastDown < t0 {
			t.Errorf("the relay loss was not reported (a %v, b %v)", w.a.lastDown > t0, w.b.lastDown > t0)
		}
		w.stream(t, 15*time.Second, 100*time.Millisecond)
		if err := w.s.RunFor(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		for _, sd := range []*side{w.a, w.b} {
			if k, _ := sd.node.Peer(sd.peer); k != proto.PathRelay {
				t.Errorf("%s on %v after the server came back, want relay", sd.name, k)
			}
		}
		if w.a.received != w.b.sent || w.b.received != w.a.sent || w.a.corrupt+w.b.corrupt != 0 || w.a.closed+w.b.closed != "" {
			t.Errorf("a got %d of %d, b got %d of %d, %d out of order; closed %q %q",
				w.a.received, w.b.sent, w.b.received, w.a.sent, w.a.corrupt+w.b.corrupt, w.a.closed, w.b.closed)
		}
		if h := w.a.node.Stats().Handshakes + w.b.node.Stats().Handshakes; h != handshakes {
			t.Errorf("%d new handshakes: the session should have survived", h-handshakes)
		}
	})
}

// closeAB has A close its connection to B and runs until both have seen it end.
func (w *world) closeAB(t *testing.T) {
	t.Helper()
	if err := w.a.node.ClosePeer(w.s.Now(), "b", 0, "bye"); err != nil {
		t.Fatal(err)
	}
	w.a.host.Drain()
	if err := w.s.RunFor(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if w.a.closed == "" || w.b.closed == "" {
		t.Fatalf("close not seen: a %q, b %q", w.a.closed, w.b.closed)
	}
}

// A connection that ended stays ended across a server restart: its peer hears no
// path news and its relay channel is not allocated again (it would only use up
// the session's channel quota at the new server).
func TestClosedPeerStaysQuietAcrossServerRestart(t *testing.T) {
	w, err := newWorld(RunConfig{A: "symmetric-random", B: "symmetric-random", Seed: 1, Messages: 5})
	if err != nil {
		t.Fatal(err)
	}
	w.connect()
	if !w.res.Relay || !w.res.Delivered {
		t.Fatalf("want a relayed session: %+v", w.res)
	}
	w.closeAB(t)
	downA, downB := w.a.lastDown, w.b.lastDown
	t0 := w.s.Now()
	down := sim.Window{From: t0, Until: t0.Add(10 * time.Second)}
	w.s.Partition(w.pr.Server, w.pr.A.Host, down)
	w.s.Partition(w.pr.Server, w.pr.B.Host, down)
	if err := w.s.RunFor(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := w.startServer(); err != nil {
		t.Fatal(err)
	}
	if err := w.s.RunFor(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if w.a.lastDown != downA || w.b.lastDown != downB {
		t.Errorf("path news for a closed connection after the server went away (a %v → %v, b %v → %v)", downA, w.a.lastDown, downB, w.b.lastDown)
	}
	st := w.srv.Stats()
	if st.Sessions != 2 || st.Relay.Allocations != 0 {
		t.Errorf("restarted server: %d sessions, %d relay allocations; want both nodes back and no channel for the closed connection", st.Sessions, st.Relay.Allocations)
	}
}

// A connection that ended can be made again: after A closes it, A connects to B
// anew (new handshake, new connection), and messages flow again.
func TestReconnectAfterClose(t *testing.T) {
	w := connected(t, "port-restricted-cone", "linux", 1, 0)
	handshakes := w.a.node.Stats().Handshakes
	w.closeAB(t)
	w.a.closed, w.b.closed = "", ""
	w.a.node.Connect(w.s.Now(), "b")
	w.a.host.Drain()
	if err := w.s.RunFor(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	if w.a.node.Stats().Handshakes == handshakes {
		t.Fatal("no new handshake after reconnecting")
	}
	w.exchange(t, 5, 5*time.Second)
}

// A connection closed before punching even started (its agent starts at the
// introduction's start instant, 500 ms in) hears no path news after: the punch
// agent of a closed peer stops. Found on real Linux NAT under load, where a quick
// `natpass cat` ended with "path=none: no direct path possible" after its close.
func TestPeerClosedBeforePunchingStaysQuiet(t *testing.T) {
	// Punching starts 5 s after the introduction; the relayed session is up long before.
	w, err := newWorld(RunConfig{A: "symmetric-random", B: "symmetric-random", Seed: 2, Messages: 1,
		StartDelay: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a, b, s := w.a, w.b, w.s
	a.node.Connect(s.Now(), "b")
	a.host.Drain()
	if err := s.RunUntil(s.Now().Add(5*time.Second), func() bool { return a.connected && b.connected }); err != nil {
		t.Fatal(err)
	}
	if !a.connected || a.gaveUp || b.gaveUp {
		t.Fatalf("want a session up before punching started: connected %v, gave up a %v, b %v", a.connected, a.gaveUp, b.gaveUp)
	}
	if err := a.node.ClosePeer(s.Now(), "b", 0, "bye"); err != nil {
		t.Fatal(err)
	}
	a.host.Drain()
	downA, downB := a.lastDown, b.lastDown
	if err := s.RunFor(10 * time.Second); err != nil { // the start instant passes
		t.Fatal(err)
	}
	if a.closed == "" || b.closed == "" {
		t.Fatalf("close not seen: a %q, b %q", a.closed, b.closed)
	}
	if a.lastDown != downA || b.lastDown != downB || a.gaveUp || b.gaveUp {
		t.Fatalf("path news after the close: a %v → %v (gave up %v), b %v → %v (gave up %v)", downA, a.lastDown, a.gaveUp, downB, b.lastDown, b.gaveUp)
	}
}
