package rendezvous

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/relayframe"
)

// TestRelayCarriesKeyxUnchanged runs a real keyx handshake and transport between two
// endpoints entirely through the relay, the way a node does it (seal at buf[4:],
// relay header in buf[0:4]). Every relayed packet reaches the other side byte for
// byte, the handshake completes, the payload opens on the far side, and no relayed
// byte sequence contains the plaintext: the server forwards ciphertext it cannot read.
func TestRelayCarriesKeyxUnchanged(t *testing.T) {
	rp := newRelayPair(t, nil)
	chA, chB := rp.both(t)
	h := rp.h
	newEndpoint := func(seed byte) *keyx.Endpoint {
		priv, err := keyx.NewPrivateKey(rand.NewChaCha8([32]byte{seed}))
		if err != nil {
			t.Fatal(err)
		}
		return keyx.New(keyx.Config{PrivateKey: priv, Rand: rand.NewChaCha8([32]byte{seed, 1})}, h.now)
	}
	ea, eb := newEndpoint(1), newEndpoint(2)
	psk := keyx.PresharedKey{7}
	if ea.AddPeer(eb.PublicKey(), psk) != nil || eb.AddPeer(ea.PublicKey(), psk) != nil {
		t.Fatal("AddPeer")
	}
	secret := []byte("the plaintext the relay must never see, repeated: PLAINTEXT PLAINTEXT")
	var relayed [][]byte // every datagram the server sent
	// relay carries one keyx datagram from one side to the other and returns the
	// packet the other side receives.
	relay := func(fromAlice bool, pkt []byte) []byte {
		t.Helper()
		from, ch, wantTo, wantCh := aliceNAT, chA, bobNAT, chB
		if !fromAlice {
			from, ch, wantTo, wantCh = bobNAT, chB, aliceNAT, chA
		}
		buf := make([]byte, relayframe.DataHeaderLen+len(pkt))
		copy(buf[relayframe.DataHeaderLen:], pkt)
		relayframe.PutSendHeader(buf, ch)
		err, out, _ := h.deliver(srvPrimary, from, buf)
		if err != nil || len(out) != 1 || out[0].To != wantTo || len(out[0].Payload) != len(buf) {
			t.Fatalf("relay from %v: %v, %d datagrams", from, err, len(out))
		}
		relayed = append(relayed, out[0].Payload)
		got, inner, err := relayframe.ParseDeliver(out[0].Payload)
		if err != nil || got != wantCh || !bytes.Equal(inner, pkt) {
			t.Fatalf("relayed packet changed: channel %d, %v", got, err)
		}
		return inner
	}
	wall := time.Unix(int64(wallStart), 0)
	buf := make([]byte, 2048)
	if err := ea.Initiate(h.now, wall, eb.PublicKey(), aliceLAN, srvPrimary); err != nil {
		t.Fatal(err)
	}
	tx, ok := ea.PollTransmit(h.now, buf)
	if !ok {
		t.Fatal("no initiation")
	}
	if err := eb.HandleDatagram(h.now, bobLAN, srvPrimary, relay(true, tx.Payload)); err != nil {
		t.Fatalf("initiation through the relay: %v", err)
	}
	tx, ok = eb.PollTransmit(h.now, buf)
	if !ok {
		t.Fatal("no response")
	}
	if err := ea.HandleDatagram(h.now, aliceLAN, srvPrimary, relay(false, tx.Payload)); err != nil {
		t.Fatalf("response through the relay: %v", err)
	}
	var sess *keyx.Session
	for {
		e, ok := ea.PollEvent()
		if !ok {
			break
		}
		if est, ok := e.(keyx.EventEstablished); ok {
			sess = est.Session
		}
	}
	if sess == nil {
		t.Fatal("handshake through the relay did not establish a session")
	}
	for i := 0; i < 3; i++ {
		// Seal at buf[4:] as the node does; the header goes in front without a copy.
		sealed, err := sess.Seal(h.now, buf[relayframe.DataHeaderLen:relayframe.DataHeaderLen], secret)
		if err != nil {
			t.Fatal(err)
		}
		_, plain, err := eb.Open(h.now, nil, relay(true, sealed))
		if err != nil || !bytes.Equal(plain, secret) {
			t.Fatalf("transport packet %d did not open after the relay: %v", i, err)
		}
	}
	for _, d := range relayed {
		for _, probe := range [][]byte{secret, []byte("PLAINTEXT"), []byte("plaintext")} {
			if bytes.Contains(d, probe) {
				t.Fatalf("relayed datagram %x contains plaintext %q", d, probe)
			}
		}
	}
	if len(relayed) != 5 || rp.h.s.Stats().Relay.Forwarded != 5 {
		t.Fatalf("%d datagrams relayed", len(relayed))
	}
}
