package node

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/punch"
)

// Dual stack (DESIGN §14, PROTOCOL.md §5.12). A node on a dual-stack host registers
// over Local's family as always, then binds its socket of the other family
// (Config.OtherLocal) to the same session with register-family, sent to that
// family's address of its server (Config.OtherServers). The binding gives the
// server the node's other-family address, which it passes to peers as a
// server-reflexive candidate; a second punch.Classifier measures that family's NAT
// (in practice an IPv6 firewall), and keepalives from OtherLocal keep the binding
// and carry that measurement. None of it ever moves the node to another server:
// the other family is a bonus, and the session stands on Local's.

// Other-family timing and bounds.
const (
	// familyTries: register-family sent this many times (at registerRTO,
	// doubling) without an answer, the node gives up until its next registration
	// (Stats.FamilyGaveUp).
	familyTries = 4
)

// otherFamily is the serverSession's state for its other-family socket. Its timers
// are the session's srvFamily (register-family repeats) and srvFamilyKeepalive.
type otherFamily struct {
	server   netip.AddrPort // the current server's address of OtherLocal's family (zero: none)
	txid     uint64         // the register-family's
	tries    int            // register-family sends since the latest registration or loss
	rto      time.Duration
	bound    bool // the server answered: it holds OtherLocal's address for the session
	observed netip.AddrPort
	altPort  netip.AddrPort
	altAddr  netip.AddrPort
	// kaOut: the latest keepalive is unanswered; reporting: a new measurement is
	// being sent, the keepalive repeated (reportLeft more times) until one is
	// acknowledged.
	kaOut      bool
	kaSeq      uint32
	reporting  bool
	reportLeft int
	classifier *punch.Classifier
	nat        proto.NATBehavior
	measured   bool // nat holds a finished measurement
}

// familyServer returns the other-family address of the server the node registers
// with now, or zero when the node is single stack or that server has none.
func (s *serverSession) familyServer() netip.AddrPort {
	if !s.cfg.OtherLocal.IsValid() || s.cur >= len(s.cfg.OtherServers) {
		return netip.AddrPort{}
	}
	a := s.cfg.OtherServers[s.cur]
	if !a.IsValid() || is6(a) != is6(s.cfg.OtherLocal) {
		return netip.AddrPort{}
	}
	return a
}

func is6(a netip.AddrPort) bool { return !a.Addr().Unmap().Is4() }

// registerFamily starts binding OtherLocal to the session just registered (every
// registration: the first, re-registrations, moves). The binding of an earlier
// session died with it.
func (s *serverSession) registerFamily(now proto.Instant) {
	s.dropFamily()
	f := &s.fam
	f.server = s.familyServer()
	if !f.server.IsValid() {
		return
	}
	f.txid, f.tries, f.rto = s.rng.Uint64(), 0, registerRTO
	s.sendRegisterFamily(now)
}

// dropFamily forgets the binding, its measurement under way and its timers; the
// measured behaviour stays (it is the network's, not the server's).
func (s *serverSession) dropFamily() {
	f := &s.fam
	f.bound, f.kaOut, f.reporting, f.reportLeft = false, false, false, 0
	f.classifier = nil
	s.timers.stop(srvFamily)
	s.timers.stop(srvFamilyKeepalive)
}

func (s *serverSession) sendRegisterFamily(now proto.Instant) {
	f := &s.fam
	f.tries++
	s.queueFrom(s.cfg.OtherLocal, f.server, &proto.RegisterFamily{Session: s.session, TxID: f.txid})
	s.timers.set(srvFamily, now.Add(f.rto))
	f.rto = min(2*f.rto, registerRTOMax)
}

