package rendezvous

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// Admission challenge (PROTOCOL.md [SRV-15], §5.13). A register the server will not
// take from an unproven source is answered with a retry whose token is a MAC over the
// source address and port and a coarse time slot; the node repeats the register with
// the token, which proves it receives at that source. Checking and minting a token
// costs one HMAC and no state, so a spoofed-source flood beyond the unproven budget
// costs the server that MAC and a reply no larger than the datagram, nothing else.

// admissionSlot is the token's time granularity: a token is good in the slot it was
// minted in and the next one, 10–20 s, ample for a node that repeats its register
// at once and for the retransmissions that follow.
const admissionSlot = 10 * time.Second

// admissionMACLen is the truncated MAC of a token; byte 0 holds the slot's low byte.
const admissionMACLen = proto.RetryTokenLen - 1

var labelAdmissionKey = []byte("natpass admission key v1")

// admission mints and checks tokens. It keeps a keyed HMAC and scratch space, so
// neither allocates.
type admission struct {
	mac     hash.Hash
	input   [8 + 16 + 2]byte
	sum     [sha256.Size]byte
	scratch [proto.RetryTokenLen]byte
}

// newAdmission keys the token MAC from the server seed ([RETRY-2]): random per
// server process, so no other server and no later run of this one accepts a token,
// and no key has to be shared or written down. Deriving it (instead of drawing it
// from the generator) leaves every other random draw of the server as it was.
func newAdmission(seed [32]byte) admission {
	k := hmac.New(sha256.New, seed[:])
	k.Write(labelAdmissionKey)
	return admission{mac: hmac.New(sha256.New, k.Sum(nil))}
}

func slotAt(now proto.Instant) uint64 { return uint64(time.Duration(now) / admissionSlot) }

// tokenFor writes the token of source from in slot into dst.
func (a *admission) tokenFor(dst *[proto.RetryTokenLen]byte, slot uint64, from netip.AddrPort) {
	binary.BigEndian.PutUint64(a.input[0:8], slot)
	ip := from.Addr().Unmap().WithZone("").As16() // IPv4 in its v4-mapped form
	copy(a.input[8:24], ip[:])
	binary.BigEndian.PutUint16(a.input[24:26], from.Port())
	a.mac.Reset()
	a.mac.Write(a.input[:])
	a.mac.Sum(a.sum[:0])
	dst[0] = byte(slot)
	copy(dst[1:], a.sum[:admissionMACLen])
}

// valid reports whether token was minted for from in the current slot or the one
// before. Byte 0 names the slot, so at most one MAC is computed.
func (a *admission) valid(now proto.Instant, from netip.AddrPort, token []byte) bool {
	if len(token) != proto.RetryTokenLen {
		return false
	}
	slot := slotAt(now)
	switch {
	case token[0] == byte(slot):
	case slot > 0 && token[0] == byte(slot-1):
		slot--
	default:
		return false
	}
	a.tokenFor(&a.scratch, slot, from)
	return hmac.Equal(a.scratch[:], token)
}

// admitRegister decides whether register m from from goes on to the ticket check
// ([SRV-15]). A nil error means yes, within the reply budget and with transmit room.
// Otherwise the register was answered with a retry or dropped, and counted.
func (s *Server) admitRegister(now proto.Instant, sock int, from netip.AddrPort, m *proto.Register, reqLen int) error {
	if len(m.Token) > 0 {
		if s.admission.valid(now, from, m.Token) {
			s.stats.Admission.TokensValid++
			l, evicted := s.sources.get(from)
			if evicted {
				s.stats.SourceEvictions++
			}
			if !l.proven.allow(now, s.cfg.SourceTokenRate) {
				s.stats.Admission.ChallengedProven++
				return s.sendRetry(now, sock, from, m.TxID, reqLen)
			}
			return s.admitReply(now)
		}
		s.stats.Admission.TokensInvalid++ // stale, another source's, or forged: as if absent
	}
	l := s.sources.find(from)
	if l == nil {
		// A source the server has no entry for: the server-wide budget of unproven
		// registers decides before any state is made for it.
		if !s.openRegisters.allow(now, s.cfg.OpenRegisterRate) {
			s.stats.Admission.ChallengedLoad++
			return s.sendRetry(now, sock, from, m.TxID, reqLen)
		}
		var evicted bool
		l, evicted = s.sources.get(from)
		if evicted {
			s.stats.SourceEvictions++
		}
	}
	if !l.bucket.allow(now, s.cfg.SourceRate) {
		s.stats.Admission.ChallengedSource++
		return s.sendRetry(now, sock, from, m.TxID, reqLen)
	}
	return s.admitReply(now)
}

// admitReply charges an admitted register to the server-wide reply budget and makes
// sure its answer has transmit room.
func (s *Server) admitReply(now proto.Instant) error {
	return s.chargeBudget(now, &s.unauth, s.cfg.UnauthRate, &s.stats.DropBusy)
}

// sendRetry answers register txid with a fresh token for from: only to a register at
// least as large as the retry ([AMP-1]: checked before any MAC is computed), within
// the server-wide reply budget.
func (s *Server) sendRetry(now proto.Instant, sock int, from netip.AddrPort, txid uint64, reqLen int) error {
	if reqLen < proto.RetryLen {
		s.stats.DropAmplification++
		return ErrAmplification
	}
	if !s.unauth.allow(now, s.cfg.UnauthRate) {
		s.stats.DropBusy++
		return ErrBusy
	}
	b := s.tx.begin()
	if b == nil {
		s.stats.DropQueueFull++
		return ErrQueueFull
	}
	m := &s.retry
	m.TxID = txid
	s.admission.tokenFor(&m.Token, slotAt(now), from)
	if err := s.commitReply(sock, from, m.Append(b), reqLen); err != nil {
		return err
	}
	s.stats.Admission.Retries++
	return ErrChallenged
}
