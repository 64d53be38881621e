package rendezvous

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/relayframe"
)

// relayPair is alice and bob registered, introduced relay-only, holding the token
// of their introduction.
type relayPair struct {
	h          *harness
	alice, bob proto.Registered
	token      []byte
}

func newRelayPair(t testing.TB, mutate func(*Config)) *relayPair {
	t.Helper()
	h := newHarness(t, mutate)
	rp := &relayPair{h: h}
	rp.alice = h.register("alice", 1, aliceNAT, aliceLAN)
	rp.bob = h.register("bob", 2, bobNAT, bobLAN)
	err, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(rp.alice.Session, 7, "bob", proto.IntroRelayOnly))
	if err != nil || len(out) != 2 {
		t.Fatalf("introduce: %v, %d datagrams", err, len(out))
	}
	var a, b proto.Introduction
	if err := a.Parse(out[0].Payload); err != nil {
		t.Fatal(err)
	}
	if err := b.Parse(out[1].Payload); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.RelayToken, b.RelayToken) || len(a.RelayToken) != relayframe.TokenLen {
		t.Fatalf("introduction tokens differ or are missing: %x / %x", a.RelayToken, b.RelayToken)
	}
	rp.token = bytes.Clone(a.RelayToken)
	return rp
}

func allocateBytes(c proto.Session, txid uint64, peer string, token []byte) []byte {
	m := proto.RelayAllocate{Session: c, TxID: txid, PeerID: []byte(peer), Token: token}
	return m.Append(nil)
}

// allocate sends a relay-allocate and returns the parsed relay-allocated.
func (rp *relayPair) allocate(t testing.TB, from netip.AddrPort, c proto.Session, peer string, token []byte) proto.RelayAllocated {
	t.Helper()
	m, _ := rp.allocateNotice(t, from, c, peer, token)
	return m
}

// allocateNotice is allocate that also returns the datagrams sent to others (the
// ready notice to the peer, if this request linked the pair).
func (rp *relayPair) allocateNotice(t testing.TB, from netip.AddrPort, c proto.Session, peer string, token []byte) (proto.RelayAllocated, []sent) {
	t.Helper()
	req := allocateBytes(c, 99, peer, token)
	err, out, _ := rp.h.deliver(srvPrimary, from, req)
	var m proto.RelayAllocated
	if err != nil || len(out) == 0 {
		t.Fatalf("allocate: %v, %d datagrams", err, len(out))
	}
	tx := only(t, out[:1], &m)
	if tx.To != from || tx.From != srvPrimary || m.TxID != 99 || len(tx.Payload) > len(req) {
		t.Fatalf("relay-allocated %+v to %v from %v, %d bytes for %d", m, tx.To, tx.From, len(tx.Payload), len(req))
	}
	m.Token = bytes.Clone(m.Token)
	return m, out[1:]
}

// both allocates for alice then bob and returns their channels.
func (rp *relayPair) both(t testing.TB) (chA, chB uint16) {
	t.Helper()
	a := rp.allocate(t, aliceNAT, rp.alice.Session, "bob", rp.token)
	if a.Flags&proto.RelayPeerReady != 0 {
		t.Fatal("alice's channel reports a ready peer before bob allocated")
	}
	b, notices := rp.allocateNotice(t, bobNAT, rp.bob.Session, "alice", rp.token)
	if b.Flags&proto.RelayPeerReady == 0 {
		t.Fatal("bob's channel does not report alice's")
	}
	if a.Channel == b.Channel {
		t.Fatalf("both ends hold channel %d", a.Channel)
	}
	// Alice, told "not ready", gets her answer again, now "ready", at once.
	var n proto.RelayAllocated
	tx := only(t, notices, &n)
	if tx.To != aliceNAT || tx.From != srvPrimary || n.TxID != a.TxID || n.Channel != a.Channel ||
		n.Flags != proto.RelayPeerReady || n.LifetimeS > a.LifetimeS || n.LifetimeS+1 < a.LifetimeS {
		t.Fatalf("ready notice %+v to %v from %v; alice's channel %+v", n, tx.To, tx.From, a)
	}
	return a.Channel, b.Channel
}

func sendFrame(ch uint16, packet []byte) []byte {
	return append(relayframe.AppendSendHeader(nil, ch), packet...)
}

