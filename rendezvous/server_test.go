package rendezvous

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/relayframe"
)

func TestNewServerNeedsSecretOrInsecureDev(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   error
	}{
		{"no secret", func(c *Config) { c.Secret = nil }, ErrNoSecret},
		{"short secret", func(c *Config) { c.Secret = make([]byte, MinSecretLen-1) }, ErrShortSecret},
		{"secret and insecure", func(c *Config) { c.InsecureDev = true }, ErrSecretAndDev},
		{"no primary", func(c *Config) { c.Primary = netip.AddrPort{} }, ErrNoPrimary},
		{"alt port on another IP", func(c *Config) { c.AltPort = srvAltAddr }, ErrBadAltSocket},
		{"alt addr on primary IP", func(c *Config) { c.AltAddr = srvAltPort }, ErrBadAltSocket},
		{"timeout below keepalive", func(c *Config) { c.SessionTimeout = time.Second }, ErrBadConfigValues},
		{"zero burst", func(c *Config) { c.SourceRate = Rate{Interval: time.Second} }, ErrBadConfigValues},
	}
	for _, c := range cases {
		cfg := testConfig()
		c.mutate(&cfg)
		if _, err := NewServer(cfg); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	cfg := testConfig()
	cfg.Secret, cfg.InsecureDev = nil, true
	if _, err := NewServer(cfg); err != nil {
		t.Fatalf("insecure dev: %v", err)
	}
}

// PROTOCOL.md §5.2: registered carries the register's txid, a cookie, the source
// address as the server saw it, the keepalive interval and the alternate sockets.
func TestRegisterIsAnsweredWithObservedAddress(t *testing.T) {
	h := newHarness(t, nil)
	req := registerBytes(77, ticketFor("alice", 1), aliceLAN)
	err, out, evs := h.deliver(srvPrimary, aliceNAT, req)
	if err != nil {
		t.Fatal(err)
	}
	var r proto.Registered
	d := only(t, out, &r)
	if d.From != srvPrimary || d.To != aliceNAT {
		t.Fatalf("registered sent %v → %v", d.From, d.To)
	}
	if r.TxID != 77 || r.Observed != aliceNAT || r.Keepalive != 25 || r.AltPort != srvAltPort ||
		r.AltAddr != srvAltAddr || r.Session == (proto.Session{}) {
		t.Fatalf("registered %+v", r)
	}
	if len(d.Payload) > len(req) {
		t.Fatalf("registered (%d bytes) larger than register (%d)", len(d.Payload), len(req))
	}
	if len(evs) != 1 || evs[0] != (EventRegistered{Peer: makePeerID([]byte("alice")), Addr: aliceNAT}) {
		t.Fatalf("events %+v", evs)
	}
	info, ok := h.s.Peer([]byte("alice"))
	if !ok || info.Addr != aliceNAT || info.Key != testTicket("alice", 1).PublicKey || info.Local != srvPrimary {
		t.Fatalf("peer %+v %v", info, ok)
	}
	if st := h.s.Stats(); st.Registered != 1 || st.Sessions != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRegisterRefusesBadAndExpiredTickets(t *testing.T) {
	h := newHarness(t, nil)
	forged := ticketFor("alice", 1)
	forged[len(forged)-1] ^= 1
	wrongVersion := ticketFor("alice", 1)
	wrongVersion[0] = 2
	other := MintTicket([]byte("some other server's secret......"), testTicket("alice", 1))
	for name, tk := range map[string][]byte{"forged": forged, "version 2": wrongVersion, "foreign": other} {
		req := registerBytes(5, tk)
		err, out, _ := h.deliver(srvPrimary, aliceNAT, req)
		if !errors.Is(err, ErrBadTicket) || errorCode(t, out) != proto.CodeBadTicket {
			t.Fatalf("%s: %v", name, err)
		}
		if len(out[0].Payload) > len(req) {
			t.Fatalf("%s: error larger than the request", name)
		}
	}
	// PROTOCOL.md §5.1: expiry is checked against the server's wall clock.
	h.s.SetWallClock(h.now, testExpiryUnix)
	err, out, _ := h.deliver(srvPrimary, aliceNAT, registerBytes(6, ticketFor("alice", 1)))
	if !errors.Is(err, ErrTicketExpired) || errorCode(t, out) != proto.CodeExpiredTicket {
		t.Fatalf("expired: %v", err)
	}
	if st := h.s.Stats(); st.Sessions != 0 || st.BadTicket != 3 || st.ExpiredTicket != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestInsecureDevAcceptsUnsignedTickets(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Secret, c.InsecureDev = nil, true })
	tk := testTicket("dev", 3)
	err, out, _ := h.deliver(srvPrimary, aliceNAT, registerBytes(1, tk.Append(nil)))
	var r proto.Registered
	if err != nil {
		t.Fatal(err)
	}
	only(t, out, &r)
	// Still parsed and still checked for expiry.
	tk.ExpiryUnix = wallStart
	if err, _, _ := h.deliver(srvPrimary, aliceNAT, registerBytes(2, tk.Append(nil))); !errors.Is(err, ErrTicketExpired) {
		t.Fatalf("expired unsigned ticket: %v", err)
	}
}

