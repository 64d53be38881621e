package keyx

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// spoofed builds an initiation an attacker can make without any secret: it knows the
// responder's public key (so mac1 is right) but not a cookie, and sends from forged
// source addresses.
func spoofed(r *rand.Rand, responder PublicKey) []byte {
	m := proto.Initiation{Sender: r.Uint32()}
	for i := range m.Ephemeral {
		m.Ephemeral[i] = byte(r.Uint32())
	}
	for i := range m.Static {
		m.Static[i] = byte(r.Uint32())
	}
	msg := m.Append(nil)
	key := hashOf([]byte(labelMAC1), responder[:])
	writeMACs(msg, &key, nil)
	return msg
}

func spoofedSource(r *rand.Rand) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(r.Uint32())}), uint16(1024+r.IntN(60000)))
}

// loadThreshold is low in these tests so that a handful of datagrams put the
// responder under load.
const testLoadThreshold = 4

func underLoadPair(t *testing.T, seed uint64) (*pair, *rand.Rand) {
	p := newPair(t, seed, PresharedKey{}, func(c *Config) { c.LoadThreshold = testLoadThreshold })
	r := rand.New(rand.NewPCG(seed, 1))
	// Push the responder over its threshold. These few cost one DH each (the es of a
	// garbage initiation, which then fails to decrypt): that is the price below load.
	for range testLoadThreshold + 1 {
		p.b.HandleDatagram(p.now, addrB, spoofedSource(r), spoofed(r, p.b.PublicKey()))
	}
	transmits(p.b, p.now)
	return p, r
}

// Whitepaper §5.3: under load the responder answers a message without a valid mac2
// with a cookie reply and does no Diffie-Hellman for it.
func TestSpoofedFloodUnderLoadGetsOnlyCookies(t *testing.T) {
	p, r := underLoadPair(t, 10)
	dh := p.b.Stats().DHOps
	cookies := p.b.Stats().CookieRepliesSent
	const flood = 2000
	for i := range flood {
		if i%100 == 0 {
			p.now = p.now.Add(50 * time.Millisecond) // spread over seconds of virtual time
		}
		src := spoofedSource(r)
		msg := spoofed(r, p.b.PublicKey())
		if err := p.b.HandleDatagram(p.now, addrB, src, msg); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		txs := transmits(p.b, p.now)
		if len(txs) != 1 {
			t.Fatalf("datagram %d: %d replies, want one cookie reply", i, len(txs))
		}
		tx := txs[0]
		var cr proto.CookieReply
		if err := cr.Parse(tx.Payload); err != nil {
			t.Fatalf("datagram %d: reply is not a cookie reply: %v", i, err)
		}
		if tx.To != src || tx.From != addrB || len(tx.Payload) > len(msg) {
			t.Fatalf("datagram %d: reply %d bytes to %v, request %d bytes from %v", i, len(tx.Payload), tx.To, len(msg), src)
		}
	}
	if got := p.b.Stats().DHOps - dh; got != 0 {
		t.Fatalf("spoofed flood under load caused %d DH operations, want 0", got)
	}
	if got := p.b.Stats().CookieRepliesSent - cookies; got != flood {
		t.Fatalf("%d cookie replies, want %d", got, flood)
	}
	if len(p.b.indexes) != 0 {
		t.Fatalf("the flood left %d index entries", len(p.b.indexes))
	}
}

