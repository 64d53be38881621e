package keyx

import (
	"crypto/cipher"
	"math"
	"time"

	"github.com/natpass/natpass/proto"
)

// Protocol constants of the whitepaper's §6.1 table. Times run on the caller's
// monotonic timeline (proto.Instant), not on wall time.
const (
	// RekeyAfterMessages: past this many sent messages the session asks for a new
	// handshake.
	RekeyAfterMessages uint64 = 1 << 60
	// RejectAfterMessages: no counter at or above this is sent or accepted
	// (2^64 − 2^13 − 1, so the replay window's arithmetic cannot wrap).
	RejectAfterMessages uint64 = math.MaxUint64 - (1 << 13)
	// RekeyAfterTime: an initiator asks for a new handshake when its session is this old.
	RekeyAfterTime = 120 * time.Second
	// RejectAfterTime: a session this old neither sends nor accepts.
	RejectAfterTime = 180 * time.Second
	// ZeroAfterTime: a session this old is erased (3 × RejectAfterTime).
	ZeroAfterTime = 3 * RejectAfterTime
	// RekeyTimeout: an initiation without a response for this long is given up; the
	// owner may send a new one.
	RekeyTimeout = 5 * time.Second
	// KeepaliveTimeout: how long a receiving peer waits before it sends an empty packet.
	KeepaliveTimeout = 10 * time.Second
	// ResponderRekeyAfterTime: the responder of a session asks for a new handshake
	// only this late, so the initiator's rekey at 120 s normally wins and the two do
	// not race (WireGuard's receive-side rule: Reject − Keepalive − RekeyTimeout).
	ResponderRekeyAfterTime = RejectAfterTime - KeepaliveTimeout - RekeyTimeout
)

// Session is one direction pair of transport keys from one handshake: it seals and
// opens transport data packets (PROTOCOL.md §6.4) with the AEAD of the handshake's
// suite (ChaCha20-Poly1305 or AES-256-GCM); counters, window and timers are the same
// in both.
//
// Getters: Peer, Suite, LocalIndex, RemoteIndex, Initiator, Confirmed, Created, Zeroed,
// NeedsRekey. Data: Seal, Open (both take now; Open is also a Handle* input whose
// failure changes nothing). Timers: Deadline is the instant the keys are erased,
// HandleTimeout erases them. A Session is not safe for concurrent use; its Endpoint
// owns it, and a caller that holds one must drive it from the Endpoint's goroutine.
//
// Counters are nonces: the send counter starts at 0 and never repeats. Received
// counters pass an 8128-packet RFC 6479 window, which moves only after the AEAD
// verified the packet, so neither a replay nor a forgery changes the session.
type Session struct {
	peer        PublicKey
	localIndex  uint32 // the index peers put in packets to us
	remoteIndex uint32 // the index we put in packets to the peer
	initiator   bool
	suite       Suite
	// confirmed: the responder has received a packet under these keys, which proves
	// the initiator holds them (key confirmation). The initiator's is confirmed at once.
	confirmed bool
	zeroed    bool
	created   proto.Instant

	send, recv  cipher.AEAD
	sendCounter uint64
	window      replayWindow
	// Nonce buffers live in the session so that passing them to the AEAD interface
	// does not move a stack array to the heap on every packet.
	sendNonce, recvNonce [nonceLen]byte
}

func newSession(now proto.Instant, peer PublicKey, local, remote uint32, initiator bool, suite Suite, sendKey, recvKey *[KeyLen]byte) *Session {
	s := &Session{peer: peer, localIndex: local, remoteIndex: remote, initiator: initiator,
		suite: suite, confirmed: initiator, created: now}
	s.send = newAEAD(suite, sendKey[:])
	s.recv = newAEAD(suite, recvKey[:])
	clear(sendKey[:])
	clear(recvKey[:])
	return s
}

// Peer returns the static public key of the other side.
func (s *Session) Peer() PublicKey { return s.peer }

// Suite is the cipher suite the handshake chose.
func (s *Session) Suite() Suite { return s.suite }

// LocalIndex is the receiver index the peer writes in packets to us.
func (s *Session) LocalIndex() uint32 { return s.localIndex }

// RemoteIndex is the receiver index we write in packets to the peer.
func (s *Session) RemoteIndex() uint32 { return s.remoteIndex }

