package node

import (
	"bytes"
	"cmp"
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
	// A peer that has not reported its NAT yet (error code 9) is asked for again at
	// once, then this much later, doubling to notReadyRetryMax, at most
	// notReadyRetries times. Its report is usually a few milliseconds behind (both
	// sides measure at once), and the refusal took a round trip to come: by then
	// the report is in, and every millisecond of waiting delays the first message.
	notReadyRetry    = 25 * time.Millisecond
	notReadyRetryMax = time.Second
	notReadyRetries  = 30
	// The keepalive carrying a new NAT report is repeated until acknowledged.
	reportRTO         = 300 * time.Millisecond // doubling: introductions wait for the report
	reportTries       = 5
	serverLostAfter   = 3 // keepalive intervals without an ack
	defaultRegisterTO = 30 * time.Second
	// registerMoveAfter: with more than one server, a register unanswered this long
	// moves the node to the next server of its list (DESIGN §12). Three sends at
	// registerRTO's backoff (0, 0.5 s, 1.5 s): one lost datagram is no reason to
	// move, three in a row at 1 % loss is one in a million.
	registerMoveAfter = 3 * time.Second
	// checkRepeats: a server check (checkNow) repeats its keepalive this many times
	// within its wait, so that one lost datagram does not count the server lost (a
	// false loss moves a node with many servers away from its relayed peers).
	checkRepeats = 3
	// checkAfterSends: a request to the server (introduce-request, room-join,
	// relay-allocate) sent this many times without an answer makes the node check
	// on the server (checkNow): a dead server answers nothing, and a node that only
	// waits for its keepalives to go unanswered notices after minutes (DESIGN §12).
	// Each repetition after that checks again unless a check is out.
	checkAfterSends = 3
	// maxPendingIntros bounds the introduce-requests in flight (and the Connect calls
	// waiting for the NAT measurement); more are refused with EventPeerError.
	maxPendingIntros = 64
	// maxSignalQueue bounds the signaling messages waiting for pollTransmit. One call
	// queues a handful, plus one per pending introduction: a full queue means the
	// owner stopped draining, and what does not fit is dropped and counted
	// (Stats.QueueDrops); every such message is repeated by its timer.
	maxSignalQueue = 2*maxPendingIntros + 16
)

// srvTimer names the server session's timers.
type srvTimer uint8

const (
	srvRegister        srvTimer = iota // retransmit register
	srvKeepalive                       // next keepalive
	srvLostTimer                       // no keepalive ack for too long
	srvIntroduce                       // retransmit introduce requests
	srvReport                          // repeat the NAT-report keepalive until acked
	srvCheck                           // repeat the keepalive of a server check
	srvRoom                            // retransmit or refresh room-joins, repeat room-leaves
	srvPredict                         // our prediction moved: tell the server (flows.go)
	srvRelink                          // link again with room members whose link ended (relink.go)
	srvFamily                          // retransmit register-family (family.go)
	srvFamilyKeepalive                 // next keepalive from the other-family socket
	srvTimerCount
)

