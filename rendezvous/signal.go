package rendezvous

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/relayframe"
)

// The handlers of the natpass signaling messages the server accepts (PROTOCOL.md
// §5.1, §5.3, §5.5, §5.7); the rules they follow are PROTOCOL.md §5.10.

func (s *Server) handleRegister(now proto.Instant, sock int, from netip.AddrPort, p []byte) error {
	m := &s.register
	if err := m.Parse(p); err != nil {
		s.stats.DropMalformed++
		return err
	}
	if err := s.admitRegister(now, sock, from, m, len(p)); err != nil {
		return err
	}
	if s.draining {
		_ = s.sendError(sock, from, m.TxID, proto.CodeMoving, textMoving, len(p))
		return ErrDraining
	}
	t := &s.ticket
	if err := s.verifyTicket(now, sock, from, m, t, len(p)); err != nil {
		return err
	}

	peer := makePeerID(t.PeerID)
	nat := proto.NATBehavior{}
	replaced := false
	if i, ok := s.peers.byPeer[peer]; ok {
		old := &s.peers.sessions[i]
		if old.regTxID == m.TxID && old.key == t.PublicKey && old.addr == from &&
			sameAddrPort(old.local, s.sockets[sock]) {
			// The same register again (its reply was lost): the same answer, so a
			// node that receives both replies holds one valid cookie, not two.
			old.ticketExpiryUnix = t.ExpiryUnix
			s.peers.refresh(i, now)
			s.stats.Retransmits++
			old.regSentAt, old.rttPending = now, old.rtt == 0
			return s.sendRegistered(sock, old, len(p))
		}
		nat, replaced = s.supersede(i, t.PublicKey), true
	} else if s.peers.full() {
		s.stats.ServerFull++
		_ = s.sendError(sock, from, m.TxID, proto.CodeServerFull, textServerFull, len(p))
		return ErrServerFull
	}

	ns := session{
		peer:             peer,
		key:              t.PublicKey,
		addr:             from,
		local:            s.sockets[sock],
		nat:              nat,
		suites:           m.Suites, // a re-registration's suites replace the old ones
		ticketExpiryUnix: t.ExpiryUnix,
		regTxID:          m.TxID,
		lastSeen:         now,
		registeredAt:     now,
		registeredUnixMs: uint64(max(s.wall.TimeAt(now).UnixMilli(), 0)),
		regSentAt:        now,
		rttPending:       true,
	}
	ns.nhosts = uint8(copy(ns.hosts[:], m.Hosts))
	ns.cookie = s.newCookie()
	s.rng.Read(ns.tag[:])
	i := s.peers.add(ns)
	s.stats.Registered++
	if s.cfg.Cluster {
		s.interest.mark(peer)
		s.claim(i)
	}
	s.pushEvent(EventRegistered{Peer: peer, Addr: from, Replaced: replaced})
	return s.sendRegistered(sock, &s.peers.sessions[i], len(p))
}

// verifyTicket checks register m's ticket into t, answering a bad or expired one
// with its error (within the request's size).
func (s *Server) verifyTicket(now proto.Instant, sock int, from netip.AddrPort, m *proto.Register, t *proto.Ticket, size int) error {
	err := s.tickets.verify(m.Ticket, s.wall.UnixAt(now), t)
	if err == nil {
		return nil
	}
	code, text := proto.CodeBadTicket, textBadTicket
	if err == ErrTicketExpired {
		code, text = proto.CodeExpiredTicket, textExpired
		s.stats.ExpiredTicket++
	} else {
		s.stats.BadTicket++
	}
	_ = s.sendError(sock, from, m.TxID, code, text, size)
	return err
}

// supersede ends session i, which a new registration of its peer ID with key
// replaces, and returns the NAT behaviour the new session starts with: the same
// node (same key), perhaps moved, keeps its last report, the best guess until it
// reports again; another node takes the ID and the old one is told (§12.3).
func (s *Server) supersede(i int32, key [proto.KeyLen]byte) proto.NATBehavior {
	s.stats.Replaced++
	old := &s.peers.sessions[i]
	if old.key != key {
		s.replace(i)
		return proto.NATBehavior{}
	}
	nat := old.nat
	s.endSession(i)
	return nat
}

