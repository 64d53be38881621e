package rendezvous

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// Dual stack (PROTOCOL.md §5.12, [SRV-14]): the server's IPv6 sockets and the nodes'
// IPv6 addresses (RFC 3849 documentation range).
var (
	srvV6        = netip.MustParseAddrPort("[2001:db8:5::1]:3478")
	srvV6AltPort = netip.MustParseAddrPort("[2001:db8:5::1]:3479")
	srvV6AltAddr = netip.MustParseAddrPort("[2001:db8:6::1]:3478")
	aliceV6      = netip.MustParseAddrPort("[2001:db8:a::10]:40000")
	aliceV6b     = netip.MustParseAddrPort("[2001:db8:a::10]:40002")
	bobV6        = netip.MustParseAddrPort("[2001:db8:b::20]:50000")
)

// dualStack gives the test server an IPv6 primary with both alternates.
func dualStack(c *Config) {
	c.OtherPrimary, c.OtherAltPort, c.OtherAltAddr = srvV6, srvV6AltPort, srvV6AltAddr
}

func regFamilyBytes(c proto.Session, txid uint64) []byte {
	m := proto.RegisterFamily{Session: c, TxID: txid}
	return m.Append(nil)
}

// bindFamily sends alice's register-family from from to srvV6 and returns the reply.
func (h *harness) bindFamily(cookie proto.Session, txid uint64, from netip.AddrPort) (proto.Registered, sent) {
	h.t.Helper()
	err, out, _ := h.deliver(srvV6, from, regFamilyBytes(cookie, txid))
	if err != nil {
		h.t.Fatalf("register-family from %v: %v", from, err)
	}
	var r proto.Registered
	d := only(h.t, out, &r)
	return r, d
}

// [SRV-14]: a register-family binds its source to the session its cookie names; the
// reply is a registered with the txid, the same cookie, the source as observed and
// the alternates of the IPv6 socket it reached, no larger than the request.
func TestRegisterFamilyBindsOtherAddress(t *testing.T) {
	h := newHarness(t, dualStack)
	alice := h.register("alice", 1, aliceNAT, aliceLAN)
	r, d := h.bindFamily(alice.Session, 9, aliceV6)
	if d.From != srvV6 || d.To != aliceV6 {
		t.Fatalf("reply sent %v → %v, want %v → %v", d.From, d.To, srvV6, aliceV6)
	}
	if r.TxID != 9 || r.Session != alice.Session || r.Observed != aliceV6 || r.Keepalive != 25 ||
		r.AltPort != srvV6AltPort || r.AltAddr != srvV6AltAddr {
		t.Fatalf("registered %+v", r)
	}
	if len(d.Payload) > proto.RegisterFamilyLen {
		t.Fatalf("reply of %d bytes to an %d-byte request", len(d.Payload), proto.RegisterFamilyLen)
	}
	info, _ := h.s.Peer([]byte("alice"))
	if info.Addr != aliceNAT || info.OtherAddr != aliceV6 || info.OtherLocal != srvV6 || info.OtherLastSeen != h.now {
		t.Fatalf("peer info %+v", info)
	}
	if st := h.s.Stats(); st.FamilyBinds != 1 || st.FamilyBindings != 1 || st.Registered != 1 {
		t.Fatalf("stats: binds %d, bindings %d, registered %d", st.FamilyBinds, st.FamilyBindings, st.Registered)
	}
}

// [SRV-1]: registered names the alternates of the family of the socket reached, for
// a register too: a node registering over IPv6 learns the IPv6 alternates.
func TestRegisterNamesAlternatesOfItsFamily(t *testing.T) {
	h := newHarness(t, dualStack)
	err, out, _ := h.deliver(srvV6, v6Node, registerBytes(1, ticketFor("carol", 3)))
	var r proto.Registered
	if err != nil {
		t.Fatal(err)
	}
	if d := only(t, out, &r); d.From != srvV6 || r.AltPort != srvV6AltPort || r.AltAddr != srvV6AltAddr {
		t.Fatalf("register over IPv6: from %v, alternates %v %v", d.From, r.AltPort, r.AltAddr)
	}
	if r := h.register("alice", 1, aliceNAT); r.AltPort != srvAltPort || r.AltAddr != srvAltAddr {
		t.Fatalf("register over IPv4: alternates %v %v", r.AltPort, r.AltAddr)
	}
}