// serverSession is the node's session with its rendezvous server: registration and
// its retries, keepalives, the NAT measurement (it drives a punch.Classifier), and
// the introduce-requests with their retries. It is a child of Node: Node hands it the
// signaling datagrams and its timer calls, and drains it after every call — its
// transmits (pollTransmit, signaling to the server), then its events (PollEvent, the
// srv* types below, which Node turns into node Events or acts on), then its Deadline.
type serverSession struct {
	cfg    *Config
	rng    *rand.Rand
	stats  *Stats
	timers timerTable[srvTimer]

	// servers is the list the node moves along (Config.servers); server is the one
	// it registers with now, servers[cur]. regServer is the server of the latest
	// registration that succeeded: a registration with another one is a move.
	servers   []netip.AddrPort
	cur       int
	server    netip.AddrPort
	regServer netip.AddrPort

	registered bool
	// everRegistered: a registration succeeded once; later ones are re-registrations,
	// retried for as long as it takes (only the first is bounded by RegisterTimeout).
	everRegistered bool
	closed         bool
	regTxID        uint64
	regRTO         time.Duration
	regToken       admissionToken // the latest retry's token for this registration (retry.go)
	rtt            serverRTT      // our round trip to the server, for first-contact repeats (serverrtt.go)
	regGiveUp      proto.Instant
	regMoveAt      proto.Instant  // a register unanswered by then moves to the next server
	regMoveWhy     string         // why, when a refusal brought regMoveAt forward ("" : no answer)
	checkUntil     proto.Instant  // a server check is out until then (its lost timer)
	lastAnswer     proto.Instant  // the latest keepalive the server acknowledged came then
	suites         proto.SuiteSet // the cipher suites the register advertises (keyx.Endpoint.Suites)
	checkEvery     time.Duration  // and repeats its keepalive this often
	session        proto.Session
	observed       netip.AddrPort
	altPort        netip.AddrPort
	altAddr        netip.AddrPort
	keepalive      time.Duration
	kaSeq          uint32
	reportSeq      uint32 // seq of the keepalive that first carried the current report
	reportLeft     int    // repeats left for it
	nat            proto.NATBehavior
	predicted      netip.AddrPort // our sequential NAT's next external address, as measured
	flows          flowTracker    // the flows opened since (currentPrediction)
	reserve        func() int     // the flows planned but not yet opened (Node.reservedFlows)
	// announced: the predictions of the keepalives since the latest one the
	// server acknowledged (that one first): the server passes peers one of them.
	announced  []announcement // bounded by maxAnnounced
	classifier *punch.Classifier
	classified bool
	// fam is the other-family socket's binding and measurement (dual stack,
	// family.go).
	fam otherFamily

	intros []introRequest // bounded by maxPendingIntros
	// waiting: Connect calls before the NAT measurement, so the server passes our
	// behaviour on in the introduction (bounded with intros).
	waiting []waitingIntro
	rooms   []*roomJoin // bounded by maxRooms
	relinks []relink    // bounded by maxRelinks
	leaves  []roomLeave // bounded by maxRoomLeaves
	// roomEarlyAt: no early room refresh before then (strangerIntroduced).
	roomEarlyAt proto.Instant

	out    queue[outMsg]   // bounded by maxSignalQueue
	events queue[srvEvent] // a few per call: the owner drains after every call
	echoes *echoQueue      // the node's second copies of first-contact messages (echo.go)
}

// outMsg is a signaling message waiting for pollTransmit, sent from Local unless
// from says otherwise (the other-family socket's messages).
type outMsg struct {
	from, to netip.AddrPort
	msg      interface{ Append([]byte) []byte }
	echo     bool // sent twice (echo.go): the first NAT-report keepalive
}

// waitingIntro is an introduction asked for before the NAT measurement finished.
type waitingIntro struct {
	peer    string
	refresh bool
}

type introRequest struct {
	peer     string
	txid     uint64
	tries    int
	next     proto.Instant
	notReady int  // code-9 answers so far
	refresh  bool // the pair is known: ask for a new introduction, not a repeat
	// aim, when set, is the predicted address the server must pass the peer with
	// this introduction (realign): a keepalive naming it goes just before the
	// request, and one naming the current prediction just after.
	aim netip.AddrPort
	// fresh, when set, is a rebound's fresh socket (rebind.go): a nat-probe from it
	// goes first, until observed, its mapping, is known; the request then names it.
	fresh, observed netip.AddrPort
}

// srvEvent is what the server session reports to Node.
type srvEvent interface{ srvEvent() }

