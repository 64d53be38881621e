package keyx

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/natpass/natpass/proto"
)

var (
	chachaOnly = proto.SuitesOf(SuiteChaChaPoly)
	bothSuites = proto.SuitesOf(SuiteChaChaPoly, SuiteAESGCM)
)

// suitePair is a pair whose endpoints accept the given suites (a initiates), and a
// knows that b advertised advertised (0: SetPeerSuites is not called).
func suitePair(t testing.TB, seed uint64, aSuites, bSuites, advertised SuiteSet) *pair {
	t.Helper()
	r := seeded(seed)
	cfgA := Config{PrivateKey: mustKey(t, r), Rand: seeded(seed + 1000), Suites: aSuites}
	cfgB := Config{PrivateKey: mustKey(t, r), Rand: seeded(seed + 2000), Suites: bSuites}
	p := &pair{t: t, a: New(cfgA, t0), b: New(cfgB, t0), privA: cfgA.PrivateKey, now: t0}
	if err := p.a.AddPeer(p.b.PublicKey(), PresharedKey{}); err != nil {
		t.Fatal(err)
	}
	if err := p.b.AddPeer(p.a.PublicKey(), PresharedKey{}); err != nil {
		t.Fatal(err)
	}
	if advertised != 0 {
		if err := p.a.SetPeerSuites(p.b.PublicKey(), advertised); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestConfigSuites(t *testing.T) {
	yes, no := func() bool { return true }, func() bool { return false }
	for _, c := range []struct {
		name string
		cfg  Config
		want SuiteSet
	}{
		{"default with AES hardware", Config{AESHardware: yes}, bothSuites},
		{"default without AES hardware", Config{AESHardware: no}, chachaOnly},
		{"explicit ChaChaPoly on AES hardware", Config{Suites: chachaOnly, AESHardware: yes}, chachaOnly},
		{"AES-GCM alone still accepts ChaChaPoly", Config{Suites: proto.SuitesOf(SuiteAESGCM), AESHardware: no}, bothSuites},
		{"unknown suite bits are ignored", Config{Suites: 0xfd}, chachaOnly},
	} {
		c.cfg.Rand = seeded(1)
		if got := New(c.cfg, t0).Suites(); got != c.want {
			t.Errorf("%s: Suites() = %#x, want %#x", c.name, got, c.want)
		}
	}
	if DefaultSuites(HasAESHardware()) != New(Config{Rand: seeded(1)}, t0).Suites() {
		t.Error("a zero Config does not follow the CPU's AES hardware")
	}
}

// The initiator proposes AES-GCM only when it accepts it and the peer advertised it;
// the whole exchange then runs in the proposed suite on both sides.
func TestInitiatorChoosesSuite(t *testing.T) {
	for _, c := range []struct {
		name                       string
		aSuites, bSuites, advertis SuiteSet
		want                       Suite
	}{
		{"both have AES-GCM", bothSuites, bothSuites, bothSuites, SuiteAESGCM},
		{"peer did not advertise", bothSuites, bothSuites, 0, SuiteChaChaPoly},
		{"peer advertised ChaChaPoly only", bothSuites, bothSuites, chachaOnly, SuiteChaChaPoly},
		{"initiator has no AES hardware", chachaOnly, bothSuites, bothSuites, SuiteChaChaPoly},
	} {
		p := suitePair(t, 70, c.aSuites, c.bSuites, c.advertis)
		sa, sb := p.handshake()
		if sa.Suite() != c.want || sb.Suite() != c.want {
			t.Errorf("%s: sessions in %v/%v, want %v", c.name, sa.Suite(), sb.Suite(), c.want)
		}
		for i, msg := range [][]byte{[]byte("to b"), make([]byte, 1200), nil} {
			from, to := sa, p.b
			if i%2 == 1 {
				from, to = sb, p.a
			}
			pkt, err := from.Seal(p.now, nil, msg)
			if err != nil {
				t.Fatal(err)
			}
			if _, out, err := to.Open(p.now, nil, pkt); err != nil || !bytes.Equal(out, msg) {
				t.Fatalf("%s: packet %d: %v", c.name, i, err)
			}
		}
	}
}

// A responder that does not accept AES-GCM drops the initiation without any work or
// reply; the initiator's handshake times out and its next initiation is ChaChaPoly,
// until the peer's suites are set again.
func TestAESGCMRefusedFallsBackToChaCha(t *testing.T) {
	p := suitePair(t, 71, bothSuites, chachaOnly, bothSuites)
	pubB := p.b.PublicKey()
	if err := p.a.Initiate(p.now, p.wall(), pubB, addrA, addrB); err != nil {
		t.Fatal(err)
	}
	init := p.one(p.a)
	if init.Payload[1] != byte(proto.TypeInitiationAESGCM) {
		t.Fatalf("initiation type %#x, want AES-GCM's", init.Payload[1])
	}
	before, dh := snap(p.b), p.b.Stats().DHOps
	if err := p.deliver(p.b, init); !errors.Is(err, ErrSuite) {
		t.Fatalf("responder accepting only ChaChaPoly: err = %v, want ErrSuite", err)
	}
	if len(transmits(p.b, p.now)) != 0 || !equalSnap(before, snap(p.b)) || p.b.Stats().DHOps != dh {
		t.Fatal("a refused suite got a reply, changed state or cost a DH")
	}
	p.now = p.now.Add(RekeyTimeout)
	p.a.HandleTimeout(p.now)
	evs := events(p.a)
	if len(evs) != 1 || evs[0] != (EventHandshakeTimeout{Peer: pubB, Suite: SuiteAESGCM}) {
		t.Fatalf("events %#v, want one AES-GCM handshake timeout", evs)
	}
	sa, sb := p.handshake()
	if sa.Suite() != SuiteChaChaPoly || sb.Suite() != SuiteChaChaPoly {
		t.Fatalf("after the timeout: %v/%v, want the ChaChaPoly fallback", sa.Suite(), sb.Suite())
	}
	p.now = p.now.Add(InitiationMinInterval)
	if err := p.a.SetPeerSuites(pubB, bothSuites); err != nil {
		t.Fatal(err)
	}
	if err := p.a.Initiate(p.now, p.wall(), pubB, addrA, addrB); err != nil {
		t.Fatal(err)
	}
	if typ := p.one(p.a).Payload[1]; typ != byte(proto.TypeInitiationAESGCM) {
		t.Fatalf("after SetPeerSuites the initiation is %#x, want AES-GCM's again", typ)
	}
	if err := p.a.SetPeerSuites(PublicKey{1}, bothSuites); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("SetPeerSuites of an unknown peer: %v", err)
	}
}

// The protocol name binds the suite: an initiation relabelled to the other suite's
// type (mac1 recomputed, as anyone can) fails the first AEAD, changes nothing and gets
// no reply, in both directions.
func TestRelabelledInitiationFailsCleanly(t *testing.T) {
	for _, from := range []Suite{SuiteChaChaPoly, SuiteAESGCM} {
		p := suitePair(t, 72, bothSuites, bothSuites, proto.SuitesOf(from))
		if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
			t.Fatal(err)
		}
		tx := p.one(p.a)
		var m proto.Initiation
		if err := m.Parse(tx.Payload); err != nil || m.Suite != from {
			t.Fatalf("initiation in %v, want %v (%v)", m.Suite, from, err)
		}
		m.Suite ^= 1
		tx.Payload = m.Append(nil)
		writeMACs(tx.Payload, &p.a.peers[p.b.PublicKey()].key.mac1Key, nil)
		before := snap(p.b)
		if err := p.deliver(p.b, tx); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("%v relabelled: err = %v, want ErrDecrypt", from, err)
		}
		if len(transmits(p.b, p.now)) != 0 || !equalSnap(before, snap(p.b)) {
			t.Fatalf("%v relabelled: a reply or a state change", from)
		}
	}
}