// The genuine peer, under the same load, completes after one cookie round trip.
func TestGenuinePeerCompletesAfterOneCookieRoundTrip(t *testing.T) {
	p, _ := underLoadPair(t, 11)
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	first := p.one(p.a)
	if err := p.deliver(p.b, first); err != nil {
		t.Fatal(err)
	}
	cookie := p.one(p.b)
	if cookie.Payload[1] != byte(proto.TypeCookieReply) {
		t.Fatalf("under load the first initiation got type %#x, want a cookie reply", cookie.Payload[1])
	}
	p.now = p.now.Add(30 * time.Millisecond) // one round trip
	if err := p.deliver(p.a, cookie); err != nil {
		t.Fatalf("cookie reply: %v", err)
	}
	again := p.one(p.a)
	if again.To != addrB || again.Payload[1] != byte(proto.TypeInitiation) {
		t.Fatal("the initiator did not resend its initiation with mac2")
	}
	var m proto.Initiation
	if err := m.Parse(again.Payload); err != nil || m.MAC2 == ([proto.MACLen]byte{}) {
		t.Fatalf("resent initiation has no mac2 (%v)", err)
	}
	// A replayed cookie reply decrypts, but the initiation is resent only once.
	if err := p.deliver(p.a, cookie); err != nil {
		t.Fatal(err)
	}
	if len(transmits(p.a, p.now)) != 0 {
		t.Fatal("a replayed cookie reply made the initiator send again")
	}
	dh := p.b.Stats().DHOps
	if err := p.deliver(p.b, again); err != nil {
		t.Fatalf("initiation with mac2: %v", err)
	}
	if p.b.Stats().DHOps == dh {
		t.Fatal("the genuine initiation was not processed")
	}
	if err := p.deliver(p.a, p.one(p.b)); err != nil {
		t.Fatalf("response: %v", err)
	}
	established(t, p.a, p.b.PublicKey())

	// After completion the index names a session: the cookie reply is dropped.
	if err := p.deliver(p.a, cookie); !errors.Is(err, ErrUnknownIndex) {
		t.Fatalf("cookie reply after completion: err = %v, want ErrUnknownIndex", err)
	}
	if len(transmits(p.a, p.now)) != 0 {
		t.Fatal("a replayed cookie reply made the initiator send")
	}
}

// A cookie is bound to the source address: mac2 made for one source does not pass
// from another, so an attacker cannot lend its cookie to a flood.
func TestCookieBoundToSource(t *testing.T) {
	p, _ := underLoadPair(t, 12)
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	if err := p.deliver(p.b, p.one(p.a)); err != nil {
		t.Fatal(err)
	}
	if err := p.deliver(p.a, p.one(p.b)); err != nil {
		t.Fatal(err)
	}
	again := p.one(p.a)
	again.From = netip.MustParseAddrPort("192.0.2.99:40000")
	dh := p.b.Stats().DHOps
	if err := p.deliver(p.b, again); err != nil {
		t.Fatal(err)
	}
	tx := p.one(p.b)
	if tx.Payload[1] != byte(proto.TypeCookieReply) || p.b.Stats().DHOps != dh {
		t.Fatal("mac2 from another source was accepted")
	}
}

// Under load, a source that does hold a cookie is still held to 20 initiations a
// second with a burst of 5; the rest are dropped before any DH.
func TestRateLimitPerSourceUnderLoad(t *testing.T) {
	var l rateLimiter = newRateLimiter(4)
	src := netip.MustParseAddr("192.0.2.7")
	now := t0
	allowed := 0
	for range 10 {
		if l.allow(now, src) {
			allowed++
		}
	}
	if allowed != rateBurst {
		t.Fatalf("burst allowed %d, want %d", allowed, rateBurst)
	}
	if l.allow(now.Add(time.Second/ratePerSecond-1), src) {
		t.Fatal("allowed before a token refilled")
	}
	if !l.allow(now.Add(2*time.Second/ratePerSecond), src) {
		t.Fatal("refused after a token refilled")
	}
	// An IPv6 /64 is one source.
	a := netip.MustParseAddr("2001:db8:1:2::1")
	b := netip.MustParseAddr("2001:db8:1:2:ffff::9")
	for range rateBurst {
		l.allow(now, a)
	}
	if l.allow(now, b) {
		t.Fatal("another address of the same /64 got a fresh bucket")
	}
	// The table never grows past its bound: a new source finds no room until the
	// idle ones can be forgotten.
	l.allow(now, netip.MustParseAddr("192.0.2.8"))
	l.allow(now, netip.MustParseAddr("192.0.2.9"))
	if l.allow(now, netip.MustParseAddr("192.0.2.10")) || len(l.table) > 4 {
		t.Fatalf("full table admitted a new source (%d entries)", len(l.table))
	}
	later := now.Add(2 * time.Second)
	if !l.allow(later, netip.MustParseAddr("192.0.2.10")) || len(l.table) > 4 {
		t.Fatal("idle entries were not forgotten")
	}
}

