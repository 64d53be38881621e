package node

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/punch"
)

// handleSignal takes a signaling message (register .. error types) for the server
// session. Only the server's sockets may send them, except our own nat-probe coming
// back through a hairpinning NAT.
func (s *serverSession) handleSignal(now proto.Instant, local, from netip.AddrPort, t proto.MsgType, p []byte) error {
	if local == s.cfg.OtherLocal && local.IsValid() {
		return s.handleFamilySignal(now, local, from, t, p)
	}
	if t == proto.TypeNATProbe && s.classifier != nil {
		err := s.classifier.HandleDatagram(now, local, from, p)
		s.drainClassifier(now)
		return s.stats.count(err)
	}
	if !s.isServer(from) {
		s.stats.NotFromServer++
		return ErrNotFromServer
	}
	switch t {
	case proto.TypeRegistered:
		var m proto.Registered
		if err := m.Parse(p); err != nil {
			return s.stats.count(err)
		}
		if s.registered || m.TxID != s.regTxID {
			return s.stats.count(ErrUnexpected)
		}
		s.onRegistered(now, &m)
	case proto.TypeKeepaliveAck:
		var m proto.KeepaliveAck
		if err := m.Parse(p); err != nil {
			return s.stats.count(err)
		}
		if !s.registered {
			return s.stats.count(ErrUnexpected)
		}
		s.onKeepaliveAck(now, &m)
	case proto.TypeNATProbeReply:
		var m proto.NATProbeReply
		if m.Parse(p) == nil && s.reboundObserved(now, local, &m) {
			return nil
		}
		if s.classifier == nil {
			return s.stats.count(ErrUnexpected)
		}
		err := s.classifier.HandleDatagram(now, local, from, p)
		s.drainClassifier(now)
		return s.stats.count(err)
	case proto.TypeRetry:
		return s.onRetry(p)
	case proto.TypeRoomState:
		var m proto.RoomState
		if err := m.Parse(p); err != nil {
			return s.stats.count(err)
		}
		return s.onRoomState(now, &m)
	case proto.TypeError:
		var m proto.Error
		if err := m.Parse(p); err != nil {
			return s.stats.count(err)
		}
		return s.onError(now, &m)
	default:
		s.stats.Unhandled++
		return ErrUnhandled
	}
	return nil
}

func (s *serverSession) onRegistered(now proto.Instant, m *proto.Registered) {
	again, changed := s.everRegistered, s.everRegistered && s.regServer != s.server
	s.everRegistered, s.registered, s.regServer = true, true, s.server
	s.timers.stop(srvRegister)
	s.rtt.registered(now)
	s.session, s.observed = m.Session, m.Observed
	s.setAlternates(m)
	s.keepalive = time.Duration(m.Keepalive) * time.Second
	s.timers.set(srvKeepalive, now.Add(s.keepalive))
	s.timers.set(srvLostTimer, now.Add(serverLostAfter*s.keepalive))
	s.emit(srvRegistered{observed: m.Observed, server: s.server, again: again, changed: changed})
	s.checkUntil, s.lastAnswer = 0, now
	for i := range s.intros {
		// They waited for a session; each has its tries afresh with this server.
		s.intros[i].tries, s.intros[i].next = 0, now
	}
	if len(s.intros) > 0 {
		s.timers.earlier(srvIntroduce, now)
	}
	s.rejoinRooms(now)
	s.registerFamily(now)
	if s.measure() {
		s.startClassifier(now)
		return
	}
	// A server that has just admitted us has no NAT report of ours, and holds
	// introductions until it has one (PROTOCOL §5.10 [SRV-8]): send it now.
	s.sendReport(now)
}

