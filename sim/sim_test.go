package sim

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

func ms(n int) proto.Instant { return proto.Instant(n) * proto.Instant(time.Millisecond) }

// Step jumps to the earliest of the next arrival and the earliest deadline; a packet
// arriving at the same instant as a deadline goes first; Run leaves the clock at its
// bound.
func TestStepOrder(t *testing.T) {
	s := New(Config{Seed: 1})
	a := s.AddHost("a", s.Core(), LinkConfig{Latency: 5 * time.Millisecond})
	b := s.AddHost("b", s.Core(), LinkConfig{})
	ra, rb := attachRecorder(a), attachRecorder(b)
	a.OpenPort(1)
	bAddr := b.OpenPort(2)
	ra.out = append(ra.out, proto.Transmit{To: bAddr, Payload: []byte("x")}) // arrives at 5 ms
	a.Drain()
	rb.later = append(rb.later, scheduled{at: ms(5)}, scheduled{at: ms(9)}) // b's timers
	b.Drain()
	var log []string
	b.AfterStep = func(now proto.Instant) {
		log = append(log, time.Duration(now).String())
	}
	if got := s.Next(); got != ms(5) {
		t.Fatalf("Next = %v, want 5ms", time.Duration(got))
	}
	// The packet crosses a's link (5 ms), the core, then b's ideal link: two steps,
	// both at 5 ms, and both before b's timer of the same instant.
	for range 2 {
		if !s.Step() {
			t.Fatal("Step reported nothing pending")
		}
	}
	if s.Now() != ms(5) || len(rb.got) != 1 || rb.timeouts != 0 {
		t.Fatalf("after two steps: now %v, b got %d, timeouts %d; want the arrival first", time.Duration(s.Now()), len(rb.got), rb.timeouts)
	}
	if !s.Step() || s.Now() != ms(5) || rb.timeouts != 1 {
		t.Fatalf("second step: now %v, timeouts %d; want b's 5 ms timer", time.Duration(s.Now()), rb.timeouts)
	}
	if err := s.Run(ms(7)); err != nil || s.Now() != ms(7) || rb.timeouts != 1 {
		t.Fatalf("Run(7ms): err %v, now %v, timeouts %d", err, time.Duration(s.Now()), rb.timeouts)
	}
	if err := s.Run(proto.Never); err != nil || s.Now() != ms(9) || rb.timeouts != 2 {
		t.Fatalf("Run(Never): err %v, now %v, timeouts %d", err, time.Duration(s.Now()), rb.timeouts)
	}
	if s.Step() {
		t.Fatal("Step with nothing pending reported true")
	}
	if want := []string{"5ms", "5ms", "9ms"}; len(log) != len(want) || log[0] != want[0] || log[2] != want[2] {
		t.Fatalf("AfterStep calls at %v, want %v", log, want)
	}
}

// A command issued from AfterStep is drained in the same step.
func TestAfterStepCommandsAreDrained(t *testing.T) {
	s := New(Config{Seed: 1})
	a, b := s.AddHost("a", s.Core(), LinkConfig{}), s.AddHost("b", s.Core(), LinkConfig{})
	ra, rb := attachRecorder(a), attachRecorder(b)
	aAddr, bAddr := a.OpenPort(1), b.OpenPort(2)
	replied := false
	b.AfterStep = func(now proto.Instant) {
		if len(rb.got) == 1 && !replied {
			replied = true
			rb.out = append(rb.out, proto.Transmit{To: aAddr, Payload: []byte("reply")})
		}
	}
	ra.out = append(ra.out, proto.Transmit{To: bAddr, Payload: []byte("hi")})
	a.Drain()
	if err := s.Run(proto.Never); err != nil {
		t.Fatal(err)
	}
	if len(ra.got) != 1 || ra.got[0].data != "reply" {
		t.Fatalf("a got %+v", ra.got)
	}
}

// livelock keeps its deadline at now and never progresses.
type livelock struct{ recorder }