// A register repeated verbatim (its reply was lost) gets the same cookie again, so a
// node that receives both replies holds the one valid cookie.
func TestRegisterRetransmitGetsSameCookie(t *testing.T) {
	h := newHarness(t, nil)
	first := h.register("alice", 1, aliceNAT)
	second := h.register("alice", 1, aliceNAT)
	if first.Session != second.Session {
		t.Fatal("a retransmitted register got a new cookie")
	}
	if st := h.s.Stats(); st.Retransmits != 1 || st.Sessions != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Re-registration of the same peer ID replaces the old session: its cookie dies.
func TestReRegistrationReplacesSession(t *testing.T) {
	h := newHarness(t, nil)
	old := h.register("alice", 1, aliceNAT)
	moved := netip.MustParseAddrPort("203.0.113.11:41000")
	err, out, evs := h.deliver(srvPrimary, moved, registerBytes(99, ticketFor("alice", 1)))
	var r proto.Registered
	if err != nil {
		t.Fatal(err)
	}
	only(t, out, &r)
	if r.Session == old.Session || r.Observed != moved {
		t.Fatalf("re-registration %+v", r)
	}
	if len(evs) != 1 || !evs[0].(EventRegistered).Replaced {
		t.Fatalf("events %+v", evs)
	}
	err, out, _ = h.deliver(srvPrimary, aliceNAT, keepaliveBytes(old.Session, 1))
	if !errors.Is(err, ErrNoSession) || errorCode(t, out) != proto.CodeNoSession {
		t.Fatalf("old cookie: %v", err)
	}
	if st := h.s.Stats(); st.Sessions != 1 || st.Replaced != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// DESIGN §6.1: keepalives keep a session; without them it ends SessionTimeout after
// the last one, and the timer table says exactly when.
func TestKeepaliveRefreshesAndSilenceExpires(t *testing.T) {
	h := newHarness(t, nil)
	r := h.register("alice", 1, aliceNAT)
	for seq := uint32(1); seq <= 24; seq++ { // ten minutes
		if evs := h.wait(25 * time.Second); len(evs) != 0 {
			t.Fatalf("events while alive: %+v", evs)
		}
		err, out, _ := h.deliver(srvPrimary, aliceNAT, keepaliveBytes(r.Session, seq))
		var ack proto.KeepaliveAck
		if err != nil {
			t.Fatal(err)
		}
		d := only(t, out, &ack)
		if ack.Seq != seq || ack.Observed != aliceNAT || d.From != srvPrimary || d.To != aliceNAT {
			t.Fatalf("ack %+v via %+v", ack, d)
		}
	}
	last := h.now
	if dl := h.s.Deadline(); dl != last.Add(DefaultSessionTimeout) {
		t.Fatalf("deadline %v, want last keepalive + %v", dl.Sub(last), DefaultSessionTimeout)
	}
	if evs := h.wait(DefaultSessionTimeout - 1); len(evs) != 0 {
		t.Fatalf("expired early: %+v", evs)
	}
	evs := h.wait(1)
	if len(evs) != 1 || evs[0] != (EventExpired{Peer: makePeerID([]byte("alice")), Reason: ExpireTimeout}) {
		t.Fatalf("events at timeout: %+v", evs)
	}
	if h.s.Deadline() != proto.Never {
		t.Fatal("deadline armed with no session")
	}
	err, out, _ := h.deliver(srvPrimary, aliceNAT, keepaliveBytes(r.Session, 99))
	if !errors.Is(err, ErrNoSession) || errorCode(t, out) != proto.CodeNoSession {
		t.Fatalf("keepalive after expiry: %v", err)
	}
}

// PROTOCOL.md §5.4: the ack reports the source as seen now; a keepalive from a new
// address moves the session there (later introductions go to the new address).
func TestKeepaliveDetectsRebinding(t *testing.T) {
	h := newHarness(t, nil)
	r := h.register("alice", 1, aliceNAT)
	h.register("bob", 2, bobNAT)
	rebound := netip.MustParseAddrPort("203.0.113.10:40777")
	err, out, evs := h.deliver(srvPrimary, rebound, keepaliveBytes(r.Session, 1))
	var ack proto.KeepaliveAck
	if err != nil {
		t.Fatal(err)
	}
	if d := only(t, out, &ack); ack.Observed != rebound || d.To != rebound {
		t.Fatalf("ack %+v to %v", ack, d.To)
	}
	if len(evs) != 1 || evs[0] != (EventRebound{Peer: makePeerID([]byte("alice")), Old: aliceNAT, New: rebound}) {
		t.Fatalf("events %+v", evs)
	}
	if info, _ := h.s.Peer([]byte("alice")); info.Addr != rebound {
		t.Fatalf("session address %v", info.Addr)
	}
	// A keepalive on another socket refreshes nothing and moves nothing: it sees
	// another NAT mapping, not the one peers use.
	other := netip.MustParseAddrPort("203.0.113.10:40999")
	if err, _, evs := h.deliver(srvAltPort, other, keepaliveBytes(r.Session, 2)); err != nil || len(evs) != 0 {
		t.Fatalf("keepalive on alt socket: %v %+v", err, evs)
	}
	if info, _ := h.s.Peer([]byte("alice")); info.Addr != rebound {
		t.Fatalf("alt-socket keepalive moved the session to %v", info.Addr)
	}
}

func TestTicketExpiringDuringSessionEndsIt(t *testing.T) {
	h := newHarness(t, nil)
	r := h.register("alice", 1, aliceNAT)
	h.s.SetWallClock(h.now, testExpiryUnix)
	err, out, evs := h.deliver(srvPrimary, aliceNAT, keepaliveBytes(r.Session, 1))
	if !errors.Is(err, ErrTicketExpired) || errorCode(t, out) != proto.CodeExpiredTicket {
		t.Fatalf("keepalive with expired ticket: %v", err)
	}
	if len(evs) != 1 || evs[0].(EventExpired).Reason != ExpireTicketExpired {
		t.Fatalf("events %+v", evs)
	}
	if _, ok := h.s.Peer([]byte("alice")); ok {
		t.Fatal("session outlived its ticket")
	}
}

func TestPresenceTableIsBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxPeers = 3 })
	for i, id := range []string{"a", "b", "c"} {
		h.register(id, byte(i+1), netip.AddrPortFrom(aliceNAT.Addr(), uint16(1000+i)))
	}
	req := registerBytes(4, ticketFor("d", 4))
	err, out, _ := h.deliver(srvPrimary, bobNAT, req)
	if !errors.Is(err, ErrServerFull) || errorCode(t, out) != proto.CodeServerFull || len(out[0].Payload) > len(req) {
		t.Fatalf("fourth peer: %v", err)
	}
	// A peer already present may still re-register: it replaces, it does not add.
	h.register("b", 2, bobNAT)
	if st := h.s.Stats(); st.Sessions != 3 || st.ServerFull != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Once sessions time out there is room again.
	h.wait(DefaultSessionTimeout)
	h.register("d", 4, bobNAT)
}

