package node

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/punch"
	"github.com/natpass/natpass/rudp"
)

// peerTimer names a peerConn's own timers; its children (agent, connection, relay
// client) keep theirs, and Deadline folds them in.
type peerTimer uint8

const (
	peerRetryDirect peerTimer = iota // punching gave up with the relay carrying: search again
	peerHandshake                    // our first handshake is unanswered: start it again
	peerTimerCount
)

// peerConn is one peer, as a machine of its own: its punch agent (paths), the keyx
// session's use (the node's keyx.Endpoint does the handshakes for every peer; the
// peerConn starts them and seals and opens with its session), its rudp connection and
// its relay client, with a timer table of its own. Node routes datagrams to it and
// drains it after every call: PollTransmit (probes, relay-allocates, sealed data),
// then PollEvent (node Events for the application and peer* requests for Node),
// then Deadline.
type peerConn struct {
	*peerEnv
	id        string
	key       [32]byte // the peer's static public key, from the server's introduction
	psk       [32]byte
	flags     uint8
	remoteNAT proto.NATBehavior
	agent     *punch.Agent
	path      proto.PathKind // what the application was last told
	timers    timerTable[peerTimer]

	// initiator: our static key sorts lower, so we start the handshakes (both
	// sides starting at once would race; one rule picks one).
	initiator   bool
	conn        *rudp.Conn
	connNum     uint64 // numbers conn among every connection the node made (Credit)
	established bool   // a keyx session is current
	closed      bool
	closing     bool // ClosePeer was called: the connection drains its close
	// confirmPending: we initiated the current session and have not yet sent on it;
	// the responder takes it into use at our first packet.
	confirmPending bool
	hsTries        int
	hsSentAt       proto.Instant  // when the latest first-handshake initiation went out
	hsRemote       netip.AddrPort // and where to
	// introStart is the start instant of the latest introduction; repeated copies of
	// it name the same instant (to the millisecond), a refresh names another.
	introStart proto.Instant
	relay      relayPath
	// lastRecv is when the latest authenticated transport packet of the peer came.
	lastRecv proto.Instant
	// lastData is when the latest message of the peer came (lastRecv, when that
	// packet carried one).
	lastData proto.Instant
	// lastFrom is where the latest authenticated transport packet came from (and the
	// socket it reached): the path to answer on while the agent has none, as
	// WireGuard roams.
	lastLocal, lastFrom netip.AddrPort
	// aim: where the peer aims its probes at us, for a hard side predicted by an
	// easy one (flows.go): the peer's server-reflexive address (our mapping toward
	// it is the one the peer must hit) and the predictions the server may have
	// passed it (those we announced and it had not yet acknowledged when the
	// introduction came). realigned: a refreshed introduction was asked for.
	aim struct {
		srflx     netip.AddrPort
		predicted []netip.AddrPort // at most maxAnnounced
	}
	realigned bool
	// introPredicted is the predicted candidate of the latest introduction (a
	// rebound names a new one); rebind is the fresh-socket bookkeeping (rebind.go).
	introPredicted netip.AddrPort
	rebind         rebindState

	// events holds node Events and peer* requests until Node drains them. Its bound
	// is the flow-control window (every message holds credit until Consumed: at most
	// 2·RecvWindow/32 messages) plus a few state changes per call.
	events queue[any]
}

// peerEnv is what every peerConn of a node shares: the configuration, the keyx
// endpoint, the counters and the server session (for its cookie and state).
type peerEnv struct {
	cfg    *Config
	keyx   *keyx.Endpoint
	stats  *Stats
	srv    *serverSession
	rng    interface{ Uint64() uint64 }
	echoes *echoQueue // the second copies of first-contact messages (echo.go)
}

// Requests a peerConn makes of Node (its other events are node Events).
type (
	peerWantsIntroduction struct{}        // fresh candidates from the server
	peerWantsSockets      struct{ n int } // birthday punching: extra sockets
	peerChecksServer      struct{}        // relayed data stalled: is the server there?
	peerRelayChannel      struct{ old, channel uint16 }
)

