package node

import (
	"errors"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// ErrUnknownPeer: Send named a peer that was never introduced.
var ErrUnknownPeer = errors.New("node: unknown peer")

// ErrPeerClosed: Send named a peer whose connection has ended.
var ErrPeerClosed = errors.New("node: peer connection closed")

// Send queues msg for peer on lane with mode. Before the session is up the message
// waits in the connection's send buffer (bounded by rudp.Config.SendBufferBytes, and
// per lane by SendQueueBytes of bytes not yet sent if set: a full buffer or queue is
// rudp.ErrSendBufferFull, and the caller waits for packets to leave and the peer to
// take messages and acknowledge them).
func (n *Node) Send(now proto.Instant, peerID string, lane int, mode rudp.Mode, msg []byte) error {
	p, err := n.openPeer(now, peerID)
	if err != nil {
		return err
	}
	err = p.conn.Send(now, lane, mode, msg)
	n.drain(now)
	return err
}

// SendOwned is Send without the copy (rudp.Conn.SendOwned): on success the
// connection takes msg itself and the caller must not touch it again; once the
// message is acknowledged (or, unreliable, has left) msg goes to
// Config.RUDP.Buffers' Put. On an error msg is the caller's again.
func (n *Node) SendOwned(now proto.Instant, peerID string, lane int, mode rudp.Mode, msg []byte) error {
	p, err := n.openPeer(now, peerID)
	if err != nil {
		return err
	}
	err = p.conn.SendOwned(now, proto.Never, lane, mode, msg)
	n.drain(now)
	return err
}

// openPeer advances to now and returns peerID's connection if it is open.
func (n *Node) openPeer(now proto.Instant, peerID string) (*peerConn, error) {
	n.advance(now)
	p, ok := n.byID[peerID]
	if !ok {
		return nil, ErrUnknownPeer
	}
	if p.closed {
		return nil, ErrPeerClosed
	}
	return p, nil
}

// ClosePeer ends the connection with peer, telling it why.
func (n *Node) ClosePeer(now proto.Instant, peerID string, code uint16, text string) error {
	n.advance(now)
	p, ok := n.byID[peerID]
	if !ok {
		return ErrUnknownPeer
	}
	err := p.conn.Close(now, code, text)
	p.closing = true
	p.drainConn(now)
	n.drain(now)
	return err
}

// Consumed gives back the credit of messages the application has taken (DESIGN §11):
// the peer may send that much more. Credit of a connection that has ended, or of a
// peer since forgotten, is ignored.
func (n *Node) Consumed(now proto.Instant, c Credit) {
	n.advance(now)
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

// Peers returns the IDs of the peers the node knows, in introduction order.
func (n *Node) Peers() []string {
	ids := make([]string, len(n.peers))
	for i, p := range n.peers {
		ids[i] = p.id
	}
	return ids
}

// ConnStats returns a peer's connection statistics.
func (n *Node) ConnStats(peerID string) (rudp.Stats, bool) {
	p, ok := n.byID[peerID]
	if !ok {
		return rudp.Stats{}, false
	}
	return p.conn.Stats(), true
}
