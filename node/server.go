package node

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/punch"
)

// Server-session timing.
const (
	registerRTO     = 500 * time.Millisecond
	registerRTOMax  = 3 * time.Second        // a restarted server finds its nodes again within seconds
	introduceRTO    = 300 * time.Millisecond // doubling to introduceRTOMax: the first message waits on it
	introduceRTOMax = 2 * time.Second
	introduceTries  = 8
	// A peer that has not reported its NAT yet (error code 9) is asked for again
	// this much later, doubling to notReadyRetryMax, at most notReadyRetries times.
	notReadyRetry    = 100 * time.Millisecond
	notReadyRetryMax = time.Second
	notReadyRetries  = 30
	// The keepalive carrying a new NAT report is repeated until acknowledged.
	reportRTO         = 300 * time.Millisecond // doubling: introductions wait for the report
	reportTries       = 5
	serverLostAfter   = 3 // keepalive intervals without an ack
	defaultRegisterTO = 30 * time.Second
	// maxPendingIntros bounds the introduce-requests in flight (and the Connect calls
	// waiting for the NAT measurement); more are refused with EventPeerError.
	maxPendingIntros = 64
	// maxSignalQueue bounds the signaling messages waiting for PollTransmit. One call
	// queues a handful, plus one per pending introduction: a full queue means the
	// owner stopped draining, and what does not fit is dropped and counted
	// (Stats.QueueDrops); every such message is repeated by its timer.
	maxSignalQueue = 2*maxPendingIntros + 16
)

// srvTimer names the server session's timers.
type srvTimer uint8

const (
	srvRegister  srvTimer = iota // retransmit register
	srvKeepalive                 // next keepalive
	srvLostTimer                 // no keepalive ack for too long
	srvIntroduce                 // retransmit introduce requests
	srvReport                    // repeat the NAT-report keepalive until acked
	srvTimerCount
)

// serverSession is the node's session with its rendezvous server: registration and
// its retries, keepalives, the NAT measurement (it drives a punch.Classifier), and
// the introduce-requests with their retries. It is a child of Node: Node hands it the
// signaling datagrams and its timer calls, and drains it after every call — its
// transmits (PollTransmit, signaling to the server), then its events (PollEvent, the
// srv* types below, which Node turns into node Events or acts on), then its Deadline.
type serverSession struct {
	cfg    *Config
	rng    *rand.Rand
	stats  *Stats
	timers timerTable[srvTimer]

	registered bool
	// everRegistered: a registration succeeded once; later ones are re-registrations,
	// retried for as long as it takes (only the first is bounded by RegisterTimeout).
	everRegistered bool
	closed         bool
	regTxID        uint64
	regRTO         time.Duration
	regGiveUp      proto.Instant
	session        proto.Session
	observed       netip.AddrPort
	altPort        netip.AddrPort
	altAddr        netip.AddrPort
	keepalive      time.Duration
	kaSeq          uint32
	reportSeq      uint32 // seq of the keepalive that first carried the current report
	reportLeft     int    // repeats left for it
	nat            proto.NATBehavior
	predicted      netip.AddrPort // our sequential NAT's next external address
	classifier     *punch.Classifier
	classified     bool

	intros []introRequest // bounded by maxPendingIntros
	// waiting: Connect calls before the NAT measurement, so the server passes our
	// behaviour on in the introduction (bounded with intros).
	waiting []string

	out    queue[outMsg]   // bounded by maxSignalQueue
	events queue[srvEvent] // a few per call: the owner drains after every call
}

// outMsg is a signaling message waiting for PollTransmit.
type outMsg struct {
	to  netip.AddrPort
	msg interface{ Append([]byte) []byte }
}

type introRequest struct {
	peer     string
	txid     uint64
	tries    int
	next     proto.Instant
	notReady int  // code-9 answers so far
	refresh  bool // the pair is known: ask for a new introduction, not a repeat
}

// srvEvent is what the server session reports to Node.
type srvEvent interface{ srvEvent() }

