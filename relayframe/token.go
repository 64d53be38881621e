package relayframe

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"

	"github.com/natpass/natpass/proto"
)

// Relay token layout, version 1 (TokenLen bytes, all integers big-endian):
//
//	offset  size  field
//	     0     1  version (1)
//	     1     8  pair ID: names the introduction (both peers hold the same token)
//	     9     8  expiry, seconds since the Unix epoch (wall time)
//	    17    32  key A: the lower of the two peers' static public keys (bytewise)
//	    49    32  key B: the higher (or equal) key
//	    81    32  HMAC-SHA256(token key, bytes 0..80)
//
// The keys are sorted so that both peers of a pair receive byte-identical tokens and
// the relay does not care which side presents one. The token is opaque to clients.
const (
	TokenVersion = 1
	TokenLen     = 1 + 8 + 8 + 2*proto.KeyLen + sha256.Size // 113 ≤ proto.MaxRelayTokenLen
	tokenSigned  = TokenLen - sha256.Size
)

// Sentinel errors of VerifyToken. A relay counts each and forwards nothing.
var (
	// ErrTokenMalformed: wrong length, unknown version or unsorted keys.
	ErrTokenMalformed = errors.New("relayframe: malformed relay token")
	// ErrTokenBadMAC: the tag does not verify under this server's token key.
	ErrTokenBadMAC = errors.New("relayframe: relay token MAC mismatch")
	// ErrTokenExpired: the token's expiry is not after the wall clock.
	ErrTokenExpired = errors.New("relayframe: relay token expired")
)

// Token is the decoded content of a relay token: the server's promise that it
// introduced the holders of KeyA and KeyB to each other as pair PairID, valid until
// ExpiryUnix. KeyA ≤ KeyB bytewise (MintToken sorts them).
type Token struct {
	PairID     uint64
	ExpiryUnix uint64 // seconds since the Unix epoch; the token is invalid from then on
	KeyA, KeyB [proto.KeyLen]byte
}

// Holds reports whether key is one of the pair's two keys.
func (t *Token) Holds(key [proto.KeyLen]byte) bool { return t.KeyA == key || t.KeyB == key }

// tokenKeyLabel separates the relay-token key from every other use of the server
// secret (the ticket MAC uses the secret directly), so a ticket tag can never be
// presented as a token tag or the other way round.
const tokenKeyLabel = "natpass relay token key v1"

// DeriveTokenKey derives the relay-token key from the server secret:
// HMAC-SHA256(secret, "natpass relay token key v1").
func DeriveTokenKey(secret []byte) [sha256.Size]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(tokenKeyLabel))
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

// TokenSigner mints and verifies relay tokens under one key. It keeps one HMAC state
// and reuses it, so neither call allocates. Like every natpass machine it is not safe
// for concurrent use.
type TokenSigner struct {
	mac hash.Hash
	sum [sha256.Size]byte
}

// NewTokenSigner returns a signer for key (from DeriveTokenKey, or random bytes for
// a server that has no secret).
func NewTokenSigner(key [sha256.Size]byte) *TokenSigner {
	return &TokenSigner{mac: hmac.New(sha256.New, key[:])}
}

// AppendToken appends the encoded, tagged token to b. It sorts t's keys first.
func (s *TokenSigner) AppendToken(b []byte, t Token) []byte {
	if bytes.Compare(t.KeyA[:], t.KeyB[:]) > 0 {
		t.KeyA, t.KeyB = t.KeyB, t.KeyA
	}
	start := len(b)
	b = append(b, TokenVersion)
	b = binary.BigEndian.AppendUint64(b, t.PairID)
	b = binary.BigEndian.AppendUint64(b, t.ExpiryUnix)
	b = append(b, t.KeyA[:]...)
	b = append(b, t.KeyB[:]...)
	return append(b, s.tag(b[start:])...)
}

// VerifyToken checks a token presented at wall time nowUnix and returns its content.
// The order of checks is fixed (length and layout, then MAC, then expiry) so that an
// unauthenticated caller learns only "malformed" or "bad MAC" and never whether a
// forged token would have been fresh. The MAC comparison is constant-time.
func (s *TokenSigner) VerifyToken(p []byte, nowUnix uint64) (Token, error) {
	if len(p) != TokenLen || p[0] != TokenVersion {
		return Token{}, ErrTokenMalformed
	}
	var t Token
	t.PairID = binary.BigEndian.Uint64(p[1:9])
	t.ExpiryUnix = binary.BigEndian.Uint64(p[9:17])
	copy(t.KeyA[:], p[17:49])
	copy(t.KeyB[:], p[49:81])
	if bytes.Compare(t.KeyA[:], t.KeyB[:]) > 0 {
		// Only the sorted form is canonical; a swapped copy is not a second valid
		// encoding of the same token.
		return Token{}, ErrTokenMalformed
	}
	if !hmac.Equal(s.tag(p[:tokenSigned]), p[tokenSigned:]) {
		return Token{}, ErrTokenBadMAC
	}
	if nowUnix >= t.ExpiryUnix {
		return Token{}, ErrTokenExpired
	}
	return t, nil
}

// tag computes the HMAC of signed into s.sum and returns it (valid until the next
// call). The domain-separation label is in the key derivation, not here.
func (s *TokenSigner) tag(signed []byte) []byte {
	s.mac.Reset()
	s.mac.Write(signed)
	return s.mac.Sum(s.sum[:0])
}