// measure reports whether a registration starts a NAT measurement: the first one
// (or one that has not finished yet), and later only when the report held is
// incomplete and this server has both alternate sockets to complete it. The NAT is
// the node's, not the server's, so a move or a server restart keeps the last
// report: measuring again would cost four fresh sockets and a dozen probes to
// learn what the node already knows.
func (s *serverSession) measure() bool {
	if !s.classified {
		return true
	}
	incomplete := s.nat.Mapping == proto.DependenceUnknown || s.nat.Filtering == proto.DependenceUnknown
	return incomplete && s.altPort.IsValid() && s.altAddr.IsValid()
}

// setAlternates takes the server's other sockets from its registered.
func (s *serverSession) setAlternates(m *proto.Registered) {
	s.altPort, s.altAddr = alternates(s.server, m)
}

func (s *serverSession) onKeepaliveAck(now proto.Instant, m *proto.KeepaliveAck) {
	s.timers.set(srvLostTimer, now.Add(serverLostAfter*s.keepalive))
	s.rtt.keepaliveAcked(now, m.Seq, s.kaSeq)
	s.timers.stop(srvCheck)
	s.checkUntil, s.lastAnswer = 0, now
	s.emit(srvAnswered{})
	s.announceAcked(m.Seq)
	if s.reportLeft > 0 && m.Seq >= s.reportSeq {
		s.reportLeft = 0
		s.timers.stop(srvReport)
	}
	if m.Observed != s.observed {
		// NAT rebinding, reboot, or a move: peers know only our old candidates.
		s.observed = m.Observed
		s.emit(srvMoved{})
	}
}

// introduced: the server introduced peer; its introduce-request is answered.
func (s *serverSession) introduced(peer []byte, txid uint64) (rebound netip.AddrPort) {
	i := slices.IndexFunc(s.intros, func(r introRequest) bool { return r.peer == string(peer) })
	if i < 0 {
		return netip.AddrPort{}
	}
	if r := s.intros[i]; r.fresh.IsValid() {
		if !r.observed.IsValid() || r.txid != txid {
			// Another introduction of the pair (the peer's refresh): ours, naming
			// the fresh socket, is still to come.
			return netip.AddrPort{}
		}
		rebound = r.fresh
	}
	s.intros = slices.Delete(s.intros, i, i+1)
	return rebound
}

// onError takes an error from the current server. One answering an introduce-request
// goes to that request; codes 10 and 11 unsolicited count only with the session's
// tag as their TxID (an off-path sender does not know it); the rest may answer a
// peer's relay-allocate, so Node offers them to the peers.
func (s *serverSession) onError(now proto.Instant, m *proto.Error) error {
	if i := slices.IndexFunc(s.intros, func(r introRequest) bool { return r.txid == m.TxID }); i >= 0 {
		s.introError(now, i, m)
		return nil
	}
	if s.roomError(now, m) {
		return nil
	}
	tagged := s.registered && m.TxID == proto.SessionTag(&s.session)
	reg := !s.registered && m.TxID == s.regTxID
	switch m.Code {
	case proto.CodeReplaced:
		if !tagged {
			s.stats.StrayErrors++
			return ErrUnexpected
		}
		// Another node registered our peer ID (newest wins): registering again
		// would only take it back and start a tug of war.
		s.close("replaced: another node registered this peer ID", proto.CodeReplaced)
		return nil
	case proto.CodeMoving:
		if tagged || reg {
			s.moving(now)
			return nil
		}
	case proto.CodeBadTicket, proto.CodeExpiredTicket:
		if reg {
			s.close("server refused the ticket: "+string(m.Text), m.Code)
			return nil
		}
	case proto.CodeServerFull:
		if reg && len(s.servers) > 1 {
			s.regMoveAt, s.regMoveWhy = now, "server full" // another may have room: at the next repetition
		}
	case proto.CodeNoSession:
		if s.registered {
			s.reregister(now) // the server forgot us (restart, expiry)
		}
	}
	// It may answer a peer's relay-allocate: Node offers it to the peers.
	c := *m
	c.Text = bytes.Clone(m.Text)
	s.emit(srvError{m: c, known: tagged || reg || m.TxID == 0})
	return nil
}

