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
		if s.classifier == nil {
			return s.stats.count(ErrUnexpected)
		}
		err := s.classifier.HandleDatagram(now, local, from, p)
		s.drainClassifier(now)
		return s.stats.count(err)
	case proto.TypeError:
		var m proto.Error
		if err := m.Parse(p); err != nil {
			return s.stats.count(err)
		}
		s.onError(now, &m)
	default:
		s.stats.Unhandled++
		return ErrUnhandled
	}
	return nil
}

func (s *serverSession) onRegistered(now proto.Instant, m *proto.Registered) {
	again := s.everRegistered
	s.everRegistered, s.registered = true, true
	s.timers.stop(srvRegister)
	s.session, s.observed = m.Session, m.Observed
	s.altPort, s.altAddr = m.AltPort, m.AltAddr
	// A server bound to every address names its alt port by port alone
	// (PROTOCOL §5.2): that port on the IP we reached it at.
	if s.altPort.IsValid() && s.altPort.Addr().IsUnspecified() {
		s.altPort = netip.AddrPortFrom(s.cfg.Server.Addr(), s.altPort.Port())
	}
	if s.altPort == s.cfg.Server {
		// Not another socket: answers "from the alt port" would make every
		// filtering test pass and the NAT look open.
		s.altPort = netip.AddrPort{}
	}
	if s.altAddr.IsValid() && s.altAddr.Addr().IsUnspecified() {
		s.altAddr = netip.AddrPort{}
	}
	s.keepalive = time.Duration(m.Keepalive) * time.Second
	s.timers.set(srvKeepalive, now.Add(s.keepalive))
	s.timers.set(srvLostTimer, now.Add(serverLostAfter*s.keepalive))
	s.emit(srvRegistered{observed: m.Observed, again: again})
	s.startClassifier(now)
}

func (s *serverSession) onKeepaliveAck(now proto.Instant, m *proto.KeepaliveAck) {
	s.timers.set(srvLostTimer, now.Add(serverLostAfter*s.keepalive))
	s.emit(srvAnswered{})
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
func (s *serverSession) introduced(peer []byte) {
	if i := slices.IndexFunc(s.intros, func(r introRequest) bool { return r.peer == string(peer) }); i >= 0 {
		s.intros = slices.Delete(s.intros, i, i+1)
	}
}

func (s *serverSession) onError(now proto.Instant, m *proto.Error) {
	if i := slices.IndexFunc(s.intros, func(r introRequest) bool { return r.txid == m.TxID }); i >= 0 {
		if r := &s.intros[i]; m.Code == proto.CodePeerNotReady && r.notReady < notReadyRetries {
			// The server holds the introduction until the peer's NAT report is in,
			// so both sides start punching together with the same facts.
			r.notReady++
			r.tries = 0
			r.next = now.Add(min(notReadyRetry<<min(r.notReady-1, 4), notReadyRetryMax))
			s.timers.earlier(srvIntroduce, r.next)
			return
		}
		s.emit(srvPeerError{EventPeerError{Peer: s.intros[i].peer, Code: m.Code, Text: string(m.Text)}})
		s.intros = slices.Delete(s.intros, i, i+1)
		return
	}
	switch m.Code {
	case proto.CodeBadTicket, proto.CodeExpiredTicket:
		if m.TxID == s.regTxID && !s.registered {
			s.close("server refused the ticket: " + string(m.Text))
			return
		}
	case proto.CodeNoSession:
		if s.registered {
			s.reregister(now) // the server forgot us (restart, expiry)
		}
	}
	// It may answer a peer's relay-allocate: Node offers it to the peers.
	c := *m
	c.Text = bytes.Clone(m.Text)
	s.emit(srvError{c})
}

func (s *serverSession) startClassifier(now proto.Instant) {
	var seed [32]byte
	binaryPut(seed[:], s.rng.Uint64(), s.rng.Uint64())
	s.classifier = punch.NewClassifier(punch.ClassifierConfig{
		Session: s.session, Local: s.cfg.Local, Hosts: s.cfg.hosts(),
		Server: s.cfg.Server, AltPort: s.altPort, AltAddr: s.altAddr, Seed: seed,
	})
	s.classifier.Start(now)
	s.drainClassifier(now)
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
			s.emit(srvNATReport{EventNATReport{Behavior: e.Behavior, Observed: e.Observed}})
			s.sendKeepalive(now)
			// Peers learn our NAT only through the server: make sure it has it.
			s.reportSeq, s.reportLeft = s.kaSeq, reportTries
			s.timers.set(srvReport, now.Add(reportRTO))
			waiting := s.waiting
			s.waiting = nil
			for _, id := range waiting {
				s.introduce(now, id, false)
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
