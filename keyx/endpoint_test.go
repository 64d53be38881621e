package keyx

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

var (
	addrA = netip.MustParseAddrPort("192.0.2.1:40000")
	addrB = netip.MustParseAddrPort("198.51.100.2:51820")
	wall0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	t0    = proto.Instant(1_000_000_000)
)

// pair is two endpoints that know each other, on virtual time.
type pair struct {
	t     testing.TB
	a, b  *Endpoint
	privA PrivateKey
	now   proto.Instant
}

func newPair(t testing.TB, seed uint64, psk PresharedKey, tweak func(*Config)) *pair {
	t.Helper()
	r := seeded(seed)
	cfgA := Config{PrivateKey: mustKey(t, r), Rand: seeded(seed + 1000)}
	cfgB := Config{PrivateKey: mustKey(t, r), Rand: seeded(seed + 2000)}
	if tweak != nil {
		tweak(&cfgB)
	}
	p := &pair{t: t, a: New(cfgA, t0), b: New(cfgB, t0), privA: cfgA.PrivateKey, now: t0}
	if err := p.a.AddPeer(p.b.PublicKey(), psk); err != nil {
		t.Fatal(err)
	}
	if err := p.b.AddPeer(p.a.PublicKey(), psk); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pair) wall() time.Time { return wall0.Add(p.now.Sub(t0)) }

// transmits drains e's datagrams, copying each payload.
func transmits(e *Endpoint, now proto.Instant) []proto.Transmit {
	var out []proto.Transmit
	buf := make([]byte, 2048)
	for {
		tx, ok := e.PollTransmit(now, buf)
		if !ok {
			return out
		}
		tx.Payload = append([]byte(nil), tx.Payload...)
		out = append(out, tx)
	}
}

func events(e *Endpoint) []Event {
	var out []Event
	for {
		ev, ok := e.PollEvent()
		if !ok {
			return out
		}
		out = append(out, ev)
	}
}

// one drains exactly one datagram from e.
func (p *pair) one(e *Endpoint) proto.Transmit {
	p.t.Helper()
	txs := transmits(e, p.now)
	if len(txs) != 1 {
		p.t.Fatalf("want one datagram, got %d", len(txs))
	}
	return txs[0]
}

func (p *pair) deliver(to *Endpoint, tx proto.Transmit) error {
	return to.HandleDatagram(p.now, tx.To, tx.From, tx.Payload)
}

// handshake runs a whole handshake from a to b and the first transport packet that
// confirms it, and returns both sessions.
func (p *pair) handshake() (sa, sb *Session) {
	p.t.Helper()
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		p.t.Fatal(err)
	}
	if err := p.deliver(p.b, p.one(p.a)); err != nil {
		p.t.Fatalf("initiation: %v", err)
	}
	if err := p.deliver(p.a, p.one(p.b)); err != nil {
		p.t.Fatalf("response: %v", err)
	}
	sa = established(p.t, p.a, p.b.PublicKey())
	pkt, err := sa.Seal(p.now, nil, nil) // a keepalive confirms the keys to b
	if err != nil {
		p.t.Fatal(err)
	}
	got, _, err := p.b.Open(p.now, nil, pkt)
	if err != nil {
		p.t.Fatalf("first transport packet: %v", err)
	}
	sb = established(p.t, p.b, p.a.PublicKey())
	if got != sb {
		p.t.Fatal("Open returned another session than the one established")
	}
	return sa, sb
}

func established(t testing.TB, e *Endpoint, peer PublicKey) *Session {
	t.Helper()
	evs := events(e)
	if len(evs) != 1 {
		t.Fatalf("want one event, got %#v", evs)
	}
	ev, ok := evs[0].(EventEstablished)
	if !ok || ev.Peer != peer || e.Current(peer) != ev.Session {
		t.Fatalf("want EventEstablished for the peer's current session, got %#v", evs[0])
	}
	return ev.Session
}

func TestEndpointHandshakeAndTransport(t *testing.T) {
	for _, psk := range []PresharedKey{{}, {9}} {
		p := newPair(t, 1, psk, nil)
		sa, sb := p.handshake()
		if sa.LocalIndex() != sb.RemoteIndex() || sb.LocalIndex() != sa.RemoteIndex() {
			t.Fatal("indexes do not match across the pair")
		}
		for i, msg := range [][]byte{[]byte("hello"), make([]byte, 1200), nil} {
			from, to := sa, p.b
			if i%2 == 1 {
				from, to = sb, p.a
			}
			pkt, err := from.Seal(p.now, nil, msg)
			if err != nil {
				t.Fatal(err)
			}
			if len(pkt) != len(msg)+proto.TransportOverhead {
				t.Fatalf("packet of %d bytes for %d of plaintext", len(pkt), len(msg))
			}
			_, got, err := to.Open(p.now, nil, pkt)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("open: %v, %x", err, got)
			}
		}
	}
}

