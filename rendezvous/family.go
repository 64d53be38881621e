package rendezvous

import (
	"net/netip"

	"github.com/natpass/natpass/proto"
)

// Dual stack (PROTOCOL.md §5.12, [SRV-14]): a node registered over one IP family binds
// its socket of the other family to the same session with register-family; its
// keepalives from that socket keep the binding, and introductions pass the bound
// address to peers as a server-reflexive candidate.

var textSameFamily = []byte("register-family from the registered family")

// handleRegisterFamily binds the request's source to the session its cookie names.
// Checked in order: it parses (else dropped), the cookie is live (else error 5 within
// the request's size, charged to the source as an unknown cookie is), the session's
// rate, and the source's family is not the session's registered one (error 1).
func (s *Server) handleRegisterFamily(now proto.Instant, sock int, from netip.AddrPort, p []byte) error {
	m := &s.regFamily
	if err := m.Parse(p); err != nil {
		s.stats.DropMalformed++
		return err
	}
	i, err := s.session(now, sock, from, &m.Session, m.TxID, len(p))
	if err != nil {
		return err
	}
	ss := &s.peers.sessions[i]
	if isIPv4(from) == isIPv4(ss.addr) {
		s.stats.SameFamily++
		_ = s.sendError(sock, from, m.TxID, proto.CodeMalformed, textSameFamily, len(p))
		return ErrSameFamily
	}
	local := s.sockets[sock]
	if ss.regf2TxID == m.TxID && ss.addr2 == from && sameAddrPort(ss.local2, local) {
		// Its reply was lost: the same answer, and the binding is fresh again.
		s.stats.FamilyRetransmits++
	} else {
		// A new binding replaces the old one; the NAT report is that of the old
		// mapping, so it waits for the node's next keepalive.
		s.stats.FamilyBinds++
		s.peers.unbind(i)
		ss.regf2TxID = m.TxID
	}
	s.peers.bind(i, from, local, now)
	// The cookie proves reception at the registered address, not at this source:
	// the reply stays within the request's size ([AMP-1]; 88 bytes pay for 85).
	return s.sendRegisteredTo(sock, from, m.TxID, &ss.cookie, len(p))
}

// refreshBinding applies keepalive m, which came from from, an address of the
// family of session i's other-family binding, to socket sock: on the binding's
// socket it refreshes the binding, moves it to from (the NAT rebound) and stores that
// family's NAT report. On another socket it changes nothing ([SRV-4]).
func (s *Server) refreshBinding(now proto.Instant, i int32, sock int, from netip.AddrPort, m *proto.Keepalive) {
	ss := &s.peers.sessions[i]
	if !sameAddrPort(ss.local2, s.sockets[sock]) {
		return
	}
	if from != ss.addr2 {
		s.stats.FamilyRebinds++
	}
	s.peers.bind(i, from, ss.local2, now)
	ss.nat2 = m.NAT // the prediction is ignored: peers probe this family without one
}

// expireBindings drops the other-family bindings not refreshed for the session
// timeout; the sessions live on.
func (s *Server) expireBindings(now proto.Instant) {
	// Bounded by the table size: each iteration unbinds one session.
	for i := s.peers.oldestBound(); i != nilSlot; i = s.peers.oldestBound() {
		if now < s.peers.sessions[i].lastSeen2.Add(s.cfg.SessionTimeout) {
			break
		}
		s.stats.FamilyExpired++
		s.peers.unbind(i)
	}
}

// isHost reports whether a is one of ss's host addresses: a candidate given once.
func isHost(ss *session, a netip.AddrPort) bool {
	for _, h := range ss.hosts[:ss.nhosts] {
		if h == a {
			return true
		}
	}
	return false
}