func (l *livelock) Deadline() proto.Instant { return 0 }

func TestStepLimit(t *testing.T) {
	s := New(Config{Seed: 1, MaxSteps: 1000})
	h := s.AddHost("h", s.Core(), LinkConfig{})
	h.Attach(&livelock{})
	if err := s.Run(ms(1)); !errors.Is(err, ErrStepLimit) {
		t.Fatalf("Run = %v, want ErrStepLimit", err)
	}
	if s.Steps() != 1000 {
		t.Fatalf("took %d steps, bound 1000", s.Steps())
	}
}

// Sockets: extra sockets on request, datagrams to closed ports and from sockets the
// host does not own are dropped and counted, machine errors are counted.
func TestSockets(t *testing.T) {
	s := New(Config{Seed: 1})
	a, b := s.AddHost("a", s.Core(), LinkConfig{}), s.AddHost("b", s.Core(), LinkConfig{})
	ra, rb := attachRecorder(a), attachRecorder(b)
	a.OpenPort(1)
	extra := b.OpenSockets(256)
	if len(extra) != 256 || extra[0].Port() != firstEphemeralPort || extra[255].Port() != firstEphemeralPort+255 {
		t.Fatalf("extra sockets %v ... %v", extra[0], extra[len(extra)-1])
	}
	if len(b.Sockets()) != 256 || b.Socket() != extra[0] {
		t.Fatalf("b has %d sockets, first %v", len(b.Sockets()), b.Socket())
	}
	for _, to := range []netip.AddrPort{extra[100], netip.AddrPortFrom(b.Addr(), 7)} {
		ra.out = append(ra.out, proto.Transmit{To: to, Payload: []byte("x")})
	}
	ra.out = append(ra.out, proto.Transmit{From: netip.MustParseAddrPort("192.0.2.99:1"), To: extra[0], Payload: []byte("spoof")})
	ra.out = append(ra.out, proto.Transmit{Payload: []byte("nowhere")})
	a.Drain()
	if err := s.Run(proto.Never); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if len(rb.got) != 1 || rb.got[0].local != extra[100] || st.Dropped[DropNoSocket] != 1 ||
		st.Dropped[DropBadSource] != 1 || st.Dropped[DropNoRoute] != 1 {
		t.Fatalf("b got %+v; drops %v", rb.got, st.Dropped)
	}
	b.Close(extra[100])
	ra.out = append(ra.out, proto.Transmit{To: extra[100], Payload: []byte("x")})
	a.Drain()
	if err := s.Run(proto.Never); err != nil {
		t.Fatal(err)
	}
	if len(rb.got) != 1 || s.Stats().Dropped[DropNoSocket] != 2 {
		t.Fatal("a closed socket still receives")
	}
}

// A stateful firewall on IPv6: no translation, filtering as configured.
func TestFirewallIPv6(t *testing.T) {
	s := New(Config{Seed: 1})
	fw := s.AddNAT("fw", s.Core(), NATConfig{NoTranslation: true, Filtering: proto.AddressAndPortDependent}, LinkConfig{})
	h := s.AddHost("h", fw.Inside(), LinkConfig{}, netip.MustParseAddr("2001:db8:1::10"))
	r := s.AddHost("r", s.Core(), LinkConfig{}, netip.MustParseAddr("2001:db8:2::20"))
	rh, rr := attachRecorder(h), attachRecorder(r)
	hAddr, rAddr := h.OpenPort(4000), r.OpenPort(5000)
	rOther := r.OpenPort(5001)

	sendNow(t, s, r, rAddr, hAddr, "unsolicited", 0)
	if len(rh.got) != 0 || s.Stats().Dropped[DropNoMapping] != 1 {
		t.Fatal("unsolicited inbound passed the firewall")
	}
	sendNow(t, s, h, hAddr, rAddr, "out", 0)
	if len(rr.got) != 1 || rr.got[0].from != hAddr {
		t.Fatalf("r got %+v; want the host's own address as source", rr.got)
	}
	sendNow(t, s, r, rAddr, hAddr, "reply", 0)
	sendNow(t, s, r, rOther, hAddr, "other port", 0)
	if len(rh.got) != 1 || rh.got[0].from != rAddr || s.Stats().Dropped[DropFiltered] != 1 {
		t.Fatalf("h got %+v, drops %v; want only the reply from the port it sent to", rh.got, s.Stats().Dropped)
	}
}