type (
	// srvRegistered: admitted; again when this is a re-registration (the server
	// lost our session: relay channels died with it).
	srvRegistered struct {
		observed netip.AddrPort
		again    bool
	}
	srvNATReport   struct{ e EventNATReport }
	srvNeedSockets struct{ n int }
	srvPeerError   struct{ e EventPeerError }
	srvClosed      struct{ reason string }
	// srvMoved: the server sees us at a new address; every peer needs a fresh
	// introduction.
	srvMoved struct{}
	// srvLost: keepalives went unanswered; the session is being registered again.
	srvLost struct{}
	// srvAnswered: a keepalive was acknowledged (the server is there).
	srvAnswered struct{}
	// srvError: an error that answers none of the session's own requests (a relay
	// allocation's, for the peers).
	srvError struct{ m proto.Error }
)

func (srvRegistered) srvEvent()  {}
func (srvNATReport) srvEvent()   {}
func (srvNeedSockets) srvEvent() {}
func (srvPeerError) srvEvent()   {}
func (srvClosed) srvEvent()      {}
func (srvMoved) srvEvent()       {}
func (srvLost) srvEvent()        {}
func (srvAnswered) srvEvent()    {}
func (srvError) srvEvent()       {}

func newServerSession(cfg *Config, rng *rand.Rand, stats *Stats) *serverSession {
	return &serverSession{cfg: cfg, rng: rng, stats: stats,
		timers: newTimerTable[srvTimer]("register", "keepalive", "server lost", "introduce", "report")}
}

// start sends the first register.
func (s *serverSession) start(now proto.Instant) {
	s.regTxID = s.rng.Uint64()
	s.regRTO = registerRTO
	s.regGiveUp = now.Add(s.cfg.RegisterTimeout)
	s.sendRegister(now)
}

func (s *serverSession) sendRegister(now proto.Instant) {
	s.queue(&proto.Register{TxID: s.regTxID, Ticket: s.cfg.Ticket, Hosts: s.cfg.hosts()})
	s.timers.set(srvRegister, now.Add(s.regRTO))
	s.regRTO = min(2*s.regRTO, registerRTOMax)
}

func (s *serverSession) queue(m interface{ Append([]byte) []byte }) {
	if s.out.len() >= maxSignalQueue {
		s.stats.QueueDrops++
		return
	}
	s.out.push(outMsg{to: s.cfg.Server, msg: m})
}

func (s *serverSession) emit(e srvEvent) { s.events.push(e) }

// isServer reports whether a is one of the server's sockets.
func (s *serverSession) isServer(a netip.AddrPort) bool {
	return a == s.cfg.Server || a.IsValid() && (a == s.altPort || a == s.altAddr)
}

// introduce asks the server to introduce peer (refresh: a pair we know, so the
// server makes a new introduction rather than repeating the last).
func (s *serverSession) introduce(now proto.Instant, peer string, refresh bool) {
	if s.pendingIntro(peer) {
		return
	}
	if len(s.intros)+len(s.waiting) >= maxPendingIntros {
		s.emit(srvPeerError{EventPeerError{Peer: peer, Code: proto.CodeRateLimited, Text: "too many introductions pending"}})
		return
	}
	if !s.classified {
		s.waiting = append(s.waiting, peer)
		return
	}
	s.intros = append(s.intros, introRequest{peer: peer, txid: s.rng.Uint64(), next: now, refresh: refresh})
	s.timers.earlier(srvIntroduce, now)
}

// pendingIntro reports whether an introduction of peer is asked for or waiting.
func (s *serverSession) pendingIntro(peer string) bool {
	return slices.Contains(s.waiting, peer) || slices.ContainsFunc(s.intros, func(r introRequest) bool { return r.peer == peer })
}

// handleSockets gives the classifier the extra sockets it asked for.
func (s *serverSession) handleSockets(now proto.Instant, addrs []netip.AddrPort) {
	if s.classifier != nil {
		s.classifier.HandleSockets(now, addrs)
		s.drainClassifier(now)
	}
}

// checkNow sends a keepalive at once and counts the server lost unless it answers
// within wait: a peer's relayed data stalled.
func (s *serverSession) checkNow(now proto.Instant, wait time.Duration) {
	if !s.registered {
		return
	}
	s.sendKeepalive(now)
	s.timers.earlier(srvLostTimer, now.Add(wait))
}

