package node

import (
	"errors"
	"net/netip"
	"time"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// relayHeadroom is what rudp's headroom leaves in front of the keyx transport header:
// room for relay framing to be prepended without a copy.
const relayHeadroom = 4

// maxDatagram bounds what the node decrypts into its scratch buffer.
const maxDatagram = 65535

// ErrUnknownPeer: Send named a peer that was never introduced.
var ErrUnknownPeer = errors.New("node: unknown peer")

// ErrPeerClosed: Send named a peer whose connection has ended.
var ErrPeerClosed = errors.New("node: peer connection closed")

// Send queues msg for peer on lane with mode. Before the session is up the message
// waits in the connection's send buffer (bounded by rudp.Config.SendBufferBytes).
func (n *Node) Send(now proto.Instant, peerID string, lane int, mode rudp.Mode, msg []byte) error {
	p, ok := n.byID[peerID]
	if !ok {
		return ErrUnknownPeer
	}
	if p.closed {
		return ErrPeerClosed
	}
	return p.conn.Send(now, lane, mode, msg)
}

// Close ends the connection with peer, telling it why.
func (n *Node) ClosePeer(now proto.Instant, peerID string, code uint16, text string) error {
	p, ok := n.byID[peerID]
	if !ok {
		return ErrUnknownPeer
	}
	err := p.conn.Close(now, code, text)
	p.closing = true
	n.afterConn(now, p)
	return err
}

// Consumed gives back the credit of messages the application has taken (DESIGN §11):
// the peer may send that much more. Credit of a connection that has ended, or of a
// peer since forgotten, is ignored.
func (n *Node) Consumed(now proto.Instant, c Credit) {
	if c.IsZero() {
		return
	}
	for _, p := range n.peers {
		if p.connNum == c.conn {
			p.conn.Consumed(now, c.rudp)
			return
		}
	}
}

// ConnStats returns a peer's connection statistics.
func (n *Node) ConnStats(peerID string) (rudp.Stats, bool) {
	p, ok := n.byID[peerID]
	if !ok {
		return rudp.Stats{}, false
	}
	return p.conn.Stats(), true
}

// newConn prepares a peer's encrypted, reliable connection.
func (n *Node) newConn(now proto.Instant, p *peer) error {
	if err := n.keyx.AddPeer(p.pub(), keyx.PresharedKey(p.psk)); err != nil {
		return err
	}
	cfg := n.cfg.RUDP
	cfg.Headroom = relayHeadroom + proto.TransportHeaderLen
	cfg.Tailroom = proto.TagLen
	p.conn = rudp.New(cfg, now)
	n.connSeq++
	p.connNum = n.connSeq
	n.byKey[p.key] = p
	return nil
}

// initiate starts a handshake on the peer's route if this side initiates and no
// session is up (or, with rekey, to replace the current one).
func (n *Node) initiate(now proto.Instant, p *peer, rekey bool) {
	if !p.initiator || p.closed || p.established && !rekey {
		return
	}
	local, remote, ok := p.route(n.cfg.Local)
	if !ok {
		return
	}
	if err := n.keyx.Initiate(now, n.cfg.Wall.at(now), p.pub(), local, remote); err != nil && !errors.Is(err, keyx.ErrRateLimited) {
		n.stats.HandshakeErrors++
	}
	if !p.established {
		// keyx repeats a lost initiation only after 5 s (WireGuard's REKEY_TIMEOUT);
		// a first message should not wait that long, so the node asks sooner.
		p.hsTries++
		p.hsRetryAt = now.Add(min(handshakeRetry<<min(p.hsTries-1, 3), 5*time.Second))
	}
	n.afterKeyx(now)
}

// handshakeRetry is when an unanswered first handshake is started again (doubling).
const handshakeRetry = 600 * time.Millisecond

// handleKeyx takes a handshake message (initiation, response, cookie reply).
func (n *Node) handleKeyx(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	err := n.keyx.HandleDatagram(now, local, from, p)
	if err != nil {
		n.stats.BadHandshake++
	}
	n.afterKeyx(now)
	return err
}

// handleTransport opens transport data and hands the plaintext to the peer's
// connection.
func (n *Node) handleTransport(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	sess, pt, err := n.keyx.Open(now, n.open[:0], p)
	if errors.Is(err, keyx.ErrReplay) {
		// A counter seen before: normally the network repeating a datagram (a
		// replayed copy looks the same and is dropped the same way, before the
		// AEAD), not a bad packet.
		n.stats.Duplicates++
		return err
	}
	if err != nil {
		n.stats.BadTransport++
		return err
	}
	pe, ok := n.byKey[[32]byte(sess.Peer())]
	if !ok {
		n.stats.BadTransport++
		return ErrUnexpected
	}
	pe.lastLocal, pe.lastFrom = local, from
	pe.lastRecv = now
	pe.agent.NoteTraffic(now, local, from)
	n.afterKeyx(now) // a responder's session becomes current at its first packet
	if len(pt) > 0 && !pe.closed {
		if err := pe.conn.HandleDatagram(now, pt); errors.Is(err, rudp.ErrDuplicate) {
			n.stats.Duplicates++
		} else if err != nil {
			n.stats.BadTransport++
		}
		n.afterConn(now, pe)
	}
	return nil
}

// afterKeyx drains the handshake machinery's events.
func (n *Node) afterKeyx(now proto.Instant) {
	for {
		e, ok := n.keyx.PollEvent()
		if !ok {
			return
		}
		switch e := e.(type) {
		case keyx.EventEstablished:
			p, ok := n.byKey[[32]byte(e.Peer)]
			if !ok {
				continue
			}
			n.stats.Handshakes++
			if e.Session.Initiator() {
				// The responder takes the session only at our first transport packet
				// (key confirmation): send one at once, empty if rudp has nothing.
				p.confirmPending = true
			}
			p.hsRetryAt, p.hsTries = proto.Never, 0
			if !p.established {
				p.established = true
				n.emit(EventConnected{Peer: p.id})
			}
		case keyx.EventRekey:
			if p, ok := n.byKey[[32]byte(e.Peer)]; ok {
				n.initiate(now, p, true) // the old session works until the new one is up
			}
		case keyx.EventHandshakeTimeout:
			if p, ok := n.byKey[[32]byte(e.Peer)]; ok {
				// WireGuard retries while there is a path; so do we, for a first
				// handshake and for a rekey alike (a lost rekey initiation must not
				// leave the old session to expire).
				n.initiate(now, p, true)
			}
		}
	}
}

// afterConn drains a peer connection's events into node events.
func (n *Node) afterConn(now proto.Instant, p *peer) {
	for {
		e, ok := p.conn.PollEvent()
		if !ok {
			return
		}
		switch e := e.(type) {
		case *rudp.EventMessage:
			n.emit(EventMessage{Peer: p.id, Lane: e.Lane, Mode: e.Mode, Data: p.conn.TakeData(),
				Credit: Credit{conn: p.connNum, rudp: e.Credit}})
		case *rudp.EventClosed:
			p.closed = true
			// Nothing more goes through the relay for it: no refreshes, no
			// allocations after a re-registration.
			p.relay.off, p.relay.next = true, proto.Never
			n.emit(EventPeerClosed{Peer: p.id, Code: e.Reason.Code, Local: e.Reason.Local, Reason: e.Reason.String()})
		}
	}
}

// pollConn seals the next rudp packet of p in place and returns it as a transmit.
func (n *Node) pollConn(now proto.Instant, p *peer, buf []byte) (proto.Transmit, bool) {
	if !p.established {
		return proto.Transmit{}, false
	}
	local, remote, ok := p.route(n.cfg.Local)
	if !ok {
		return proto.Transmit{}, false
	}
	sess := n.keyx.Current(p.pub())
	if sess == nil || !sess.Confirmed() {
		return proto.Transmit{}, false
	}
	pt, ok := p.conn.PollTransmit(now, buf)
	if !ok {
		if !p.confirmPending {
			return proto.Transmit{}, false
		}
		pt = buf[relayHeadroom+proto.TransportHeaderLen : relayHeadroom+proto.TransportHeaderLen]
	}
	p.confirmPending = false
	// pt sits at buf[relayHeadroom+TransportHeaderLen:]: Seal writes the header in
	// front of it and encrypts it where it is.
	out, err := sess.Seal(now, buf[relayHeadroom:relayHeadroom], pt)
	if err != nil {
		n.stats.SealErrors++
		return proto.Transmit{}, false
	}
	return proto.Transmit{From: local, To: remote, Payload: out}, true
}

// connDeadline is when a peer's connection needs a timer call; connections that
// cannot send yet are left alone, or their wish to send now would spin the caller.
func (n *Node) connDeadline(p *peer) proto.Instant {
	if !p.established || p.closed {
		return proto.Never
	}
	if _, _, ok := p.route(n.cfg.Local); !ok {
		return proto.Never
	}
	if p.confirmPending {
		return 0
	}
	return p.conn.Deadline()
}

// quietCheckAfter bounds how long data may be in flight on a direct path with nothing
// heard from the peer before the path is checked: a steady stream keeps rudp's probe
// timeout from ever firing (RFC 9002 arms it from the latest packet sent), so silence
// is the signal.
const quietCheckMin = 300 * time.Millisecond

// quietCheckDue is when the peer's direct path should be checked because data is in
// flight and the peer has gone quiet; Never when no check is due.
func (n *Node) quietCheckDue(p *peer) proto.Instant {
	if !p.established || p.closed || p.agent.Checking() || p.agent.Suspected() {
		return proto.Never
	}
	if _, ok := p.agent.Active(); !ok {
		return proto.Never
	}
	st := p.conn.Stats()
	if st.BytesInFlight == 0 {
		return proto.Never
	}
	// An answered check counts as hearing from the peer: otherwise a path with no
	// delay would answer each check at once and be checked again at the same instant.
	heard := max(p.lastRecv, p.agent.LastReply())
	return heard.Add(max(4*st.SRTT, quietCheckMin))
}