type (
	// srvRegistered: admitted by server; again when this is a re-registration
	// (the server lost our session, or we moved: relay channels died with it),
	// changed when the server is not the one of the previous registration.
	srvRegistered struct {
		observed, server netip.AddrPort
		again, changed   bool
	}
	srvNATReport   struct{ e EventNATReport }
	srvNeedSockets struct{ n int }
	srvPeerError   struct{ e EventPeerError }
	// srvClosed: the session ended for good; code is the server's error code
	// that ended it (0: no answer).
	srvClosed struct {
		reason string
		code   proto.ErrorCode
	}
	// srvMoved: the server sees us at a new address; every peer needs a fresh
	// introduction.
	srvMoved struct{}
	// srvLost: the server stopped answering, or is moving us away; the session
	// is being registered again (with the next server when there are several).
	srvLost struct{ reason string }
	// srvChanged: the node left server from for to, for reason.
	srvChanged struct {
		from, to netip.AddrPort
		reason   string
	}
	// srvAnswered: a keepalive was acknowledged (the server is there).
	srvAnswered struct{}
	// srvError: an error that answers none of the session's own requests (a relay
	// allocation's, for the peers). known: its TxID names something of the
	// session's (0, the register, the session tag), so no peer claiming it does not
	// make it a stray.
	srvError struct {
		m     proto.Error
		known bool
	}
)

func (srvRegistered) srvEvent()  {}
func (srvNATReport) srvEvent()   {}
func (srvNeedSockets) srvEvent() {}
func (srvPeerError) srvEvent()   {}
func (srvClosed) srvEvent()      {}
func (srvMoved) srvEvent()       {}
func (srvLost) srvEvent()        {}
func (srvChanged) srvEvent()     {}
func (srvAnswered) srvEvent()    {}
func (srvError) srvEvent()       {}

func newServerSession(cfg *Config, rng *rand.Rand, stats *Stats, echoes *echoQueue) *serverSession {
	return &serverSession{cfg: cfg, rng: rng, stats: stats, echoes: echoes,
		timers: newTimerTable[srvTimer]("register", "keepalive", "server lost", "introduce", "report", "server check", "room",
			"prediction", "relink", "register-family", "other-family keepalive")}
}

// start sends the first register, to the first server of the list.
func (s *serverSession) start(now proto.Instant) {
	s.servers = s.cfg.servers()
	s.server = s.servers[0]
	s.regTxID = s.rng.Uint64()
	s.regToken = admissionToken{}
	s.regRTO = registerRTO
	s.regGiveUp = now.Add(s.cfg.RegisterTimeout)
	s.regMoveAt = now.Add(registerMoveAfter)
	s.sendRegister(now)
}

// sendRegister sends the register and arms its repetition, or the move to the
// next server when that comes first.
func (s *serverSession) sendRegister(now proto.Instant) {
	s.rtt.registerSent(now, s.regRTO == registerRTO)
	s.queueRegister()
	next := now.Add(registerJitter(s.rng, s.regRTO))
	if len(s.servers) > 1 {
		next = max(min(next, s.regMoveAt), now)
	}
	s.timers.set(srvRegister, next)
	s.regRTO = min(2*s.regRTO, registerRTOMax)
}

// registerJitter is the wait before a register's repetition: rto give or take a
// quarter, drawn from the node's seeded stream. Nodes that lost their server at one
// instant (a restart, a drain's notice) would otherwise repeat in lockstep, and the
// server's admission budgets would answer one burst's worth of each storm per
// backoff step and drop the rest; spread over half an rto the budgets refill
// between them. The mean stays rto.
func registerJitter(rng *rand.Rand, rto time.Duration) time.Duration {
	return rto*3/4 + time.Duration(rng.Int64N(int64(rto/2)+1))
}

func (s *serverSession) queue(m interface{ Append([]byte) []byte }) {
	s.queueFrom(s.cfg.Local, s.server, m)
}

// queueFrom queues m from socket from to to.
func (s *serverSession) queueFrom(from, to netip.AddrPort, m interface{ Append([]byte) []byte }) {
	if s.out.len() >= maxSignalQueue {
		s.stats.QueueDrops++
		return
	}
	s.out.push(outMsg{from: from, to: to, msg: m})
}