func (s *serverSession) sendKeepalive(now proto.Instant) {
	s.kaSeq++
	s.queue(&proto.Keepalive{Session: s.session, Seq: s.kaSeq, NAT: s.nat, Predicted: s.predicted})
	s.timers.set(srvKeepalive, now.Add(s.keepalive))
}

// networkChanged: the device moved; the keepalive moves our session to the address
// it arrives from before the introduce-requests that follow on the same path.
func (s *serverSession) networkChanged(now proto.Instant) {
	if s.registered && !s.closed {
		s.sendKeepalive(now)
	}
}

func (s *serverSession) close(reason string) {
	if s.closed {
		return
	}
	s.closed = true
	s.timers.clear()
	s.emit(srvClosed{reason})
}

// ackIntroduction acknowledges a valid introduction (the server repeats it until it
// hears).
func (s *serverSession) ackIntroduction(peerID []byte) {
	s.queue(&proto.IntroductionAck{Session: s.session, PeerID: bytes.Clone(peerID)})
}

// HandleTimeout runs the session's timers that are due, and the classifier's.
func (s *serverSession) HandleTimeout(now proto.Instant) {
	if s.closed {
		return
	}
	if s.timers.due(srvRegister, now) {
		if now >= s.regGiveUp && !s.everRegistered {
			s.close("no answer from the server")
			return
		}
		s.sendRegister(now)
	}
	if s.timers.due(srvKeepalive, now) {
		s.sendKeepalive(now)
	}
	if s.timers.due(srvLostTimer, now) {
		// Keepalives unanswered: the server restarted or our mapping died. Register
		// again; live direct paths are unaffected, relayed ones are told.
		s.emit(srvLost{})
		s.reregister(now)
	}
	if s.timers.due(srvReport, now) && s.reportLeft > 0 {
		s.reportLeft--
		s.sendKeepalive(now)
		if s.reportLeft > 0 {
			s.timers.set(srvReport, now.Add(reportRTO<<(reportTries-s.reportLeft)))
		}
	}
	if s.timers.due(srvIntroduce, now) {
		s.retryIntroductions(now)
	}
	if c := s.classifier; c != nil && now >= c.Deadline() {
		c.HandleTimeout(now)
		s.drainClassifier(now)
	}
}

func (s *serverSession) retryIntroductions(now proto.Instant) {
	keep := s.intros[:0]
	for _, r := range s.intros {
		if now >= r.next {
			if r.tries >= introduceTries {
				s.emit(srvPeerError{EventPeerError{Peer: r.peer, Text: "no introduction from the server"}})
				continue
			}
			r.tries++
			r.next = now.Add(min(introduceRTO<<(r.tries-1), introduceRTOMax))
			flags := s.cfg.Relay.introFlags()
			if r.refresh {
				flags |= proto.IntroRefresh
			}
			s.queue(&proto.IntroduceRequest{Session: s.session, TxID: r.txid, PeerID: []byte(r.peer), Flags: flags})
		}
		s.timers.earlier(srvIntroduce, r.next)
		keep = append(keep, r)
	}
	s.intros = keep
}

// reregister starts registering again: the server forgot us, or stopped answering.
func (s *serverSession) reregister(now proto.Instant) {
	s.registered = false
	s.regTxID = s.rng.Uint64()
	s.regRTO = registerRTO
	s.regGiveUp = now.Add(s.cfg.RegisterTimeout)
	s.timers.stop(srvKeepalive)
	s.timers.stop(srvLostTimer)
	s.sendRegister(now)
}

// PollTransmit returns the next signaling datagram, then the classifier's probes.
func (s *serverSession) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	if o, ok := s.out.pop(); ok {
		return proto.Transmit{From: s.cfg.Local, To: o.to, Payload: o.msg.Append(buf[:0])}, true
	}
	if c := s.classifier; c != nil {
		return c.PollTransmit(now, buf)
	}
	return proto.Transmit{}, false
}

// PollEvent returns the next srvEvent.
func (s *serverSession) PollEvent() (srvEvent, bool) { return s.events.pop() }

// Deadline is the earliest of the session's timers and the classifier's.
func (s *serverSession) Deadline() proto.Instant {
	if s.closed {
		return proto.Never
	}
	d, _ := s.timers.next()
	if c := s.classifier; c != nil {
		d = min(d, c.Deadline())
	}
	return d
}
