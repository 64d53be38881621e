package rendezvous

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"net/netip"
	"strconv"
	"testing"

	"github.com/natpass/natpass/internal/vectorfile"
	"github.com/natpass/natpass/proto"
)

var update = flag.Bool("update", false, "rewrite ../proto/testdata/vectors/{ticket-mac,stun}.json")

// deriveVector and deriveFile are the derivation vector file's shape
// (internal/vectorfile).
type (
	deriveVector = vectorfile.Vector
	deriveFile   = vectorfile.File
)

// checkVectorFile compares f with the committed <name>.json, or writes it with
// -update.
func checkVectorFile(t *testing.T, name string, f deriveFile) {
	t.Helper()
	vectorfile.Check(t, name, "rendezvous", f, *update)
}

// TestTicketMACVectors pins PROTOCOL.md §4.4 [TICKET-2]-[TICKET-4] with the secret in
// the file: what an app backend in another language needs to mint tickets this
// server accepts.
func TestTicketMACVectors(t *testing.T) {
	f := deriveFile{Comment: "natpass ticket MAC and verdicts (PROTOCOL.md §4.4 [TICKET-1]-[TICKET-4]); " +
		"regenerate with: go test ./rendezvous -update. Format: README.md in this folder."}
	secretHex := hex.EncodeToString(testSecret)
	mint := func(name string, tk proto.Ticket) []byte {
		p := MintTicket(testSecret, tk)
		f.Vectors = append(f.Vectors, deriveVector{Name: name, Kind: "ticket-mint", Rule: "TICKET-2",
			Inputs: map[string]string{"secret": secretHex, "peer_id": hex.EncodeToString(tk.PeerID),
				"public_key": hex.EncodeToString(tk.PublicKey[:]), "expiry": strconv.FormatUint(tk.ExpiryUnix, 10)},
			Outputs: map[string]string{"ticket": hex.EncodeToString(p), "mac": hex.EncodeToString(p[len(p)-proto.KeyLen:])}})
		return p
	}
	alice := mint("alice", proto.Ticket{PeerID: []byte("alice"), ExpiryUnix: testExpiryUnix,
		PublicKey: [proto.KeyLen]byte{0: 0x9a, 1: 0xbc, 31: 0x01}})
	mint("utf8-peer-id", proto.Ticket{PeerID: []byte("ünïcødé-☃"), ExpiryUnix: 1, PublicKey: [proto.KeyLen]byte{31: 9}})
	long := mint("64-byte-peer-id", proto.Ticket{PeerID: bytes.Repeat([]byte{0xff}, proto.MaxPeerIDLen),
		ExpiryUnix: 1<<64 - 1, PublicKey: [proto.KeyLen]byte{0: 0xff}})

	verify := func(name, rule string, secret, p []byte, now uint64, verdict string) {
		f.Vectors = append(f.Vectors, deriveVector{Name: name, Kind: "ticket-verify", Rule: rule,
			Inputs: map[string]string{"secret": hex.EncodeToString(secret), "ticket": hex.EncodeToString(p),
				"now": strconv.FormatUint(now, 10)},
			Outputs: map[string]string{"verdict": verdict}})
		_, err := VerifyTicket(secret, p, now)
		got := "ok"
		switch {
		case errors.Is(err, ErrBadTicket):
			got = "bad"
		case errors.Is(err, ErrTicketExpired):
			got = "expired"
		case err != nil:
			got = err.Error()
		}
		if got != verdict {
			t.Errorf("%s: verdict %s, want %s", name, got, verdict)
		}
	}
	other := []byte("some other server's secret......")
	flip := func(p []byte, i int) []byte { q := bytes.Clone(p); q[i] ^= 1; return q }
	verify("fresh", "TICKET-3", testSecret, alice, testExpiryUnix-1, "ok")
	verify("at-expiry", "TICKET-3", testSecret, alice, testExpiryUnix, "expired")
	verify("after-expiry", "TICKET-3", testSecret, alice, testExpiryUnix+1, "expired")
	verify("never-expires-in-uint64", "TICKET-3", testSecret, long, 1<<63, "ok")
	verify("other-secret", "TICKET-2", other, alice, 0, "bad")
	verify("mac-bit-flipped", "TICKET-2", testSecret, flip(alice, len(alice)-1), 0, "bad")
	verify("expiry-bit-flipped", "TICKET-2", testSecret, flip(alice, len(alice)-proto.KeyLen-1), 0, "bad")
	verify("mac-checked-before-expiry", "TICKET-4", testSecret, flip(alice, len(alice)-1), testExpiryUnix+1, "bad")
	verify("version-2", "TICKET-1", testSecret, append([]byte{2}, alice[1:]...), 0, "bad")
	verify("one-byte", "TICKET-1", testSecret, []byte{1}, 0, "bad")
	verify("byte-after-mac", "TICKET-1", testSecret, append(bytes.Clone(alice), 0), 0, "bad")
	checkVectorFile(t, "ticket-mac", f)
}