// newCookie draws a session cookie no live session holds. With 128 random bits a
// collision is never expected; the loop is there so that one cannot hijack a session.
func (s *Server) newCookie() proto.Session {
	var c proto.Session
	for {
		s.rng.Read(c[:])
		if _, taken := s.peers.byCookie[c]; !taken {
			return c
		}
	}
}

func (s *Server) sendRegistered(sock int, ss *session, limit int) error {
	return s.sendRegisteredTo(sock, ss.addr, ss.regTxID, &ss.cookie, limit)
}

// sendRegisteredTo answers a register or register-family with txid from to, which
// reached socket sock: the alternates named are those of sock's IP family ([SRV-1]).
func (s *Server) sendRegisteredTo(sock int, to netip.AddrPort, txid uint64, cookie *proto.Session, limit int) error {
	m := proto.Registered{
		TxID:      txid,
		Session:   *cookie,
		Observed:  to,
		Keepalive: s.keepaliveS,
		AltPort:   s.cfg.AltPort,
		AltAddr:   s.cfg.AltAddr,
	}
	if sock >= sockOtherPrimary {
		m.AltPort, m.AltAddr = s.cfg.OtherAltPort, s.cfg.OtherAltAddr
	}
	return s.commitReply(sock, to, m.Append(s.tx.begin()), limit)
}

// session finds the live session of cookie and charges the request to it. A request
// with an unknown cookie is unauthenticated: it is charged to the server-wide
// no-session budget ([SRV-9]) and answered with error 5 within its own size. A
// session whose ticket has expired ends here with error 3.
func (s *Server) session(now proto.Instant, sock int, from netip.AddrPort, cookie *proto.Session, txid uint64, reqLen int) (int32, error) {
	i, ok := s.peers.byCookie[*cookie]
	if !ok {
		if err := s.admitNoSession(now); err != nil {
			return nilSlot, err
		}
		if s.tombstones.has(now, cookie, s.cfg.SessionTimeout) {
			// Replaced (§12.3): say so again, so the old node stops instead of
			// registering back and taking the ID from the new one.
			_ = s.sendError(sock, from, proto.SessionTag(cookie), proto.CodeReplaced, textReplaced, reqLen)
			return nilSlot, ErrReplaced
		}
		s.stats.NoSession++
		_ = s.sendError(sock, from, txid, proto.CodeNoSession, textNoSession, reqLen)
		return nilSlot, ErrNoSession
	}
	ss := &s.peers.sessions[i]
	ss.lastActive = now
	if s.wall.UnixAt(now) >= ss.ticketExpiryUnix {
		s.stats.ExpiredTicket++
		s.expire(i, ExpireTicketExpired)
		_ = s.sendError(sock, from, txid, proto.CodeExpiredTicket, textExpired, reqLen)
		return nilSlot, ErrTicketExpired
	}
	if !ss.bucket.allow(now, s.cfg.SessionRate) {
		return nilSlot, s.refuseRate(now, &ss.limiter, sock, from, txid, reqLen)
	}
	if s.tx.free() == 0 {
		s.stats.DropQueueFull++
		return nilSlot, ErrQueueFull
	}
	if s.draining {
		if txid == 0 {
			txid = proto.SessionTag(cookie)
		}
		_ = s.sendError(sock, from, txid, proto.CodeMoving, textMoving, reqLen)
		return nilSlot, ErrDraining
	}
	return i, nil
}

func (s *Server) handleKeepalive(now proto.Instant, sock int, from netip.AddrPort, p []byte) error {
	m := &s.keepalive
	if err := m.Parse(p); err != nil {
		s.stats.DropMalformed++
		return err
	}
	i, err := s.session(now, sock, from, &m.Session, 0, len(p))
	if err != nil {
		return err
	}
	ss := &s.peers.sessions[i]
	// Only the session's own socket sees the address other peers will reach the node
	// at; a keepalive that reached another socket proves liveness of another mapping.
	// While the session has an other-family binding, a keepalive of that family
	// speaks for the binding only, whatever socket it reached (one socket may serve
	// both families): the registered address never changes family under a binding.
	switch {
	case ss.addr2.IsValid() && isIPv4(from) != isIPv4(ss.addr):
		s.refreshBinding(now, i, sock, from, m)
	case sameAddrPort(ss.local, s.sockets[sock]):
		if from != ss.addr {
			s.stats.Rebinds++
			s.pushEvent(EventRebound{Peer: ss.peer, Old: ss.addr, New: from})
			ss.addr = from
		}
		s.peers.refresh(i, now)
		ss.nat = m.NAT
		// A prediction is only passed on for the node's own public address: peers
		// aim probes at it, and the server must not let a node aim them elsewhere.
		ss.predicted = netip.AddrPort{}
		if m.Predicted.IsValid() && m.Predicted.Addr() == from.Addr() {
			ss.predicted = m.Predicted
		}
	}
	s.stats.Keepalives++
	ack := proto.KeepaliveAck{Seq: m.Seq, Observed: from}
	return s.commitReply(sock, from, ack.Append(s.tx.begin()), unlimited)
}