// [SRV-14]'s checks, in order: a malformed request is dropped unanswered; an
// unknown cookie gets code 5 within the request's size, charged to no source; the
// same family as the registration gets code 1 and binds nothing.
func TestRegisterFamilyRefusals(t *testing.T) {
	h := newHarness(t, dualStack)
	alice := h.register("alice", 1, aliceNAT)
	bad := regFamilyBytes(alice.Session, 1)
	bad[len(bad)-1] = 1
	if err, out, _ := h.deliver(srvV6, aliceV6, bad); !errors.Is(err, proto.ErrMalformed) || len(out) != 0 {
		t.Fatalf("non-zero padding: %v, %d replies", err, len(out))
	}
	if err, out, _ := h.deliver(srvV6, aliceV6, regFamilyBytes(alice.Session, 1)[:proto.RegisterFamilyLen-1]); !errors.Is(err, proto.ErrShort) || len(out) != 0 {
		t.Fatalf("87 bytes: %v, %d replies", err, len(out))
	}
	sources := h.s.Stats().Sources
	req := regFamilyBytes(proto.Session{1}, 2)
	err, out, _ := h.deliver(srvV6, aliceV6, req)
	if !errors.Is(err, ErrNoSession) || errorCode(t, out) != proto.CodeNoSession || len(out[0].Payload) > len(req) {
		t.Fatalf("unknown cookie: %v, %d replies", err, len(out))
	}
	if h.s.Stats().Sources != sources {
		t.Errorf("the unknown cookie made a per-source entry (%d entries, had %d)", h.s.Stats().Sources, sources)
	}
	err, out, _ = h.deliver(srvPrimary, aliceNAT, regFamilyBytes(alice.Session, 3))
	if !errors.Is(err, ErrSameFamily) || errorCode(t, out) != proto.CodeMalformed || out[0].To != aliceNAT {
		t.Fatalf("same family: %v, %+v", err, out)
	}
	st := h.s.Stats()
	if st.DropMalformed != 2 || st.NoSession != 1 || st.SameFamily != 1 || st.FamilyBinds != 0 || st.FamilyBindings != 0 {
		t.Fatalf("stats %+v", st)
	}
	if info, _ := h.s.Peer([]byte("alice")); info.OtherAddr.IsValid() {
		t.Fatalf("a refused request bound %v", info.OtherAddr)
	}
}

// [SRV-9]: register-family is charged to the session's bucket.
func TestRegisterFamilyRateLimited(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		dualStack(c)
		c.SessionRate = Rate{Interval: time.Hour, Burst: 1}
	})
	alice := h.register("alice", 1, aliceNAT)
	h.bindFamily(alice.Session, 1, aliceV6)
	err, _, _ := h.deliver(srvV6, aliceV6, regFamilyBytes(alice.Session, 2))
	if !errors.Is(err, ErrRateLimited) || h.s.Stats().DropRateLimited != 1 {
		t.Fatalf("second request within the hour: %v, %d rate drops", err, h.s.Stats().DropRateLimited)
	}
}

