package rendezvous

import (
	"time"

	"github.com/natpass/natpass/proto"
)

// Draining (PROTOCOL.md §12.6): the server tells every node to move to another
// server of its cluster, answers every request with error 11, and keeps relaying
// until the nodes have moved (their claims elsewhere end the sessions here).

// Drain notices go to every session at the start, and again drainRepeat later to
// those still here, drainRounds times in all: a node that got none of them and
// sends nothing meanwhile is taken for gone (it finds another server by itself when
// it notices this one's silence).
const (
	drainRepeat = time.Second
	drainRounds = 3
)

// Drain starts draining. The notices go out as transmit room allows: HandleTimeout
// sends the next ones. Drain is final.
func (s *Server) Drain(now proto.Instant) {
	s.advance(now)
	defer s.rearm()
	if s.draining {
		return
	}
	s.draining, s.drainStart = true, now
	s.drainRound()
	s.sendDrainNotices()
}

// drainRound lists every session for one more round of notices.
func (s *Server) drainRound() {
	s.drainRounds++
	s.drainList = s.drainList[:0]
	for i := s.peers.oldest(); i != nilSlot; i = s.peers.links[i].next {
		s.drainList = append(s.drainList, s.peers.sessions[i].cookie)
	}
}

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining }

// DrainSettled reports whether a drain has done what it can: no session is left, or
// every round of notices went out and no session left has used it (a request or a
// relay frame) for drainRepeat: its node is gone, or lives on elsewhere without a
// claim reaching us. A node still relaying through the server keeps it waiting.
func (s *Server) DrainSettled(now proto.Instant) bool {
	if !s.draining {
		return false
	}
	if s.peers.len() == 0 {
		return true
	}
	if s.drainRounds < drainRounds || len(s.drainList) > 0 || now < s.drainStart.Add(drainRounds*drainRepeat) {
		return false
	}
	for i := s.peers.oldest(); i != nilSlot; i = s.peers.links[i].next {
		if now < s.peers.sessions[i].lastActive.Add(drainRepeat) {
			return false
		}
	}
	return true
}

// drainDeadline is when the next round of notices is due (Never when none is).
func (s *Server) drainDeadline() proto.Instant {
	switch {
	case !s.draining:
		return proto.Never
	case len(s.drainList) > 0:
		return s.now
	case s.drainRounds < drainRounds && s.peers.len() > 0:
		return s.drainStart.Add(time.Duration(s.drainRounds) * drainRepeat)
	}
	return proto.Never
}

// sendDrainNotices starts the next round when it is due, then sends error 11 to as
// many listed sessions as the transmit queue has room for.
func (s *Server) sendDrainNotices() {
	if !s.draining {
		return
	}
	if len(s.drainList) == 0 && s.drainRounds < drainRounds && s.now >= s.drainDeadline() {
		s.drainRound()
	}
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