// introducedPair returns alice's and bob's sessions, registered with LAN hosts, and
// bob's NAT behaviour reported.
func introducedPair(t *testing.T, h *harness) (alice, bob proto.Registered) {
	alice = h.register("alice", 1, aliceNAT, aliceLAN)
	bob = h.register("bob", 2, bobNAT, bobLAN)
	if err := h.s.ReportNAT(h.now, bob.Session, bobBehavior); err != nil {
		t.Fatal(err)
	}
	if err := h.s.ReportNAT(h.now, alice.Session, aliceBehavior); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

var aliceBehavior = proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.AddressAndPortDependent,
	Allocation: proto.AllocationPreserving, Hairpin: proto.HairpinYes}

var bobBehavior = proto.NATBehavior{Mapping: proto.AddressAndPortDependent, Filtering: proto.AddressAndPortDependent,
	Allocation: proto.AllocationSequential, PortDelta: 2, Hairpin: proto.HairpinNo}

// DESIGN §6.3: both sides learn each other's key, candidates (hosts as host
// candidates, the observed address as server-reflexive), NAT behaviour, a start
// delay, the same relay token and the same PSK.
func TestIntroduceSendsBothSides(t *testing.T) {
	h := newHarness(t, nil)
	alice, bob := introducedPair(t, h)
	req := introduceBytes(alice.Session, 31, "bob", 0)
	err, out, evs := h.deliver(srvPrimary, aliceNAT, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("%d datagrams, want one to each peer", len(out))
	}
	var toAlice, toBob proto.Introduction
	if err := toAlice.Parse(out[0].Payload); err != nil || out[0].To != aliceNAT || out[0].From != srvPrimary {
		t.Fatalf("first introduction %v → %v: %v", out[0].From, out[0].To, err)
	}
	if err := toBob.Parse(out[1].Payload); err != nil || out[1].To != bobNAT || out[1].From != srvPrimary {
		t.Fatalf("second introduction %v → %v: %v", out[1].From, out[1].To, err)
	}
	if toAlice.TxID != 31 || toBob.TxID != 0 {
		t.Fatalf("txids %d, %d: the requester's copy carries its txid, the other 0", toAlice.TxID, toBob.TxID)
	}
	if string(toAlice.PeerID) != "bob" || toAlice.PeerKey != testTicket("bob", 2).PublicKey ||
		string(toBob.PeerID) != "alice" || toBob.PeerKey != testTicket("alice", 1).PublicKey {
		t.Fatal("introductions name the wrong peer or key")
	}
	if toAlice.NAT != bobBehavior || toBob.NAT != aliceBehavior {
		t.Fatalf("NAT: alice learns %+v, bob learns %+v", toAlice.NAT, toBob.NAT)
	}
	wantBob := []proto.Candidate{{Kind: proto.CandidateHost, Addr: bobLAN}, {Kind: proto.CandidateServerReflexive, Addr: bobNAT}}
	wantAlice := []proto.Candidate{{Kind: proto.CandidateHost, Addr: aliceLAN}, {Kind: proto.CandidateServerReflexive, Addr: aliceNAT}}
	if !equalCands(toAlice.Candidates, wantBob) || !equalCands(toBob.Candidates, wantAlice) {
		t.Fatalf("candidates: alice gets %+v, bob gets %+v", toAlice.Candidates, toBob.Candidates)
	}
	if want := uint16(DefaultStartDelay / time.Millisecond); toAlice.StartDelayMs != want || toBob.StartDelayMs != want {
		t.Fatalf("start delay %d/%d ms", toAlice.StartDelayMs, toBob.StartDelayMs)
	}
	if toAlice.PSK != toBob.PSK || toAlice.PSK == ([proto.KeyLen]byte{}) {
		t.Fatal("the peers did not get one shared non-zero PSK")
	}
	if string(toAlice.RelayToken) != string(toBob.RelayToken) || len(toAlice.RelayToken) > proto.MaxRelayTokenLen {
		t.Fatal("the peers did not get the same relay token")
	}
	tok, err := relayframe.NewTokenSigner(relayframe.DeriveTokenKey(testSecret)).VerifyToken(toAlice.RelayToken, wallStart)
	if err != nil || !tok.Holds(testTicket("alice", 1).PublicKey) || !tok.Holds(testTicket("bob", 2).PublicKey) ||
		tok.ExpiryUnix != wallStart+uint64(DefaultRelayTokenLifetime/time.Second) {
		t.Fatalf("relay token %+v: %v", tok, err)
	}
	if len(evs) != 1 || evs[0].(EventIntroduced).PairID != tok.PairID {
		t.Fatalf("events %+v", evs)
	}

	// Bob asking for alice (as when both connect at once) yields the same pair.
	if err := h.s.ReportNAT(h.now, alice.Session, bobBehavior); err != nil {
		t.Fatal(err)
	}
	_, out2, _ := h.deliver(srvPrimary, bobNAT, introduceBytes(bob.Session, 8, "alice", 0))
	var again proto.Introduction
	if err := again.Parse(out2[0].Payload); err != nil || again.PSK != toBob.PSK {
		t.Fatal("the reverse introduction has another PSK")
	}
}

