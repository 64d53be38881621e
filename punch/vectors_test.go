package punch

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"testing"

	"golang.org/x/crypto/curve25519"

	"github.com/natpass/natpass/internal/vectorfile"
	"github.com/natpass/natpass/proto"
)

var update = flag.Bool("update", false, "rewrite ../proto/testdata/vectors/probe-key.json")

// deriveVector and deriveFile are the derivation vector file's shape
// (internal/vectorfile).
type (
	deriveVector = vectorfile.Vector
	deriveFile   = vectorfile.File
)

// vectorProbeKey derives the probe key as PROTOCOL.md [PROBE-1] states it. The node
// derives it in node/route.go (probeKey); this is the spec's construction, written
// again from the text, so the vector pins the text.
func vectorProbeKey(priv, peerPub, psk []byte) (ss, key []byte, err error) {
	ss, err = curve25519.X25519(priv, peerPub)
	if err != nil {
		return nil, nil, err
	}
	h := hmac.New(sha256.New, ss)
	h.Write([]byte("natpass probe key"))
	h.Write(psk)
	return ss, h.Sum(nil), nil
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func probeVectors(t *testing.T) deriveFile {
	privA := mustHex("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20")
	privB := mustHex("2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40")
	pubA, _ := curve25519.X25519(privA, curve25519.Basepoint)
	pubB, _ := curve25519.X25519(privB, curve25519.Basepoint)
	psk := mustHex("50534b0000000000000000000000000000000000000000000000000000000001")
	zero := make([]byte, 32)

	f := deriveFile{Comment: "natpass probe key, probe pair ID, controlling role and probe tags (PROTOCOL.md §9 " +
		"[PROBE-1]-[PROBE-4]); regenerate with: go test ./punch -update. Format: README.md in this folder."}
	var keyAB []byte
	for _, c := range []struct {
		name            string
		own, ownPub     []byte
		peerPub         []byte
		psk             []byte
		wantControlling bool
	}{
		{"a-to-b", privA, pubA, pubB, psk, bytes.Compare(pubA, pubB) < 0},
		{"b-to-a", privB, pubB, pubA, psk, bytes.Compare(pubB, pubA) < 0},
		{"a-to-b-no-psk", privA, pubA, pubB, zero, bytes.Compare(pubA, pubB) < 0},
	} {
		ss, key, err := vectorProbeKey(c.own, c.peerPub, c.psk)
		if err != nil {
			t.Fatal(err)
		}
		var k Key
		copy(k[:], key)
		id := PairID(&k)
		if c.name == "a-to-b" {
			keyAB = key
		}
		f.Vectors = append(f.Vectors, deriveVector{Name: c.name, Kind: "probe-key", Rule: "PROBE-1 PROBE-2 PROBE-4",
			Inputs: map[string]string{"private_key": hex.EncodeToString(c.own), "public_key": hex.EncodeToString(c.ownPub),
				"peer_public_key": hex.EncodeToString(c.peerPub), "psk": hex.EncodeToString(c.psk)},
			Outputs: map[string]string{"verdict": "ok", "shared_secret": hex.EncodeToString(ss),
				"probe_key": hex.EncodeToString(key), "pair_id": strconv.FormatUint(id, 10),
				"pair_id_hex": fmt.Sprintf("%016x", id), "controlling": strconv.FormatBool(c.wantControlling)}})
	}
	// A low-order peer key makes the static-static DH zero: the introduction is invalid.
	if _, _, err := vectorProbeKey(privA, zero, psk); err == nil {
		t.Fatal("X25519 with the zero point did not fail")
	}
	f.Vectors = append(f.Vectors, deriveVector{Name: "low-order-peer-key", Kind: "probe-key", Rule: "PROBE-1 PROBE-2 PROBE-4",
		Inputs: map[string]string{"private_key": hex.EncodeToString(privA), "public_key": hex.EncodeToString(pubA),
			"peer_public_key": hex.EncodeToString(zero), "psk": hex.EncodeToString(psk)},
		Outputs: map[string]string{"verdict": "low-order"}})

	// Probes and replies sealed under the a-to-b key, as the agent seals them.
	var k Key
	copy(k[:], keyAB)
	m := newMacer(&k)
	pair := PairID(&k)
	controlling := bytes.Compare(pubA, pubB) < 0
	var flags uint8
	if controlling {
		flags = proto.ProbeControlling
	}
	seal := func(name string, msg interface{ Append([]byte) []byte }) []byte {
		p := msg.Append(nil)
		m.seal(p)
		f.Vectors = append(f.Vectors, deriveVector{Name: name, Kind: "probe-seal", Rule: "PROBE-3",
			Inputs:  map[string]string{"probe_key": hex.EncodeToString(keyAB), "unsigned": hex.EncodeToString(p[:len(p)-proto.ProbeMACLen])},
			Outputs: map[string]string{"tag": hex.EncodeToString(p[len(p)-proto.ProbeMACLen:]), "packet": hex.EncodeToString(p)}})
		return p
	}
	probe := seal("probe-from-a", &proto.Probe{Pair: pair, TxID: 0x0102030405060708, Flags: flags})
	seal("probe-nominate-from-a", &proto.Probe{Pair: pair, TxID: 9, Flags: flags | proto.ProbeNominate})
	seal("probe-reply-v4-from-b", &proto.ProbeReply{Pair: pair, TxID: 0x0102030405060708, Flags: flags ^ proto.ProbeControlling,
		Observed: netip.MustParseAddrPort("203.0.113.7:40001")})
	seal("probe-reply-v6-from-b", &proto.ProbeReply{Pair: pair, TxID: 9, Flags: flags ^ proto.ProbeControlling,
		Observed: netip.MustParseAddrPort("[2001:db8::1]:51820")})

	verify := func(name string, p []byte, verdict string) {
		f.Vectors = append(f.Vectors, deriveVector{Name: name, Kind: "probe-verify", Rule: "PROBE-3",
			Inputs:  map[string]string{"probe_key": hex.EncodeToString(keyAB), "packet": hex.EncodeToString(p)},
			Outputs: map[string]string{"verdict": verdict}})
		if got := m.verify(p); got != (verdict == "ok") {
			t.Errorf("%s: verify = %v, want %s", name, got, verdict)
		}
	}
	verify("probe-good", probe, "ok")
	flipped := bytes.Clone(probe)
	flipped[12] ^= 0x01 // a txid bit
	verify("probe-txid-flipped", flipped, "bad-tag")
	flipped = bytes.Clone(probe)
	flipped[len(flipped)-1] ^= 0x80
	verify("probe-tag-flipped", flipped, "bad-tag")
	var other Key
	copy(other[:], keyAB)
	other[0] ^= 1
	wrong := proto.AppendHeader(nil, proto.TypeProbe)
	wrong = append(append(wrong, probe[2:len(probe)-proto.ProbeMACLen]...), make([]byte, proto.ProbeMACLen)...)
	newMacer(&other).seal(wrong)
	verify("probe-sealed-under-another-key", wrong, "bad-tag")
	return f
}

// TestProbeKeyVectors pins PROTOCOL.md §9's derivations: probe key, probe pair ID,
// controlling role and tag, in ../proto/testdata/vectors/probe-key.json.
func TestProbeKeyVectors(t *testing.T) {
	f := probeVectors(t)
	vectorfile.Check(t, "probe-key", "punch", f, *update)
}
