package keyx

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"

	"github.com/natpass/natpass/proto"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sys/cpu"
)

// Suite names a cipher suite: the AEAD of the Noise protocol name (PROTOCOL.md §6.1).
// The initiator picks one per handshake; the message type of its initiation says
// which, and the protocol name, hashed into the first chaining key, binds it, so a
// responder that reads the other suite fails the first AEAD and changes nothing.
type Suite = proto.Suite

// SuiteSet is a set of suites: what an endpoint accepts, and what a peer advertised.
type SuiteSet = proto.SuiteSet

// The suites. ChaChaPoly is the default, the fallback, and what every port implements;
// AES-GCM is worth it only where both ends have AES hardware (DESIGN §5).
const (
	SuiteChaChaPoly = proto.SuiteChaChaPoly
	SuiteAESGCM     = proto.SuiteAESGCM
)

// ConstructionAESGCM is the Noise protocol name of the AES-GCM suite (AES-256-GCM,
// 16-byte tags; the nonce is 4 zero bytes then the counter big-endian, Noise §12.3).
const ConstructionAESGCM = "Noise_IKpsk2_25519_AESGCM_BLAKE2s"

// ConstructionOf returns the Noise protocol name of suite s.
func ConstructionOf(s Suite) string {
	switch s {
	case SuiteChaChaPoly:
		return Construction
	case SuiteAESGCM:
		return ConstructionAESGCM
	}
	panic("keyx: unknown suite " + s.String())
}

// HasAESHardware reports whether this CPU runs AES-GCM in hardware (AES rounds and
// carry-less multiplication), the condition under which the AES-GCM suite beats
// ChaCha20-Poly1305: the same test crypto/tls uses to prefer AES-GCM.
func HasAESHardware() bool {
	return cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ ||
		cpu.ARM64.HasAES && cpu.ARM64.HasPMULL ||
		cpu.S390X.HasAES && cpu.S390X.HasAESGCM
}

// DefaultSuites is what an endpoint accepts and proposes when its Config does not say:
// ChaChaPoly always, and AES-GCM too when aesHardware.
func DefaultSuites(aesHardware bool) SuiteSet {
	if aesHardware {
		return proto.SuitesOf(SuiteChaChaPoly, SuiteAESGCM)
	}
	return proto.SuitesOf(SuiteChaChaPoly)
}

// knownSuites is every suite this version implements.
var knownSuites = proto.SuitesOf(SuiteChaChaPoly, SuiteAESGCM)

// preferred returns the suite an initiator proposes from the suites both sides
// accept: AES-GCM when both have it, ChaChaPoly otherwise.
func preferred(both SuiteSet) Suite {
	if both.Has(SuiteAESGCM) {
		return SuiteAESGCM
	}
	return SuiteChaChaPoly
}

// newAEAD returns suite s's AEAD under a 32-byte key.
func newAEAD(s Suite, key []byte) cipher.AEAD {
	switch s {
	case SuiteChaChaPoly:
		a, err := chacha20poly1305.New(key)
		if err != nil {
			panic("keyx: ChaCha20-Poly1305 key: " + err.Error()) // keys are always 32 bytes
		}
		return a
	case SuiteAESGCM:
		block, err := aes.NewCipher(key)
		if err != nil {
			panic("keyx: AES key: " + err.Error())
		}
		a, err := cipher.NewGCM(block)
		if err != nil {
			panic("keyx: GCM: " + err.Error()) // only for a block size other than 16
		}
		return a
	}
	panic("keyx: unknown suite " + s.String())
}

// nonceLen is the AEAD nonce size of both suites.
const nonceLen = chacha20poly1305.NonceSize

// putNonce writes the 12-byte nonce for counter n: 4 zero bytes, then n as 8 bytes,
// little-endian for ChaChaPoly (Noise §12.2) and big-endian for AES-GCM (§12.3).
func putNonce(s Suite, nonce *[nonceLen]byte, n uint64) {
	if s == SuiteAESGCM {
		binary.BigEndian.PutUint64(nonce[4:], n)
		return
	}
	binary.LittleEndian.PutUint64(nonce[4:], n)
}