func equalCands(a, b []proto.Candidate) bool {
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

// PROTOCOL.md §5.7 flags: relay-only hides addresses; never-relay gets no token; a
// server without relay refuses relay-only with code 8.
func TestIntroduceFlags(t *testing.T) {
	h := newHarness(t, nil)
	alice, _ := introducedPair(t, h)
	_, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 1, "bob", proto.IntroRelayOnly))
	for _, d := range out {
		var m proto.Introduction
		if err := m.Parse(d.Payload); err != nil || len(m.Candidates) != 0 || len(m.RelayToken) == 0 || m.Flags != proto.IntroRelayOnly {
			t.Fatalf("relay-only introduction to %v: %+v %v", d.To, m, err)
		}
	}
	_, out, _ = h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 2, "bob", proto.IntroNoRelay))
	for _, d := range out {
		var m proto.Introduction
		if err := m.Parse(d.Payload); err != nil || len(m.RelayToken) != 0 || len(m.Candidates) != 2 {
			t.Fatalf("never-relay introduction to %v: %+v %v", d.To, m, err)
		}
	}

	h2 := newHarness(t, func(c *Config) { c.DisableRelay = true })
	alice, _ = introducedPair(t, h2)
	err, out, _ := h2.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 3, "bob", proto.IntroRelayOnly))
	if !errors.Is(err, ErrRelayDenied) || errorCode(t, out) != proto.CodeRelayDenied {
		t.Fatalf("relay-only without relay: %v", err)
	}
}

