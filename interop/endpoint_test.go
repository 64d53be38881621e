package interop

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/flynn/noise"
	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/proto"
	"golang.org/x/crypto/blake2s"
)

// mac1 is computed here from PROTOCOL.md §6.2 with x/crypto directly, not with keyx:
// MAC(HASH("mac1----" ‖ receiver's static public key), bytes before mac1).
func mac1(receiver []byte, msg []byte) [16]byte {
	key := blake2s.Sum256(append([]byte("mac1----"), receiver...))
	h, _ := blake2s.New128(key[:])
	h.Write(msg)
	var out [16]byte
	h.Sum(out[:0])
	return out
}

// The whole Endpoint, wire format included, against flynn/noise: our initiation
// (header, index, MACs) carries a Noise message flynn/noise accepts; flynn/noise's
// reply, framed by hand per PROTOCOL.md, completes our handshake; and transport
// packets cross in both directions under the keys each derived.
func TestEndpointAgainstFlynnNoise(t *testing.T) {
	psk := keyx.PresharedKey{0x50, 0x53, 0x4b}
	p := newParties(t, psk)
	ourPriv, _ := keyx.NewPrivateKey(stream(9))
	local := netip.MustParseAddrPort("192.0.2.1:40000")
	remote := netip.MustParseAddrPort("198.51.100.2:51820")
	e := keyx.New(keyx.Config{PrivateKey: ourPriv, Rand: stream(10)}, 0)
	theirPub := keyx.PublicKey(p.theirs.Public)
	if err := e.AddPeer(theirPub, psk); err != nil {
		t.Fatal(err)
	}
	// flynn/noise plays the responder and knows our static key from the handshake.
	p.ours = keyx.NewIdentity(ourPriv)
	theirs, err := noise.NewHandshakeState(p.config(false))
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	if err := e.Initiate(0, wall, theirPub, local, remote); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	tx, ok := e.PollTransmit(0, buf)
	if !ok {
		t.Fatal("no initiation")
	}
	var m1 proto.Initiation
	if err := m1.Parse(tx.Payload); err != nil {
		t.Fatal(err)
	}
	if want := mac1(p.theirs.Public, tx.Payload[:proto.InitiationMAC1Offset]); m1.MAC1 != want {
		t.Fatal("mac1 of our initiation differs from PROTOCOL.md's definition")
	}
	noise1 := append(append(append([]byte(nil), m1.Ephemeral[:]...), m1.Static[:]...), m1.Timestamp[:]...)
	payload, _, _, err := theirs.ReadMessage(nil, noise1)
	if err != nil {
		t.Fatalf("flynn/noise rejected our endpoint's initiation: %v", err)
	}
	if ts := keyx.TAI64N(wall); !bytes.Equal(payload, ts[:]) {
		t.Fatalf("timestamp %x, want %x", payload, ts)
	}
	noise2, csA, csB, err := theirs.WriteMessage(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp := proto.Response{Sender: 0x0badcafe, Receiver: m1.Sender}
	copy(resp.Ephemeral[:], noise2)
	copy(resp.Empty[:], noise2[proto.PointLen:])
	wire := resp.Append(nil)
	ourPub := p.ours.PublicKey()
	resp.MAC1 = mac1(ourPub[:], wire[:proto.ResponseMAC1Offset])
	if err := e.HandleDatagram(0, local, remote, resp.Append(nil)); err != nil {
		t.Fatalf("our endpoint rejected flynn/noise's response: %v", err)
	}
	ev, ok := e.PollEvent()
	est, isEst := ev.(keyx.EventEstablished)
	if !ok || !isEst {
		t.Fatalf("no EventEstablished: %#v", ev)
	}
	// Our first transport packet opens under flynn/noise's receive state (nonce 0).
	pkt, err := est.Session.Seal(0, nil, []byte("hello flynn"))
	if err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint32(pkt[2:6]) != resp.Sender {
		t.Fatal("transport data does not name the responder's index")
	}
	plain, err := csA.Decrypt(nil, nil, pkt[proto.TransportHeaderLen:])
	if err != nil || string(plain) != "hello flynn" {
		t.Fatalf("flynn/noise could not open our transport packet: %v", err)
	}
	// And theirs opens in our endpoint.
	ct, err := csB.Encrypt(nil, nil, []byte("hello natpass"))
	if err != nil {
		t.Fatal(err)
	}
	back := (&proto.TransportData{Receiver: m1.Sender, Counter: 0, Ciphertext: ct}).Append(nil)
	s, out, err := e.Open(0, nil, back)
	if err != nil || s != est.Session || string(out) != "hello natpass" {
		t.Fatalf("our endpoint could not open flynn/noise's packet: %v", err)
	}
}
