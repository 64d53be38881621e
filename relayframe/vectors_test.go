package relayframe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"strconv"
	"testing"

	"github.com/natpass/natpass/internal/vectorfile"
	"github.com/natpass/natpass/proto"
)

var update = flag.Bool("update", false, "rewrite ../proto/testdata/vectors/relay-token.json")

// deriveVector and deriveFile are the derivation vector file's shape
// (internal/vectorfile).
type (
	deriveVector = vectorfile.Vector
	deriveFile   = vectorfile.File
)

// TestRelayTokenVectors pins PROTOCOL.md §5.10 [TOKEN-1]-[TOKEN-4] with the server
// secret in the file, so a server in another language can mint and check tokens
// that interoperate with this one (in a cluster, or when replacing it).
func TestRelayTokenVectors(t *testing.T) {
	secret := []byte("natpass relay token vector secret") // TestTokenGoldenVector's, so proto's relay vectors carry a token valid under it
	key := DeriveTokenKey(secret)
	s := NewTokenSigner(key)
	f := deriveFile{Comment: "natpass relay tokens (PROTOCOL.md §5.10 [TOKEN-1]-[TOKEN-4]): token key from the " +
		"server secret, minted tokens, verdicts; regenerate with: go test ./relayframe -update. " +
		"Format: README.md in this folder."}
	secretHex := hex.EncodeToString(secret)
	f.Vectors = append(f.Vectors, deriveVector{Name: "token-key", Kind: "token-key", Rule: "TOKEN-2",
		Inputs: map[string]string{"secret": secretHex}, Outputs: map[string]string{"token_key": hex.EncodeToString(key[:])}})
	mint := func(name string, tk Token) []byte {
		p := s.AppendToken(nil, tk)
		f.Vectors = append(f.Vectors, deriveVector{Name: name, Kind: "token-mint", Rule: "TOKEN-1 TOKEN-2",
			Inputs: map[string]string{"secret": secretHex, "pair_id": strconv.FormatUint(tk.PairID, 10),
				"expiry": strconv.FormatUint(tk.ExpiryUnix, 10),
				"key_1":  hex.EncodeToString(tk.KeyA[:]), "key_2": hex.EncodeToString(tk.KeyB[:])},
			Outputs: map[string]string{"token": hex.EncodeToString(p)}})
		return p
	}
	// The token of proto's relay vectors (relay-allocate.json): keys given sorted.
	sorted := mint("sorted-keys", Token{PairID: 0x0102030405060708, ExpiryUnix: testExpiry, KeyA: keyAlice, KeyB: keyBob})
	// The same pair with the keys given the other way round: the same bytes.
	if again := mint("keys-given-unsorted", Token{PairID: 0x0102030405060708, ExpiryUnix: testExpiry, KeyA: keyBob, KeyB: keyAlice}); !bytes.Equal(again, sorted) {
		t.Fatal("key order leaks into the token")
	}
	// Keys that differ only in their last byte, and a high first byte: bytewise order
	// is unsigned, first byte first.
	hi := [proto.KeyLen]byte{0: 0x80}
	lo := [proto.KeyLen]byte{0: 0x7f, 31: 0xff}
	mint("unsigned-bytewise-order", Token{PairID: 1, ExpiryUnix: testExpiry, KeyA: hi, KeyB: lo})
	same := mint("equal-keys", Token{PairID: 2, ExpiryUnix: testExpiry, KeyA: keyAlice, KeyB: keyAlice})

	verify := func(name, rule string, p []byte, now uint64, verdict string) {
		f.Vectors = append(f.Vectors, deriveVector{Name: name, Kind: "token-verify", Rule: rule,
			Inputs:  map[string]string{"secret": secretHex, "token": hex.EncodeToString(p), "now": strconv.FormatUint(now, 10)},
			Outputs: map[string]string{"verdict": verdict}})
		_, err := s.VerifyToken(p, now)
		got := "ok"
		switch {
		case errors.Is(err, ErrTokenMalformed):
			got = "malformed"
		case errors.Is(err, ErrTokenBadMAC):
			got = "bad-mac"
		case errors.Is(err, ErrTokenExpired):
			got = "expired"
		case err != nil:
			got = err.Error()
		}
		if got != verdict {
			t.Errorf("%s: verdict %s, want %s", name, got, verdict)
		}
	}
	flip := func(p []byte, i int) []byte { q := bytes.Clone(p); q[i] ^= 1; return q }
	verify("fresh", "TOKEN-3", sorted, testExpiry-1, "ok")
	verify("equal-keys-fresh", "TOKEN-1", same, testExpiry-1, "ok")
	verify("at-expiry", "TOKEN-3", sorted, testExpiry, "expired")
	v2 := bytes.Clone(sorted)
	v2[0] = 2
	verify("version-2", "TOKEN-1", v2, 0, "malformed")
	verify("112-bytes", "TOKEN-1", sorted[:TokenLen-1], 0, "malformed")
	verify("114-bytes", "TOKEN-1", append(bytes.Clone(sorted), 0), 0, "malformed")
	swapped := bytes.Clone(sorted)
	copy(swapped[17:49], keyBob[:])
	copy(swapped[49:81], keyAlice[:])
	verify("keys-unsorted", "TOKEN-1", swapped, 0, "malformed")
	verify("mac-bit-flipped", "TOKEN-4", flip(sorted, TokenLen-1), 0, "bad-mac")
	verify("pair-id-bit-flipped", "TOKEN-4", flip(sorted, 8), 0, "bad-mac")
	verify("mac-checked-before-expiry", "TOKEN-4", flip(sorted, TokenLen-1), testExpiry+1, "bad-mac")
	// A token of another server secret.
	otherSigner := NewTokenSigner(DeriveTokenKey([]byte("another server secret, 32 bytes")))
	verify("other-secret", "TOKEN-2", otherSigner.AppendToken(nil, Token{PairID: 0x0102030405060708,
		ExpiryUnix: testExpiry, KeyA: keyAlice, KeyB: keyBob}), 0, "bad-mac")

	vectorfile.Check(t, "relay-token", "relayframe", f, *update)
}