func TestIntroduceUnknownPeerAndSelf(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.register("alice", 1, aliceNAT)
	err, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 4, "carol", 0))
	if !errors.Is(err, ErrUnknownPeer) || errorCode(t, out) != proto.CodeUnknownPeer {
		t.Fatalf("unknown peer: %v", err)
	}
	err, out, _ = h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 5, "alice", 0))
	if !errors.Is(err, ErrSelfIntroduction) || errorCode(t, out) != proto.CodeMalformed {
		t.Fatalf("self: %v", err)
	}
}

// PROTOCOL.md §5.5/§5.6: the reply reports the source as the receiving socket saw it
// and leaves from the socket the change flags ask for.
func TestNATProbeAnsweredFromTheRightSocket(t *testing.T) {
	bothAlt := netip.MustParseAddrPort("198.51.100.1:3479")
	cases := []struct {
		name     string
		altAddr  netip.AddrPort
		arrival  netip.AddrPort
		change   uint8
		wantFrom netip.AddrPort
	}{
		{"none at primary", srvAltAddr, srvPrimary, 0, srvPrimary},
		{"none at alt port", srvAltAddr, srvAltPort, 0, srvAltPort},
		{"none at alt addr", srvAltAddr, srvAltAddr, 0, srvAltAddr},
		{"port at primary", srvAltAddr, srvPrimary, proto.ChangePort, srvAltPort},
		{"port at alt port", srvAltAddr, srvAltPort, proto.ChangePort, srvPrimary},
		{"address at primary", srvAltAddr, srvPrimary, proto.ChangeAddress, srvAltAddr},
		{"address at alt addr", srvAltAddr, srvAltAddr, proto.ChangeAddress, srvPrimary},
		// Alt address shares the primary's port: "both" falls back to it.
		{"both, alt addr same port", srvAltAddr, srvPrimary, proto.ChangeAddress | proto.ChangePort, srvAltAddr},
		// Alt address on another port: the exact match for "both".
		{"both, alt addr other port", bothAlt, srvPrimary, proto.ChangeAddress | proto.ChangePort, bothAlt},
		{"both from alt port", bothAlt, srvAltPort, proto.ChangeAddress | proto.ChangePort, bothAlt},
	}
	for _, c := range cases {
		h := newHarness(t, func(cfg *Config) { cfg.AltAddr = c.altAddr })
		r := h.register("alice", 1, aliceNAT)
		src := netip.MustParseAddrPort("203.0.113.10:40123") // another mapping of the same node
		err, out, _ := h.deliver(c.arrival, src, probeBytes(r.Session, 9, c.change))
		var m proto.NATProbeReply
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		d := only(t, out, &m)
		if d.From != c.wantFrom || d.To != src || m.Observed != src || m.TxID != 9 {
			t.Errorf("%s: reply %v → %v observed %v, want from %v", c.name, d.From, d.To, m.Observed, c.wantFrom)
		}
	}
}

