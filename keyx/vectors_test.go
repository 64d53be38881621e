package keyx

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/natpass/natpass/proto"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors from the implementation")

// recorder logs every read from a random source, so a vector can list the exact
// random bytes each side drew and a port can replay them.
type recorder struct {
	r     io.Reader
	draws [][]byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.draws = append(r.draws, append([]byte(nil), p[:n]...))
	return n, err
}

type vectorEntry struct {
	Name string `json:"name"`
	Hex  string `json:"hex"`
	Note string `json:"note,omitempty"`
}

type handshakeVectors struct {
	Comment string        `json:"comment"`
	Entries []vectorEntry `json:"entries"`
}

func handshakeVectorComment(suite Suite) string {
	return "A whole natpass keyx exchange from fixed keys, regenerate with: go test ./keyx -update. " +
		"Random bytes each side drew are listed in the order drawn (index: 4 bytes big-endian; ephemeral: 32-byte " +
		"X25519 private key before clamping; cookie secret: 32; cookie nonce: 24). Wall time 2026-11-24T10:00:00Z. " +
		"Construction " + ConstructionOf(suite) + ", identifier (prologue) \"" + Identifier + "\"."
}

// TestHandshakeVectors pins the cryptography of each suite: the initiation, response,
// transport packets and, under load, the cookie reply and the initiation with mac2, as
// bytes; for AES-GCM also the initiations a responder must reject.
func TestHandshakeVectors(t *testing.T) {
	t.Run("ChaChaPoly", func(t *testing.T) { checkHandshakeVectors(t, SuiteChaChaPoly, "handshake.json") })
	t.Run("AESGCM", func(t *testing.T) { checkHandshakeVectors(t, SuiteAESGCM, "handshake-aesgcm.json") })
}

func checkHandshakeVectors(t *testing.T, suite Suite, fileName string) {
	var got handshakeVectors
	got.Comment = handshakeVectorComment(suite)
	add := func(name string, b []byte, note string) {
		got.Entries = append(got.Entries, vectorEntry{Name: name, Hex: hex.EncodeToString(b), Note: note})
	}
	keys := seeded(60)
	privI, privR := mustKey(t, keys), mustKey(t, keys)
	psk := PresharedKey{0x50, 0x53, 0x4b, 31: 0x01}
	recI, recR := &recorder{r: seeded(61)}, &recorder{r: seeded(62)}
	p := vectorPair(t, suite, privI, privR, psk, recI, recR)
	pubI, pubR := p.a.PublicKey(), p.b.PublicKey()
	add("initiator static private", privI[:], "")
	add("initiator static public", pubI[:], "")
	add("responder static private", privR[:], "")
	add("responder static public", pubR[:], "")
	add("psk", psk[:], "")
	ts := TAI64N(p.wall())
	add("timestamp", ts[:], "TAI64N of the wall time, nanoseconds whitened")

	if err := p.a.Initiate(p.now, p.wall(), pubR, addrA, addrB); err != nil {
		t.Fatal(err)
	}
	init := p.one(p.a)
	if err := p.deliver(p.b, init); err != nil {
		t.Fatal(err)
	}
	resp := p.one(p.b)
	if err := p.deliver(p.a, resp); err != nil {
		t.Fatal(err)
	}
	sa := established(t, p.a, pubR)
	keepalive, _ := sa.Seal(p.now, nil, nil)
	if _, _, err := p.b.Open(p.now, nil, keepalive); err != nil {
		t.Fatal(err)
	}
	sb := established(t, p.b, pubI)
	data, _ := sb.Seal(p.now, nil, []byte("natpass"))
	if _, _, err := p.a.Open(p.now, nil, data); err != nil {
		t.Fatal(err)
	}
	data1, _ := sb.Seal(p.now, nil, []byte("natpass"))
	if _, _, err := p.a.Open(p.now, nil, data1); err != nil {
		t.Fatal(err)
	}
	add("initiator draw 1: index", recI.draws[0], "")
	add("initiator draw 2: ephemeral", recI.draws[1], "")
	add("responder draw 1: index", recR.draws[0], "")
	add("responder draw 2: ephemeral", recR.draws[1], "")
	add("initiation", init.Payload, "mac2 zero: no cookie")
	add("response", resp.Payload, "")

	// The same run at the Noise level gives the transport keys.
	iSend, iRecv := noiseLevelKeys(t, suite, privI, privR, psk, ts, recI.draws[1], recR.draws[1], init.Payload, resp.Payload)
	add("initiator send key (= responder receive key)", iSend[:], "")
	add("initiator receive key (= responder send key)", iRecv[:], "")
	add("transport initiator to responder, counter 0, empty", keepalive, "the keepalive that confirms the session")
	add("transport responder to initiator, counter 0, \"natpass\"", data, "")
	add("transport responder to initiator, counter 1, \"natpass\"", data1, "pins the nonce's byte order: "+nonceOrder(suite))

	cookieVectors(t, p, recI, recR, add)
	if suite != SuiteChaChaPoly {
		for _, r := range suiteRejects(t, suite, privI, privR, psk, init.Payload) {
			add(r.Name, mustHex(r.Hex), r.Note)
		}
	}

	checkVectorFile(t, filepath.Join("testdata", "vectors", fileName), &got)
}

