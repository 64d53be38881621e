package keyx

import (
	"errors"
	"math"
	"testing"

	"github.com/natpass/natpass/proto"
	"pgregory.net/rapid"
)

// sessionPair returns both sides of one established session for tests that drive a
// Session directly.
func sessionPair(t testing.TB) (sender, receiver *Session) {
	p := newPair(t, 30, PresharedKey{}, nil)
	// The handshake's confirming keepalive used counter 0.
	return p.handshake()
}

// sealAt seals plaintext with an explicit counter (the sender's counter is set first).
func sealAt(t testing.TB, s *Session, counter uint64, plaintext []byte) []byte {
	s.sendCounter = counter
	pkt, err := s.Seal(t0, nil, plaintext)
	if err != nil {
		t.Fatalf("seal at %d: %v", counter, err)
	}
	return pkt
}

// replayModel is the specification: a counter is accepted iff it was never accepted
// and it is less than ReplayWindow behind the greatest accepted counter.
type replayModel struct {
	accepted map[uint64]bool
	greatest uint64
}

func (m *replayModel) accepts(c uint64) bool {
	if m.accepted[c] {
		return false
	}
	return c >= m.greatest || m.greatest-c < ReplayWindow
}

// Replays, duplicates and permutations against the map model: exactly the fresh
// packets are accepted, and forged packets (a wrong tag, or a counter near 2^64) move
// nothing.
func TestReplayWindowAgainstModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		sender, receiver := sessionPair(t)
		model := replayModel{accepted: map[uint64]bool{0: true}} // the handshake's keepalive
		var sent []uint64
		next := uint64(1)
		for range rapid.IntRange(1, 300).Draw(rt, "steps") {
			var c uint64
			forged := false
			switch rapid.IntRange(0, 9).Draw(rt, "op") {
			case 0, 1, 2: // the next packet in order
				c = next
				next++
			case 3: // a jump ahead, sometimes past the whole window
				next += rapid.Uint64Range(1, 3*ReplayWindow).Draw(rt, "jump")
				c = next
				next++
			case 4, 5: // a replay or a late packet
				if len(sent) == 0 {
					continue
				}
				c = sent[rapid.IntRange(0, len(sent)-1).Draw(rt, "old")]
			case 6: // a packet from just around the window's edge
				if model.greatest <= ReplayWindow {
					continue // the edge minus one would wrap below zero
				}
				c = model.greatest - ReplayWindow + rapid.Uint64Range(0, 2).Draw(rt, "edge") - 1
			case 7: // a forgery with a counter near 2^64
				c = math.MaxUint64 - rapid.Uint64Range(0, 1<<14).Draw(rt, "high")
				forged = true
			case 8: // a forgery at a plausible counter
				c = rapid.Uint64Range(0, next+10).Draw(rt, "forged")
				forged = true
			case 9: // a duplicate of the newest
				c = next - 1
			}
			var pkt []byte
			if forged {
				pkt = proto.AppendTransportHeader(nil, receiver.localIndex, c)
				pkt = append(pkt, make([]byte, proto.TagLen+4)...)
			} else {
				pkt = sealAt(t, sender, c, []byte{byte(c)})
				sent = append(sent, c)
			}
			before := receiver.window
			_, err := receiver.Open(t0, nil, pkt)
			want := !forged && model.accepts(c)
			if got := err == nil; got != want {
				rt.Fatalf("counter %d (forged %v): accepted %v, model says %v (err %v)", c, forged, got, want, err)
			}
			if err != nil {
				if receiver.window != before {
					rt.Fatalf("rejected counter %d changed the window", c)
				}
				if forged && c >= RejectAfterMessages && !errors.Is(err, ErrReplay) {
					rt.Fatalf("counter %d: err = %v, want ErrReplay", c, err)
				}
				continue
			}
			model.accepted[c] = true
			model.greatest = max(model.greatest, c)
		}
	})
}

func TestReplayWindowEdges(t *testing.T) {
	var w replayWindow
	w.accept(ReplayWindow + 100)
	if !w.check(101) || w.check(100) {
		t.Fatal("the window must hold exactly ReplayWindow counters behind the greatest")
	}
	// Regression: a counter in the greatest counter's block, far from zero, once
	// cleared the whole ring (the block arithmetic wrapped).
	w.accept(ReplayWindow + 101)
	if w.check(ReplayWindow+100) || w.check(101) {
		t.Fatal("a counter in the same block cleared accepted counters")
	}
	w.accept(1 << 40) // a jump past the whole ring clears it
	if !w.check(1<<40-1) || w.check(1<<40) {
		t.Fatal("a jump past the ring left stale bits")
	}
}
