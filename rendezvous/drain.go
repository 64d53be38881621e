package rendezvous

import "github.com/natpass/natpass/proto"

// Draining (PROTOCOL.md §12.6): the server tells every node to move to another
// server of its cluster, answers every request with error 11, and keeps relaying
// until the nodes have moved (their claims elsewhere end the sessions here).

// Drain starts draining. The notices go out as transmit room allows: HandleTimeout
// sends the next ones (Deadline stays at now until all are queued). Drain is final.
func (s *Server) Drain(now proto.Instant) {
	s.advance(now)
	defer s.rearm()
	if s.draining {
		return
	}
	s.draining = true
	for i := s.peers.oldest(); i != nilSlot; i = s.peers.links[i].next {
		s.drainList = append(s.drainList, s.peers.sessions[i].cookie)
	}
	s.sendDrainNotices()
}

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining }

// sendDrainNotices sends error 11 to as many listed sessions as the transmit queue
// has room for.
func (s *Server) sendDrainNotices() {
	for len(s.drainList) > 0 && s.tx.free() > 0 {
		c := s.drainList[0]
		s.drainList = s.drainList[1:]
		i, ok := s.peers.byCookie[c]
		if !ok {
			continue // gone meanwhile
		}
		ss := &s.peers.sessions[i]
		_ = s.sendError(s.socketIndex(ss.local), ss.addr, proto.SessionTag(&ss.cookie), proto.CodeMoving, textMoving, unlimited)
		s.stats.Cluster.DrainNoticesQueued++
	}
}
