package interop

import (
	"bytes"
	"encoding/binary"
	"fmt"
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

var (
	local  = netip.MustParseAddrPort("192.0.2.1:40000")
	remote = netip.MustParseAddrPort("198.51.100.2:51820")
	wall   = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	both   = proto.SuitesOf(keyx.SuiteChaChaPoly, keyx.SuiteAESGCM)
)

// initiationTypes is PROTOCOL.md §6.3's type byte per suite, written here rather
// than taken from proto.
var initiationTypes = map[keyx.Suite]byte{keyx.SuiteChaChaPoly: 0x10, keyx.SuiteAESGCM: 0x14}

// endpointFor returns an Endpoint accepting both suites that knows flynn/noise's
// static key and that it advertised suite.
func endpointFor(t *testing.T, p *parties, suite keyx.Suite) *keyx.Endpoint {
	ourPriv, _ := keyx.NewPrivateKey(stream(9))
	p.ours = keyx.NewIdentity(ourPriv)
	e := keyx.New(keyx.Config{PrivateKey: ourPriv, Rand: stream(10), Suites: both}, 0)
	theirPub := keyx.PublicKey(p.theirs.Public)
	if err := e.AddPeer(theirPub, p.psk); err != nil {
		t.Fatal(err)
	}
	if err := e.SetPeerSuites(theirPub, proto.SuitesOf(suite)); err != nil {
		t.Fatal(err)
	}
	return e
}

// The whole Endpoint as initiator, wire format included, against flynn/noise in each
// suite: our initiation (header, index, MACs) carries a Noise message flynn/noise
// accepts; flynn/noise's reply, framed by hand per PROTOCOL.md, completes our
// handshake; and transport packets (counters 0-2, so the nonce's byte order counts)
// cross in both directions under the keys each derived.
func TestEndpointInitiatorAgainstFlynnNoise(t *testing.T) {
	for _, suite := range suites {
		p := newParties(t, suite, keyx.PresharedKey{0x50, 0x53, 0x4b})
		e := endpointFor(t, p, suite)
		theirs, err := noise.NewHandshakeState(p.config(false))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Initiate(0, wall, keyx.PublicKey(p.theirs.Public), local, remote); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		tx, ok := e.PollTransmit(0, buf)
		if !ok {
			t.Fatal("no initiation")
		}
		if tx.Payload[1] != initiationTypes[suite] {
			t.Fatalf("%v: initiation type %#x, want %#x", suite, tx.Payload[1], initiationTypes[suite])
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
			t.Fatalf("%v: flynn/noise rejected our endpoint's initiation: %v", suite, err)
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
			t.Fatalf("%v: our endpoint rejected flynn/noise's response: %v", suite, err)
		}
		ev, ok := e.PollEvent()
		est, isEst := ev.(keyx.EventEstablished)
		if !ok || !isEst || est.Session.Suite() != suite {
			t.Fatalf("no EventEstablished in %v: %#v", suite, ev)
		}
		exchange(t, e, est.Session, csA, csB, resp.Sender, m1.Sender)
	}
}

// The whole Endpoint as responder: flynn/noise's initiation, framed by hand with the
// suite's type byte and mac1, gets a response flynn/noise accepts, and transport
// packets cross both ways (flynn/noise's first one confirms our session).
func TestEndpointResponderAgainstFlynnNoise(t *testing.T) {
	for _, suite := range suites {
		p := newParties(t, suite, keyx.PresharedKey{0x50, 0x53, 0x4b})
		e := endpointFor(t, p, keyx.SuiteChaChaPoly)
		theirs, err := noise.NewHandshakeState(p.config(true))
		if err != nil {
			t.Fatal(err)
		}
		ts := keyx.TAI64N(wall)
		noise1, _, _, err := theirs.WriteMessage(nil, ts[:])
		if err != nil {
			t.Fatal(err)
		}
		init := append([]byte{0xe1, initiationTypes[suite], 0x11, 0x22, 0x33, 0x44}, noise1...)
		ourPub := p.ours.PublicKey()
		m := mac1(ourPub[:], init)
		init = append(append(init, m[:]...), make([]byte, 16)...) // mac2: no cookie
		if err := e.HandleDatagram(0, local, remote, init); err != nil {
			t.Fatalf("%v: our endpoint rejected flynn/noise's initiation: %v", suite, err)
		}
		buf := make([]byte, 2048)
		tx, ok := e.PollTransmit(0, buf)
		if !ok {
			t.Fatal("no response")
		}
		var m2 proto.Response
		if err := m2.Parse(tx.Payload); err != nil || m2.Receiver != 0x11223344 {
			t.Fatalf("response %x (%v)", tx.Payload, err)
		}
		if want := mac1(p.theirs.Public, tx.Payload[:proto.ResponseMAC1Offset]); m2.MAC1 != want {
			t.Fatal("mac1 of our response differs from PROTOCOL.md's definition")
		}
		_, csA, csB, err := theirs.ReadMessage(nil, append(m2.Ephemeral[:], m2.Empty[:]...))
		if err != nil || csA == nil {
			t.Fatalf("%v: flynn/noise rejected our endpoint's response: %v", suite, err)
		}
		// flynn/noise sends first (with csA, the initiator's); that confirms our session.
		ct, err := csA.Encrypt(nil, nil, []byte("confirm"))
		if err != nil {
			t.Fatal(err)
		}
		first := (&proto.TransportData{Receiver: m2.Sender, Counter: 0, Ciphertext: ct}).Append(nil)
		s, out, err := e.Open(0, nil, first)
		if err != nil || string(out) != "confirm" || s.Suite() != suite {
			t.Fatalf("%v: our endpoint could not open flynn/noise's first packet: %v", suite, err)
		}
		if ev, ok := e.PollEvent(); !ok || ev.(keyx.EventEstablished).Session != s {
			t.Fatalf("no EventEstablished: %#v", ev)
		}
		// Ours then go with csB's keys; theirs continue at counter 1.
		for i := range 3 {
			msg := fmt.Appendf(nil, "from natpass %d", i)
			pkt, err := s.Seal(0, nil, msg)
			if err != nil {
				t.Fatal(err)
			}
			if plain, err := csB.Decrypt(nil, nil, pkt[proto.TransportHeaderLen:]); err != nil || !bytes.Equal(plain, msg) {
				t.Fatalf("%v: flynn/noise could not open our packet %d: %v", suite, i, err)
			}
			ct, _ := csA.Encrypt(nil, nil, msg)
			back := (&proto.TransportData{Receiver: m2.Sender, Counter: uint64(i + 1), Ciphertext: ct}).Append(nil)
			if _, out, err := e.Open(0, nil, back); err != nil || !bytes.Equal(out, msg) {
				t.Fatalf("%v: our endpoint could not open flynn/noise's packet %d: %v", suite, i+1, err)
			}
		}
	}
}

// exchange sends three packets each way between our initiator's session and
// flynn/noise's cipher states (send = csA for our packets, csB for theirs).
func exchange(t *testing.T, e *keyx.Endpoint, s *keyx.Session, csA, csB *noise.CipherState, theirIndex, ourIndex uint32) {
	t.Helper()
	for i := range 3 {
		msg := fmt.Appendf(nil, "hello flynn %d", i)
		pkt, err := s.Seal(0, nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		if binary.BigEndian.Uint32(pkt[2:6]) != theirIndex || binary.BigEndian.Uint64(pkt[6:14]) != uint64(i) {
			t.Fatal("transport data does not name the responder's index and the counter")
		}
		plain, err := csA.Decrypt(nil, nil, pkt[proto.TransportHeaderLen:])
		if err != nil || !bytes.Equal(plain, msg) {
			t.Fatalf("%v: flynn/noise could not open our transport packet %d: %v", s.Suite(), i, err)
		}
		ct, err := csB.Encrypt(nil, nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		back := (&proto.TransportData{Receiver: ourIndex, Counter: uint64(i), Ciphertext: ct}).Append(nil)
		got, out, err := e.Open(0, nil, back)
		if err != nil || got != s || !bytes.Equal(out, msg) {
			t.Fatalf("%v: our endpoint could not open flynn/noise's packet %d: %v", s.Suite(), i, err)
		}
	}
}