// No reply to an unauthenticated sender is larger than the request. The replies keyx
// ever sends to the source of a datagram are the response and the cookie reply, both
// to an initiation; a cookie reply may make the initiator resend its own initiation,
// but only once per Initiate and only to the address Initiate named.
func TestNoReplyLargerThanRequest(t *testing.T) {
	if proto.ResponseLen > proto.InitiationLen || proto.CookieReplyLen > proto.InitiationLen {
		t.Fatal("a reply type is larger than the initiation it answers")
	}
	seen := map[proto.MsgType]bool{}
	check := func(e *Endpoint, now proto.Instant, from netip.AddrPort, req []byte) {
		t.Helper()
		for _, tx := range transmits(e, now) {
			seen[proto.MsgType(tx.Payload[1])] = true
			if tx.To == from && len(tx.Payload) > len(req) && req[1] != byte(proto.TypeCookieReply) {
				t.Fatalf("reply of %d bytes (type %#x) to a request of %d (type %#x)", len(tx.Payload), tx.Payload[1], len(req), req[1])
			}
		}
	}
	// Normal load: the response.
	p := newPair(t, 13, PresharedKey{}, nil)
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	init := p.one(p.a)
	p.deliver(p.b, init)
	check(p.b, p.now, init.From, init.Payload)
	// Under load: the cookie reply, to genuine and to spoofed initiations, and every
	// mutation of them.
	q, r := underLoadPair(t, 14)
	if err := q.a.Initiate(q.now, q.wall(), q.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	genuine := q.one(q.a)
	base := [][]byte{genuine.Payload, spoofed(r, q.b.PublicKey())}
	inputs := base
	for range 300 {
		m := append([]byte(nil), base[r.IntN(len(base))]...)
		m[r.IntN(len(m))] ^= byte(1 + r.IntN(255))
		if r.IntN(4) == 0 {
			m = m[:r.IntN(len(m))]
		}
		inputs = append(inputs, m)
	}
	for _, in := range inputs {
		q.b.HandleDatagram(q.now, addrB, addrA, in)
		check(q.b, q.now, addrA, in)
		q.a.HandleDatagram(q.now, addrA, addrB, in)
		check(q.a, q.now, addrB, in)
	}
	for _, typ := range []proto.MsgType{proto.TypeResponse, proto.TypeCookieReply} {
		if !seen[typ] {
			t.Errorf("no %v was sent: the test did not cover it", typ)
		}
	}
}

// The cookie secret rotates every 120 s: a cookie older than that no longer passes,
// and the initiator stops sending mac2 with it.
func TestCookieSecretRotates(t *testing.T) {
	p, _ := underLoadPair(t, 15)
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	if err := p.deliver(p.b, p.one(p.a)); err != nil {
		t.Fatal(err)
	}
	if err := p.deliver(p.a, p.one(p.b)); err != nil {
		t.Fatal(err)
	}
	withMAC2 := p.one(p.a)
	if !p.b.cookies.checkMAC2(p.now, addrA, withMAC2.Payload) {
		t.Fatal("fresh cookie rejected")
	}
	later := p.now.Add(CookieSecretLifetime)
	if p.b.cookies.checkMAC2(later, addrA, withMAC2.Payload) {
		t.Fatal("cookie accepted after the secret's lifetime")
	}
	if p.a.peers[p.b.PublicKey()].freshCookie(later) != nil {
		t.Fatal("initiator still uses a cookie after 120 s")
	}
}