// [SRV-14]: a retransmission (same txid, source, socket) gets the same reply; a new
// request replaces the binding and clears that family's NAT report.
func TestRegisterFamilyRetransmitAndReplace(t *testing.T) {
	h := newHarness(t, dualStack)
	alice := h.register("alice", 1, aliceNAT)
	_, first := h.bindFamily(alice.Session, 5, aliceV6)
	h.now = h.now.Add(time.Second)
	_, again := h.bindFamily(alice.Session, 5, aliceV6)
	if !bytes.Equal(first.Payload, again.Payload) || again.From != first.From {
		t.Fatalf("retransmission answered differently:\n%x\n%x", first.Payload, again.Payload)
	}
	if info, _ := h.s.Peer([]byte("alice")); info.OtherLastSeen != h.now {
		t.Errorf("a retransmission did not refresh the binding")
	}
	ka := (&proto.Keepalive{Session: alice.Session, Seq: 1, NAT: bobBehavior}).Append(nil)
	h.deliver(srvV6, aliceV6, ka)
	r, _ := h.bindFamily(alice.Session, 6, aliceV6b)
	info, _ := h.s.Peer([]byte("alice"))
	if r.Observed != aliceV6b || info.OtherAddr != aliceV6b || info.OtherNAT != (proto.NATBehavior{}) {
		t.Fatalf("replacing binding: observed %v, bound %v, nat2 %+v", r.Observed, info.OtherAddr, info.OtherNAT)
	}
	if st := h.s.Stats(); st.FamilyRetransmits != 1 || st.FamilyBinds != 2 || st.FamilyBindings != 1 {
		t.Fatalf("stats: retransmits %d, binds %d, bindings %d", st.FamilyRetransmits, st.FamilyBinds, st.FamilyBindings)
	}
}

// [SRV-14] keepalives of the other family: on the binding's socket they refresh it
// (not the session), move it to a new source, store that family's NAT report (never
// the registered family's) and are acknowledged with their source.
func TestOtherFamilyKeepalive(t *testing.T) {
	h := newHarness(t, dualStack)
	alice := h.register("alice", 1, aliceNAT)
	registeredAt := h.now
	h.bindFamily(alice.Session, 1, aliceV6)
	h.now = h.now.Add(10 * time.Second)
	ka := (&proto.Keepalive{Session: alice.Session, Seq: 4, NAT: bobBehavior,
		Predicted: netip.AddrPortFrom(aliceV6b.Addr(), 40010)}).Append(nil)
	err, out, _ := h.deliver(srvV6, aliceV6b, ka)
	var ack proto.KeepaliveAck
	if err != nil {
		t.Fatal(err)
	}
	if d := only(t, out, &ack); d.From != srvV6 || ack.Observed != aliceV6b || ack.Seq != 4 {
		t.Fatalf("ack %+v from %v", ack, d.From)
	}
	info, _ := h.s.Peer([]byte("alice"))
	if info.OtherAddr != aliceV6b || info.OtherNAT != bobBehavior || info.OtherLastSeen != h.now {
		t.Fatalf("binding after the keepalive: %+v", info)
	}
	if info.Addr != aliceNAT || info.LastSeen != registeredAt || info.NAT != (proto.NATBehavior{}) {
		t.Fatalf("the other family's keepalive touched the session: %+v", info)
	}
	if st := h.s.Stats(); st.FamilyRebinds != 1 || st.Rebinds != 0 || st.Keepalives != 1 {
		t.Fatalf("stats: family rebinds %d, rebinds %d, keepalives %d", st.FamilyRebinds, st.Rebinds, st.Keepalives)
	}
	if h.s.peers.sessions[h.s.peers.byCookie[alice.Session]].predicted.IsValid() {
		t.Error("the other family's prediction was stored")
	}

	// On another IPv6 socket: answered, changes nothing (it shows another mapping).
	h.now = h.now.Add(time.Second)
	if err, out, _ := h.deliver(srvV6AltPort, aliceV6, ka); err != nil || len(out) != 1 {
		t.Fatalf("keepalive on the alt port: %v", err)
	}
	if got, _ := h.s.Peer([]byte("alice")); got.OtherAddr != aliceV6b || got.OtherLastSeen != info.OtherLastSeen {
		t.Fatalf("a keepalive on another socket moved the binding: %+v", got)
	}
}

// [SRV-4]: without a binding, a keepalive from the other family is answered and
// changes nothing.
func TestOtherFamilyKeepaliveWithoutBinding(t *testing.T) {
	h := newHarness(t, dualStack)
	alice := h.register("alice", 1, aliceNAT)
	ka := (&proto.Keepalive{Session: alice.Session, Seq: 1, NAT: bobBehavior}).Append(nil)
	if err, out, _ := h.deliver(srvV6, aliceV6, ka); err != nil || len(out) != 1 {
		t.Fatalf("keepalive: %v, %d replies", err, len(out))
	}
	info, _ := h.s.Peer([]byte("alice"))
	if info.OtherAddr.IsValid() || info.OtherNAT != (proto.NATBehavior{}) || h.s.Stats().FamilyBindings != 0 {
		t.Fatalf("an unbound keepalive bound: %+v", info)
	}
}

