package punch

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/natpass/natpass/proto"
)

// Key is a pair's probe key. The node derives it from secrets only the two peers hold
// (the handshake's static-static DH and the server's per-pair PSK), so a probe that
// verifies came from the peer, whatever address it came from.
type Key [32]byte

// macer computes probe tags with one reusable HMAC, so steady-state probing
// (keepalives on a live path) allocates nothing.
type macer struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

func newMacer(k *Key) *macer { return &macer{h: hmac.New(sha256.New, k[:])} }

// tag computes the truncated tag over p's bytes before its last ProbeMACLen.
func (m *macer) tag(p []byte) []byte {
	m.h.Reset()
	m.h.Write(p[:len(p)-proto.ProbeMACLen])
	return m.h.Sum(m.sum[:0])[:proto.ProbeMACLen]
}

// seal writes the tag into the last ProbeMACLen bytes of p.
func (m *macer) seal(p []byte) {
	copy(p[len(p)-proto.ProbeMACLen:], m.tag(p))
}

// verify checks p's tag in constant time.
func (m *macer) verify(p []byte) bool {
	if len(p) < proto.ProbeMACLen {
		return false
	}
	return hmac.Equal(m.tag(p), p[len(p)-proto.ProbeMACLen:])
}

// PairID is the pair tag both sides put in their probes: the first 8 bytes of
// HMAC-SHA256(key, "natpass pair id"). It names the pair without revealing the key.
func PairID(k *Key) uint64 {
	h := hmac.New(sha256.New, k[:])
	h.Write([]byte("natpass pair id"))
	return binary.BigEndian.Uint64(h.Sum(nil))
}