// vectorPair is the vector run's two endpoints, both accepting suite, the initiator
// knowing that the responder advertised it.
func vectorPair(t *testing.T, suite Suite, privI, privR PrivateKey, psk PresharedKey, recI, recR io.Reader) *pair {
	both := proto.SuitesOf(SuiteChaChaPoly, suite)
	p := &pair{t: t, now: t0, privA: privI,
		a: New(Config{PrivateKey: privI, Rand: recI, Suites: both}, t0),
		b: New(Config{PrivateKey: privR, Rand: recR, Suites: both}, t0)}
	p.a.AddPeer(p.b.PublicKey(), psk)
	p.b.AddPeer(p.a.PublicKey(), psk)
	p.a.SetPeerSuites(p.b.PublicKey(), both)
	return p
}

// cookieVectors adds the exchange under load: the responder answers a second
// initiation with a cookie reply and the initiator resends it with mac2.
func cookieVectors(t *testing.T, p *pair, recI, recR *recorder, add func(name string, b []byte, note string)) {
	p.now = p.now.Add(RekeyTimeout)
	p.b.loadUntil = p.now.Add(underLoadLinger)
	nI, nR := len(recI.draws), len(recR.draws)
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	init2 := p.one(p.a)
	if err := p.deliver(p.b, init2); err != nil {
		t.Fatal(err)
	}
	cookie := p.one(p.b)
	if err := p.deliver(p.a, cookie); err != nil {
		t.Fatal(err)
	}
	withMAC2 := p.one(p.a)
	ts2 := TAI64N(p.wall())
	add("second timestamp", ts2[:], "TAI64N of the wall time 5 s later (REKEY_TIMEOUT), nanoseconds whitened: "+
		"what the second initiation encrypts")
	add("second initiation (5 s later)", init2.Payload, "initiator draws 3 and 4: index, ephemeral")
	add("initiator draw 3: index", recI.draws[nI], "")
	add("initiator draw 4: ephemeral", recI.draws[nI+1], "")
	add("responder draw 3: cookie secret", recR.draws[nR], "")
	add("responder draw 4: cookie nonce", recR.draws[nR+1], "")
	add("cookie reply", cookie.Payload, "to source "+addrA.String()+"; the cookie is MAC(secret, 192.0.2.1 ‖ port 40000)")
	add("second initiation with mac2", withMAC2.Payload, "")
}

// checkVectorFile compares got with the committed file at path, or writes it with
// -update.
func checkVectorFile(t *testing.T, path string, got *handshakeVectors) {
	want, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./keyx -update to create it)", err)
	}
	if !bytes.Equal(file, want) {
		t.Fatalf("%s differs from the implementation; if the change is intended run go test ./keyx -update and review the diff", path)
	}
}

