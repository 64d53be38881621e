package keyx

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// seeded returns a deterministic key-material stream for tests.
func seeded(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

func mustKey(t testing.TB, r *rand.ChaCha8) PrivateKey {
	t.Helper()
	k, err := NewPrivateKey(r)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// handshakePair runs one whole handshake at the Noise level and returns both sides'
// transport keys.
func handshakePair(t testing.TB, psk PresharedKey) (iSend, iRecv, rSend, rRecv [KeyLen]byte) {
	t.Helper()
	r := seeded(1)
	ini, res := NewIdentity(mustKey(t, r)), NewIdentity(mustKey(t, r))
	iPeer, err := ini.NewPeerKey(res.PublicKey(), psk)
	if err != nil {
		t.Fatal(err)
	}
	rPeer, err := res.NewPeerKey(ini.PublicKey(), psk)
	if err != nil {
		t.Fatal(err)
	}
	var hi, hr Handshake
	var m1 proto.Initiation
	wall := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	if err := hi.CreateInitiation(ini, iPeer, r, TAI64N(wall), &m1); err != nil {
		t.Fatal(err)
	}
	ts, err := hr.ConsumeInitiation(res, &m1, func(k PublicKey) *PeerKey {
		if k == rPeer.public {
			return rPeer
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ts != TAI64N(wall) {
		t.Fatalf("timestamp %x, want %x", ts, TAI64N(wall))
	}
	var m2 proto.Response
	if err := hr.CreateResponse(res, r, &m2); err != nil {
		t.Fatal(err)
	}
	if err := hi.ConsumeResponse(ini, &m2); err != nil {
		t.Fatal(err)
	}
	iSend, iRecv = hi.TransportKeys()
	rSend, rRecv = hr.TransportKeys()
	return
}

func TestHandshakeAgreesOnKeys(t *testing.T) {
	for _, psk := range []PresharedKey{{}, {1, 2, 3}} {
		iSend, iRecv, rSend, rRecv := handshakePair(t, psk)
		if iSend != rRecv || iRecv != rSend {
			t.Fatalf("psk %x: keys disagree", psk[:3])
		}
		if iSend == iRecv {
			t.Fatal("both directions share one key")
		}
	}
	a, _, _, _ := handshakePair(t, PresharedKey{})
	b, _, _, _ := handshakePair(t, PresharedKey{1})
	if a == b {
		t.Fatal("the PSK does not change the keys")
	}
}

func TestResponseWithWrongPSKFails(t *testing.T) {
	r := seeded(2)
	ini, res := NewIdentity(mustKey(t, r)), NewIdentity(mustKey(t, r))
	iPeer, _ := ini.NewPeerKey(res.PublicKey(), PresharedKey{1})
	rPeer, _ := res.NewPeerKey(ini.PublicKey(), PresharedKey{2})
	var hi, hr Handshake
	var m1 proto.Initiation
	if err := hi.CreateInitiation(ini, iPeer, r, Timestamp{1}, &m1); err != nil {
		t.Fatal(err)
	}
	if _, err := hr.ConsumeInitiation(res, &m1, func(PublicKey) *PeerKey { return rPeer }); err != nil {
		t.Fatal(err)
	}
	var m2 proto.Response
	if err := hr.CreateResponse(res, r, &m2); err != nil {
		t.Fatal(err)
	}
	before := hi
	if err := hi.ConsumeResponse(ini, &m2); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("err = %v, want ErrDecrypt", err)
	}
	if hi != before {
		t.Fatal("a failed ConsumeResponse changed the handshake")
	}
}

func TestLowOrderPointsRejected(t *testing.T) {
	r := seeded(3)
	id := NewIdentity(mustKey(t, r))
	// Low-order points of Curve25519 (from the list in RFC 7748 §5's errata and
	// libsodium's blacklist): 0 and 1 are enough to force an all-zero result.
	for _, p := range []PublicKey{{}, {1}} {
		if _, err := id.NewPeerKey(p, PresharedKey{}); !errors.Is(err, ErrLowOrder) {
			t.Errorf("peer key %x: err = %v, want ErrLowOrder", p[:1], err)
		}
		var hs Handshake
		m := proto.Initiation{Ephemeral: p}
		if _, err := hs.ConsumeInitiation(id, &m, nil); !errors.Is(err, ErrLowOrder) {
			t.Errorf("ephemeral %x: err = %v, want ErrLowOrder", p[:1], err)
		}
		if hs != (Handshake{}) {
			t.Error("a rejected initiation changed the handshake")
		}
	}
}

func TestTAI64N(t *testing.T) {
	wall := time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC)
	ts := TAI64N(wall)
	want := []byte{0x40, 0, 0, 0, 0, 0, 0, 0}
	secs := uint64(wall.Unix()) + 10
	for i := 7; i >= 1; i-- {
		want[i] = byte(secs)
		secs >>= 8
	}
	if !bytes.Equal(ts[:8], want) {
		t.Errorf("seconds %x, want %x", ts[:8], want)
	}
	if n := uint32(ts[8])<<24 | uint32(ts[9])<<16 | uint32(ts[10])<<8 | uint32(ts[11]); n&timestampWhiten != 0 || n > 123456789 || 123456789-n > timestampWhiten {
		t.Errorf("nanoseconds %d not whitened from 123456789", n)
	}
	later := TAI64N(wall.Add(time.Second))
	if !later.After(ts) || ts.After(later) || ts.After(ts) {
		t.Error("After does not order timestamps")
	}
	if n := ts.next(); !n.After(ts) {
		t.Error("next is not after")
	}
	edge := Timestamp{0x40, 0, 0, 0, 0, 0, 0, 1, 0x3b, 0x9a, 0xc9, 0xff} // 999999999 ns
	if n := edge.next(); !n.After(edge) || n[7] != 2 || n[11] != 0 {
		t.Errorf("next of the last nanosecond = %x", n)
	}
}
