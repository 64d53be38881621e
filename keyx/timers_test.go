package keyx

import (
	"errors"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// step advances virtual time to the endpoints' earliest deadline and runs it, the way
// a driver would.
func (p *pair) step() proto.Instant {
	p.t.Helper()
	d := proto.Min(p.a.Deadline(), p.b.Deadline())
	if d == proto.Never {
		p.t.Fatal("no deadline")
	}
	if d < p.now {
		p.t.Fatalf("deadline %d in the past (now %d)", d, p.now)
	}
	p.now = d
	p.a.HandleTimeout(p.now)
	p.b.HandleTimeout(p.now)
	return d
}

// Whitepaper §6.1–§6.2, driven on virtual time only: rekey at 120 s, no sending or
// receiving at 180 s, keys erased at 540 s.
func TestSessionTimers(t *testing.T) {
	p := newPair(t, 20, PresharedKey{}, nil)
	start := p.now
	sa, sb := p.handshake()
	at := func(d time.Duration) proto.Instant { return start.Add(d) }

	// The first deadline is the initiator's rekey at 120 s; nothing happens before.
	p.a.HandleTimeout(at(RekeyAfterTime - 1))
	if evs := events(p.a); len(evs) != 0 || sa.NeedsRekey(at(RekeyAfterTime-1)) {
		t.Fatalf("rekey before 120 s: %v", evs)
	}
	if d := p.step(); d != at(RekeyAfterTime) {
		t.Fatalf("first deadline at %v, want 120 s", d.Sub(start))
	}
	if evs := events(p.a); len(evs) != 1 || evs[0] != (EventRekey{Peer: p.b.PublicKey()}) {
		t.Fatalf("at 120 s the initiator got %#v, want EventRekey", evs)
	}
	if !sa.NeedsRekey(p.now) || len(events(p.b)) != 0 {
		t.Fatal("at 120 s only the initiator's session is due for rekey")
	}
	// The responder's rekey comes at 165 s, so the two sides do not race.
	if d := p.step(); d != at(ResponderRekeyAfterTime) {
		t.Fatalf("second deadline at %v, want 165 s", d.Sub(start))
	}
	if evs := events(p.b); len(evs) != 1 || evs[0] != (EventRekey{Peer: p.a.PublicKey()}) {
		t.Fatalf("at 165 s the responder got %#v, want EventRekey", evs)
	}

	// Sessions still work just before 180 s and refuse at 180 s.
	pkt, err := sa.Seal(at(RejectAfterTime-1), nil, []byte("late"))
	if err != nil {
		t.Fatalf("seal at 180 s - 1 ns: %v", err)
	}
	if _, _, err := p.b.Open(at(RejectAfterTime-1), nil, pkt); err != nil {
		t.Fatalf("open at 180 s - 1 ns: %v", err)
	}
	p.now = at(RejectAfterTime)
	if _, err := sa.Seal(p.now, nil, []byte("too late")); !errors.Is(err, ErrExpired) {
		t.Fatalf("seal at 180 s: err = %v, want ErrExpired", err)
	}
	if _, err := sb.Seal(p.now, nil, nil); !errors.Is(err, ErrExpired) {
		t.Fatalf("responder seal at 180 s: err = %v, want ErrExpired", err)
	}
	late, _ := sb.Seal(at(RejectAfterTime-2), nil, []byte("in flight"))
	if _, _, err := p.a.Open(p.now, nil, late); !errors.Is(err, ErrExpired) {
		t.Fatalf("open at 180 s: err = %v, want ErrExpired", err)
	}

	// The keys are erased at 540 s and the indexes freed. A Session on its own knows
	// the same deadline, and its HandleTimeout is a no-op before it.
	if sa.Deadline() != at(ZeroAfterTime) {
		t.Fatalf("session deadline at %v, want 540 s", sa.Deadline().Sub(start))
	}
	sa.HandleTimeout(at(ZeroAfterTime - 1))
	if sa.Zeroed() {
		t.Fatal("session erased before 540 s")
	}
	if d := p.step(); d != at(ZeroAfterTime) {
		t.Fatalf("next deadline at %v, want 540 s", d.Sub(start))
	}
	if !sa.Zeroed() || !sb.Zeroed() || sa.send != nil || sa.recv != nil || sb.send != nil {
		t.Fatal("keys not erased at 540 s")
	}
	if p.a.Current(p.b.PublicKey()) != nil || len(p.a.indexes) != 0 || len(p.b.indexes) != 0 {
		t.Fatal("erased sessions still reachable")
	}
	if _, _, err := p.b.Open(p.now, nil, pkt); !errors.Is(err, ErrUnknownIndex) {
		t.Fatalf("open after erasure: err = %v, want ErrUnknownIndex", err)
	}
	if p.a.Deadline() != proto.Never || p.b.Deadline() != proto.Never || sa.Deadline() != proto.Never {
		t.Fatal("idle endpoints still have a deadline")
	}
}

func TestSessionRekeyAfterMessages(t *testing.T) {
	p := newPair(t, 21, PresharedKey{}, nil)
	sa, _ := p.handshake()
	sa.sendCounter = RekeyAfterMessages - 1
	if sa.NeedsRekey(p.now) {
		t.Fatal("rekey due before 2^60 messages")
	}
	if _, err := sa.Seal(p.now, nil, nil); err != nil {
		t.Fatal(err)
	}
	if !sa.NeedsRekey(p.now) {
		t.Fatal("no rekey due after 2^60 messages")
	}
	sa.sendCounter = RejectAfterMessages
	if _, err := sa.Seal(p.now, nil, nil); !errors.Is(err, ErrExpired) {
		t.Fatalf("seal at the message limit: err = %v, want ErrExpired", err)
	}
}

// An initiation without a response is given up after RekeyTimeout; a late response
// then finds no handshake.
func TestHandshakeTimeout(t *testing.T) {
	p := newPair(t, 22, PresharedKey{}, nil)
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	init := p.one(p.a)
	start := p.now
	if d := p.a.Deadline(); d != start.Add(RekeyTimeout) {
		t.Fatalf("deadline %v after the initiation, want 5 s", d.Sub(start))
	}
	p.step()
	if evs := events(p.a); len(evs) != 1 || evs[0] != (EventHandshakeTimeout{Peer: p.b.PublicKey()}) {
		t.Fatalf("got %#v, want EventHandshakeTimeout", evs)
	}
	if err := p.deliver(p.b, init); err != nil {
		t.Fatal(err)
	}
	if err := p.deliver(p.a, p.one(p.b)); !errors.Is(err, ErrUnknownIndex) {
		t.Fatalf("late response: err = %v, want ErrUnknownIndex", err)
	}
}

// A responder does not send on a new session before the initiator's first packet
// confirms it (key confirmation); the previous session keeps
// working meanwhile, and the new one takes over at its first packet.
func TestRekeyRotatesSessions(t *testing.T) {
	p := newPair(t, 23, PresharedKey{}, nil)
	sa1, sb1 := p.handshake()
	p.now = p.now.Add(RekeyAfterTime)
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	if err := p.deliver(p.b, p.one(p.a)); err != nil {
		t.Fatal(err)
	}
	if p.b.Current(p.a.PublicKey()) != sb1 {
		t.Fatal("the responder switched before key confirmation")
	}
	next := p.b.peers[p.a.PublicKey()].next
	if _, err := next.Seal(p.now, nil, nil); !errors.Is(err, ErrUnconfirmed) {
		t.Fatalf("seal on an unconfirmed session: err = %v, want ErrUnconfirmed", err)
	}
	// A packet on the old session still opens.
	old, _ := sa1.Seal(p.now, nil, []byte("old"))
	if err := p.deliver(p.a, p.one(p.b)); err != nil {
		t.Fatal(err)
	}
	sa2 := established(t, p.a, p.b.PublicKey())
	if _, _, err := p.b.Open(p.now, nil, old); err != nil {
		t.Fatalf("packet on the previous session: %v", err)
	}
	pkt, _ := sa2.Seal(p.now, nil, []byte("new"))
	if _, _, err := p.b.Open(p.now, nil, pkt); err != nil {
		t.Fatal(err)
	}
	sb2 := established(t, p.b, p.a.PublicKey())
	if sb2 == sb1 || sa2 == sa1 {
		t.Fatal("no new sessions")
	}
	// The old sessions remain as previous until their erasure; a third handshake
	// erases them early.
	if p.b.peers[p.a.PublicKey()].previous != sb1 || sb1.Zeroed() {
		t.Fatal("the previous session was dropped too early")
	}
}