// At the Noise level the suites give different keys from the same draws, and each
// side agrees with the other.
func TestHandshakeKeysDifferBySuite(t *testing.T) {
	var keys [proto.NumSuites][KeyLen]byte
	for s := range Suite(proto.NumSuites) {
		r := seeded(73)
		ini, res := NewIdentity(mustKey(t, r)), NewIdentity(mustKey(t, r))
		iPeer, _ := ini.NewPeerKey(res.PublicKey(), PresharedKey{})
		rPeer, _ := res.NewPeerKey(ini.PublicKey(), PresharedKey{})
		var hi, hr Handshake
		m1 := proto.Initiation{Suite: s}
		if err := hi.CreateInitiation(ini, iPeer, seeded(74), Timestamp{1}, &m1); err != nil {
			t.Fatal(err)
		}
		if _, err := hr.ConsumeInitiation(res, &m1, func(PublicKey) *PeerKey { return rPeer }); err != nil {
			t.Fatal(err)
		}
		var m2 proto.Response
		if err := hr.CreateResponse(res, seeded(75), &m2); err != nil {
			t.Fatal(err)
		}
		if err := hi.ConsumeResponse(ini, &m2); err != nil {
			t.Fatal(err)
		}
		if hi.Suite() != s || hr.Suite() != s {
			t.Fatalf("handshake suites %v/%v, want %v", hi.Suite(), hr.Suite(), s)
		}
		iSend, _ := hi.TransportKeys()
		_, rRecv := hr.TransportKeys()
		if iSend != rRecv {
			t.Fatalf("%v: the sides disagree on keys", s)
		}
		keys[s] = iSend
	}
	if keys[SuiteChaChaPoly] == keys[SuiteAESGCM] {
		t.Fatal("the suite does not change the keys: the protocol name is not hashed in")
	}
	var hs Handshake
	id := NewIdentity(mustKey(t, seeded(76)))
	if _, err := hs.ConsumeInitiation(id, &proto.Initiation{Suite: 7}, nil); !errors.Is(err, ErrSuite) {
		t.Fatalf("unknown suite: err = %v, want ErrSuite", err)
	}
}