// TestSTUNVectors pins PROTOCOL.md §10 through the server's public API: each request,
// from its source, is answered with exactly the response bytes in the file, or
// dropped with the reason given.
func TestSTUNVectors(t *testing.T) {
	f := deriveFile{Comment: "natpass server STUN Binding behaviour (PROTOCOL.md §10 [STUN-1]-[STUN-4]): request from " +
		"source, and the exact response or the reason it is dropped; regenerate with: go test ./rendezvous -update. " +
		"Format: README.md in this folder."}
	reasons := map[error]string{ErrSTUNMalformed: "malformed", ErrSTUNNotBindingRequest: "not-binding-request",
		ErrSTUNBadFingerprint: "bad-fingerprint", ErrSTUNUnknownAttribute: "unknown-attribute",
		ErrSTUNChangeRequest: "change-request"}
	add := func(name, rule string, from netip.AddrPort, req []byte, want string) {
		h := newHarness(t, nil) // a fresh server: no rate limit carries over
		err, out, _ := h.deliver(srvPrimary, from, req)
		o := map[string]string{}
		switch {
		case err == nil && len(out) == 1 && out[0].To == from && out[0].From == srvPrimary:
			o["verdict"] = "answer"
			o["response"] = hex.EncodeToString(out[0].Payload)
		case err != nil:
			o["verdict"] = reasons[err]
		}
		if o["verdict"] != want {
			t.Errorf("%s: err %v, %d datagrams; want %s", name, err, len(out), want)
		}
		f.Vectors = append(f.Vectors, deriveVector{Name: name, Kind: "stun-binding", Rule: rule,
			Inputs:  map[string]string{"request": hex.EncodeToString(req), "source": from.String()},
			Outputs: o})
	}
	pad := func(n int) []byte { return stunAttr(stunAttrPadding, make([]byte, n)) }
	change := func(flags byte) []byte { return stunAttr(stunAttrChangeRequest, []byte{0, 0, 0, flags}) }
	good := stunRequestBytes(0x11, true, pad(32))
	add("bare-20-bytes-v4", "STUN-2", aliceNAT, stunRequestBytes(0x21, false), "answer")
	add("bare-20-bytes-v6", "STUN-2", v6Node, stunRequestBytes(0x22, false), "answer")
	add("bare-fingerprint-28-bytes-v4", "STUN-2", aliceNAT, stunRequestBytes(0x25, true), "answer")
	add("bare-fingerprint-28-bytes-v6", "STUN-2", v6Node, stunRequestBytes(0x26, true), "answer")
	add("padded-64-fingerprint-v4", "STUN-2", aliceNAT, good, "answer")
	add("padded-64-fingerprint-v6", "STUN-2", v6Node, stunRequestBytes(0x12, true, pad(32)), "answer")
	add("software-attribute-v4", "STUN-1", bobNAT, stunRequestBytes(0x15, false, stunAttr(0x8022, []byte("natpass vectors"))), "answer")
	add("rfc5769-ice-check-v4", "STUN-1", aliceNAT, unhex(t, rfc5769Request), "answer")
	add("change-request-no-change", "STUN-1", aliceNAT, stunRequestBytes(0x23, false, change(0)), "answer")
	add("rfc3489-bare-v4", "STUN-2", aliceNAT, classicRequestBytes(0x31), "answer")
	add("rfc3489-change-request-no-change-v4", "STUN-2", bobNAT, classicRequestBytes(0x32, change(0)), "answer")
	add("rfc3489-bare-v6", "STUN-2", v6Node, classicRequestBytes(0x33), "answer")
	add("error-420-change-request-v4", "STUN-4", aliceNAT, stunRequestBytes(0x41, false, change(6)), "answer")
	add("error-420-change-request-fingerprint-v6", "STUN-4", v6Node, stunRequestBytes(0x42, true, change(2)), "answer")
	add("error-420-response-port-and-change", "STUN-4", aliceNAT,
		stunRequestBytes(0x43, false, stunAttr(0x0027, []byte{0x12, 0x34}), change(4)), "answer")
	add("error-420-five-unknown-four-listed", "STUN-4", aliceNAT, stunRequestBytes(0x44, true, stunAttr(0x7001, nil),
		stunAttr(0x7002, nil), stunAttr(0x7003, nil), stunAttr(0x7004, nil), stunAttr(0x7005, nil)), "answer")
	add("error-420-rfc3489-response-address", "STUN-4", aliceNAT, classicRequestBytes(0x45, stunAttr(0x0002, make([]byte, 8))), "answer")
	add("rfc3489-change-request-dropped", "STUN-4", aliceNAT, classicRequestBytes(0x46, change(6)), "change-request")
	badFP := bytes.Clone(good)
	badFP[len(badFP)-1] ^= 1
	add("bad-fingerprint", "STUN-1", aliceNAT, badFP, "bad-fingerprint")
	indication := bytes.Clone(good)
	indication[1] = 0x11
	add("binding-indication", "STUN-1", aliceNAT, indication, "not-binding-request")
	allocate := stunRequestBytes(0x24, false)
	allocate[1] = 0x03
	add("allocate-request", "STUN-1", aliceNAT, allocate, "not-binding-request")
	afterFP := append(bytes.Clone(good), stunAttr(0x8022, []byte("x"))...)
	binary.BigEndian.PutUint16(afterFP[2:], uint16(len(afterFP)-stunHeaderLen))
	add("attribute-after-fingerprint", "STUN-1", aliceNAT, afterFP, "malformed")
	add("byte-after-attributes", "STUN-1", aliceNAT, append(stunRequestBytes(0x24, false, pad(12)), 0), "malformed")
	add("attribute-past-end", "STUN-1", aliceNAT, stunRequestBytes(0x24, false, []byte{0x80, 0x22, 0x00, 0x09, 1, 2, 3, 4}), "malformed")
	add("classic-byte-after-attributes", "STUN-1", aliceNAT, append(classicRequestBytes(0x34), 0), "malformed")
	checkVectorFile(t, "stun", f)
}
