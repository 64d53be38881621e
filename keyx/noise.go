package keyx

import (
	"crypto/ecdh"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"hash"
	"io"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/curve25519"
)

// The strings that make natpass's handshake its own. CONSTRUCTION is the Noise
// protocol name of the default suite, unchanged, so the construction is the one
// WireGuard's proofs cover (ConstructionAESGCM names the other suite);
// IDENTIFIER is the Noise prologue and separates natpass from WireGuard and from any
// other protocol built the same way; the labels derive the mac1 and cookie keys
// (whitepaper §5.4.1, §5.4.4, §5.4.7).
const (
	Construction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
	Identifier   = "natpass v1"
	labelMAC1    = "mac1----"
	labelCookie  = "cookie--"
)

// KeyLen is the size of X25519 keys, pre-shared keys, hashes and chaining keys.
const KeyLen = 32

// PrivateKey is an X25519 private key (a clamped scalar).
type PrivateKey [KeyLen]byte

// PublicKey is an X25519 public key. A node is known to its peers by it.
type PublicKey [KeyLen]byte

// PresharedKey is the optional per-pair key mixed in by the psk2 modifier; all zero
// means none (whitepaper §5.2: Q = 0³² when no PSK is configured).
type PresharedKey [KeyLen]byte

// NewPrivateKey draws a private key from r (crypto/rand in a driver, a seeded stream
// in tests) and clamps it (RFC 7748 §5).
func NewPrivateKey(r io.Reader) (PrivateKey, error) {
	var k PrivateKey
	if _, err := io.ReadFull(r, k[:]); err != nil {
		return PrivateKey{}, err
	}
	k[0] &= 248
	k[31] = k[31]&127 | 64
	return k, nil
}

// Public returns the public key of k.
func (k *PrivateKey) Public() PublicKey {
	var p PublicKey
	curve25519.ScalarBaseMult((*[KeyLen]byte)(&p), (*[KeyLen]byte)(k))
	return p
}

// dh is X25519 with the check WireGuard makes: a result of all zeros means the peer
// sent a low-order point, which would let it force a known shared secret
// (whitepaper §5.4.2, RFC 7748 §6.1). crypto/ecdh performs that check. priv is an
// *ecdh.PrivateKey made once per key: making one computes its public key, a whole
// scalar multiplication that curve25519.X25519 would repeat on every call.
func dh(priv *ecdh.PrivateKey, pub *PublicKey) ([KeyLen]byte, error) {
	var out [KeyLen]byte
	remote, err := ecdh.X25519().NewPublicKey(pub[:])
	if err != nil {
		return out, ErrLowOrder
	}
	r, err := priv.ECDH(remote)
	if err != nil {
		return out, ErrLowOrder
	}
	copy(out[:], r)
	return out, nil
}

// ecdhKey wraps a clamped private key for crypto/ecdh (one base-point multiplication).
func ecdhKey(k *PrivateKey) *ecdh.PrivateKey {
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		panic("keyx: X25519 private key: " + err.Error()) // only the length can be wrong
	}
	return priv
}

// symmetric computes the handshake's hashes without allocating: one reusable
// BLAKE2s state and scratch space. An Identity owns one, so a handshake costs a
// handful of allocations instead of one per HMAC; it makes Identity unsafe for
// concurrent use, which its single-threaded owner never needs.
type symmetric struct {
	h         hash.Hash
	pad       [blake2s.BlockSize]byte
	prk, tmp  [KeyLen]byte
	blockByte [1]byte
}

func newSymmetric() *symmetric {
	h, _ := blake2s.New256(nil)
	return &symmetric{h: h}
}

// hash sets out = HASH(a ‖ b): BLAKE2s-256 (whitepaper §5.4).
func (s *symmetric) hash(out *[KeyLen]byte, a, b []byte) {
	s.h.Reset()
	s.h.Write(a)
	s.h.Write(b)
	s.h.Sum(out[:0])
}

// hmac sets out = HMAC-BLAKE2s(key, a ‖ b) (RFC 2104; keys here are 32 bytes, under
// the 64-byte block, so they are only padded).
func (s *symmetric) hmac(out *[KeyLen]byte, key, a, b []byte) {
	s.keyPad(key, 0x36)
	s.h.Reset()
	s.h.Write(s.pad[:])
	s.h.Write(a)
	s.h.Write(b)
	s.h.Sum(s.tmp[:0])
	s.keyPad(key, 0x5c)
	s.h.Reset()
	s.h.Write(s.pad[:])
	s.h.Write(s.tmp[:])
	s.h.Sum(out[:0])
}

func (s *symmetric) keyPad(key []byte, b byte) {
	for i := range s.pad {
		s.pad[i] = b
	}
	for i, k := range key {
		s.pad[i] ^= k
	}
}

// kdf is Noise's HKDF with HMAC-BLAKE2s (whitepaper §5.4: KDF_n): it fills each of
// outs in turn. The extract step is τ0 = HMAC(key, input); τ1 = HMAC(τ0, 0x1);
// τi = HMAC(τ0, τ(i−1) ‖ i). An out may alias key.
func (s *symmetric) kdf(key []byte, input []byte, outs ...*[KeyLen]byte) {
	s.hmac(&s.prk, key, input, nil)
	var prev []byte
	for i, out := range outs {
		s.blockByte[0] = byte(i + 1)
		s.hmac(out, s.prk[:], prev, s.blockByte[:])
		prev = out[:]
	}
	clear(s.prk[:])
	clear(s.tmp[:])
}