func TestNATProbeWithoutAltSocket(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AltAddr = netip.AddrPort{} })
	r := h.register("alice", 1, aliceNAT)
	err, out, _ := h.deliver(srvPrimary, aliceNAT, probeBytes(r.Session, 1, proto.ChangeAddress))
	if !errors.Is(err, ErrNoAltSocket) || errorCode(t, out) != proto.CodeMalformed {
		t.Fatalf("change address without an alt address: %v", err)
	}
	if out[0].From != srvPrimary {
		t.Fatalf("error sent from %v", out[0].From)
	}
}

// Relay types the server does not accept (its own relay-allocated and
// relay-deliver, reserved ones) are dropped and counted; relay-send on no channel
// too, without a reply.
func TestRelayFramesNotForServer(t *testing.T) {
	h := newHarness(t, nil)
	for k, p := range [][]byte{{0xE1, 0x21, 1, 2, 3}, {0xE1, 0x23, 0, 1, 3}, {0xE1, 0x2F, 1}} {
		err, out, _ := h.deliver(srvPrimary, aliceNAT, p)
		if !errors.Is(err, ErrNotForServer) || len(out) != 0 || h.s.Stats().DropRelay != uint64(k+1) {
			t.Fatalf("%x: %v, %d replies", p, err, len(out))
		}
	}
	err, out, _ := h.deliver(srvPrimary, aliceNAT, []byte{0xE1, 0x22, 0, 1, 3})
	if !errors.Is(err, ErrRelayNoChannel) || len(out) != 0 || h.s.Stats().Relay.DropNoChannel != 1 {
		t.Fatalf("relay-send on no channel: %v, %d replies", err, len(out))
	}
}

func TestUnknownLocalSocket(t *testing.T) {
	h := newHarness(t, nil)
	err, out, _ := h.deliver(netip.MustParseAddrPort("192.0.2.1:9999"), aliceNAT, registerBytes(1, ticketFor("alice", 1)))
	if !errors.Is(err, ErrUnknownSocket) || len(out) != 0 {
		t.Fatalf("%v, %d replies", err, len(out))
	}
}

// The same seed gives the same cookies; another seed, other ones.
func TestSeedDeterminesCookies(t *testing.T) {
	a := newHarness(t, nil).register("alice", 1, aliceNAT).Session
	b := newHarness(t, nil).register("alice", 1, aliceNAT).Session
	c := newHarness(t, func(c *Config) { c.Seed[0] = 9 }).register("alice", 1, aliceNAT).Session
	if a != b || a == c {
		t.Fatalf("cookies %x %x %x", a, b, c)
	}
}

func TestTimeBackwardsPanics(t *testing.T) {
	h := newHarness(t, nil)
	h.s.HandleTimeout(10)
	defer func() {
		if recover() == nil {
			t.Fatal("time going backwards was accepted")
		}
	}()
	h.s.HandleTimeout(9)
}