// [SRV-14]: a binding not refreshed for the session timeout is dropped while its
// session lives on; keepalives of the other family keep it; it ends with the session.
func TestFamilyBindingExpires(t *testing.T) {
	h := newHarness(t, dualStack)
	alice := h.register("alice", 1, aliceNAT)
	bob := h.register("bob", 2, bobNAT)
	h.bindFamily(alice.Session, 1, aliceV6)
	h.bindFamily(bob.Session, 1, bobV6)
	if got, want := h.s.timers[timerBindingExpiry], h.now.Add(DefaultSessionTimeout); got != want {
		t.Fatalf("binding expiry timer %v, want %v", got, want)
	}
	for seq := uint32(1); seq <= 4; seq++ { // 100 s: both sessions kept over IPv4
		h.wait(DefaultKeepaliveInterval)
		h.deliver(srvPrimary, aliceNAT, keepaliveBytes(alice.Session, seq))
		h.deliver(srvPrimary, bobNAT, keepaliveBytes(bob.Session, seq))
		h.deliver(srvV6, bobV6, keepaliveBytes(bob.Session, seq)) // bob's IPv6 too
	}
	a, okA := h.s.Peer([]byte("alice"))
	b, okB := h.s.Peer([]byte("bob"))
	if !okA || !okB || a.OtherAddr.IsValid() || b.OtherAddr != bobV6 {
		t.Fatalf("after 100 s: alice %v %+v, bob %v %+v", okA, a, okB, b)
	}
	if st := h.s.Stats(); st.FamilyExpired != 1 || st.FamilyBindings != 1 || st.Sessions != 2 {
		t.Fatalf("stats: expired %d, bindings %d, sessions %d", st.FamilyExpired, st.FamilyBindings, st.Sessions)
	}
	h.wait(DefaultSessionTimeout) // nothing refreshes bob's session now
	if _, ok := h.s.Peer([]byte("bob")); ok || h.s.Stats().FamilyBindings != 0 {
		t.Fatalf("bob's session (and binding) outlived the timeout: %d bindings", h.s.Stats().FamilyBindings)
	}
}

// introCandidates returns the candidates of the single introduction to to in out.
func introCandidates(t *testing.T, out []sent, to netip.AddrPort) []proto.Candidate {
	t.Helper()
	for _, d := range out {
		var m proto.Introduction
		if d.To == to && m.Parse(d.Payload) == nil {
			return m.Candidates
		}
	}
	t.Fatalf("no introduction to %v", to)
	return nil
}