// familyTimeout runs the other family's timers that are due.
func (s *serverSession) familyTimeout(now proto.Instant) {
	f := &s.fam
	if s.timers.due(srvFamily, now) && !f.bound {
		if f.tries >= familyTries {
			s.stats.FamilyGaveUp++ // until the next registration
		} else {
			s.sendRegisterFamily(now)
		}
	}
	if s.timers.due(srvFamilyKeepalive, now) && f.bound {
		if f.kaOut && f.reportLeft == 0 {
			// Unanswered for a whole interval: the server forgot the binding or
			// the path is gone. Bind again, at register-family's pace.
			s.stats.FamilyLost++
			s.registerFamily(now)
			return
		}
		s.sendFamilyKeepalive(now)
	}
	if c := f.classifier; c != nil && now >= c.Deadline() {
		c.HandleTimeout(now)
		s.drainFamilyClassifier(now)
	}
}

// sendFamilyKeepalive sends a keepalive from OtherLocal carrying that family's NAT
// report, and arms the next: sooner while a new report is unacknowledged.
func (s *serverSession) sendFamilyKeepalive(now proto.Instant) {
	f := &s.fam
	f.kaSeq++
	f.kaOut = true
	s.queueFrom(s.cfg.OtherLocal, f.server, &proto.Keepalive{Session: s.session, Seq: f.kaSeq, NAT: f.nat})
	next := now.Add(s.keepalive)
	if f.reportLeft > 0 {
		f.reportLeft--
		next = now.Add(reportRTO << (reportTries - 1 - f.reportLeft))
	}
	s.timers.set(srvFamilyKeepalive, next)
}

// handleFamilySignal takes a signaling message that arrived on OtherLocal: the
// answer to register-family, keepalive-acks and the other classifier's probes.
func (s *serverSession) handleFamilySignal(now proto.Instant, local, from netip.AddrPort, t proto.MsgType, p []byte) error {
	f := &s.fam
	if t == proto.TypeNATProbe || t == proto.TypeNATProbeReply {
		if f.classifier == nil || t == proto.TypeNATProbeReply && !s.isFamilyServer(from) {
			return s.stats.count(ErrUnexpected)
		}
		err := f.classifier.HandleDatagram(now, local, from, p)
		s.drainFamilyClassifier(now)
		return s.stats.count(err)
	}
	if !s.isFamilyServer(from) {
		s.stats.NotFromServer++
		return ErrNotFromServer
	}
	switch t {
	case proto.TypeRegistered:
		var m proto.Registered
		if err := m.Parse(p); err != nil {
			return s.stats.count(err)
		}
		if !s.registered || f.bound || m.TxID != f.txid || m.Session != s.session {
			return s.stats.count(ErrUnexpected)
		}
		s.onFamilyRegistered(now, &m)
	case proto.TypeKeepaliveAck:
		var m proto.KeepaliveAck
		if err := m.Parse(p); err != nil {
			return s.stats.count(err)
		}
		if !f.bound {
			return s.stats.count(ErrUnexpected)
		}
		f.observed, f.kaOut = m.Observed, false
		if f.reporting {
			// Every keepalive since the measurement carried it: the server has it.
			f.reporting, f.reportLeft = false, 0
			s.timers.set(srvFamilyKeepalive, now.Add(s.keepalive))
		}
	case proto.TypeError:
		var m proto.Error
		if err := m.Parse(p); err != nil {
			return s.stats.count(err)
		}
		return s.onFamilyError(&m)
	default:
		s.stats.Unhandled++
		return ErrUnhandled
	}
	return nil
}

// isFamilyServer reports whether a is one of the other-family sockets of the
// current server.
func (s *serverSession) isFamilyServer(a netip.AddrPort) bool {
	f := &s.fam
	return a.IsValid() && (a == f.server || a == f.altPort || a == f.altAddr)
}

// onFamilyError: the server refused register-family (its txid); anything else on
// the other family names nothing of ours. Refused, the node waits for its next
// registration, as after familyTries unanswered sends.
func (s *serverSession) onFamilyError(m *proto.Error) error {
	f := &s.fam
	if f.bound || f.server == (netip.AddrPort{}) || m.TxID != f.txid {
		s.stats.StrayErrors++
		return ErrUnexpected
	}
	s.stats.FamilyRefused++
	s.timers.stop(srvFamily)
	f.tries = familyTries
	return nil
}