func (pc *peerConn) emit(e any) { pc.events.push(e) }

// PollEvent returns the next node Event or request.
func (pc *peerConn) PollEvent() (any, bool) { return pc.events.pop() }

// setPath tells the application the peer's traffic moved, and the connection that
// its path changed (new RTT, new PMTU).
func (pc *peerConn) setPath(now proto.Instant, e EventPathChanged) {
	if pc.closed {
		return // its connection ended: nobody to tell, nothing to move
	}
	pc.path = e.Kind
	e.Peer = pc.id
	pc.emit(e)
	if e.Kind != proto.PathNone {
		pc.conn.PathChanged(now)
	}
}

// relayPathEvent is the path event for the relay: its address is the server's, its
// RTT what the connection measured (0 until it measured one).
func (pc *peerConn) relayPathEvent(reason string) EventPathChanged {
	srtt, measured := pc.conn.RTT()
	if !measured {
		srtt = 0
	}
	return EventPathChanged{Kind: proto.PathRelay, Local: pc.cfg.Local, Remote: pc.srv.server, RTT: srtt, Reason: reason}
}

// route returns the path data to the peer takes now: the agent's active direct path,
// else the relay once the peer holds its channel, else the source of the peer's
// latest authenticated packet (it reached us; answering there is what WireGuard does).
// The relay is named by its synthetic address; PollTransmit wraps what goes there.
func (pc *peerConn) route() (netip.AddrPort, netip.AddrPort, bool) {
	ready := pc.relay.client.Ready()
	if local, remote, ok := pc.agent.ActiveRoute(); ok && !(pc.agent.Suspected() && ready) {
		return local, remote, true
	}
	if ready {
		return pc.cfg.Local, pc.relay.addr, true
	}
	if pc.lastFrom.IsValid() && pc.lastFrom != pc.relay.addr {
		return pc.lastLocal, pc.lastFrom, true
	}
	return netip.AddrPort{}, netip.AddrPort{}, false
}

// pub is the peer's key in keyx's type.
func (pc *peerConn) pub() keyx.PublicKey { return keyx.PublicKey(pc.key) }

// sameIntro reports whether an introduction starting at startAt is a repeated copy of
// the latest one (the server's copies agree to the millisecond; transit jitter makes
// them differ by a little more).
func (pc *peerConn) sameIntro(startAt proto.Instant) bool {
	d := startAt.Sub(pc.introStart)
	return d > -50*time.Millisecond && d < 50*time.Millisecond
}

// refresh takes a new introduction of the known pair: search again with its
// candidates, keeping the session, the connection and any path that still answers.
func (pc *peerConn) refresh(now, startAt proto.Instant, m *proto.Introduction, sameNAT bool) {
	pc.introStart, pc.introPredicted = startAt, predictedOf(m)
	pc.agent.Refresh(startAt, pc.srv.nat, m.NAT, m.Candidates, sameNAT)
	pc.noteIntro(now, m)
	pc.drainAgent(now)
	if pc.relay.client.Denied() != 0 && len(m.RelayToken) > 0 {
		// The server refused the token we held: this introduction brings a new one.
		pc.startRelay(now, m.RelayToken, pc.flags)
		pc.drainRelay(now)
	}
}

// networkChanged: old paths left with the old address; sending on them from the new
// one could poison the peer's NAT before the fresh search primes it.
func (pc *peerConn) networkChanged(now proto.Instant) {
	pc.agent.Forget()
	pc.lastLocal, pc.lastFrom = netip.AddrPort{}, netip.AddrPort{}
	if pc.path == proto.PathDirect {
		pc.setPath(now, EventPathChanged{Kind: proto.PathNone, Reason: "network changed"})
	}
	pc.emit(peerWantsIntroduction{})
}

// handleSockets gives the agent the extra sockets it asked for (birthday).
func (pc *peerConn) handleSockets(now proto.Instant, addrs []netip.AddrPort) {
	pc.agent.HandleSockets(now, addrs)
	pc.drainAgent(now)
}

