package rendezvous

import (
	"github.com/natpass/natpass/proto"
)

// One peer ID registered on two servers: the newest registration wins (PROTOCOL.md
// §12.3). Every registration is claimed on the peer's subject; a server holding an
// older registration of the ID ends it, one holding a newer claims back.

// claim publishes session i's claim on its peer's subject.
func (s *Server) claim(i int32) {
	ss := &s.peers.sessions[i]
	m := proto.ClusterClaim{Server: s.id, RegisteredUnixMs: ss.registeredUnixMs, Key: ss.key, PeerID: ss.peer.Bytes()}
	if s.publish(peerSubject(ss.peer.Bytes()), "", m.Append) {
		s.stats.Cluster.Claims++
	}
}

// handleClaim compares another server's registration of a peer ID with ours.
func (s *Server) handleClaim(now proto.Instant, p []byte) error {
	m := &s.claimMsg
	if err := m.Parse(p); err != nil {
		s.stats.Cluster.DropMalformed++
		return err
	}
	if m.Server == s.id {
		return nil // our own claim, echoed by the bus
	}
	i, ok := s.peers.byPeer[makePeerID(m.PeerID)]
	if !ok {
		return nil
	}
	ss := &s.peers.sessions[i]
	if ss.registeredUnixMs > m.RegisteredUnixMs || ss.registeredUnixMs == m.RegisteredUnixMs && s.id > m.Server {
		// Ours is newer: the other server may not have seen our claim (it was lost,
		// or its clock runs ahead), so tell it again.
		s.stats.Cluster.ClaimsBack++
		s.claim(i)
		return nil
	}
	if ss.key == m.Key {
		// The same node registered elsewhere: it moved. Nothing to tell it.
		s.stats.Cluster.MovedAway++
		s.pushEvent(EventExpired{Peer: ss.peer, Reason: ExpireMoved})
		s.endSession(i)
		return nil
	}
	s.stats.Cluster.Replaced++
	s.replace(i)
	return nil
}

// replace ends session i because another node registered its ID: the old node gets
// error 10 now, and again whenever it uses the dead cookie (tombstones), so it stops
// instead of registering back.
func (s *Server) replace(i int32) {
	ss := &s.peers.sessions[i]
	_ = s.sendError(s.socketIndex(ss.local), ss.addr, proto.SessionTag(&ss.cookie), proto.CodeReplaced, textReplaced, unlimited)
	s.addTombstone(s.now, ss.cookie)
	s.pushEvent(EventExpired{Peer: ss.peer, Reason: ExpireReplaced})
	s.endSession(i)
}