func (s *Server) handleNATProbe(now proto.Instant, sock int, from netip.AddrPort, p []byte) error {
	m := &s.probe
	if err := m.Parse(p); err != nil {
		s.stats.DropMalformed++
		return err
	}
	i, err := s.session(now, sock, from, &m.Session, m.TxID, len(p))
	if err != nil {
		return err
	}
	if ss := &s.peers.sessions[i]; ss.rttPending {
		ss.rtt, ss.rttPending = max(now.Sub(ss.regSentAt), time.Millisecond), false
	}
	out, ok := s.chooseSocket(sock, m.Change)
	if !ok {
		s.stats.NoAltSocket++
		_ = s.sendError(sock, from, m.TxID, proto.CodeMalformed, textNoAltSocket, len(p))
		return ErrNoAltSocket
	}
	s.stats.NATProbes++
	// Observed is the probe's source as the socket it arrived on saw it; the socket
	// that answers is the datagram's source (PROTOCOL.md §5.6).
	reply := proto.NATProbeReply{TxID: m.TxID, Observed: from}
	return s.commitReply(out, from, reply.Append(s.tx.begin()), unlimited)
}

// notReadyWindow is how long after registering a target may keep introductions
// waiting for its NAT report (it measures in about a second).
const notReadyWindow = 10 * time.Second

// unmeasured reports whether session i has not reported its NAT yet and is still
// young enough to be waited for.
func (s *Server) unmeasured(now proto.Instant, i int32) bool {
	ss := &s.peers.sessions[i]
	return ss.nat.Mapping == proto.DependenceUnknown && now < ss.registeredAt.Add(notReadyWindow)
}

func (s *Server) handleIntroduce(now proto.Instant, sock int, from netip.AddrPort, p []byte) error {
	m := &s.introReq
	if err := m.Parse(p); err != nil {
		s.stats.DropMalformed++
		return err
	}
	i, err := s.session(now, sock, from, &m.Session, m.TxID, len(p))
	if err != nil {
		return err
	}
	j, ok := s.localPeer(now, m.PeerID)
	if !ok && s.cfg.Cluster {
		return s.askIntroduction(now, sock, from, m, i, len(p))
	}
	if err := s.refuseIntroduce(now, sock, from, m, i, j, ok, len(p)); err != nil {
		return err
	}
	req, tgt := &s.peers.sessions[i], &s.peers.sessions[j]
	pairID, _ := s.derivePair(&req.tag, &tgt.tag)
	e, first := s.introEntry(now, m.Flags, m.TxID, req, tgt, pairID)
	rs, ts := e.side(&req.tag), e.side(&tgt.tag)
	s.joinRebound(now, e, first, m, req, ts)
	// Both introductions go to the sessions' registered addresses, never to the
	// request's source: a cookie alone does not redirect 600-byte replies. A repeated
	// request means the requester lacks its copy; the target gets one only while it
	// has not acknowledged.
	rs.txid, rs.acked = m.TxID, false
	s.sendIntroCopy(now, e, rs, req, tgt)
	if !ts.acked {
		s.sendIntroCopy(now, e, ts, tgt, req)
	}
	if first {
		s.stats.Introductions++
		s.pushEvent(EventIntroduced{Requester: req.peer, Target: tgt.peer, PairID: pairID, Flags: m.Flags})
	}
	return nil
}