// Initiator reports whether this side sent the initiation.
func (s *Session) Initiator() bool { return s.initiator }

// Confirmed reports whether Seal may be used (see ErrUnconfirmed).
func (s *Session) Confirmed() bool { return s.confirmed }

// Created is when the handshake that made the session completed on this side.
func (s *Session) Created() proto.Instant { return s.created }

// Zeroed reports whether the keys were erased.
func (s *Session) Zeroed() bool { return s.zeroed }

// NeedsRekey reports whether a new handshake is due: after 2^60 sent messages, or at
// RekeyAfterTime for the initiator and ResponderRekeyAfterTime for the responder.
func (s *Session) NeedsRekey(now proto.Instant) bool {
	return s.sendCounter >= RekeyAfterMessages || !now.Before(s.rekeyAt())
}

func (s *Session) rekeyAt() proto.Instant {
	if s.initiator {
		return s.created.Add(RekeyAfterTime)
	}
	return s.created.Add(ResponderRekeyAfterTime)
}

func (s *Session) expired(now proto.Instant) bool {
	return s.zeroed || !now.Before(s.created.Add(RejectAfterTime))
}

// Seal appends a transport data packet carrying plaintext to dst and returns it. It
// allocates nothing when dst has room for len(plaintext)+proto.TransportOverhead.
// It fails with ErrExpired past RejectAfterTime or RejectAfterMessages and with
// ErrUnconfirmed on a responder's session before its first Open.
func (s *Session) Seal(now proto.Instant, dst, plaintext []byte) ([]byte, error) {
	switch {
	case s.expired(now) || s.sendCounter >= RejectAfterMessages:
		return dst, ErrExpired
	case !s.confirmed:
		return dst, ErrUnconfirmed
	}
	counter := s.sendCounter
	s.sendCounter++
	dst = proto.AppendTransportHeader(dst, s.remoteIndex, counter)
	// The nonce is 32 zero bits then the counter in the suite's byte order (Noise §12).
	putNonce(s.suite, &s.sendNonce, counter)
	return s.send.Seal(dst, s.sendNonce[:], plaintext, nil), nil
}

// Open authenticates and decrypts a transport data packet p, appends the plaintext to
// dst and returns it. On any error the session is unchanged: ErrReplay for a counter
// seen before, behind the window or at RejectAfterMessages and above; ErrDecrypt when
// the AEAD fails; ErrExpired past RejectAfterTime; ErrUnknownIndex for a packet to
// another session; proto errors for a malformed packet. A node normally calls
// Endpoint.Open, which finds the session by index and also makes a responder's newly
// confirmed session current.
func (s *Session) Open(now proto.Instant, dst, p []byte) ([]byte, error) {
	var m proto.TransportData
	if err := m.Parse(p); err != nil {
		return dst, err
	}
	return s.open(now, dst, &m)
}

func (s *Session) open(now proto.Instant, dst []byte, m *proto.TransportData) ([]byte, error) {
	switch {
	case m.Receiver != s.localIndex:
		return dst, ErrUnknownIndex
	case s.expired(now):
		return dst, ErrExpired
	case m.Counter >= RejectAfterMessages || !s.window.check(m.Counter):
		return dst, ErrReplay
	}
	putNonce(s.suite, &s.recvNonce, m.Counter)
	out, err := s.recv.Open(dst, s.recvNonce[:], m.Ciphertext, nil)
	if err != nil {
		return dst, ErrDecrypt
	}
	s.window.accept(m.Counter)
	s.confirmed = true
	return out, nil
}

// Deadline is when the keys are erased (ZeroAfterTime after Created), or proto.Never
// once they are.
func (s *Session) Deadline() proto.Instant {
	if s.zeroed {
		return proto.Never
	}
	return s.created.Add(ZeroAfterTime)
}

// HandleTimeout erases the keys once Deadline has passed; earlier calls are no-ops.
func (s *Session) HandleTimeout(now proto.Instant) {
	if !now.Before(s.Deadline()) {
		s.erase()
	}
}

// erase drops the AEADs. Go gives no way to wipe the copy of the key (or the AES key
// schedule) inside an AEAD value short of unsafe, which core packages may not use; dropping the only
// reference leaves it to the collector. The keys handed to newSession were wiped.
func (s *Session) erase() {
	s.send, s.recv = nil, nil
	s.zeroed = true
	s.window = replayWindow{}
}