func (s *serverSession) emit(e srvEvent) { s.events.push(e) }

// isServer reports whether a is one of the server's sockets.
func (s *serverSession) isServer(a netip.AddrPort) bool {
	return a == s.server || a.IsValid() && (a == s.altPort || a == s.altAddr)
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
		s.waiting = append(s.waiting, waitingIntro{peer: peer, refresh: refresh})
		return
	}
	s.intros = append(s.intros, introRequest{peer: peer, txid: s.rng.Uint64(), next: now, refresh: refresh})
	s.timers.earlier(srvIntroduce, now)
}

// pendingIntro reports whether an introduction of peer is asked for or waiting.
func (s *serverSession) pendingIntro(peer string) bool {
	return slices.ContainsFunc(s.waiting, func(w waitingIntro) bool { return w.peer == peer }) ||
		slices.ContainsFunc(s.intros, func(r introRequest) bool { return r.peer == peer })
}

// handleSockets gives the classifier the extra sockets it asked for.
func (s *serverSession) handleSockets(now proto.Instant, addrs []netip.AddrPort) {
	if s.classifier != nil {
		s.classifier.HandleSockets(now, addrs)
		s.drainClassifier(now)
	}
}

// checkNow sends a keepalive at once, repeated checkRepeats times, and counts the
// server lost unless one is answered within wait: a peer's relayed data stalled, or
// a request went unanswered (unanswered). A check already out is left to run: a
// second would only repeat its keepalives.
func (s *serverSession) checkNow(now proto.Instant, wait time.Duration) {
	if !s.registered || now < s.checkUntil {
		return
	}
	s.sendKeepalive(now)
	s.timers.earlier(srvLostTimer, now.Add(wait))
	s.checkUntil = now.Add(wait)
	s.checkEvery = wait / (checkRepeats + 1)
	s.timers.set(srvCheck, now.Add(s.checkEvery))
}

// unanswered: a request went out for the sends-th time with no answer to the ones
// before it; from checkAfterSends on, the server is checked.
func (s *serverSession) unanswered(now proto.Instant, sends int) {
	if sends >= checkAfterSends {
		s.checkNow(now, relayCheckWait)
	}
}

func (s *serverSession) sendKeepalive(now proto.Instant) {
	s.sendKeepaliveNaming(now, s.currentPrediction())
}

// sendKeepaliveNaming sends a keepalive whose predicted address is predicted.
func (s *serverSession) sendKeepaliveNaming(now proto.Instant, predicted netip.AddrPort) {
	s.sendKeepaliveEcho(now, predicted, false)
}

// sendKeepaliveEcho sends a keepalive naming predicted, twice when echo (echo.go).
func (s *serverSession) sendKeepaliveEcho(now proto.Instant, predicted netip.AddrPort, echo bool) {
	s.kaSeq++
	s.announce(predicted)
	m := &proto.Keepalive{Session: s.session, Seq: s.kaSeq, NAT: s.nat, Predicted: predicted}
	if s.out.len() >= maxSignalQueue {
		s.stats.QueueDrops++
	} else {
		s.out.push(outMsg{from: s.cfg.Local, to: s.server, msg: m, echo: echo})
	}
	s.rtt.kaSentAt = now
	s.timers.set(srvKeepalive, now.Add(s.keepalive))
}

// networkChanged: the device moved; the keepalive moves our session to the address
// it arrives from before the introduce-requests that follow on the same path.
func (s *serverSession) networkChanged(now proto.Instant) {
	if !s.registered || s.closed {
		return
	}
	s.sendKeepalive(now)
	if s.nat.Mapping == proto.DependenceUnknown || s.nat.Filtering == proto.DependenceUnknown {
		// The measurement could not finish where we were (a node that registered
		// over its TCP fallback reaches no alternate socket): measure again here,
		// and let the introductions the peers now ask for wait for it, so that both
		// sides of a pair choose their strategy from real reports.
		s.classified = false
		s.startClassifier(now)
	}
}