// refuseIntroduce answers an introduce-request that cannot be served now (session i
// asks for j, which exists if ok) with its error, or returns nil.
func (s *Server) refuseIntroduce(now proto.Instant, sock int, from netip.AddrPort, m *proto.IntroduceRequest, i, j int32, ok bool, size int) error {
	switch {
	case !ok:
		s.stats.UnknownPeer++
		_ = s.sendError(sock, from, m.TxID, proto.CodeUnknownPeer, textUnknownPeer, size)
		return ErrUnknownPeer
	case j == i:
		s.stats.SelfIntroduction++
		_ = s.sendError(sock, from, m.TxID, proto.CodeMalformed, textSelf, size)
		return ErrSelfIntroduction
	case m.Flags&proto.IntroRelayOnly != 0 && s.cfg.DisableRelay:
		s.stats.RelayDenied++
		_ = s.sendError(sock, from, m.TxID, proto.CodeRelayDenied, textRelayDenied, size)
		return ErrRelayDenied
	case m.Flags&proto.IntroRelayOnly == 0 && (s.unmeasured(now, j) || s.unmeasured(now, i)):
		// Both peers must choose their strategy from both NAT reports and start
		// punching at the same moment (a Linux NAT punished for an early probe
		// moves the late side's port, DESIGN §9). So the introduction waits for both
		// reports (the requester's too: its report may have been lost); a side that
		// has not reported after notReadyWindow is introduced anyway, as unknown.
		s.stats.PeerNotReady++
		_ = s.sendError(sock, from, m.TxID, proto.CodePeerNotReady, textNotReady, size)
		return ErrPeerNotReady
	case s.tx.free() < 2:
		s.stats.DropQueueFull++
		return ErrQueueFull
	}
	return nil
}

// localPeer returns the slot of the live local session of peer ID id; a session
// whose ticket has expired ends here.
func (s *Server) localPeer(now proto.Instant, id []byte) (int32, bool) {
	j, ok := s.peers.byPeer[makePeerID(id)]
	if ok && s.wall.UnixAt(now) >= s.peers.sessions[j].ticketExpiryUnix {
		s.stats.ExpiredTicket++
		s.expire(j, ExpireTicketExpired)
		return nilSlot, false
	}
	return j, ok
}

// joinRebound gives the target's copies of e the requester's rebound address (its
// fresh socket's mapping; its IP must be the requester's, as for predictions
// [SRV-7]). A rebound that joins a pending introduction (the peer's refresh or
// rebound came first, within the merge window) restarts its start instant and sends
// the target a new copy naming the address: both sides search again together, each
// aiming at the other's fresh mapping (PROTOCOL.md §5.8.1, §9.3).
func (s *Server) joinRebound(now proto.Instant, e *pendingIntro, first bool, m *proto.IntroduceRequest, req *session, ts *pendingSide) {
	if m.Flags&proto.IntroRebound == 0 || m.Rebound.Addr() != req.addr.Addr() || ts.rebound == m.Rebound {
		return
	}
	ts.rebound = m.Rebound
	s.stats.Rebounds++
	if !first {
		e.firstSent = now
		ts.acked, ts.sent = false, 0 // its next copy names the address (sendIntroCopy)
	}
}

// introEntry finds the pending introduction of the pair that this request (flags,
// txid, from req) repeats, or starts a new one (first), with its relay token. Either
// session may be a remote one (remoteTable).
func (s *Server) introEntry(now proto.Instant, flags uint8, txid uint64, req, tgt *session, pairID uint64) (e *pendingIntro, first bool) {
	flags &^= proto.IntroRebound // introductions never carry it (joinRebound)
	var keep [2]netip.AddrPort
	var keepTags [2][proto.RegTagLen]byte
	e = s.pending.find(now, pairID)
	if e != nil && (e.flags != flags || e.askedAgain(&req.tag, txid) ||
		flags&proto.IntroRefresh != 0 && !e.repeatOf(&req.tag, txid) &&
			(now >= e.firstSent.Add(refreshMerge) || e.moved(req, tgt))) {
		// Another relay policy, or a refresh: a new introduction with a new start
		// instant, not a repeat of the last one. Two refreshes close together (both
		// sides noticed the same loss) are one: two start instants would let one
		// side probe before the other primed. Unless a side moved since (a node
		// back on UDP from its TCP fallback, PROTOCOL §14): the last one named its
		// old address, which no probe reaches, and its peer, probing the right
		// address meanwhile, would leave a Linux NAT in front of it [UNREPLIED]
		// entries that push its own probes onto another port (DESIGN §9).
		e.live = false
		if now < e.firstSent.Add(refreshMerge) {
			// Replaced only because a side moved: a rebound address the old one
			// held still names a fresh socket of this search (both sides rebind at
			// once after a NAT reboot, which also moves the rebooted side).
			keep = [2]netip.AddrPort{e.sides[0].rebound, e.sides[1].rebound}
			keepTags = [2][proto.RegTagLen]byte{e.sides[0].tag, e.sides[1].tag}
		}
		e = nil
	}
	first = e == nil
	if first {
		e = s.pending.add(now, pairID)
		e.sides[0] = pendingSide{tag: req.tag, cookie: req.cookie, peer: req.peer, addr: req.addr}
		e.sides[1] = pendingSide{tag: tgt.tag, cookie: tgt.cookie, peer: tgt.peer, addr: tgt.addr}
		s.introTiming(e, req, tgt)
		for k := range keep {
			if sd := e.side(&keepTags[k]); sd != nil {
				sd.rebound = keep[k]
			}
		}
		e.flags = flags
		if !s.cfg.DisableRelay && flags&proto.IntroNoRelay == 0 {
			unix := s.wall.UnixAt(now)
			expiry := min(unix+uint64(s.cfg.RelayTokenLifetime/time.Second), req.ticketExpiryUnix, tgt.ticketExpiryUnix)
			e.tokenLen = len(s.tokens.AppendToken(e.token[:0], relayframe.Token{
				PairID: pairID, ExpiryUnix: expiry, KeyA: req.key, KeyB: tgt.key,
			}))
		}
	}
	return e, first
}