// hashOf is HASH(a ‖ b) for code outside a handshake's hot path.
func hashOf(a, b []byte) [KeyLen]byte {
	var out [KeyLen]byte
	newSymmetric().hash(&out, a, b)
	return out
}

// mac is MAC(key, input): keyed BLAKE2s with a 16-byte output (whitepaper §5.4).
func mac(key []byte, input []byte) [16]byte {
	h, err := blake2s.New128(key)
	if err != nil {
		panic("keyx: mac key: " + err.Error()) // keys are always 16 or 32 bytes here
	}
	h.Write(input)
	var out [16]byte
	h.Sum(out[:0])
	return out
}

// The handshake AEAD uses each key once, so its nonce is always zero
// (whitepaper §5.4.2: AEAD(κ, 0, …)), the same bytes in either suite's byte order.
var zeroNonce [nonceLen]byte

func aeadSeal(s Suite, dst []byte, key *[KeyLen]byte, plaintext, ad []byte) {
	newAEAD(s, key[:]).Seal(dst[:0], zeroNonce[:], plaintext, ad)
}

func aeadOpen(s Suite, dst []byte, key *[KeyLen]byte, ciphertext, ad []byte) error {
	if _, err := newAEAD(s, key[:]).Open(dst[:0], zeroNonce[:], ciphertext, ad); err != nil {
		return ErrDecrypt
	}
	return nil
}

// Timestamp is a TAI64N label (12 bytes: TAI64 seconds, then nanoseconds), the
// payload of an initiation. A responder keeps the greatest it has seen from each peer
// and drops an initiation whose timestamp is not greater, so a recorded initiation
// cannot be replayed (whitepaper §5.1).
type Timestamp [12]byte

// tai64Base is 2^62 + 10: TAI64's label for the epoch, with TAI ahead of UTC by the
// 10 s it was in 1970 (cr.yp.to/libtai/tai64.html), as WireGuard writes it.
const tai64Base = 0x400000000000000a

// timestampWhiten drops the low bits of the nanoseconds, as wireguard-go does, so an
// initiation does not reveal the sender's clock to a finer resolution than ~16.8 ms.
const timestampWhiten = 1<<24 - 1

// TAI64N returns the timestamp of wall time t.
func TAI64N(t time.Time) Timestamp {
	var ts Timestamp
	binary.BigEndian.PutUint64(ts[:8], uint64(t.Unix())+tai64Base)
	binary.BigEndian.PutUint32(ts[8:], uint32(t.Nanosecond())&^timestampWhiten)
	return ts
}

// After reports whether ts is later than u (TAI64N labels sort as big-endian bytes).
func (ts Timestamp) After(u Timestamp) bool {
	for i := range ts {
		if ts[i] != u[i] {
			return ts[i] > u[i]
		}
	}
	return false
}

// next returns the smallest timestamp after ts; an initiator uses it when the wall
// clock has not moved past the last timestamp it sent (whitening, or a clock step).
func (ts Timestamp) next() Timestamp {
	secs := binary.BigEndian.Uint64(ts[:8])
	nanos := binary.BigEndian.Uint32(ts[8:]) + 1
	if nanos >= 1e9 {
		secs, nanos = secs+1, 0
	}
	var out Timestamp
	binary.BigEndian.PutUint64(out[:8], secs)
	binary.BigEndian.PutUint32(out[8:], nanos)
	return out
}

// equalMAC compares two MACs in constant time.
func equalMAC(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// Errors keyx returns for bad input from the network. Each leaves every state machine
// as it was; the caller counts and drops.
var (
	// ErrBadMAC: mac1 (or, under load, mac2) does not verify, or a cookie reply does
	// not decrypt. Checked before any Diffie-Hellman.
	ErrBadMAC = errors.New("keyx: bad mac")
	// ErrDecrypt: an AEAD in a handshake message or a transport packet failed.
	ErrDecrypt = errors.New("keyx: decryption failed")
	// ErrLowOrder: a Diffie-Hellman result was all zero (a low-order public key).
	ErrLowOrder = errors.New("keyx: low-order public key")
	// ErrUnknownPeer: the initiator's static key is not in the allowed set.
	ErrUnknownPeer = errors.New("keyx: unknown peer")
	// ErrUnknownIndex: no session or pending handshake has this receiver index.
	ErrUnknownIndex = errors.New("keyx: unknown receiver index")
	// ErrReplay: a handshake timestamp not greater than the last one from the peer, or
	// a transport counter already seen or too old for the window.
	ErrReplay = errors.New("keyx: replay")
	// ErrRateLimited: an initiation from a peer within 20 ms of its previous one, or
	// from a source over its rate under load.
	ErrRateLimited = errors.New("keyx: rate limited")
	// ErrExpired: the session is past its reject time or its message limit, or was
	// zeroed.
	ErrExpired = errors.New("keyx: session expired")
	// ErrSuite: an initiation in a cipher suite this endpoint does not accept
	// (Config.Suites). Checked before mac1: the responder does nothing for it.
	ErrSuite = errors.New("keyx: cipher suite not accepted")
	// ErrUnconfirmed: a responder may not send on a session before the initiator's
	// first transport packet confirms that the initiator holds the keys (WireGuard's
	// key-confirmation rule; wireguard-go keeps such a session as keypairs.next).
	ErrUnconfirmed = errors.New("keyx: session not confirmed")
)