// close ends the session for good; code is the server's error that ended it (0:
// none answered).
func (s *serverSession) close(reason string, code proto.ErrorCode) {
	if s.closed {
		return
	}
	s.closed = true
	s.timers.clear()
	s.emit(srvClosed{reason: reason, code: code})
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
		switch {
		case now >= s.regGiveUp && !s.everRegistered:
			s.close(s.noAnswer(), 0)
			return
		case len(s.servers) > 1 && now >= s.regMoveAt:
			s.move(now, cmp.Or(s.regMoveWhy, "no answer to register"))
		default:
			s.sendRegister(now)
		}
	}
	if s.timers.due(srvKeepalive, now) {
		s.sendKeepalive(now)
	}
	if s.timers.due(srvCheck, now) && now < s.checkUntil {
		s.sendKeepalive(now)
		s.timers.set(srvCheck, min(now.Add(s.checkEvery), s.checkUntil))
	}
	if s.timers.due(srvLostTimer, now) {
		// Keepalives unanswered: the server restarted or died, or our mapping died.
		// Register again, with the next server if there is one; live direct paths
		// are unaffected, relayed ones are told.
		s.lose(now, "server not answering")
	}
	if s.timers.due(srvReport, now) && s.reportLeft > 0 {
		s.reportLeft--
		s.sendKeepalive(now)
		if s.reportLeft > 0 {
			s.timers.set(srvReport, now.Add(s.rtt.firstContactRTO(reportRTO)<<(reportTries-s.reportLeft)))
		}
	}
	if s.timers.due(srvIntroduce, now) && s.registered {
		// Unregistered, the requests wait: onRegistered sends them to the server
		// that admits us (a session cookie the server forgot gets only code 5).
		s.retryIntroductions(now)
	}
	if s.timers.due(srvPredict, now) && s.registered && s.currentPrediction() != s.lastAnnounced() {
		s.sendKeepalive(now)
	}
	if s.timers.due(srvRelink, now) {
		s.retryRelinks(now)
	}
	if s.timers.due(srvRoom, now) && s.registered {
		s.retryRooms(now) // unregistered, they wait for onRegistered, as introductions do
	}
	if c := s.classifier; c != nil && now >= c.Deadline() {
		c.HandleTimeout(now)
		s.drainClassifier(now)
	}
	s.familyTimeout(now)
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
			r.next = now.Add(min(s.rtt.firstContactRTO(introduceRTO)<<(r.tries-1), introduceRTOMax))
			s.unanswered(now, r.tries)
			flags := s.cfg.Relay.introFlags()
			if r.refresh {
				flags |= proto.IntroRefresh
			}
			if r.fresh.IsValid() && !r.observed.IsValid() {
				s.queueFrom(r.fresh, s.server, &proto.NATProbe{Session: s.session, TxID: r.txid})
			} else {
				s.introduceRequest(now, &r, flags)
			}
		}
		s.timers.earlier(srvIntroduce, r.next)
		keep = append(keep, r)
	}
	s.intros = keep
}

// introduceRequest queues r's introduce-request. The server passes peers the
// predicted address of our latest keepalive, so one goes first when the prediction
// moved since (or r aims elsewhere; then one after puts the current one back).
func (s *serverSession) introduceRequest(now proto.Instant, r *introRequest, flags uint8) {
	cur := s.currentPrediction()
	aim := cur
	if r.aim.IsValid() {
		aim = r.aim
	}
	if aim != s.lastAnnounced() {
		s.sendKeepaliveNaming(now, aim)
	}
	m := &proto.IntroduceRequest{Session: s.session, TxID: r.txid, PeerID: []byte(r.peer), Flags: flags}
	if r.observed.IsValid() {
		m.Flags, m.Rebound = flags|proto.IntroRebound|proto.IntroRefresh, r.observed
	}
	s.queue(m)
	if aim != cur {
		s.sendKeepaliveNaming(now, cur)
	}
}

