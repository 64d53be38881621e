package node

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// Echoes of first-contact messages. A handshake crosses four access links (the
// initiation and the response, each leaving one side and reaching the other,
// through the server when relayed); at 1 % loss per link one handshake in 25 loses
// a message and waits for the initiator's retry, three relay link times or more
// (transport.go): most of a first message's time when it happens. The same holds,
// one round trip each, for the two server requests a first message waits on that
// the peer's side cannot repeat for us: the keepalive carrying our NAT report
// (the server holds the peer's introduction until it has it) and the relay-allocate
// of a new channel. So these go twice, handshakeEchoDelay apart (far enough that a
// short burst of loss does not take both): every initiation and response, the
// first NAT-report keepalive, the first relay-allocate of an allocation. The copy
// is the same bytes, once per handshake or allocation (≤ 221 bytes), sent only to
// the destination of the message it copies (the peer, or the server): nothing an
// unauthenticated sender can make the node send, and the server answers each
// copy with no more than it answers one request. The receiver drops or absorbs the
// copy: a repeated initiation is a replay (its timestamp is not newer than the one
// answered), a repeated response answers no handshake in flight (both counted as
// Stats.Duplicates); the server acknowledges a repeated keepalive and answers a
// repeated relay-allocate again, the same answer, which the node takes once.
const (
	handshakeEchoDelay = 5 * time.Millisecond
	maxEchoes          = 4 // copies waiting; more are dropped (Stats.EchoDrops)
	// echoMaxLen fits the largest message echoed: a relay-allocate with a 64-byte
	// peer ID and a 128-byte token (221 bytes).
	echoMaxLen = 256
)

// echo is one copy waiting for its time.
type echo struct {
	at       proto.Instant
	from, to netip.AddrPort
	n        int
	b        [echoMaxLen]byte
}

// echoQueue holds the copies to send, in the order they were made (their delays are
// equal, so that is their time order too).
type echoQueue struct {
	q     [maxEchoes]echo
	head  int
	count int
}

// isHandshake reports whether p (unwrapped: a keyx transmit) is an initiation or a
// response, the messages that are echoed.
func isHandshake(p []byte) bool {
	if len(p) < proto.HeaderLen {
		return false
	}
	switch proto.MsgType(p[1]) {
	case proto.TypeInitiation, proto.TypeInitiationAESGCM, proto.TypeResponse:
		return true
	}
	return false
}

// add keeps a copy of t, to go at now + handshakeEchoDelay; a full queue or a
// datagram too long drops it, counted.
func (e *echoQueue) add(now proto.Instant, t proto.Transmit, st *Stats) {
	if e.count == maxEchoes || len(t.Payload) > echoMaxLen {
		st.EchoDrops++
		return
	}
	c := &e.q[(e.head+e.count)%maxEchoes]
	c.at, c.from, c.to = now.Add(handshakeEchoDelay), t.From, t.To
	c.n = copy(c.b[:], t.Payload)
	e.count++
}

// deadline is when the next copy is due (Never: none waits).
func (e *echoQueue) deadline() proto.Instant {
	if e.count == 0 {
		return proto.Never
	}
	return e.q[e.head].at
}

// pop returns the next copy if it is due at now, written into buf.
func (e *echoQueue) pop(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	if e.count == 0 || now < e.q[e.head].at {
		return proto.Transmit{}, false
	}
	c := &e.q[e.head]
	e.head, e.count = (e.head+1)%maxEchoes, e.count-1
	return proto.Transmit{From: c.from, To: c.to, Payload: append(buf[:0], c.b[:c.n]...)}, true
}