func TestPSKMismatchFailsHandshake(t *testing.T) {
	p := newPair(t, 2, PresharedKey{1}, nil)
	if err := p.b.AddPeer(p.a.PublicKey(), PresharedKey{2}); err != nil {
		t.Fatal(err)
	}
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	if err := p.deliver(p.b, p.one(p.a)); err != nil {
		t.Fatal(err) // the initiation does not depend on the PSK
	}
	if err := p.deliver(p.a, p.one(p.b)); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("response under another PSK: err = %v, want ErrDecrypt", err)
	}
	if p.a.Current(p.b.PublicKey()) != nil || len(events(p.a)) != 0 {
		t.Fatal("a failed response established something")
	}
}

func TestUnknownPeerGetsNoReply(t *testing.T) {
	p := newPair(t, 3, PresharedKey{}, nil)
	p.b.RemovePeer(p.a.PublicKey())
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	if err := p.deliver(p.b, p.one(p.a)); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("err = %v, want ErrUnknownPeer", err)
	}
	if txs := transmits(p.b, p.now); len(txs) != 0 {
		t.Fatalf("an unknown peer got %d replies", len(txs))
	}
}

// snapshot is the observable state of an endpoint that a rejected datagram must not
// change.
type snapshot struct {
	indexes  int
	sessions [][3]*Session
	stamps   []Timestamp
	pending  []bool
	cookies  []bool
}

func snap(e *Endpoint) snapshot {
	s := snapshot{indexes: len(e.indexes)}
	for _, p := range e.order {
		s.sessions = append(s.sessions, [3]*Session{p.current, p.previous, p.next})
		s.stamps = append(s.stamps, p.lastTimestamp)
		s.pending = append(s.pending, p.pending)
		s.cookies = append(s.cookies, p.haveCookie)
	}
	return s
}

func equalSnap(a, b snapshot) bool {
	if a.indexes != b.indexes || len(a.sessions) != len(b.sessions) {
		return false
	}
	for i := range a.sessions {
		if a.sessions[i] != b.sessions[i] || a.stamps[i] != b.stamps[i] || a.pending[i] != b.pending[i] || a.cookies[i] != b.cookies[i] {
			return false
		}
	}
	return true
}

// Whitepaper §5.1: a responder keeps the greatest timestamp per peer, so a replayed
// initiation is dropped without a response.
func TestReplayedInitiationGetsNoReplyAndChangesNothing(t *testing.T) {
	p := newPair(t, 4, PresharedKey{}, nil)
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	init := p.one(p.a)
	if err := p.deliver(p.b, init); err != nil {
		t.Fatal(err)
	}
	transmits(p.b, p.now)
	for _, later := range []time.Duration{0, time.Millisecond, time.Minute} {
		p.now = p.now.Add(later)
		before := snap(p.b)
		if err := p.deliver(p.b, init); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay after %v: err = %v, want ErrReplay", later, err)
		}
		if txs := transmits(p.b, p.now); len(txs) != 0 {
			t.Fatalf("replayed initiation got %d replies", len(txs))
		}
		if !equalSnap(before, snap(p.b)) || len(events(p.b)) != 0 {
			t.Fatal("replayed initiation changed the responder")
		}
	}
}

// At most one initiation per peer per 20 ms is answered, even with a fresh timestamp.
func TestInitiationFloodFromOnePeer(t *testing.T) {
	p := newPair(t, 5, PresharedKey{}, nil)
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	if err := p.deliver(p.b, p.one(p.a)); err != nil {
		t.Fatal(err)
	}
	transmits(p.b, p.now)
	p.now = p.now.Add(10 * time.Millisecond)
	// The initiator side refuses too: the responder would drop it.
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("Initiate within 20 ms: err = %v, want ErrRateLimited", err)
	}
	// A second initiator with the same key (a clone) is refused by the responder.
	clone := New(Config{PrivateKey: p.privA, Rand: seeded(77)}, p.now)
	if err := clone.AddPeer(p.b.PublicKey(), PresharedKey{}); err != nil {
		t.Fatal(err)
	}
	if err := clone.Initiate(p.now, p.wall().Add(time.Second), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	tx := p.one(clone)
	before := snap(p.b)
	if err := p.deliver(p.b, tx); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("second initiation within 20 ms: err = %v, want ErrRateLimited", err)
	}
	if len(transmits(p.b, p.now)) != 0 || !equalSnap(before, snap(p.b)) {
		t.Fatal("a refused initiation was answered or changed state")
	}
	p.now = p.now.Add(20 * time.Millisecond)
	if err := p.deliver(p.b, tx); err != nil {
		t.Fatalf("same initiation after 20 ms: %v", err)
	}
}

