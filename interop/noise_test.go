package interop

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flynn/noise"
	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/proto"
)

// flynn/noise speaks plain Noise: the WireGuard construction is Noise_IKpsk2 with the
// identifier as prologue, so the same prologue and PSK must give the same keys, in
// each of natpass's cipher suites.
var cipherSuites = map[keyx.Suite]noise.CipherSuite{
	keyx.SuiteChaChaPoly: noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s),
	keyx.SuiteAESGCM:     noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashBLAKE2s),
}

// suites lists natpass's suites in a fixed order for the tests to loop over.
var suites = []keyx.Suite{keyx.SuiteChaChaPoly, keyx.SuiteAESGCM}

func TestProtocolNames(t *testing.T) {
	for _, s := range suites {
		if got, want := "Noise_IKpsk2_"+string(cipherSuites[s].Name()), keyx.ConstructionOf(s); got != want {
			t.Errorf("flynn/noise names the suite %s, keyx %s", got, want)
		}
	}
}

func stream(seed byte) *rand.ChaCha8 { return rand.NewChaCha8([32]byte{seed}) }

type parties struct {
	suite     keyx.Suite
	ours      *keyx.Identity
	theirs    noise.DHKey
	ourPeer   *keyx.PeerKey // their key as we know it
	psk       keyx.PresharedKey
	rand      *rand.ChaCha8
	timestamp keyx.Timestamp
}

func newParties(t *testing.T, suite keyx.Suite, psk keyx.PresharedKey) *parties {
	r := stream(7)
	ourPriv, err := keyx.NewPrivateKey(r)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := cipherSuites[suite].GenerateKeypair(r)
	if err != nil {
		t.Fatal(err)
	}
	p := &parties{suite: suite, ours: keyx.NewIdentity(ourPriv), theirs: theirs, psk: psk, rand: r,
		timestamp: keyx.TAI64N(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))}
	p.ourPeer, err = p.ours.NewPeerKey(keyx.PublicKey(theirs.Public), psk)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *parties) config(initiator bool) noise.Config {
	ourPub := p.ours.PublicKey()
	c := noise.Config{
		CipherSuite:           cipherSuites[p.suite],
		Random:                p.rand,
		Pattern:               noise.HandshakeIK,
		Initiator:             initiator,
		Prologue:              []byte(keyx.Identifier),
		PresharedKey:          p.psk[:],
		PresharedKeyPlacement: 2,
		StaticKeypair:         p.theirs,
	}
	if initiator {
		c.PeerStatic = ourPub[:]
	}
	return c
}

func TestOurInitiatorTheirResponder(t *testing.T) {
	for _, c := range suitesAndPSKs() {
		p := newParties(t, c.suite, c.psk)
		theirs, err := noise.NewHandshakeState(p.config(false))
		if err != nil {
			t.Fatal(err)
		}
		var hs keyx.Handshake
		m1 := proto.Initiation{Suite: c.suite}
		if err := hs.CreateInitiation(p.ours, p.ourPeer, p.rand, p.timestamp, &m1); err != nil {
			t.Fatal(err)
		}
		noise1 := append(append(append([]byte(nil), m1.Ephemeral[:]...), m1.Static[:]...), m1.Timestamp[:]...)
		payload, _, _, err := theirs.ReadMessage(nil, noise1)
		if err != nil {
			t.Fatalf("flynn/noise rejected our initiation: %v", err)
		}
		if string(payload) != string(p.timestamp[:]) {
			t.Fatalf("payload %x, want our timestamp %x", payload, p.timestamp)
		}
		noise2, csA, csB, err := theirs.WriteMessage(nil, nil)
		if err != nil || csA == nil {
			t.Fatalf("flynn/noise response: %v (split %v)", err, csA != nil)
		}
		var m2 proto.Response
		copy(m2.Ephemeral[:], noise2[:proto.PointLen])
		copy(m2.Empty[:], noise2[proto.PointLen:])
		if len(noise2) != proto.PointLen+proto.TagLen {
			t.Fatalf("response of %d bytes", len(noise2))
		}
		if err := hs.ConsumeResponse(p.ours, &m2); err != nil {
			t.Fatalf("we rejected flynn/noise's response: %v", err)
		}
		send, recv := hs.TransportKeys()
		// Noise Split: the initiator sends with the first cipher state.
		if send != csA.UnsafeKey() || recv != csB.UnsafeKey() {
			t.Fatalf("%v, psk %x: transport keys differ from flynn/noise's", c.suite, c.psk[:3])
		}
	}
}

func TestTheirInitiatorOurResponder(t *testing.T) {
	for _, c := range suitesAndPSKs() {
		p := newParties(t, c.suite, c.psk)
		theirs, err := noise.NewHandshakeState(p.config(true))
		if err != nil {
			t.Fatal(err)
		}
		noise1, _, _, err := theirs.WriteMessage(nil, p.timestamp[:])
		if err != nil {
			t.Fatal(err)
		}
		m1 := proto.Initiation{Suite: c.suite}
		if len(noise1) != len(m1.Ephemeral)+len(m1.Static)+len(m1.Timestamp) {
			t.Fatalf("initiation of %d bytes", len(noise1))
		}
		n := copy(m1.Ephemeral[:], noise1)
		n += copy(m1.Static[:], noise1[n:])
		copy(m1.Timestamp[:], noise1[n:])
		var hs keyx.Handshake
		ts, err := hs.ConsumeInitiation(p.ours, &m1, func(k keyx.PublicKey) *keyx.PeerKey {
			if k == p.ourPeer.PublicKey() {
				return p.ourPeer
			}
			return nil
		})
		if err != nil {
			t.Fatalf("we rejected flynn/noise's initiation: %v", err)
		}
		if ts != p.timestamp {
			t.Fatalf("timestamp %x, want %x", ts, p.timestamp)
		}
		var m2 proto.Response
		if err := hs.CreateResponse(p.ours, p.rand, &m2); err != nil {
			t.Fatal(err)
		}
		noise2 := append(append([]byte(nil), m2.Ephemeral[:]...), m2.Empty[:]...)
		payload, csA, csB, err := theirs.ReadMessage(nil, noise2)
		if err != nil || csA == nil {
			t.Fatalf("flynn/noise rejected our response: %v", err)
		}
		if len(payload) != 0 {
			t.Fatalf("payload %x, want empty", payload)
		}
		send, recv := hs.TransportKeys()
		if send != csB.UnsafeKey() || recv != csA.UnsafeKey() {
			t.Fatalf("%v, psk %x: transport keys differ from flynn/noise's", c.suite, c.psk[:3])
		}
	}
}

type suiteAndPSK struct {
	suite keyx.Suite
	psk   keyx.PresharedKey
}

func suitesAndPSKs() []suiteAndPSK {
	var out []suiteAndPSK
	for _, s := range suites {
		for _, psk := range []keyx.PresharedKey{{}, {0x50, 0x53, 0x4b}} {
			out = append(out, suiteAndPSK{s, psk})
		}
	}
	return out
}
