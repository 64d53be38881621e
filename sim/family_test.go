package sim

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim/simtest"
)

// sendAndWait makes h's recorder send one datagram and runs the sim for 100 ms, long
// enough for it (and any echo) to land across a Pair.
func sendAndWait(t *testing.T, s *Sim, h *Host, from, to netip.AddrPort, data string) {
	t.Helper()
	r := h.Machine().(*recorder)
	r.out = append(r.out, proto.Transmit{From: from, To: to, Payload: []byte(data)})
	h.Drain()
	if err := s.RunFor(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// The IPv6 names and their order are a contract with natpass lab, as the IPv4 ones
// are; none of them is in Presets, so the IPv4 matrix stays as it was.
func TestIPv6PresetNames(t *testing.T) {
	want := []string{"ipv6-open", "ipv6-firewall", "dual-port-restricted-cone", "dual-cgnat", "dual-symmetric-random"}
	got := IPv6PresetNames()
	if len(got) != len(want) {
		t.Fatalf("IPv6PresetNames = %v, want %v", got, want)
	}
	for i, name := range want {
		p, ok := PresetByName(name)
		if got[i] != name || !ok || p.Summary == "" || !p.Stack.Has(IPv6) {
			t.Errorf("%s: IPv6PresetNames[%d] = %s, PresetByName = %+v, %v", name, i, got[i], p, ok)
		}
		for _, v4 := range PresetNames() {
			if v4 == name {
				t.Errorf("%s is in Presets too", name)
			}
		}
	}
	// A dual-stack preset's IPv4 side is its IPv4 preset exactly.
	for _, v4 := range []string{"port-restricted-cone", "cgnat", "symmetric-random"} {
		d := MustPreset("dual-" + v4)
		if d.Stack != DualStack || d.Behavior() != MustPreset(v4).Behavior() || len(d.Boxes) != len(MustPreset(v4).Boxes) {
			t.Errorf("dual-%s: stack %s, behaviour %+v", v4, d.Stack, d.Behavior())
		}
	}
}

// The IPv6 stateful firewall of ipv6-firewall: no translation, nothing in unless the
// inside opened the flow, then only from the address and port it sent to, and only
// until the mapping times out (2 min, refreshed by outbound traffic).
func TestIPv6FirewallFiltering(t *testing.T) {
	pr := NewPair(PairConfig{Seed: simtest.Seed(t, 1), A: MustPreset("ipv6-firewall"), B: MustPreset("ipv6-open")})
	s := pr.Sim
	a, b := pr.A.Host, pr.B.Host
	ra, rb := attachRecorder(a), attachRecorder(b)
	aSock, _ := a.SocketOf(IPv6)
	bSock, _ := b.SocketOf(IPv6)
	bOther := b.Open(bSock.Addr(), 4001)
	if _, ok := a.AddrOf(IPv4); ok || !aSock.IsValid() || len(pr.A.Boxes6) != 1 || len(pr.A.Boxes) != 0 {
		t.Fatalf("ipv6-firewall host: addrs %v, boxes %d/%d", a.Addrs(), len(pr.A.Boxes), len(pr.A.Boxes6))
	}
	fw := pr.A.Boxes6[0]
	drops := func(r DropReason) uint64 { return s.Stats().Dropped[r] }

	sendAndWait(t, s, b, bSock, aSock, "unsolicited")
	if len(ra.got) != 0 || drops(DropNoMapping) != 1 {
		t.Fatalf("unsolicited inbound passed the IPv6 firewall: %+v", ra.got)
	}
	sendAndWait(t, s, a, aSock, bSock, "out")
	if len(rb.got) != 1 || rb.got[0].from != aSock || fw.Mappings() != 1 {
		t.Fatalf("b got %+v (want a's own address, untranslated); firewall entries %d", rb.got, fw.Mappings())
	}
	sendAndWait(t, s, b, bSock, aSock, "reply")
	sendAndWait(t, s, b, bOther, aSock, "other port")
	if len(ra.got) != 1 || ra.got[0].data != "reply" || drops(DropFiltered) != 1 {
		t.Fatalf("a got %+v, drops %v; want only the reply from the port it sent to", ra.got, s.Stats().Dropped)
	}
	// Outbound refreshes: 90 s, send, 90 s, and the flow is still open.
	for _, step := range []string{"keepalive", ""} {
		if err := s.RunFor(90 * time.Second); err != nil {
			t.Fatal(err)
		}
		if step != "" {
			sendAndWait(t, s, a, aSock, bSock, step)
		}
	}
	sendAndWait(t, s, b, bSock, aSock, "after 180 s")
	if len(ra.got) != 2 {
		t.Fatal("an entry refreshed by outbound traffic expired")
	}
	if err := s.RunFor(2*time.Minute + time.Second); err != nil {
		t.Fatal(err)
	}
	sendAndWait(t, s, b, bSock, aSock, "too late")
	if len(ra.got) != 2 || drops(DropNoMapping) != 2 || fw.Mappings() != 0 {
		t.Fatalf("after the timeout: a got %d, no-mapping drops %d", len(ra.got), drops(DropNoMapping))
	}
}

// A dual-stack host reaches the server's IPv4 and IPv6 addresses each through its
// own chain: the IPv4 flow is translated by the symmetric NAT, the IPv6 one passes the
// firewall untranslated; each box holds one entry, and the answers come back to the
// socket of their family. A Transmit without From leaves from its family's socket.
func TestDualStackSeparateMappings(t *testing.T) {
	pr := NewPair(PairConfig{Seed: simtest.Seed(t, 1), A: MustPreset("dual-symmetric-random"), B: MustPreset("open")})
	s := pr.Sim
	a := pr.A.Host
	ra, srv := attachRecorder(a), attachRecorder(pr.Server)
	srv.echo = true
	v4, _ := pr.ServerAddrOf(IPv4)
	v6, ok := pr.ServerAddrOf(IPv6)
	a4, _ := a.SocketOf(IPv4)
	a6, _ := a.SocketOf(IPv6)
	if !ok || len(pr.ServerSocketsOf(IPv6)) != 3 || v4 != pr.ServerAddr() || !a4.IsValid() || !a6.IsValid() {
		t.Fatalf("server sockets %v, a's %v", pr.Server.Sockets(), a.Sockets())
	}
	sendAndWait(t, s, a, netip.AddrPort{}, v4, "to v4")
	sendAndWait(t, s, a, netip.AddrPort{}, v6, "to v6")
	if len(srv.got) != 2 || len(ra.got) != 2 {
		t.Fatalf("server got %+v, a got %+v", srv.got, ra.got)
	}
	nat, fw := pr.A.Inner(), pr.A.Boxes6[0]
	from4, from6 := srv.got[0].from, srv.got[1].from
	if from4.Addr() != nat.Addr() || from6 != a6 || nat.Mappings() != 1 || fw.Mappings() != 1 {
		t.Fatalf("server saw %v and %v; NAT %v has %d mappings, firewall %d entries",
			from4, from6, nat.Addr(), nat.Mappings(), fw.Mappings())
	}
	if ra.got[0].local != a4 || ra.got[0].from != v4 || ra.got[1].local != a6 || ra.got[1].from != v6 {
		t.Fatalf("a got %+v; want each echo on its family's socket", ra.got)
	}
	if s.Stats().TotalDropped() != 0 {
		t.Fatalf("drops %v", s.Stats().Dropped)
	}
}

// Packets never cross families: a socket bound to IPv4 cannot send to IPv6 and vice
// versa (counted as DropFamily on the host, before any box makes state), and an IPv4
// NAT drops an IPv6 packet from a host that was given an IPv6 address by hand.
func TestFamilyMismatchDrop(t *testing.T) {
	pr := NewPair(PairConfig{Seed: simtest.Seed(t, 1), A: MustPreset("dual-port-restricted-cone"), B: MustPreset("open")})
	s := pr.Sim
	a := pr.A.Host
	srv := attachRecorder(pr.Server)
	attachRecorder(a)
	a4, _ := a.SocketOf(IPv4)
	a6, _ := a.SocketOf(IPv6)
	v4, _ := pr.ServerAddrOf(IPv4)
	v6, _ := pr.ServerAddrOf(IPv6)
	sendAndWait(t, s, a, a4, v6, "v4 socket to v6")
	sendAndWait(t, s, a, a6, v4, "v6 socket to v4")
	if len(srv.got) != 0 || s.Stats().Dropped[DropFamily] != 2 || pr.A.Inner().Mappings() != 0 || pr.A.Boxes6[0].Mappings() != 0 {
		t.Fatalf("server got %+v; drops %v; boxes made state", srv.got, s.Stats().Dropped)
	}
	sendAndWait(t, s, a, a4, netip.AddrPortFrom(netip.AddrFrom16(v4.Addr().As16()), v4.Port()), "v4 socket to a mapped v4 address")
	if s.Stats().Dropped[DropFamily] != 2 || s.Stats().Dropped[DropNoRoute] != 1 {
		t.Fatalf("a mapped IPv4 address is IPv4 (no route, as before IPv6): drops %v", s.Stats().Dropped)
	}
	// A host behind the IPv4 NAT with an IPv6 address by hand.
	h := s.AddHost("h", pr.A.Inner().Inside(), LinkConfig{}, netip.MustParseAddr("2001:db8:99::2"))
	attachRecorder(h)
	sendAndWait(t, s, h, h.OpenPort(4000), v6, "v6 through a v4 NAT")
	if len(srv.got) != 0 || s.Stats().Dropped[DropFamily] != 3 {
		t.Fatalf("an IPv4 NAT passed IPv6: server got %+v, drops %v", srv.got, s.Stats().Dropped)
	}
	if DropFamily.String() != "family" {
		t.Errorf("DropFamily is %q", DropFamily)
	}
}

// A partition names a path, and each family has its own: cutting A's IPv4 NAT off
// leaves A's IPv6 traffic alone; cutting A itself cuts both.
func TestPartitionPerFamily(t *testing.T) {
	pr := NewPair(PairConfig{Seed: simtest.Seed(t, 1), A: MustPreset("dual-port-restricted-cone"), B: MustPreset("open")})
	s := pr.Sim
	a := pr.A.Host
	srv := attachRecorder(pr.Server)
	attachRecorder(a)
	v4, _ := pr.ServerAddrOf(IPv4)
	v6, _ := pr.ServerAddrOf(IPv6)
	s.Partition(pr.A.Inner(), pr.Server, Window{From: 0, Until: s.Now().Add(time.Second)})
	sendAndWait(t, s, a, netip.AddrPort{}, v4, "v4")
	sendAndWait(t, s, a, netip.AddrPort{}, v6, "v6")
	if len(srv.got) != 1 || srv.got[0].data != "v6" {
		t.Fatalf("partition of the IPv4 NAT: server got %+v", srv.got)
	}
	s.Partition(a, pr.Server, Window{From: s.Now(), Until: s.Now().Add(time.Second)})
	sendAndWait(t, s, a, netip.AddrPort{}, v6, "v6 again")
	if len(srv.got) != 1 || s.Stats().Dropped[DropPartition] != 2 {
		t.Fatalf("partition of the host: server got %+v, drops %v", srv.got, s.Stats().Dropped)
	}
}

// The world a dual-stack pair lives in, as natpass lab will print it.
func TestDescribeDualStack(t *testing.T) {
	pr := NewPair(PairConfig{Seed: 1, A: MustPreset("dual-cgnat"), B: MustPreset("ipv6-firewall")})
	got := pr.Sim.Describe()
	want := `box  a-nat2    198.51.100.1 in core: a-nat2 mapping=endpoint-independent filtering=endpoint-independent allocation=random hairpin
box  a-nat     100.64.0.2 in a-nat2: a-nat mapping=endpoint-independent filtering=address-and-port-dependent allocation=preserving hairpin
box  a-fw6     2001:db8:ffff::1 in core: a-fw6 ipv6 firewall filtering=address-and-port-dependent
box  b-fw6     2001:db8:ffff::2 in core: b-fw6 ipv6 firewall filtering=address-and-port-dependent
host server    203.0.113.10,203.0.113.11,2001:db8::10,2001:db8::11 in core, sockets 203.0.113.10:3478 203.0.113.10:3479 203.0.113.11:3478 [2001:db8::10]:3478 [2001:db8::10]:3479 [2001:db8::11]:3478
host a         10.2.0.2,2001:db8:1::2 in a-nat+a-fw6, sockets 10.2.0.2:4000 [2001:db8:1::2]:4000
host b         2001:db8:2::2 in b-fw6, sockets [2001:db8:2::2]:4000
`
	if got != want {
		t.Errorf("Describe:\n%s\nwant:\n%s", got, want)
	}
}

// The same seed gives a byte-identical trace in a dual-stack world too.
func TestDualStackSameSeedSameTrace(t *testing.T) {
	seed := simtest.Seed(t, 3)
	run := func() []byte {
		pr := NewPair(PairConfig{Seed: seed, A: MustPreset("dual-symmetric-random"), B: MustPreset("dual-cgnat"),
			Access: LinkConfig{Latency: 10 * time.Millisecond, Jitter: 3 * time.Millisecond, Loss: 0.1, Duplicate: 0.05, Reorder: 0.1}})
		var buf bytes.Buffer
		pr.Sim.SetTracer(TraceTo(&buf))
		attachRecorder(pr.Server).echo = true
		for _, h := range []*Host{pr.A.Host, pr.B.Host} {
			r := attachRecorder(h)
			for i := range 100 {
				to := pr.Server.Sockets()[i%6]
				r.later = append(r.later, scheduled{at: proto.Instant(i) * proto.Instant(5*time.Millisecond),
					tx: proto.Transmit{To: to, Payload: make([]byte, 50+i)}})
			}
			h.Drain()
		}
		if err := pr.Sim.RunFor(2 * time.Second); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	a, b := run(), run()
	if len(a) == 0 || !bytes.Equal(a, b) || !bytes.Contains(a, []byte("2001:db8:")) {
		t.Fatalf("two dual-stack runs with seed %d differ (or carried no IPv6)", seed)
	}
}

// The oracle over families, as a table: IPv6 (firewalls, no translation) is always
// simultaneous open, and a dual-stack pair ends there even when its IPv4 NATs leave
// no direct path; a pair that shares no family has none.
func TestOracleFamilyTable(t *testing.T) {
	type answer struct {
		family Family
		st     proto.Strategy
	}
	so, none := proto.StrategySimultaneousOpen, proto.StrategyNone
	want := []struct {
		a, b      string
		placement Placement
		end       answer
		v4, v6    proto.Strategy // OracleOf per family (none also when a side lacks it)
	}{
		{"ipv6-firewall", "ipv6-firewall", Apart, answer{IPv6, so}, none, so},
		{"ipv6-firewall", "ipv6-open", Apart, answer{IPv6, so}, none, so},
		{"dual-symmetric-random", "dual-symmetric-random", Apart, answer{IPv6, so}, none, so},
		{"dual-cgnat", "dual-symmetric-random", Apart, answer{IPv6, so}, proto.StrategyBirthday, so},
		{"dual-symmetric-random", "ipv6-firewall", Apart, answer{IPv6, so}, none, so},
		{"dual-cgnat", "symmetric-random", Apart, answer{IPv4, proto.StrategyBirthday}, proto.StrategyBirthday, none},
		{"dual-port-restricted-cone", "port-restricted-cone", Apart, answer{IPv4, so}, so, none},
		{"ipv6-firewall", "symmetric-random", Apart, answer{IPv4, none}, none, none},
		{"ipv6-firewall", "open", Apart, answer{IPv4, none}, none, none},
		{"dual-symmetric-random", "open", SameLAN, answer{IPv6, so}, so, so},
		{"dual-cgnat", "dual-cgnat", SameCarrier, answer{IPv6, so}, so, so},
	}
	for _, w := range want {
		a, b := MustPreset(w.a), MustPreset(w.b)
		f, st := OracleFamily(a, b, w.placement)
		if (answer{f, st}) != w.end || Oracle(a, b, w.placement) != w.end.st {
			t.Errorf("%s × %s %s: OracleFamily = %s %s, want %s %s", w.a, w.b, w.placement, f, st, w.end.family, w.end.st)
		}
		if w.placement != SameLAN {
			if f2, st2 := OracleFamily(b, a, w.placement); w.placement == Apart && (answer{f2, st2}) != w.end {
				t.Errorf("%s × %s: not symmetric (%s %s)", w.a, w.b, f2, st2)
			}
		}
		for _, c := range []struct {
			f    Family
			want proto.Strategy
		}{{IPv4, w.v4}, {IPv6, w.v6}} {
			st, ok := OracleOf(a, b, w.placement, c.f)
			hasBoth := a.Stack.Has(c.f) && (w.placement == SameLAN || b.Stack.Has(c.f))
			if st != c.want || ok != hasBoth {
				t.Errorf("%s × %s %s: OracleOf(%s) = %s, %v; want %s, %v", w.a, w.b, w.placement, c.f, st, ok, c.want, hasBoth)
			}
		}
	}
}

// The oracle is checked against the simulator for every pair of IPv6 presets and
// every family both have, and each against an IPv4 preset over IPv4: its strategy
// gets through; when it says none, nothing does. On one LAN and on one carrier too.
func TestOracleIPv6AgreesWithSimulation(t *testing.T) {
	seed := simtest.Seed(t, 1)
	strategies := []proto.Strategy{proto.StrategySimultaneousOpen, proto.StrategyPortPrediction, proto.StrategyBirthday}
	check := func(a, b Preset, placement Placement, f Family) {
		t.Helper()
		st, ok := OracleOf(a, b, placement, f)
		if !ok {
			return
		}
		o := punchOptions{family: f}
		if st == proto.StrategyNone {
			for _, try := range strategies {
				if punchWith(t, seed, a, b, placement, try, o) {
					t.Errorf("%s × %s %s over %s: oracle says none, but %s got through", a.Name, b.Name, placement, f, try)
				}
			}
			return
		}
		if !punchWith(t, seed, a, b, placement, st, o) {
			t.Errorf("%s × %s %s over %s: oracle's %s did not get through", a.Name, b.Name, placement, f, st)
		}
	}
	v4 := []Preset{MustPreset("open"), MustPreset("port-restricted-cone"), MustPreset("symmetric-random")}
	for _, a := range IPv6Presets() {
		for _, b := range append(IPv6Presets(), v4...) {
			check(a, b, Apart, IPv6)
			check(a, b, Apart, IPv4)
		}
		check(a, a, SameLAN, IPv6)
		check(a, a, SameLAN, IPv4)
	}
	dualCGNAT := MustPreset("dual-cgnat")
	for _, b := range IPv6Presets() {
		check(dualCGNAT, b, SameCarrier, IPv6)
		check(dualCGNAT, b, SameCarrier, IPv4)
	}
}