func TestBadMAC1DroppedBeforeDH(t *testing.T) {
	p := newPair(t, 6, PresharedKey{}, nil)
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	tx := p.one(p.a)
	dh := p.b.Stats().DHOps
	for i := range proto.InitiationMAC2Offset {
		bad := append([]byte(nil), tx.Payload...)
		bad[i] ^= 1
		err := p.b.HandleDatagram(p.now, addrB, addrA, bad)
		if i >= proto.HeaderLen && !errors.Is(err, ErrBadMAC) {
			t.Fatalf("flipped byte %d: err = %v, want ErrBadMAC", i, err)
		}
		if err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	if got := p.b.Stats().DHOps; got != dh {
		t.Fatalf("%d DH operations for initiations with a bad mac1", got-dh)
	}
	if len(transmits(p.b, p.now)) != 0 {
		t.Fatal("a bad initiation was answered")
	}
}

func TestEndpointCommandsAndMisuse(t *testing.T) {
	p := newPair(t, 7, PresharedKey{}, nil)
	if err := p.a.AddPeer(PublicKey{}, PresharedKey{}); !errors.Is(err, ErrLowOrder) {
		t.Fatalf("AddPeer(low-order): err = %v, want ErrLowOrder", err)
	}
	if err := p.a.Initiate(p.now, p.wall(), PublicKey{7}, addrA, addrB); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("Initiate(unknown): err = %v, want ErrUnknownPeer", err)
	}
	if err := p.a.HandleDatagram(p.now, addrA, addrB, proto.AppendTransportHeader(nil, 1, 1)); !errors.Is(err, proto.ErrWrongType) {
		t.Fatalf("transport data to HandleDatagram: err = %v, want proto.ErrWrongType", err)
	}
	if err := p.a.HandleDatagram(p.now, addrA, addrB, []byte{0x00, 0x01}); !errors.Is(err, proto.ErrNotNatpass) {
		t.Fatalf("STUN to HandleDatagram: err = %v, want proto.ErrNotNatpass", err)
	}
	sa, sb := p.handshake()
	p.a.RemovePeer(p.b.PublicKey())
	if !sa.Zeroed() || len(p.a.indexes) != 0 || p.a.Current(p.b.PublicKey()) != nil || len(p.a.order) != 0 {
		t.Fatal("RemovePeer left state behind")
	}
	pkt, _ := sb.Seal(p.now, nil, []byte("x"))
	if _, _, err := p.a.Open(p.now, nil, pkt); !errors.Is(err, ErrUnknownIndex) {
		t.Fatalf("packet for a removed peer: err = %v, want ErrUnknownIndex", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("time going backwards did not panic")
		}
	}()
	p.a.HandleTimeout(p.now - 1)
}

// The initiator's timestamps grow even when the wall clock does not (whitening to
// ~16 ms, or a clock stepped back), so the responder answers every initiation.
func TestInitiatorTimestampsGrow(t *testing.T) {
	p := newPair(t, 8, PresharedKey{}, nil)
	wall := p.wall()
	for i := range 3 {
		if err := p.a.Initiate(p.now, wall.Add(-time.Duration(i)*time.Second), p.b.PublicKey(), addrA, addrB); err != nil {
			t.Fatal(err)
		}
		if err := p.deliver(p.b, p.one(p.a)); err != nil {
			t.Fatalf("initiation %d with a stalled wall clock: %v", i, err)
		}
		transmits(p.b, p.now)
		p.now = p.now.Add(InitiationMinInterval)
	}
}

// An initiation whose ephemeral key is a low-order point fails at the first DH and
// gets no reply.
func TestLowOrderEphemeralGetsNoReply(t *testing.T) {
	p := newPair(t, 9, PresharedKey{}, nil)
	m := proto.Initiation{Sender: 1} // ephemeral all zero
	msg := m.Append(nil)
	key := hashOf([]byte(labelMAC1), p.b.id.public[:])
	writeMACs(msg, &key, nil)
	before := snap(p.b)
	if err := p.b.HandleDatagram(p.now, addrB, addrA, msg); !errors.Is(err, ErrLowOrder) {
		t.Fatalf("err = %v, want ErrLowOrder", err)
	}
	if len(transmits(p.b, p.now)) != 0 || !equalSnap(before, snap(p.b)) {
		t.Fatal("a low-order initiation was answered or changed state")
	}
}