// expectNothing delivers p and checks that the server sent nothing and returned want.
func (rp *relayPair) expectNothing(t testing.TB, local, from netip.AddrPort, p []byte, want error) {
	t.Helper()
	err, out, _ := rp.h.deliver(local, from, p)
	if !errors.Is(err, want) || len(out) != 0 {
		t.Fatalf("%x from %v: err %v (want %v), %d datagrams sent", p[:min(len(p), 8)], from, err, want, len(out))
	}
}

func TestRelayForwardsBothWays(t *testing.T) {
	rp := newRelayPair(t, nil)
	chA, chB := rp.both(t)
	for _, dir := range []struct {
		from, to netip.AddrPort
		in, out  uint16
	}{{aliceNAT, bobNAT, chA, chB}, {bobNAT, aliceNAT, chB, chA}} {
		pkt := []byte("\xe1\x13 an opaque keyx packet")
		err, out, _ := rp.h.deliver(srvPrimary, dir.from, sendFrame(dir.in, pkt))
		if err != nil || len(out) != 1 {
			t.Fatalf("from %v: %v, %d datagrams", dir.from, err, len(out))
		}
		ch, got, err := relayframe.ParseDeliver(out[0].Payload)
		if err != nil || ch != dir.out || !bytes.Equal(got, pkt) || out[0].To != dir.to || out[0].From != srvPrimary {
			t.Fatalf("from %v: delivered %x (ch %d, %v) to %v from %v", dir.from, out[0].Payload, ch, err, out[0].To, out[0].From)
		}
	}
	// A refresh keeps the number and now reports the peer.
	again := rp.allocate(t, aliceNAT, rp.alice.Session, "bob", rp.token)
	if again.Channel != chA || again.Flags != proto.RelayPeerReady {
		t.Fatalf("refresh gave %+v, want channel %d with the peer ready", again, chA)
	}
	st := rp.h.s.Stats().Relay
	if st.Allocations != 2 || st.Refreshes != 1 || st.Forwarded != 2 || st.Channels != 2 || st.ReadyNotices != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// The relay sees ciphertext and forwards it untouched: for every packet size and
// random content, the delivered packet is byte for byte what was sent, and the frame
// is exactly as large (amplification 1, rewriting only bytes 1–3).
func TestRelayForwardsBytesUnchanged(t *testing.T) {
	rp := newRelayPair(t, func(c *Config) {
		c.RelaySessionRate = relayframe.ByteRate{BytesPerSecond: 1 << 40, Burst: 1 << 30}
		c.RelayServerRate = relayframe.ByteRate{BytesPerSecond: 1 << 40, Burst: 1 << 30}
	})
	chA, chB := rp.both(t)
	rng := rand.New(rand.NewPCG(7, 7))
	for n := 1; n <= relayframe.MaxPacketLen; n += 1 + n/16 {
		pkt := make([]byte, n)
		for i := range pkt {
			pkt[i] = byte(rng.Uint32())
		}
		// What a node sends: seal at buf[4:], header in place at buf[0:4].
		buf := make([]byte, relayframe.DataHeaderLen+n)
		copy(buf[relayframe.DataHeaderLen:], pkt)
		relayframe.PutSendHeader(buf, chA)
		err, out, _ := rp.h.deliver(srvPrimary, aliceNAT, buf)
		if err != nil || len(out) != 1 || len(out[0].Payload) != len(buf) {
			t.Fatalf("%d bytes: %v, %d datagrams", n, err, len(out))
		}
		ch, got, err := relayframe.ParseDeliver(out[0].Payload)
		if err != nil || ch != chB || !bytes.Equal(got, pkt) {
			t.Fatalf("%d bytes: packet changed in transit (ch %d, %v)", n, ch, err)
		}
	}
	big := sendFrame(chA, make([]byte, relayframe.MaxPacketLen+1))
	rp.expectNothing(t, srvPrimary, aliceNAT, big, proto.ErrTooLong)
}

// Acceptance (issue 7): nothing is forwarded for a forged, expired or foreign token,
// and nothing goes to an address that is not the introduced peer's.
func TestRelayRefusesForgedExpiredForeignTokens(t *testing.T) {
	rp := newRelayPair(t, func(c *Config) { c.RelayTokenLifetime = 30 * time.Second })
	h := rp.h
	carol := h.register("carol", 3, strangerA)
	forged := bytes.Clone(rp.token)
	forged[len(forged)-1] ^= 1
	otherServer := relayframe.NewTokenSigner(relayframe.DeriveTokenKey([]byte("another server's secret, 32 bytes")))
	unix := h.s.wall.UnixAt(h.now)
	tokFor := func(s *relayframe.TokenSigner, a, b byte, expiry uint64) []byte {
		return s.AppendToken(nil, relayframe.Token{PairID: 5, ExpiryUnix: expiry,
			KeyA: [proto.KeyLen]byte{0: a, 31: a}, KeyB: [proto.KeyLen]byte{0: b, 31: b}})
	}
	cases := []struct {
		name   string
		from   netip.AddrPort
		cookie proto.Session
		peer   string
		token  []byte
		code   proto.ErrorCode
		text   string
	}{
		{"forged MAC", aliceNAT, rp.alice.Session, "bob", forged, proto.CodeRelayDenied, "bad relay token"},
		{"another server's token", aliceNAT, rp.alice.Session, "bob", tokFor(otherServer, 1, 2, unix+60), proto.CodeRelayDenied, "bad relay token"},
		{"garbage token", aliceNAT, rp.alice.Session, "bob", []byte{1, 2, 3}, proto.CodeRelayDenied, "bad relay token"},
		{"expired token", aliceNAT, rp.alice.Session, "bob", tokFor(h.s.tokens, 1, 2, unix), proto.CodeRelayDenied, "relay token expired"},
		{"carol with alice and bob's token", strangerA, carol.Session, "bob", rp.token, proto.CodeRelayDenied, "relay token not yours"},
		{"alice naming carol with alice and bob's token", aliceNAT, rp.alice.Session, "carol", rp.token, proto.CodeRelayDenied, "peer key not in relay token"},
		{"alice naming herself", aliceNAT, rp.alice.Session, "alice", rp.token, proto.CodeRelayDenied, "peer key not in relay token"},
		{"unknown peer", aliceNAT, rp.alice.Session, "dave", rp.token, proto.CodeUnknownPeer, "unknown peer"},
		{"no session", aliceNAT, proto.Session{1}, "bob", rp.token, proto.CodeNoSession, "no session: register again"},
	}
	for _, c := range cases {
		req := allocateBytes(c.cookie, 5, c.peer, c.token)
		err, out, _ := h.deliver(srvPrimary, c.from, req)
		var e proto.Error
		tx := only(t, out, &e)
		if err == nil || e.Code != c.code || string(e.Text) != c.text || e.TxID != 5 || tx.To != c.from || len(tx.Payload) > len(req) {
			t.Errorf("%s: err %v, reply %+v (%q) to %v", c.name, err, e, e.Text, tx.To)
		}
	}
	st := h.s.Stats().Relay
	if st.Channels != 0 || st.DeniedBadToken != 3 || st.DeniedExpiredToken != 1 || st.DeniedForeignToken != 1 ||
		st.DeniedPeerKey != 2 || st.UnknownPeer != 1 {
		t.Fatalf("stats %+v", st)
	}
	// With no channel, every channel number forwards nothing.
	for ch := 1; ch <= 0xFFFF; ch += 97 {
		rp.expectNothing(t, srvPrimary, aliceNAT, sendFrame(uint16(ch), []byte{1}), ErrRelayNoChannel)
	}
	// The token expires: a refresh with it is refused, and the channel ends on time.
	chA, _ := rp.both(t)
	ttl := rp.allocate(t, aliceNAT, rp.alice.Session, "bob", rp.token).LifetimeS
	if ttl != 30 {
		t.Fatalf("lifetime %d s, want the token lifetime", ttl)
	}
	h.wait(time.Duration(ttl)*time.Second + time.Second)
	if st := h.s.Stats().Relay; st.Channels != 0 || st.ChannelsExpired != 2 {
		t.Fatalf("after the lifetime: %+v", st)
	}
	rp.expectNothing(t, srvPrimary, aliceNAT, sendFrame(chA, []byte{1}), ErrRelayNoChannel)
}

// Acceptance (issue 7): a frame on a live channel from any address but the holder's
// registered one (or reaching another server socket) forwards nothing, and the
// forwarded frame goes only to the peer's registered address, following it when the
// peer's NAT rebinds.
func TestRelayOnlyBetweenRegisteredAddresses(t *testing.T) {
	rp := newRelayPair(t, nil)
	h := rp.h
	chA, chB := rp.both(t)
	pkt := []byte("\xe1\x13 ciphertext")
	rp.expectNothing(t, srvPrimary, strangerA, sendFrame(chA, pkt), ErrRelayWrongSource)
	rp.expectNothing(t, srvPrimary, netip.AddrPortFrom(aliceNAT.Addr(), aliceNAT.Port()+1), sendFrame(chA, pkt), ErrRelayWrongSource)
	rp.expectNothing(t, srvAltPort, aliceNAT, sendFrame(chA, pkt), ErrRelayWrongSource)
	rp.expectNothing(t, srvPrimary, aliceNAT, sendFrame(chB, pkt), ErrRelayWrongSource) // bob's channel
	if st := h.s.Stats().Relay; st.DropWrongSource != 4 || st.Forwarded != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Bob's NAT rebinds; his keepalive moves the session, the relay follows.
	bobNew := netip.MustParseAddrPort("203.0.113.20:50123")
	if err, _, _ := h.deliver(srvPrimary, bobNew, keepaliveBytes(rp.bob.Session, 1)); err != nil {
		t.Fatal(err)
	}
	err, out, _ := h.deliver(srvPrimary, aliceNAT, sendFrame(chA, pkt))
	if err != nil || len(out) != 1 || out[0].To != bobNew {
		t.Fatalf("after bob rebound: %v, %d datagrams to %v", err, len(out), out)
	}
	// Frames from bob's old address are no longer his.
	rp.expectNothing(t, srvPrimary, bobNAT, sendFrame(chB, pkt), ErrRelayWrongSource)
}

// Acceptance (issue 7): a flooding client is held to its rate. Alice sends 1200-byte
// frames as fast as she can for 2 s of virtual time; what is forwarded fits the
// session bucket (burst + rate × time), the rest is counted; bob, sending at a
// modest pace at the same time, loses nothing.
func TestRelayFloodHeldToRate(t *testing.T) {
	rate := relayframe.ByteRate{BytesPerSecond: 1 << 20, Burst: 64 << 10}
	rp := newRelayPair(t, func(c *Config) { c.RelaySessionRate = rate })
	chA, chB := rp.both(t)
	h := rp.h
	frame := sendFrame(chA, make([]byte, 1196))
	bobFrame := sendFrame(chB, make([]byte, 100))
	start := h.now
	var sentBytes, bobLost int
	for k := 0; k < 20000; k++ {
		h.now = h.now.Add(100 * time.Microsecond) // 10,000 frames/s: 12 MB/s offered
		err, out, _ := h.deliver(srvPrimary, aliceNAT, frame)
		if err == nil {
			sentBytes += len(out[0].Payload)
		} else if !errors.Is(err, ErrRelayRate) || len(out) != 0 {
			t.Fatalf("frame %d: %v, %d datagrams", k, err, len(out))
		}
		if k%100 == 0 { // bob: 100 frames/s of 164 bytes
			if err, out, _ := h.deliver(srvPrimary, bobNAT, bobFrame); err != nil || len(out) != 1 {
				bobLost++
			}
		}
	}
	elapsed := h.now.Sub(start).Seconds()
	budget := float64(rate.Burst) + float64(rate.BytesPerSecond)*elapsed
	charged := float64(sentBytes) * float64(1200+relayframe.FrameCostOverhead) / 1200
	st := h.s.Stats().Relay
	if charged > budget || charged < 0.9*budget || st.DropSessionRate == 0 || bobLost != 0 {
		t.Fatalf("forwarded %d bytes (%.0f charged) in %.1f s, budget %.0f; %d dropped; bob lost %d",
			sentBytes, charged, elapsed, budget, st.DropSessionRate, bobLost)
	}
}

// The server-wide cap holds when many sessions each stay within their own rate.
func TestRelayServerWideCap(t *testing.T) {
	server := relayframe.ByteRate{BytesPerSecond: 1 << 20, Burst: 16 << 10}
	rp := newRelayPair(t, func(c *Config) { c.RelayServerRate = server })
	chA, chB := rp.both(t)
	h := rp.h
	start := h.now
	forwarded := 0
	for k := 0; k < 4000; k++ {
		h.now = h.now.Add(250 * time.Microsecond)
		from, ch := aliceNAT, chA
		if k%2 == 1 {
			from, ch = bobNAT, chB
		}
		if err, out, _ := h.deliver(srvPrimary, from, sendFrame(ch, make([]byte, 996))); err == nil {
			forwarded += len(out[0].Payload)
		}
	}
	budget := float64(server.Burst) + float64(server.BytesPerSecond)*h.now.Sub(start).Seconds()
	charged := float64(forwarded) * 1064 / 1000
	if st := h.s.Stats().Relay; charged > budget || st.DropServerRate == 0 || st.DropSessionRate != 0 {
		t.Fatalf("forwarded %d (%.0f charged), budget %.0f, stats %+v", forwarded, charged, budget, st)
	}
}

// Channels die with their sessions: bob's session times out, alice's frames then
// reach nobody; bob registers again and allocates with the same token, and the pair
// relays again. A replaced registration closes its channels too.
func TestRelayChannelsEndWithSessions(t *testing.T) {
	rp := newRelayPair(t, nil)
	h := rp.h
	chA, _ := rp.both(t)
	for i := 0; i < 4; i++ { // alice keeps her session; bob falls silent
		h.wait(25 * time.Second)
		if err, _, _ := h.deliver(srvPrimary, aliceNAT, keepaliveBytes(rp.alice.Session, uint32(i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := h.s.Peer([]byte("bob")); ok {
		t.Fatal("bob's session did not expire")
	}
	rp.expectNothing(t, srvPrimary, aliceNAT, sendFrame(chA, []byte{1}), ErrRelayPeerNotReady)
	if st := h.s.Stats().Relay; st.ChannelsClosed != 1 || st.Channels != 1 {
		t.Fatalf("stats %+v", st)
	}
	rp.bob = h.register("bob", 2, bobNAT)
	b, notices := rp.allocateNotice(t, bobNAT, rp.bob.Session, "alice", rp.token)
	if b.Flags != proto.RelayPeerReady {
		t.Fatal("bob's new channel is not linked with alice's")
	}
	var n proto.RelayAllocated
	if tx := only(t, notices, &n); tx.To != aliceNAT || n.TxID != 99 || n.Channel != chA || n.Flags != proto.RelayPeerReady {
		t.Fatalf("alice's ready notice: %+v to %v", n, tx.To)
	}
	err, out, _ := h.deliver(srvPrimary, aliceNAT, sendFrame(chA, []byte{1}))
	if err != nil || len(out) != 1 {
		t.Fatalf("after bob came back: %v, %d datagrams", err, len(out))
	}
	// Alice registers again (a new cookie): her old channel is gone.
	if err, _, _ := h.deliver(srvPrimary, aliceNAT, registerBytes(77, ticketFor("alice", 1))); err != nil {
		t.Fatal(err)
	}
	rp.expectNothing(t, srvPrimary, aliceNAT, sendFrame(chA, []byte{1}), ErrRelayNoChannel)
	if st := h.s.Stats().Relay; st.ChannelsClosed != 2 || st.Channels != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// mintPair mints a relay token of pair for the keys of the test tickets a and b
// (testTicket's keys).
func mintPair(h *harness, pair uint64, a, b byte) []byte {
	return h.s.tokens.AppendToken(nil, relayframe.Token{PairID: pair, ExpiryUnix: h.s.wall.UnixAt(h.now) + 60,
		KeyA: [proto.KeyLen]byte{0: a, 31: a}, KeyB: [proto.KeyLen]byte{0: b, 31: b}})
}

// extraPeerAddr is the address of the test's k-th extra peer (ticket key k).
func extraPeerAddr(k byte) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, 100 + k}), 40000)
}

// Quotas: a session holds at most MaxRelayChannelsPerSession channels, the table at
// most MaxRelayChannels; beyond them code 7 and nothing allocated.
func TestRelayQuotas(t *testing.T) {
	rp := newRelayPair(t, func(c *Config) { c.MaxRelayChannelsPerSession = 2; c.MaxRelayChannels = 3 })
	h := rp.h
	carol := h.register("carol", 3, extraPeerAddr(3))
	h.register("dave", 4, extraPeerAddr(4))
	rp.allocate(t, aliceNAT, rp.alice.Session, "bob", mintPair(h, 1, 1, 2))
	rp.allocate(t, aliceNAT, rp.alice.Session, "carol", mintPair(h, 2, 1, 3))
	req := allocateBytes(rp.alice.Session, 3, "dave", mintPair(h, 3, 1, 4))
	err, out, _ := h.deliver(srvPrimary, aliceNAT, req)
	if !errors.Is(err, ErrRelayTableFull) || errorCode(t, out) != proto.CodeServerFull {
		t.Fatalf("third channel of one session: %v", err)
	}
	rp.allocate(t, bobNAT, rp.bob.Session, "alice", mintPair(h, 1, 1, 2))
	err, out, _ = h.deliver(srvPrimary, extraPeerAddr(3), allocateBytes(carol.Session, 3, "bob", mintPair(h, 4, 2, 3)))
	if !errors.Is(err, ErrRelayTableFull) || errorCode(t, out) != proto.CodeServerFull {
		t.Fatalf("fourth channel of the table: %v", err)
	}
	if st := h.s.Stats().Relay; st.Channels != 3 || st.TableFull != 2 || st.ChannelsReplaced != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// [RELAY-1]: a session holding its maximum of channels (16, one per peer) allocates
// a channel of a newer pair of the same two keys as one of them (both registered
// again and were introduced anew); the older channel ends, counted as replaced, its
// peer's channel stays unlinked, and the new pair links as usual. A channel for a
// seventeenth peer is still refused.
func TestRelayNewerPairReplacesOlder(t *testing.T) {
	rp := newRelayPair(t, nil)
	h := rp.h
	const n = DefaultMaxRelayChannelsPerSession
	var first proto.Registered // the peer with key 3, whose pair is renewed
	var oldCh uint16
	for k := byte(3); k < 3+n; k++ {
		peer := h.register(fmt.Sprint("peer", k), k, extraPeerAddr(k))
		m := rp.allocate(t, aliceNAT, rp.alice.Session, fmt.Sprint("peer", k), mintPair(h, uint64(k), 1, k))
		if k == 3 {
			first, oldCh = peer, m.Channel
			rp.allocate(t, extraPeerAddr(3), first.Session, "alice", mintPair(h, 3, 1, 3))
		}
	}
	err, out, _ := h.deliver(srvPrimary, aliceNAT, allocateBytes(rp.alice.Session, 5, "bob", mintPair(h, 2, 1, 2)))
	if !errors.Is(err, ErrRelayTableFull) || errorCode(t, out) != proto.CodeServerFull {
		t.Fatalf("a channel for a seventeenth peer: %v", err)
	}
	renewed := mintPair(h, 1003, 3, 1) // the same two keys, the other way round
	a := rp.allocate(t, aliceNAT, rp.alice.Session, "peer3", renewed)
	if a.Channel == oldCh || a.Flags&proto.RelayPeerReady != 0 {
		t.Fatalf("the newer pair's channel %+v; the older was %d", a, oldCh)
	}
	if st := h.s.Stats().Relay; st.ChannelsReplaced != 1 || st.Channels != n+1 {
		t.Fatalf("stats %+v; want 1 replaced and %d channels", st, n+1)
	}
	rp.expectNothing(t, srvPrimary, aliceNAT, sendFrame(oldCh, []byte{1}), ErrRelayNoChannel)
	if again := rp.allocate(t, aliceNAT, rp.alice.Session, "peer3", renewed); again.Channel != a.Channel {
		t.Fatalf("refresh of the newer pair: channel %d, want %d", again.Channel, a.Channel)
	}
	b := rp.allocate(t, extraPeerAddr(3), first.Session, "alice", renewed)
	if b.Flags&proto.RelayPeerReady == 0 {
		t.Fatal("peer3's channel of the newer pair is not linked with alice's")
	}
	err, out, _ = h.deliver(srvPrimary, extraPeerAddr(3), sendFrame(b.Channel, []byte{1}))
	if err != nil || len(out) != 1 || out[0].To != aliceNAT {
		t.Fatalf("frame on the newer pair: %v, %d datagrams", err, len(out))
	}
	if st := h.s.Stats().Relay; st.ChannelsReplaced != 2 || st.Channels != n+1 {
		t.Fatalf("stats %+v; want 2 replaced (alice's and peer3's older channels) and %d channels", st, n+1)
	}
}

// A server with the relay off refuses allocations (code 8) and forwards nothing.
func TestRelayDisabled(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DisableRelay = true })
	alice := h.register("alice", 1, aliceNAT)
	h.register("bob", 2, bobNAT)
	tok := h.s.tokens.AppendToken(nil, relayframe.Token{PairID: 1, ExpiryUnix: h.s.wall.UnixAt(h.now) + 60,
		KeyA: [proto.KeyLen]byte{0: 1, 31: 1}, KeyB: [proto.KeyLen]byte{0: 2, 31: 2}})
	err, out, _ := h.deliver(srvPrimary, aliceNAT, allocateBytes(alice.Session, 1, "bob", tok))
	if !errors.Is(err, ErrRelayToken) || errorCode(t, out) != proto.CodeRelayDenied {
		t.Fatalf("allocate with the relay off: %v", err)
	}
	err, out, _ = h.deliver(srvPrimary, aliceNAT, sendFrame(1, []byte{1}))
	if !errors.Is(err, ErrRelayNoChannel) || len(out) != 0 {
		t.Fatalf("relay-send with the relay off: %v, %d datagrams", err, len(out))
	}
}

// Channel expiry follows the wall clock: when the driver re-anchors it (the wall
// clock stepped forward an hour), channels past their token's expiry end at once.
func TestRelayExpiryFollowsWallClock(t *testing.T) {
	rp := newRelayPair(t, nil)
	h := rp.h
	rp.both(t)
	// Expiry is whole wall-clock seconds: the channel ends within a second before
	// the lifetime has passed.
	want := h.now.Add(DefaultRelayTokenLifetime)
	if d := h.s.timers[timerRelayExpiry]; d > want || d <= want.Add(-time.Second) {
		t.Fatalf("relay timer %v, want within a second before %v", d, want)
	}
	h.s.SetWallClock(h.now, int64(h.s.wall.UnixAt(h.now))+3600)
	if st := h.s.Stats().Relay; st.Channels != 0 || st.ChannelsExpired != 2 {
		t.Fatalf("after the wall clock jumped: %+v", st)
	}
	if h.s.Deadline() <= h.now {
		t.Fatal("deadline not after now")
	}
}

func TestRelayForwardDoesNotAllocate(t *testing.T) {
	rp := newRelayPair(t, nil)
	chA, _ := rp.both(t)
	frame := sendFrame(chA, make([]byte, 1196))
	h := rp.h
	n := testing.AllocsPerRun(1000, func() {
		h.now = h.now.Add(time.Millisecond)
		if err := h.s.HandleDatagram(h.now, srvPrimary, aliceNAT, frame); err != nil {
			t.Fatal(err)
		}
		benchDrain(h.s, h.now, h.buf)
	})
	if n != 0 {
		t.Fatalf("forwarding allocates %v times per frame", n)
	}
}

// BenchmarkRelayForward: one 1200-byte relay-send in, one relay-deliver out (the
// server state machine only: HandleDatagram, PollTransmit). pairs=1 alternates the
// directions of one pair; pairs=4096 goes round-robin over 4096 relayed pairs (8192
// sessions and channels), so the tables do not sit in the cache.
func BenchmarkRelayForward(b *testing.B) {
	unlimited := relayframe.ByteRate{BytesPerSecond: 1 << 40, Burst: 1 << 30}
	open := func(c *Config) {
		c.RelaySessionRate, c.RelayServerRate = unlimited, unlimited
		c.SourceRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20}
		c.UnauthRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20}
		c.OpenRegisterRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20}
	}
	b.Run("pairs=1", func(b *testing.B) {
		rp := newRelayPair(b, open)
		chA, chB := rp.both(b)
		frames := [2][]byte{sendFrame(chA, make([]byte, 1196)), sendFrame(chB, make([]byte, 1196))}
		from := [2]netip.AddrPort{aliceNAT, bobNAT}
		benchForward(b, rp.h, frames[:], from[:])
	})
	b.Run("pairs=4096", func(b *testing.B) {
		const pairs = 4096
		h := newHarness(b, func(c *Config) { open(c); c.MaxRelayChannelsPerSession = 1 })
		var frames [][]byte
		var from []netip.AddrPort
		unix := h.s.wall.UnixAt(h.now)
		for k := range pairs {
			var regs [2]proto.Registered
			var addrs [2]netip.AddrPort
			var keys [2][proto.KeyLen]byte
			for side := range 2 {
				n := 2*k + side
				addrs[side] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 40000)
				tk := testTicket(fmt.Sprintf("p%d", n), 0)
				tk.PublicKey[1], tk.PublicKey[2] = byte(n>>8), byte(n)
				keys[side] = tk.PublicKey
				err, out, _ := h.deliver(srvPrimary, addrs[side], registerBytes(uint64(n), MintTicket(testSecret, tk)))
				if err != nil {
					b.Fatal(err)
				}
				only(b, out, &regs[side])
			}
			tok := h.s.tokens.AppendToken(nil, relayframe.Token{PairID: uint64(k), ExpiryUnix: unix + 3600, KeyA: keys[0], KeyB: keys[1]})
			for side := range 2 {
				err, out, _ := h.deliver(srvPrimary, addrs[side], allocateBytes(regs[side].Session, 1, fmt.Sprintf("p%d", 2*k+1-side), tok))
				var m proto.RelayAllocated
				if err != nil || len(out) != side+1 { // the second side's also sends the first a ready notice
					b.Fatalf("allocate: %v, %d datagrams", err, len(out))
				}
				only(b, out[:1], &m)
				frames = append(frames, sendFrame(m.Channel, make([]byte, 1196)))
				from = append(from, addrs[side])
			}
		}
		benchForward(b, h, frames, from)
	})
}