// reregister starts registering again: the server forgot us, or stopped answering.
func (s *serverSession) reregister(now proto.Instant) {
	s.registered = false
	s.regTxID = s.rng.Uint64()
	s.regToken = admissionToken{} // a new registration, perhaps with another server: proven afresh
	s.regRTO = registerRTO
	s.regMoveAt = now.Add(registerMoveAfter) // regGiveUp stays: it bounds only the first registration, moves included
	s.regMoveWhy = ""
	s.checkUntil = 0
	s.timers.stop(srvKeepalive)
	s.timers.stop(srvLostTimer)
	s.timers.stop(srvCheck)
	s.timers.stop(srvReport)
	s.reportLeft = 0
	s.dropFamily()
	s.sendRegister(now)
}

func (s *serverSession) noAnswer() string {
	if len(s.servers) > 1 {
		return "no answer from any server"
	}
	return "no answer from the server"
}

// lose: the server stopped answering, or told us to go. The relayed peers hear it
// (their channels are gone); the node registers again, with the next server when
// there are several.
func (s *serverSession) lose(now proto.Instant, reason string) {
	s.emit(srvLost{reason: reason})
	if len(s.servers) > 1 {
		s.move(now, reason)
		return
	}
	s.reregister(now)
}

// move registers with the next server of the list, round robin (DESIGN §12). The
// old server's sockets are forgotten: answers from it are no longer the server's
// (counted as NotFromServer). A NAT measurement under way stops (its probes went
// to the old server); onRegistered decides whether to measure again.
func (s *serverSession) move(now proto.Instant, reason string) {
	from := s.server
	s.cur = (s.cur + 1) % len(s.servers)
	s.server = s.servers[s.cur]
	s.altPort, s.altAddr = netip.AddrPort{}, netip.AddrPort{}
	s.classifier = nil
	s.rtt.forget()
	s.emit(srvChanged{from: from, to: s.server, reason: reason})
	s.reregister(now)
}

// moving: the server answered code 11 (it is draining). A registered node leaves
// at once; one still registering moves at its register's next repetition, so
// that servers that all say "moving" (or a list of one) are asked at the
// register's backoff, not once per round trip.
func (s *serverSession) moving(now proto.Instant) {
	if s.registered {
		s.lose(now, "server moving")
		return
	}
	s.regMoveAt, s.regMoveWhy = now, "server moving"
}

// pollTransmit writes the next signaling datagram, else the classifiers' next
// probe, into *t; it writes *t only when it reports true (Node.pollTransmit says
// why: the node asks for every datagram it sends, and the session nearly never has
// one).
func (s *serverSession) pollTransmit(now proto.Instant, buf []byte, t *proto.Transmit) bool {
	// Checked before popping: pop's zero outMsg costs more than the check.
	if s.out.len() > 0 {
		o, _ := s.out.pop()
		*t = proto.Transmit{From: o.from, To: o.to, Payload: o.msg.Append(buf[:0])}
		if o.echo {
			s.echoes.add(now, *t, s.stats)
		}
		return true
	}
	// A finished classifier has no probe to send until it is started again (punch:
	// finish clears every due probe, Start is what adds them anew): skipping it
	// spares copying its zero Transmit for every datagram.
	if c := s.classifier; c != nil && !c.Done() {
		if ct, ok := c.PollTransmit(now, buf); ok {
			*t = ct
			return true
		}
	}
	if c := s.fam.classifier; c != nil && !c.Done() { // the other family's, likewise
		if ct, ok := c.PollTransmit(now, buf); ok {
			*t = ct
			return true
		}
	}
	return false
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
	return min(d, s.familyDeadline())
}