// onFamilyRegistered: the server bound OtherLocal's address to the session.
func (s *serverSession) onFamilyRegistered(now proto.Instant, m *proto.Registered) {
	f := &s.fam
	f.bound, f.observed = true, m.Observed
	f.altPort, f.altAddr = alternates(f.server, m)
	s.timers.stop(srvFamily)
	incomplete := f.nat.Mapping == proto.DependenceUnknown || f.nat.Filtering == proto.DependenceUnknown
	if !f.measured || incomplete && f.altPort.IsValid() && f.altAddr.IsValid() {
		s.startFamilyClassifier(now)
		return
	}
	s.startFamilyReport(now)
}

// startFamilyReport sends the other family's report, repeated until acknowledged.
func (s *serverSession) startFamilyReport(now proto.Instant) {
	s.fam.reporting, s.fam.reportLeft = true, reportTries
	s.sendFamilyKeepalive(now)
}

// startFamilyClassifier measures the other family's NAT with nat-probes from
// OtherLocal. It asks for no extra sockets: the mapping is measured from OtherLocal
// itself (right everywhere but behind Linux's port clash, which IPv6 firewalls do
// not have), and the allocation may stay unknown (peers probe the other family
// without prediction).
func (s *serverSession) startFamilyClassifier(now proto.Instant) {
	var seed [32]byte
	binaryPut(seed[:], s.rng.Uint64(), s.rng.Uint64())
	f := &s.fam
	f.classifier = punch.NewClassifier(punch.ClassifierConfig{
		Session: s.session, Local: s.cfg.OtherLocal, Hosts: s.cfg.hosts(),
		Server: f.server, AltPort: f.altPort, AltAddr: f.altAddr, Seed: seed,
	})
	f.classifier.Start(now)
	s.drainFamilyClassifier(now)
}

// drainFamilyClassifier takes the other classifier's events: sockets are refused
// at once (see startFamilyClassifier); the result is reported and sent.
func (s *serverSession) drainFamilyClassifier(now proto.Instant) {
	f := &s.fam
	for f.classifier != nil {
		e, ok := f.classifier.PollEvent()
		if !ok {
			return
		}
		switch e := e.(type) {
		case punch.EventNeedSockets:
			f.classifier.HandleSockets(now, nil)
		case punch.EventClassified:
			f.nat, f.measured = e.Behavior, true
			if e.Observed.IsValid() {
				f.observed = e.Observed
			}
			if s.classified {
				// Otherwise Local's report, still to come, carries this one.
				s.emit(srvNATReport{s.natReport()})
			}
			s.startFamilyReport(now)
		}
	}
}

// natReport is the NAT report as measured so far: Local's family, and the other's
// once measured.
func (s *serverSession) natReport() EventNATReport {
	e := EventNATReport{Behavior: s.nat, Observed: s.observed}
	if s.fam.measured {
		e.OtherBehavior, e.OtherObserved = s.fam.nat, s.fam.observed
	}
	return e
}

// familyDeadline is the other classifier's deadline (the family's own timers are
// in the session's table).
func (s *serverSession) familyDeadline() proto.Instant {
	if c := s.fam.classifier; c != nil {
		return c.Deadline()
	}
	return proto.Never
}

// alternates returns the alternate sockets a registered names, made usable against
// server: a port-only alternate (a server bound to every address, PROTOCOL §5.2)
// on server's IP, none that is server itself (answers "from the alt port" would
// make every filtering test pass) and no unspecified address.
func alternates(server netip.AddrPort, m *proto.Registered) (altPort, altAddr netip.AddrPort) {
	altPort, altAddr = m.AltPort, m.AltAddr
	if altPort.IsValid() && altPort.Addr().IsUnspecified() {
		altPort = netip.AddrPortFrom(server.Addr(), altPort.Port())
	}
	if altPort == server {
		altPort = netip.AddrPort{}
	}
	if altAddr.IsValid() && altAddr.Addr().IsUnspecified() {
		altAddr = netip.AddrPort{}
	}
	return altPort, altAddr
}