func benchForward(b *testing.B, h *harness, frames [][]byte, from []netip.AddrPort) {
	b.ReportAllocs()
	b.SetBytes(1200)
	i := 0
	for b.Loop() {
		h.now++
		if err := h.s.HandleDatagram(h.now, srvPrimary, from[i], frames[i]); err != nil {
			b.Fatal(err)
		}
		if _, ok := h.s.PollTransmit(h.now, h.buf); !ok {
			b.Fatal("nothing forwarded")
		}
		if i++; i == len(frames) {
			i = 0
		}
	}
}

// An IPv4 peer and an IPv6 peer relay to each other; frames keep their size (the
// relay adds nothing when families differ) and reach the registered addresses.
func TestRelayAcrossAddressFamilies(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.register("alice", 1, aliceNAT)
	bob := h.register("bob", 2, v6Node)
	rp := &relayPair{h: h, alice: alice, bob: bob}
	rp.token = h.s.tokens.AppendToken(nil, relayframe.Token{PairID: 3, ExpiryUnix: h.s.wall.UnixAt(h.now) + 60,
		KeyA: [proto.KeyLen]byte{0: 1, 31: 1}, KeyB: [proto.KeyLen]byte{0: 2, 31: 2}})
	a := rp.allocate(t, aliceNAT, alice.Session, "bob", rp.token)
	b, _ := rp.allocateNotice(t, v6Node, bob.Session, "alice", rp.token)
	for _, c := range []struct {
		from, to netip.AddrPort
		ch, want uint16
	}{{aliceNAT, v6Node, a.Channel, b.Channel}, {v6Node, aliceNAT, b.Channel, a.Channel}} {
		in := sendFrame(c.ch, []byte("ciphertext"))
		err, out, _ := h.deliver(srvPrimary, c.from, in)
		if err != nil || len(out) != 1 || out[0].To != c.to || len(out[0].Payload) != len(in) {
			t.Fatalf("from %v: %v, %v", c.from, err, out)
		}
		if ch, _, _ := relayframe.ParseDeliver(out[0].Payload); ch != c.want {
			t.Fatalf("from %v: delivered on channel %d, want %d", c.from, ch, c.want)
		}
	}
}

// With Config.DisableRelayReadyNotice the peer that allocated first hears nothing
// more: it learns that the pair is linked from its next relay-allocate.
func TestRelayReadyNoticeOff(t *testing.T) {
	rp := newRelayPair(t, func(c *Config) { c.DisableRelayReadyNotice = true })
	rp.allocate(t, aliceNAT, rp.alice.Session, "bob", rp.token)
	_, notices := rp.allocateNotice(t, bobNAT, rp.bob.Session, "alice", rp.token)
	if len(notices) != 0 || rp.h.s.Stats().Relay.ReadyNotices != 0 {
		t.Fatalf("%d notices sent with the notice off", len(notices))
	}
	if a := rp.allocate(t, aliceNAT, rp.alice.Session, "bob", rp.token); a.Flags != proto.RelayPeerReady {
		t.Fatal("alice's refresh does not report bob")
	}
}