// sendIntroduction tells to about the peer about, whose predicted address is
// predicted (sendIntroCopy). Relay-only introductions carry no candidates: the
// addresses stay hidden (PROTOCOL.md §5.7).
func (s *Server) sendIntroduction(to, about *session, predicted netip.AddrPort, txid uint64, token []byte, psk *[proto.KeyLen]byte, flags uint8, startDelayMs uint16) {
	m := &s.intro
	m.TxID = txid
	m.PeerID = about.peer.Bytes()
	m.PeerKey = about.key
	m.NAT = about.nat
	m.StartDelayMs = startDelayMs
	m.RelayToken = token
	m.PSK = *psk
	m.Flags = flags
	m.PeerSuites = about.suites
	m.Candidates = s.cands[:0]
	if flags&proto.IntroRelayOnly == 0 {
		srflxIsHost := false
		for _, h := range about.hosts[:about.nhosts] {
			m.Candidates = append(m.Candidates, proto.Candidate{Kind: proto.CandidateHost, Addr: h})
			srflxIsHost = srflxIsHost || h == about.addr
		}
		if !srflxIsHost {
			m.Candidates = append(m.Candidates, proto.Candidate{Kind: proto.CandidateServerReflexive, Addr: about.addr})
		}
		if other := about.addr2; other.IsValid() && !isHost(about, other) {
			m.Candidates = append(m.Candidates, proto.Candidate{Kind: proto.CandidateServerReflexive, Addr: other})
		}
		if predicted.IsValid() {
			m.Candidates = append(m.Candidates, proto.Candidate{Kind: proto.CandidatePredicted, Addr: predicted})
		}
	}
	sock := s.socketIndex(to.local)
	_ = s.commitReply(sock, to.addr, m.Append(s.tx.begin()), unlimited)
}

// derivePair returns the pair ID and PSK of the two registrations with tags a and
// b: HMAC-SHA256 under the pair key over a label and both tags in sorted order. So
// both peers asking for each other at once get the same PSK and pair ID, on one
// server or on two of a cluster (the pair key derives from the shared secret), and
// a new registration of either side gives the pair new ones.
func (s *Server) derivePair(a, b *[proto.RegTagLen]byte) (uint64, [proto.KeyLen]byte) {
	lo, hi := a, b
	if bytes.Compare(lo[:], hi[:]) > 0 {
		lo, hi = hi, lo
	}
	var psk [proto.KeyLen]byte
	s.pairMAC.Reset()
	s.pairMAC.Write(labelPairPSK)
	s.pairMAC.Write(lo[:])
	s.pairMAC.Write(hi[:])
	copy(psk[:], s.pairMAC.Sum(s.pairSum[:0]))
	s.pairMAC.Reset()
	s.pairMAC.Write(labelPairID)
	s.pairMAC.Write(lo[:])
	s.pairMAC.Write(hi[:])
	id := binary.BigEndian.Uint64(s.pairMAC.Sum(s.pairSum[:0]))
	return id, psk
}