// Preset names and order are a contract with natpass lab.
func TestPresetNames(t *testing.T) {
	want := []string{"open", "firewall", "full-cone", "restricted-cone", "port-restricted-cone", "linux",
		"cgnat", "symmetric-sequential", "symmetric-random"}
	got := PresetNames()
	if len(got) != len(want) {
		t.Fatalf("PresetNames = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("PresetNames = %v, want %v", got, want)
		}
		if p, ok := PresetByName(want[i]); !ok || p.Name != want[i] || p.Summary == "" {
			t.Errorf("PresetByName(%q) = %+v, %v", want[i], p, ok)
		}
	}
	if _, ok := PresetByName("nope"); ok {
		t.Error("PresetByName found a preset that does not exist")
	}
	// Presets returns copies: changing one does not change the table.
	p := Presets()
	p[4].Boxes[0].Hairpin = false
	if !MustPreset("port-restricted-cone").Boxes[0].Hairpin {
		t.Error("changing a returned preset changed the table")
	}
}

// Thousands of public hosts get distinct automatic addresses.
func TestManyPublicHosts(t *testing.T) {
	s := New(Config{Seed: 1})
	seen := map[netip.Addr]bool{}
	for range 3000 {
		a := s.AddHost("h", s.Core(), LinkConfig{}).Addr()
		if seen[a] {
			t.Fatalf("address %v handed out twice", a)
		}
		seen[a] = true
	}
	for range 300 {
		s.AddNAT("n", s.Core(), NATConfig{}, LinkConfig{})
	}
}

// Two hosts echoing each other over a duplicating link multiply packets without end;
// the in-flight bound stops the run cleanly.
func TestInFlightLimit(t *testing.T) {
	s := New(Config{Seed: 1, MaxInFlight: 10_000})
	a := s.AddHost("a", s.Core(), LinkConfig{Latency: time.Millisecond, Duplicate: 0.5})
	b := s.AddHost("b", s.Core(), LinkConfig{})
	ra, rb := attachRecorder(a), attachRecorder(b)
	ra.echo, rb.echo = true, true
	aAddr, bAddr := a.OpenPort(1), b.OpenPort(2)
	ra.out = append(ra.out, proto.Transmit{From: aAddr, To: bAddr, Payload: []byte("storm")})
	a.Drain()
	if err := s.Run(proto.Never); !errors.Is(err, ErrInFlightLimit) {
		t.Fatalf("Run = %v, want ErrInFlightLimit", err)
	}
}

func TestDescribe(t *testing.T) {
	pr := NewPair(PairConfig{Seed: 1, A: MustPreset("linux"), B: MustPreset("cgnat")})
	got := pr.Sim.Describe()
	want := `box  a-nat     198.51.100.1 in core: a-nat mapping=endpoint-independent filtering=address-and-port-dependent allocation=preserving port-clash
box  b-nat2    198.51.100.2 in core: b-nat2 mapping=endpoint-independent filtering=endpoint-independent allocation=random hairpin
box  b-nat     100.64.0.2 in b-nat2: b-nat mapping=endpoint-independent filtering=address-and-port-dependent allocation=preserving hairpin
host server    203.0.113.10,203.0.113.11 in core, sockets 203.0.113.10:3478 203.0.113.10:3479 203.0.113.11:3478
host a         10.1.0.2 in a-nat, sockets 10.1.0.2:4000
host b         10.3.0.2 in b-nat, sockets 10.3.0.2:4000
`
	if got != want {
		t.Errorf("Describe:\n%s\nwant:\n%s", got, want)
	}
}