// handleProbe takes a punch probe or probe reply for this pair.
func (pc *peerConn) handleProbe(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	err := pc.agent.HandleDatagram(now, local, from, p)
	pc.drainAgent(now)
	return pc.stats.count(err)
}

// drainAgent turns the agent's events into path decisions.
func (pc *peerConn) drainAgent(now proto.Instant) {
	for {
		e, ok := pc.agent.PollEvent()
		if !ok {
			return
		}
		switch e := e.(type) {
		case punch.EventNeedSockets:
			pc.emit(peerWantsSockets{e.N})
		case punch.EventPathUp:
			pc.timers.stop(peerRetryDirect)
			pc.setPath(now, EventPathChanged{Kind: proto.PathDirect, Local: e.Path.Local, Remote: e.Path.Remote,
				RTT: e.Path.RTT, Reason: "direct confirmed"})
			pc.initiateOnNewPath(now, e.Path.RTT)
		case punch.EventPathDown:
			pc.onPathDown(now, e)
		case punch.EventPathSuspect:
			// Ask the server for fresh candidates now; if the path comes back, the
			// refreshed search finds it again (or keeps it) at no cost. Traffic goes
			// through the relay meanwhile (route), so a blackholed path costs a
			// second, not the 6.5 s it takes to declare it dead.
			pc.pathLost()
			if pc.relay.client.Ready() && pc.path == proto.PathDirect {
				pc.setPath(now, pc.relayPathEvent("direct not answering"))
			}
		case punch.EventPathRestored:
			if pc.path != proto.PathDirect {
				pc.setPath(now, EventPathChanged{Kind: proto.PathDirect, Local: e.Path.Local, Remote: e.Path.Remote,
					RTT: e.Path.RTT, Reason: "direct answering again"})
			}
		case punch.EventNoPath:
			reason := "no direct path found"
			if e.Strategy == proto.StrategyNone {
				reason = "no direct path possible: " + pc.srv.nat.Allocation.String() + "×" +
					pc.remoteNAT.Allocation.String() + " symmetric NATs"
			}
			pc.fallBack(now, reason)
		}
	}
}

func (pc *peerConn) onPathDown(now proto.Instant, e punch.EventPathDown) {
	if e.Next != nil {
		pc.setPath(now, EventPathChanged{Kind: proto.PathDirect, Local: e.Next.Local, Remote: e.Next.Remote,
			RTT: e.Next.RTT, Reason: "direct timed out; another direct path"})
		return
	}
	pc.fallBack(now, "direct timed out")
	// The peer may have moved or its NAT rebooted: fresh candidates from the
	// server, and a start instant both sides share.
	pc.pathLost()
}

// fallBack moves the peer's traffic to the relay (or to nothing) when no direct path
// is left, and says why.
func (pc *peerConn) fallBack(now proto.Instant, reason string) {
	if !pc.relay.client.Ready() {
		pc.setPath(now, EventPathChanged{Kind: proto.PathNone, Reason: reason})
		return
	}
	if pc.agent.Strategy() != proto.StrategyNone {
		// Try for a direct path again later (DESIGN §6.6: every 30–60 s): the
		// network may change. A retry already armed stays: a search the peer's
		// retry started does not postpone ours, since only our own request names
		// our fresh socket's current mapping (reintroduce), and a side whose
		// timer always lost the race would never tell it.
		pc.timers.earlier(peerRetryDirect, now.Add(30*time.Second+time.Duration(pc.rng.Uint64()%uint64(30*time.Second))))
	}
	pc.setPath(now, pc.relayPathEvent(reason))
}