// [SRV-6], [SRV-14]: introductions pass the other-family address as a
// server-reflexive candidate after the observed one and before the prediction, and
// leave it out when it is a host address; nat stays the registered family's.
func TestIntroductionCarriesOtherFamilyAddress(t *testing.T) {
	h := newHarness(t, dualStack)
	alice := h.register("alice", 1, aliceNAT, aliceLAN)
	bob := h.register("bob", 2, bobNAT, bobLAN, bobV6)
	reportNAT(t, h, alice.Session, aliceBehavior)
	predicted := netip.AddrPortFrom(bobNAT.Addr(), 50002)
	h.deliver(srvPrimary, bobNAT, (&proto.Keepalive{Session: bob.Session, Seq: 1, NAT: bobBehavior, Predicted: predicted}).Append(nil))
	h.bindFamily(alice.Session, 1, aliceV6)
	h.bindFamily(bob.Session, 1, bobV6)
	h.deliver(srvV6, aliceV6, (&proto.Keepalive{Session: alice.Session, Seq: 1, NAT: bobBehavior}).Append(nil))
	_, out, _ := h.deliver(srvPrimary, bobNAT, introduceBytes(bob.Session, 7, "alice", 0))
	host, srflx, pred := proto.CandidateHost, proto.CandidateServerReflexive, proto.CandidatePredicted
	toBob := introCandidates(t, out, bobNAT)
	want := []proto.Candidate{{Kind: host, Addr: aliceLAN}, {Kind: srflx, Addr: aliceNAT}, {Kind: srflx, Addr: aliceV6}}
	if !equalCandidates(toBob, want) {
		t.Errorf("bob learns %v, want %v", toBob, want)
	}
	toAlice := introCandidates(t, out, aliceNAT)
	want = []proto.Candidate{{Kind: host, Addr: bobLAN}, {Kind: host, Addr: bobV6}, {Kind: srflx, Addr: bobNAT}, {Kind: pred, Addr: predicted}}
	if !equalCandidates(toAlice, want) {
		t.Errorf("alice learns %v, want %v (bob's IPv6 is a host address: once)", toAlice, want)
	}
	var m proto.Introduction
	for _, d := range out {
		if d.To == bobNAT && m.Parse(d.Payload) == nil && m.NAT != aliceBehavior {
			t.Errorf("bob learns alice's NAT %+v, want her IPv4 report %+v", m.NAT, aliceBehavior)
		}
	}
}