// noiseLevelKeys reruns the handshake with the low-level Handshake API and the same
// random draws, checks that it produces the same Noise fields, and returns the
// initiator's transport keys.
func noiseLevelKeys(t *testing.T, suite Suite, privI, privR PrivateKey, psk PresharedKey, ts Timestamp, ephI, ephR, init, resp []byte) (send, recv [KeyLen]byte) {
	idI, idR := NewIdentity(privI), NewIdentity(privR)
	peerR, _ := idI.NewPeerKey(idR.PublicKey(), psk)
	peerI, _ := idR.NewPeerKey(idI.PublicKey(), psk)
	var hi, hr Handshake
	m1 := proto.Initiation{Suite: suite}
	if err := hi.CreateInitiation(idI, peerR, bytes.NewReader(ephI), ts, &m1); err != nil {
		t.Fatal(err)
	}
	var wire1 proto.Initiation
	if err := wire1.Parse(init); err != nil || wire1.Suite != suite || wire1.Ephemeral != m1.Ephemeral || wire1.Static != m1.Static || wire1.Timestamp != m1.Timestamp {
		t.Fatalf("the endpoint's initiation differs from the Noise-level one (%v)", err)
	}
	if _, err := hr.ConsumeInitiation(idR, &m1, func(PublicKey) *PeerKey { return peerI }); err != nil {
		t.Fatal(err)
	}
	var m2 proto.Response
	if err := hr.CreateResponse(idR, bytes.NewReader(ephR), &m2); err != nil {
		t.Fatal(err)
	}
	var wire2 proto.Response
	if err := wire2.Parse(resp); err != nil || wire2.Ephemeral != m2.Ephemeral || wire2.Empty != m2.Empty {
		t.Fatalf("the endpoint's response differs from the Noise-level one (%v)", err)
	}
	if err := hi.ConsumeResponse(idI, &m2); err != nil {
		t.Fatal(err)
	}
	return hi.TransportKeys()
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// suiteRejects are the must-reject initiations of PROTOCOL.md §6.4 for a suite other
// than ChaChaPoly, made from the genuine initiation init of the vector run, each
// checked here against a fresh responder (the same keys, a new Endpoint): the
// initiation relabelled to ChaChaPoly's type with mac1 recomputed (the protocol name
// differs, so the static key does not decrypt: a downgrade needs the keys), and the
// genuine initiation at a responder that accepts only ChaChaPoly (dropped before mac1).
func suiteRejects(t *testing.T, suite Suite, privI, privR PrivateKey, psk PresharedKey, init []byte) []vectorEntry {
	t.Helper()
	responder := func(suites SuiteSet) *Endpoint {
		e := New(Config{PrivateKey: privR, Rand: seeded(63), Suites: suites}, t0)
		e.AddPeer(NewIdentity(privI).PublicKey(), psk)
		return e
	}
	pubR := NewIdentity(privR).PublicKey()
	relabelled := bytes.Clone(init)
	relabelled[1] = byte(proto.TypeInitiation)
	writeMACs(relabelled, ptr(hashOf([]byte(labelMAC1), pubR[:])), nil)
	cases := []struct {
		name, note string
		p          []byte
		suites     SuiteSet
		want       error
	}{
		{"must reject: initiation relabelled ChaChaPoly (type 0x10, mac1 recomputed)",
			"mac1 passes, the static key does not decrypt under the other protocol name: ErrDecrypt, no reply",
			relabelled, proto.SuitesOf(SuiteChaChaPoly, suite), ErrDecrypt},
		{"must reject: initiation at a responder accepting only ChaChaPoly",
			"the genuine initiation above: dropped before mac1 (ErrSuite), no reply, no DH",
			init, proto.SuitesOf(SuiteChaChaPoly), ErrSuite},
	}
	var out []vectorEntry
	for _, c := range cases {
		e := responder(c.suites)
		before := e.Stats().DHOps
		err := e.HandleDatagram(t0, addrB, addrA, c.p)
		if !errors.Is(err, c.want) || len(transmits(e, t0)) != 0 {
			t.Errorf("%s: err = %v, want %v and no reply", c.name, err, c.want)
		}
		if c.want == ErrSuite && e.Stats().DHOps != before {
			t.Errorf("%s: the responder did a DH", c.name)
		}
		out = append(out, vectorEntry{Name: c.name, Hex: hex.EncodeToString(c.p), Note: c.note})
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func nonceOrder(s Suite) string {
	if s == SuiteAESGCM {
		return "4 zero bytes then the counter big-endian"
	}
	return "4 zero bytes then the counter little-endian"
}