// A session's packets open under the suite's standard AEAD with Noise's nonce: 4 zero
// bytes, then the counter little-endian (ChaChaPoly) or big-endian (AES-GCM).
func TestSessionAEADAndNonceOrder(t *testing.T) {
	const counter = 0x0102030405060708
	for s := range Suite(proto.NumSuites) {
		key := [KeyLen]byte{1, 2, 3, 31: 4}
		send, recv := key, key
		sess := newSession(t0, PublicKey{}, 1, 2, true, s, &send, &recv)
		sess.sendCounter = counter
		pkt, err := sess.Seal(t0, nil, []byte("payload"))
		if err != nil {
			t.Fatal(err)
		}
		var nonce [12]byte
		var aead cipher.AEAD
		if s == SuiteAESGCM {
			block, _ := aes.NewCipher(key[:])
			aead, _ = cipher.NewGCM(block)
			binary.BigEndian.PutUint64(nonce[4:], counter)
		} else {
			aead, _ = chacha20poly1305.New(key[:])
			binary.LittleEndian.PutUint64(nonce[4:], counter)
		}
		out, err := aead.Open(nil, nonce[:], pkt[proto.TransportHeaderLen:], nil)
		if err != nil || string(out) != "payload" {
			t.Fatalf("%v: the standard AEAD does not open the session's packet (%v)", s, err)
		}
	}
}

// Steady-state transport in AES-GCM allocates nothing either (DESIGN §2).
func TestAESGCMSealOpenAllocatesNothing(t *testing.T) {
	p := suitePair(t, 77, bothSuites, bothSuites, bothSuites)
	sa, _ := p.handshake()
	if sa.Suite() != SuiteAESGCM {
		t.Fatal("not an AES-GCM session")
	}
	plain := make([]byte, benchPacketLen)
	pkt := make([]byte, 0, benchPacketLen+proto.TransportOverhead)
	out := make([]byte, 0, benchPacketLen)
	allocs := testing.AllocsPerRun(200, func() {
		var err error
		if pkt, err = sa.Seal(p.now, pkt[:0], plain); err != nil {
			t.Fatal(err)
		}
		if _, out, err = p.b.Open(p.now, out[:0], pkt); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("AES-GCM Seal+Open allocates %v times per packet, want 0", allocs)
	}
}