func equalCandidates(a, b []proto.Candidate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// [SRV-5] on a dual-stack server: a nat-probe is answered from a socket of its own
// family, never from the other family's.
func TestNATProbeStaysInItsFamily(t *testing.T) {
	h := newHarness(t, func(c *Config) { dualStack(c); c.OtherAltAddr = netip.AddrPort{} })
	alice := h.register("alice", 1, aliceNAT)
	_, out, _ := h.deliver(srvV6, aliceV6, probeBytes(alice.Session, 1, proto.ChangePort))
	var reply proto.NATProbeReply
	if d := only(t, out, &reply); d.From != srvV6AltPort || reply.Observed != aliceV6 {
		t.Fatalf("IPv6 change-port answered from %v, observed %v", d.From, reply.Observed)
	}
	err, out, _ := h.deliver(srvV6, aliceV6, probeBytes(alice.Session, 2, proto.ChangeAddress))
	if !errors.Is(err, ErrNoAltSocket) || errorCode(t, out) != proto.CodeMalformed || out[0].From != srvV6 {
		t.Fatalf("IPv6 change-address without an IPv6 alt address: %v, %+v", err, out)
	}
	_, out, _ = h.deliver(srvPrimary, aliceNAT, probeBytes(alice.Session, 3, proto.ChangeAddress|proto.ChangePort))
	if d := only(t, out, &reply); d.From != srvAltAddr {
		t.Fatalf("IPv4 change-both answered from %v", d.From)
	}
}

func TestDualStackConfig(t *testing.T) {
	v6Port := netip.MustParseAddrPort("[2001:db8:5::1]:3480")
	for _, c := range []struct {
		name   string
		mutate func(*Config)
		want   error
	}{
		{"other primary of the same family", func(c *Config) { c.OtherPrimary = netip.MustParseAddrPort("192.0.2.9:3478") }, ErrBadOtherSocket},
		{"other alternates without other primary", func(c *Config) { c.OtherAltPort = srvV6AltPort }, ErrBadOtherSocket},
		{"other alt port on another IP", func(c *Config) { dualStack(c); c.OtherAltPort = srvV6AltAddr }, ErrBadOtherSocket},
		{"other alt addr of the other family", func(c *Config) { dualStack(c); c.OtherAltAddr = srvAltAddr }, ErrBadOtherSocket},
		{"alt addr of the other family", func(c *Config) { c.AltAddr = srvV6 }, ErrBadAltSocket},
		{"dual stack", func(c *Config) { dualStack(c); c.OtherAltPort = v6Port }, nil},
		{"IPv6 primary, IPv4 other", func(c *Config) {
			c.Primary, c.AltPort, c.AltAddr = srvV6, srvV6AltPort, srvV6AltAddr
			c.OtherPrimary, c.OtherAltPort, c.OtherAltAddr = srvPrimary, srvAltPort, srvAltAddr
		}, nil},
	} {
		cfg := testConfig()
		c.mutate(&cfg)
		if _, err := NewServer(cfg); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// §12.2, [SRV-14]: across a cluster the peer record carries the other-family
// address, so a peer on another server gets it as a candidate.
func TestClusterIntroductionCarriesOtherFamilyAddress(t *testing.T) {
	c := newTestClusterWith(t, 2, dualStack)
	alice := c.join(0, "alice", 1, aliceNAT)
	bob := c.join(1, "bob", 2, bobNAT)
	for k, bind := range []struct {
		cookie proto.Session
		from   netip.AddrPort
	}{{alice, aliceV6}, {bob, bobV6}} {
		_ = c.hs[k].s.HandleDatagram(c.hs[k].now, srvV6, bind.from, regFamilyBytes(bind.cookie, 1))
		c.pump(k)
	}
	c.take()
	out := c.send(0, aliceNAT, introduceBytes(alice, 42, "bob", 0))
	srflx := proto.CandidateServerReflexive
	toAlice := introductionTo(t, out[0], aliceNAT).Candidates
	toBob := introductionTo(t, out[1], bobNAT).Candidates
	if !equalCandidates(toAlice, []proto.Candidate{{Kind: srflx, Addr: bobNAT}, {Kind: srflx, Addr: bobV6}}) ||
		!equalCandidates(toBob, []proto.Candidate{{Kind: srflx, Addr: aliceNAT}, {Kind: srflx, Addr: aliceV6}}) {
		t.Fatalf("alice learns %v, bob learns %v", toAlice, toBob)
	}
}

// [SRV-14] with one socket for both families (a dual-stack socket: the binding's
// socket is the session's own): an IPv6 keepalive there keeps the binding and never
// moves the IPv4 session to IPv6.
func TestOtherFamilyKeepaliveOnTheSessionsSocket(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.register("alice", 1, aliceNAT)
	err, out, _ := h.deliver(srvPrimary, aliceV6, regFamilyBytes(alice.Session, 1))
	var r proto.Registered
	if err != nil {
		t.Fatal(err)
	}
	if d := only(t, out, &r); d.From != srvPrimary || r.Observed != aliceV6 || r.AltPort != srvAltPort {
		t.Fatalf("registered %+v from %v", r, d.From)
	}
	registeredAt := h.now
	h.now = h.now.Add(time.Second)
	h.deliver(srvPrimary, aliceV6b, keepaliveBytes(alice.Session, 1))
	info, _ := h.s.Peer([]byte("alice"))
	if info.Addr != aliceNAT || info.LastSeen != registeredAt || info.OtherAddr != aliceV6b || info.OtherLastSeen != h.now {
		t.Fatalf("after an IPv6 keepalive on the shared socket: %+v", info)
	}
	if p := clusterPeer(&h.s.peers.sessions[h.s.peers.byCookie[alice.Session]]); p.OtherAddr != aliceV6b {
		t.Fatalf("peer record's other-family address %v", p.OtherAddr)
	}
}

// Nothing is allocated per datagram in steady state (Server's contract): a
// register-family retransmission and the other family's keepalive included.
func TestFamilyRequestsDoNotAllocate(t *testing.T) {
	h := newHarness(t, dualStack)
	alice := h.register("alice", 1, aliceNAT)
	h.bindFamily(alice.Session, 1, aliceV6)
	for _, c := range []struct {
		name string
		p    []byte
	}{
		{"register-family", regFamilyBytes(alice.Session, 1)},
		{"keepalive", keepaliveBytes(alice.Session, 2)},
	} {
		n := testing.AllocsPerRun(100, func() {
			h.now += proto.Instant(110 * time.Millisecond) // inside the session's rate
			if err := h.s.HandleDatagram(h.now, srvV6, aliceV6, c.p); err != nil {
				t.Fatal(err)
			}
			benchDrain(h.s, h.now, h.buf)
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per datagram", c.name, n)
		}
	}
}