// introError takes the server's refusal of introduce-request i.
func (s *serverSession) introError(now proto.Instant, i int, m *proto.Error) {
	r := &s.intros[i]
	switch {
	case m.Code == proto.CodeMoving:
		// The request goes again, to the next server, once it admits us.
		r.tries = 0
		s.moving(now)
		return
	case m.Code == proto.CodePeerNotReady && r.notReady < notReadyRetries:
		// The server holds the introduction until the peer's NAT report is in,
		// so both sides start punching together with the same facts.
		r.notReady++
		r.tries = 0
		if r.notReady == 1 {
			r.next = now
			s.retryIntroductions(now) // in this call: a deadline is never in the past
			return
		}
		r.next = now.Add(min(notReadyRetry<<min(r.notReady-2, 4), notReadyRetryMax))
		s.timers.earlier(srvIntroduce, r.next)
		return
	}
	s.emit(srvPeerError{EventPeerError{Peer: r.peer, Code: m.Code, Text: string(m.Text)}})
	s.intros = slices.Delete(s.intros, i, i+1)
}

func (s *serverSession) startClassifier(now proto.Instant) {
	var seed [32]byte
	binaryPut(seed[:], s.rng.Uint64(), s.rng.Uint64())
	s.classifier = punch.NewClassifier(punch.ClassifierConfig{
		Session: s.session, Local: s.cfg.Local, Hosts: s.cfg.hosts(),
		Server: s.server, AltPort: s.altPort, AltAddr: s.altAddr, Seed: seed,
	})
	s.classifier.Start(now)
	s.drainClassifier(now)
}

// sendReport sends a keepalive carrying our NAT report, twice (echo.go), and repeats
// it until acknowledged: peers learn our NAT only through the server, which holds
// their introductions until it has it [SRV-8], so make sure it does.
func (s *serverSession) sendReport(now proto.Instant) {
	s.sendKeepaliveEcho(now, s.currentPrediction(), true)
	s.reportSeq, s.reportLeft = s.kaSeq, reportTries
	s.timers.set(srvReport, now.Add(s.rtt.firstContactRTO(reportRTO)))
}

// drainClassifier takes the classifier's events.
func (s *serverSession) drainClassifier(now proto.Instant) {
	for {
		e, ok := s.classifier.PollEvent()
		if !ok {
			return
		}
		switch e := e.(type) {
		case punch.EventNeedSockets:
			s.emit(srvNeedSockets{e.N})
		case punch.EventClassified:
			s.nat, s.predicted, s.classified = e.Behavior, e.Next, true
			s.measured()
			r := s.natReport()
			r.Observed = e.Observed
			s.emit(srvNATReport{r})
			s.sendReport(now)
			waiting := s.waiting
			s.waiting = nil
			for _, w := range waiting {
				s.introduce(now, w.peer, w.refresh)
			}
		}
	}
}

// Errors from HandleDatagram; the owner counts them by kind.
var (
	ErrNotFromServer = errors.New("node: signaling from an address that is not the server")
	ErrUnexpected    = errors.New("node: message answers nothing we asked")
	ErrUnknownPair   = errors.New("node: probe for no known pair")
	ErrUnhandled     = errors.New("node: message type the node does not take")
)

// count files a child's or parser's error under a drop reason and passes it on.
func (st *Stats) count(err error) error {
	switch {
	case err == nil:
	case errors.Is(err, punch.ErrUnexpected), errors.Is(err, ErrUnexpected):
		st.Unexpected++
	case errors.Is(err, punch.ErrBadMAC), errors.Is(err, punch.ErrReflected), errors.Is(err, punch.ErrOtherPair):
		st.BadProbe++
	default:
		st.Malformed++
	}
	return err
}

func binaryPut(dst []byte, a, b uint64) {
	for i := 0; i < 8; i++ {
		dst[i] = byte(a >> (56 - 8*i))
		dst[8+i] = byte(b >> (56 - 8*i))
	}
}