// HandleTimeout runs the peer's timers that are due, its children's included. A
// peer whose connection ended does nothing more (it is forgotten at the next
// Connect or introduction).
func (pc *peerConn) HandleTimeout(now proto.Instant) {
	if pc.closed {
		return
	}
	if now >= pc.agent.Deadline() {
		pc.agent.HandleTimeout(now)
		pc.drainAgent(now)
	}
	if pc.srv.registered && now >= pc.relay.client.Deadline() {
		pc.relay.client.HandleTimeout(now)
		pc.drainRelay(now)
		if pc.relay.unanswered+1 >= checkAfterSends {
			// The relay-allocate due now repeats ones the server left
			// unanswered: is it there?
			pc.emit(peerChecksServer{})
		}
	}
	if pc.timers.due(peerRetryDirect, now) {
		pc.emit(peerWantsIntroduction{})
	}
	if now >= pc.unlinkedDue() {
		pc.relay.reintroduced = true
		pc.emit(peerWantsIntroduction{})
	}
	if pc.timers.due(peerHandshake, now) {
		pc.initiate(now, false)
	}
	if now >= pc.connDeadline() {
		pc.conn.HandleTimeout(now)
		pc.drainConn(now)
	}
	// The quiet checks come last: what ran above can move the route (a probe timeout
	// makes the agent check, and suspect, the direct path).
	if now >= pc.quietCheckDue() {
		pc.agent.CheckPath(now)
		pc.drainAgent(now)
	}
	if now >= pc.quietRelayDue() {
		// Relayed data goes unanswered: ask the server whether it is there.
		pc.relay.checkOut, pc.relay.checked, pc.relay.lastCheck = true, true, now
		pc.emit(peerChecksServer{})
	}
}

// Deadline is the earliest of the peer's timers and its children's.
func (pc *peerConn) Deadline() proto.Instant {
	if pc.closed {
		return proto.Never
	}
	d, _ := pc.timers.next()
	d = min(d, pc.agent.Deadline(), pc.connDeadline(), pc.quietCheckDue(), pc.quietRelayDue(), pc.unlinkedDue())
	if pc.srv.registered {
		d = min(d, pc.relay.client.Deadline())
	}
	return d
}

// deadlineReason names the timer behind Deadline.
func (pc *peerConn) deadlineReason() string {
	d := pc.Deadline()
	switch at, name := pc.timers.next(); {
	case at == d:
		return name
	case pc.agent.Deadline() == d:
		return "agent"
	case pc.connDeadline() == d:
		return "conn " + pc.conn.DeadlineReason()
	case pc.quietCheckDue() == d:
		return "quiet direct path"
	case pc.quietRelayDue() == d:
		return "quiet relay"
	case pc.unlinkedDue() == d:
		return "relay unlinked"
	}
	return "relay allocation"
}

// pollTransmit writes the peer's next datagram into *t: probes, then relay-allocates, then
// sealed connection packets (wrapped for the relay when that is the route).
// *t is the datagram only when it reports true (Node.pollTransmit says why).
func (pc *peerConn) pollTransmit(now proto.Instant, buf []byte, t *proto.Transmit) bool {
	if pc.closed {
		return false
	}
	if pc.agent.TransmitPending() {
		if at, ok := pc.agent.PollTransmit(now, buf); ok {
			*t = at
			return true
		}
	}
	if pc.pollAllocate(now, buf, t) {
		return true
	}
	for {
		if !pc.pollConn(now, buf, t) {
			return false
		}
		if pc.wrapRelay(t, buf, relayHeadroom) {
			return true
		}
	}
}

// quietCheckMin bounds how long data may be in flight on a direct path with nothing
// heard from the peer before the path is checked: a steady stream keeps rudp's probe
// timeout from ever firing (RFC 9002 arms it from the latest packet sent), so silence
// is the signal.
const quietCheckMin = 300 * time.Millisecond

// quietCheckDue is when the peer's direct path should be checked because data is in
// flight and the peer has gone quiet; Never when no check is due.
func (pc *peerConn) quietCheckDue() proto.Instant {
	if !pc.established || pc.closed || pc.agent.Checking() || pc.agent.Suspected() {
		return proto.Never
	}
	if _, _, ok := pc.agent.ActiveRoute(); !ok {
		return proto.Never
	}
	inFlight, since, srtt := pc.conn.InFlight()
	if inFlight == 0 {
		return proto.Never
	}
	// An answered check counts as hearing from the peer: otherwise a path with no
	// delay would answer each check at once and be checked again at the same instant.
	heard := max(pc.lastRecv, pc.agent.LastReply(), since)
	return heard.Add(max(4*srtt, quietCheckMin))
}
