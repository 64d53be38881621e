package punch

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/natpass/natpass/proto"
)

// AgentConfig describes one introduced pair from the local side.
type AgentConfig struct {
	// Key is the pair's probe key; both sides hold the same one.
	Key Key
	// Controlling: the local static key sorts lower (ICE's controlling role). It
	// breaks ties and lets a node drop its own probes reflected back at it.
	Controlling bool
	// Local is the node's main socket.
	Local netip.AddrPort
	// OtherLocal is the node's socket of the other IP family (a dual-stack host;
	// zero: single stack). The peer's candidates of its family are probed from it
	// in plain rounds (family.go).
	OtherLocal netip.AddrPort
	// LocalNAT and RemoteNAT are the measured behaviours (of Local's family and the
	// peer's registered one); Remote are the peer's candidates from the
	// introduction, of either family.
	LocalNAT, RemoteNAT proto.NATBehavior
	Remote              []proto.Candidate
	// StartAt is when both sides begin (the server's start delay after receipt).
	StartAt proto.Instant
	// SameNAT: both sides share a public address, so host candidates may reach each
	// other directly whatever the NAT does; simultaneous open is tried.
	SameNAT bool
	Seed    [32]byte
}

// Agent timing and bounds (DESIGN §6.5–6.6).
const (
	probeRoundInterval = 200 * time.Millisecond // one probe per target per round
	punchTimeout       = 12 * time.Second       // give up on a direct path after this
	birthdayTimeout    = 20 * time.Second
	heartbeatInterval  = 2500 * time.Millisecond // on a confirmed path (DESIGN §6.6: 2–3 s)
	heartbeatRetry     = 500 * time.Millisecond  // once a reply is late, until the path is dead
	heartbeatRetryMin  = 200 * time.Millisecond
	suspectAfter       = heartbeatInterval + 2*time.Second // no reply this long: EventPathSuspect
	suspectBeats       = 3                                 // or this many heartbeats unanswered
	pathDeadAfter      = 6500 * time.Millisecond           // no reply for this long: the path is dead
	maxTargets         = 64                                // remote addresses probed per round
	// predictWindow is how many ports from the predicted one the easy side probes:
	// a sequential NAT gives every new destination the next port, so a node that
	// punches several peers at once (a room) has moved on by the time a later peer
	// aims; 24 covers a room of 16 (PROTOCOL.md §9.3).
	predictWindow   = 24
	birthdaySockets = 256                     // extra sockets on the hard side
	birthdayProbes  = 2048                    // probes from the easy side, at most
	birthdayPace    = 2500 * time.Microsecond // 400 probes per second
	birthdayRefresh = 10 * time.Second        // re-open the hard side's mappings
	primeTTL        = 2                       // opens our mapping, dies before the peer's NAT
	maxOutstanding  = 512                     // probes awaiting a reply
	// agentOutMax bounds the probes and replies waiting for PollTransmit. The largest
	// burst one call queues is the birthday hard side's refresh: one probe from each
	// of the birthdaySockets (256) extra sockets to each public target, in practice
	// the easy side's server-reflexive and predicted addresses (512), plus a round of
	// at most maxTargets (64). 1024 holds that with room for an owner that polls a
	// call late. A refresh toward more public targets loses its tail, counted in
	// AgentStats.TransmitDrops, and loses the same tail at each refresh: those last
	// sockets stay unprimed, which only narrows the birthday odds. Any other dropped
	// probe is repeated by its timer, and a peer repeats a probe left unanswered.
	agentOutMax = 1024
	// agentEventsMax bounds the events waiting for PollEvent. One call queues at
	// most three (EventNeedSockets or EventNoPath, EventPathDown or EventPathSuspect,
	// EventNoPath at the search deadline), and the drain rule empties the queue after
	// each call: 16 holds five undrained calls. More are dropped, counted in
	// AgentStats.EventDrops.
	agentEventsMax = 16
	switchRatio    = 0.75             // a path must be this much faster to take over
	switchHold     = 10 * time.Second // and the active path must be this old
)

// Agent runs the probes of one pair: it finds direct paths with the strategy both
// sides derive from their NAT behaviours, confirms them with authenticated
// probe/reply exchanges, picks the best (LAN first, then IPv6 before IPv4, then lowest
// RTT, with hysteresis),
// heartbeats the active one and reports when it dies.
//
// Call contract: HandleDatagram for probe and probe-reply packets that carry this
// pair's ID (any socket, any source); HandleSockets after EventNeedSockets;
// HandleTimeout at Deadline; Refresh with a new introduction of the pair; Forget
// after our own network changed. Drain rule: after any call, PollTransmit until
// false, then PollEvent until false, then read Deadline. The instants given to the
// methods that take now never decrease: an earlier one than any already given is
// caller misuse and panics. A probe that fails authentication, names another pair or
// carries our own role changes nothing, gets no reply, and returns an error for the
// owner to count.
//
// Bounds: at most agentOutMax (1024) probes and replies wait for PollTransmit and
// agentEventsMax (16) events for PollEvent; beyond them the agent drops and counts
// (Stats). maxOutstanding (512) probes await an answer, the oldest forgotten first,
// and an answer is taken only within pathDeadAfter of its probe.
type Agent struct {
	clock clock // the latest instant given: time going backwards panics
	cfg   AgentConfig
	pair  uint64
	mac   *macer
	rng   *rand.Rand
	plan  Plan

	started   bool
	searching bool // probing candidates for a (better) path
	// swept: a round went to every target since the search started (the first,
	// TTL-limited round skips the LAN ones).
	swept bool
	// refreshed: a new introduction says a path was lost or a side moved, so the
	// first path the new search confirms takes over at once, without hysteresis.
	refreshed bool
	suspected bool // EventPathSuspect sent for the active path's current silence
	// beatSent is when the oldest heartbeat still unanswered on the active path left
	// (0 when every heartbeat was answered).
	beatSent proto.Instant
	beatsOut int // heartbeats sent since the last answer
	// dataCheck: the unanswered heartbeats began with CheckPath (the owner's data
	// went unacknowledged): two unanswered are then evidence enough.
	dataCheck bool
	lastBeat  proto.Instant // when the latest heartbeat left
	// seenLocal/seenFrom: the latest path an authenticated packet of the peer came in
	// on that is not the active one: where the peer is now, if its NAT rebooted.
	seenLocal, seenFrom netip.AddrPort
	deadlineP           proto.Instant // stop searching at this instant
	nextRound           proto.Instant
	primed              bool

	targets []target // remote addresses to probe from the main socket
	// rebound, when set, is the fresh socket the search probes Local's family from
	// instead of Local (Rebind); lastRemote is the latest active path's remote
	// address, which a rebound search probes too.
	rebound, lastRemote netip.AddrPort
	pending             []netip.AddrPort // Pending's answer, reused
	sockets             []netip.AddrPort
	waitingSockets      bool

	// birthday state
	sprayed   int
	nextSpray proto.Instant
	refreshAt proto.Instant

	outstanding []pending
	paths       []Path
	noSocket    int // AgentStats.NoSocket
	active      int // index into paths, -1 when none
	activeSince proto.Instant
	nextBeat    proto.Instant
	failed      bool

	out    fifo[outPacket]  // bound agentOutMax
	events fifo[AgentEvent] // bound agentEventsMax
}

// AgentStats counts what the agent dropped because its owner did not drain it in
// time (DESIGN §11: nothing disappears silently).
type AgentStats struct {
	// TransmitDrops: probes and replies not queued because agentOutMax (1024) were
	// already waiting for PollTransmit. The search and the heartbeats repeat probes
	// by their timers, and a peer repeats an unanswered probe.
	TransmitDrops int
	// EventDrops: events not queued because agentEventsMax (16) were already
	// waiting for PollEvent. The state they reported stays readable through
	// Active, Suspected and Plan.
	EventDrops int
	// NoSocket: the peer's candidates skipped because the node has no socket of
	// their family (an IPv6 candidate without OtherLocal), counted at each
	// introduction.
	NoSocket int
}

type target struct {
	addr netip.AddrPort
	lan  bool
	// from is the socket the target is probed from: Local, or OtherLocal for a
	// target of the other family (plain: probed every round, never primed).
	from  netip.AddrPort
	plain bool
}

type pending struct {
	txid     uint64
	from, to netip.AddrPort
	sentAt   proto.Instant
}

type outPacket struct {
	from, to netip.AddrPort
	ttl      uint8
	reply    bool
	txid     uint64
	observed netip.AddrPort
}

// Path is a confirmed direct path.
type Path struct {
	Local, Remote netip.AddrPort
	RTT           time.Duration
	LAN           bool
	lastReply     proto.Instant
}

// AgentEvent is one of the Event* types below.
type AgentEvent interface{ agentEvent() }

// EventPathUp: a direct path is confirmed and is now the active one.
type EventPathUp struct{ Path Path }

// EventPathDown: the active path stopped answering; Next is the replacement if
// another confirmed path is alive.
type EventPathDown struct {
	Path Path
	Next *Path
}

// EventNoPath: no direct path was found in time (or the strategy is none); the
// node stays on the relay and may Refresh later.
type EventNoPath struct{ Strategy proto.Strategy }

// EventPathSuspect: the active path missed a heartbeat reply by a margin. It is still
// active (it may come back), but the node should ask for a refreshed introduction
// now: if a NAT rebooted or a side moved, the new search is already under way when
// the path is declared dead.
type EventPathSuspect struct{ Path Path }

// EventPathRestored: the suspect active path answered again.
type EventPathRestored struct{ Path Path }

func (EventPathUp) agentEvent()       {}
func (EventPathDown) agentEvent()     {}
func (EventNoPath) agentEvent()       {}
func (EventPathSuspect) agentEvent()  {}
func (EventPathRestored) agentEvent() {}
func (EventNeedSockets) agentEvent()  {}

// Errors from Agent.HandleDatagram.
var (
	ErrBadMAC    = errors.New("punch: probe failed authentication")
	ErrOtherPair = errors.New("punch: probe for another pair")
	ErrReflected = errors.New("punch: our own probe reflected back")
)

// NewAgent prepares the probes of one pair; nothing is sent before StartAt.
func NewAgent(cfg AgentConfig) *Agent {
	a := &Agent{
		clock:  newClock(),
		cfg:    cfg,
		pair:   PairID(&cfg.Key),
		mac:    newMacer(&cfg.Key),
		rng:    rand.New(rand.NewChaCha8(cfg.Seed)),
		plan:   choosePlan(cfg),
		active: -1,
		out:    newFIFO[outPacket](agentOutMax),
		events: newFIFO[AgentEvent](agentEventsMax),
	}
	a.sockets = []netip.AddrPort{cfg.Local}
	a.buildTargets()
	a.dropEmptyPlan()
	return a
}

func choosePlan(cfg AgentConfig) Plan {
	if cfg.SameNAT {
		return Plan{Strategy: proto.StrategySimultaneousOpen}
	}
	if !peerFamilyMatches(&cfg) {
		// The peer's NAT report is of its other family: nothing is known of its
		// side of ours (in practice an IPv6 firewall, which does not translate).
		return Choose(cfg.LocalNAT, proto.NATBehavior{})
	}
	return Choose(cfg.LocalNAT, cfg.RemoteNAT)
}

// Plan is the strategy in use.
func (a *Agent) Plan() Plan { return a.plan }

// Pair is the pair ID carried in this pair's probes.
func (a *Agent) Pair() uint64 { return a.pair }

// Active returns the active path, if any.
func (a *Agent) Active() (Path, bool) {
	if a.active < 0 {
		return Path{}, false
	}
	return a.paths[a.active], true
}

// ActiveRoute returns the active path's two addresses, if any: Active without the
// rest of the Path, for a caller that asks for every datagram it sends.
func (a *Agent) ActiveRoute() (local, remote netip.AddrPort, ok bool) {
	if a.active < 0 {
		return netip.AddrPort{}, netip.AddrPort{}, false
	}
	p := &a.paths[a.active]
	return p.Local, p.Remote, true
}

func (a *Agent) addTarget(addr netip.AddrPort, lan bool) {
	if !addr.IsValid() || len(a.targets) >= maxTargets {
		return
	}
	for _, t := range a.targets {
		if t.addr == addr {
			return
		}
	}
	from, plain, ok := a.socketFor(addr)
	if !ok {
		a.noSocket++
		return
	}
	a.targets = append(a.targets, target{addr: addr, lan: lan, from: from, plain: plain})
}

// buildTargets lists the remote addresses to probe, in the order their first probes
// go out. Predicted ports come first: a symmetric NAT gives each new destination its
// next port, so when both sides predict, the j-th target of each side must be the
// j-th new mapping of the other for the two mappings to meet. The server-reflexive
// address comes next (the first new mapping of a symmetric side toward an easy one),
// then the other family's server-reflexive addresses, host candidates last. The
// prediction concerns Local's family only: its server-reflexive and predicted
// addresses are the first of that family.
func (a *Agent) buildTargets() {
	var srflx, predicted netip.AddrPort
	for _, c := range a.cfg.Remote {
		if !sameFamily(c.Addr, a.cfg.Local) {
			continue
		}
		switch {
		case c.Kind == proto.CandidateServerReflexive && !srflx.IsValid():
			srflx = c.Addr
		case c.Kind == proto.CandidatePredicted && !predicted.IsValid():
			predicted = c.Addr
		}
	}
	if a.plan.Strategy == proto.StrategyPortPrediction && a.plan.RemoteHard {
		d := int(a.cfg.RemoteNAT.PortDelta)
		first := predicted
		if !first.IsValid() && srflx.IsValid() {
			// No prediction from the peer: guess from its registration mapping.
			if p, ok := proto.StepPort(srflx.Port(), d); ok {
				first = netip.AddrPortFrom(srflx.Addr(), p)
			}
		}
		// The window wraps from 65535 to 1024 as the NAT does (proto.StepPort).
		for k := 0; k < predictWindow && first.IsValid() && d != 0; k++ {
			if p, ok := proto.StepPort(first.Port(), k*d); ok {
				a.addTarget(netip.AddrPortFrom(first.Addr(), p), false)
			}
		}
	} else if predicted.IsValid() {
		a.addTarget(predicted, false)
	}
	a.addTarget(srflx, false)
	if a.rebound.IsValid() && a.lastRemote.IsValid() {
		// A peer whose own NAT rebooted may be registered at a new address while
		// its flows toward a fresh address keep the port it had: where it was.
		a.addTarget(a.lastRemote, isLocal(a.lastRemote.Addr()))
	}
	for _, c := range a.cfg.Remote {
		if c.Kind == proto.CandidateServerReflexive && !sameFamily(c.Addr, a.cfg.Local) {
			a.addTarget(c.Addr, false)
		}
	}
	for _, c := range a.cfg.Remote {
		if c.Kind == proto.CandidateHost {
			a.addTarget(c.Addr, isLocal(c.Addr.Addr()))
		}
	}
}

// PredictionCovers reports whether a peer told that our sequential NAT's next port
// is predicted (with step delta) aims at port: whether port is one of the
// predictWindow ports it probes from there (PROTOCOL.md §9.3).
func PredictionCovers(predicted, port uint16, delta int) bool {
	for k := 0; k < predictWindow && delta != 0; k++ {
		if p, ok := proto.StepPort(predicted, k*delta); ok && p == port {
			return true
		}
	}
	return false
}

// sharedSpace is RFC 6598's carrier-grade NAT range.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// isLocal reports whether an address is only reachable inside a site: RFC 1918 /
// RFC 4193 private, RFC 6598 shared, or link-local. A host candidate with a public
// address (a host with no NAT, whose server-reflexive address is the same one) is
// not a LAN path.
func isLocal(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsPrivate() || a.IsLinkLocalUnicast() || sharedSpace.Contains(a)
}

// Pending returns the addresses the agent's search has yet to probe: every target
// before it starts, the LAN ones its first (TTL-limited) round skipped until the
// next round, none after that or once the search stopped. A node behind a
// sequential NAT counts the mappings they will take (each new destination takes
// the NAT's next port) into the prediction it tells the server. The slice is the
// agent's; do not keep it.
func (a *Agent) Pending() []netip.AddrPort {
	a.pending = a.pending[:0]
	if a.started && (a.swept || !a.searching) {
		return a.pending
	}
	for _, t := range a.targets {
		if !t.plain && (!a.started || t.lan) {
			a.pending = append(a.pending, t.addr)
		}
	}
	return a.pending
}

// Refresh takes a new introduction of the same pair (a path was lost, or a side
// moved): new candidates and NAT behaviours, a new start instant. Confirmed paths
// are kept while they answer; the search starts again at startAt with the new
// targets, primed as the first time.
func (a *Agent) Refresh(startAt proto.Instant, localNAT, remoteNAT proto.NATBehavior, remote []proto.Candidate, sameNAT bool) {
	kept := a.predictedRemote()
	a.cfg.LocalNAT, a.cfg.RemoteNAT = localNAT, remoteNAT
	a.cfg.Remote = slices.Clone(remote)
	a.cfg.SameNAT = sameNAT
	a.cfg.StartAt = startAt
	a.plan = choosePlan(a.cfg)
	if kept.IsValid() && !a.predictedRemote().IsValid() && a.plan.Strategy == proto.StrategySimultaneousOpen {
		// Between simultaneous-open peers a predicted candidate is the peer's
		// fresh socket (a rebound, PROTOCOL.md §9.3), which it keeps searching
		// from: an introduction the other side asked for does not name it.
		a.cfg.Remote = append(a.cfg.Remote, proto.Candidate{Kind: proto.CandidatePredicted, Addr: kept})
	}
	a.targets = a.targets[:0]
	a.buildTargets()
	a.dropEmptyPlan()
	a.started, a.searching, a.primed, a.failed, a.swept = false, false, false, false, false
	a.sprayed = 0
	a.refreshed = true
}

// Rebind makes the searches from the next Refresh on probe the peer's addresses of
// Local's family from sock, a fresh socket of the same family, instead of Local, and
// the peer's latest active address besides its candidates. After a Linux NAT
// rebooted, the peer's packets to our old mapping leave [UNREPLIED] entries that
// give our flows from Local toward the peer another port, which the peer's NAT
// filters (DESIGN §9); a fresh socket's flows meet no such entry. The peer must
// aim at sock's mapping: the owner tells it through the server before that
// Refresh's introduction (PROTOCOL.md §9.3).
func (a *Agent) Rebind(sock netip.AddrPort) {
	if sameFamily(sock, a.cfg.Local) {
		a.rebound = sock
	}
}

// Rebound is the fresh socket the searches probe from (Rebind; zero: Local). The
// peer aims at its mapping only as the latest introduction that named it told it,
// so an owner asking for another introduction names that socket's mapping again
// (PROTOCOL.md §9.3): the peer may have missed the one that named it, or our NAT
// may have given the socket another mapping since (a reboot).
func (a *Agent) Rebound() netip.AddrPort { return a.rebound }

// predictedRemote is the peer's predicted candidate of Local's family (zero: none).
func (a *Agent) predictedRemote() netip.AddrPort {
	for _, c := range a.cfg.Remote {
		if c.Kind == proto.CandidatePredicted && sameFamily(c.Addr, a.cfg.Local) {
			return c.Addr
		}
	}
	return netip.AddrPort{}
}

// Forget drops every path and stays silent until the next Refresh. After our own
// network changed the old paths are gone, and probing the peer from the new address
// before it is ready would poison a Linux NAT in front of it (DESIGN §9): its
// [UNREPLIED] entry would move the peer's own probes to another port.
func (a *Agent) Forget() {
	if !a.started {
		// A pending start came with an introduction that named our old address to
		// the peer: probing the peer now is what poisons its NAT.
		a.cfg.StartAt = proto.Never
	}
	a.rebound, a.lastRemote = netip.AddrPort{}, netip.AddrPort{} // of the old network
	a.paths = a.paths[:0]
	a.active = -1
	a.searching, a.failed = false, false
	a.outstanding = a.outstanding[:0]
	a.out.reset()
}

func (a *Agent) start(now proto.Instant) {
	a.started = true
	a.searching = true
	timeout := punchTimeout
	if a.plan.Strategy == proto.StrategyBirthday {
		timeout = birthdayTimeout
	}
	a.deadlineP = now.Add(timeout)
	a.nextRound = now
	if a.plan.Strategy == proto.StrategyNone && !a.hasPlain() {
		a.failed, a.searching = true, false
		a.emit(EventNoPath{Strategy: proto.StrategyNone})
		return
	}
	if a.plan.Strategy == proto.StrategyBirthday {
		if a.plan.LocalHard && len(a.sockets) > 1 {
			a.refreshAt = now // a refresh: the sockets of the last search are still open
		} else if a.plan.LocalHard {
			a.waitingSockets = true
			a.emit(EventNeedSockets{N: birthdaySockets})
		} else {
			// Let the hard side's mappings open before spraying at them.
			a.nextSpray = now.Add(300 * time.Millisecond)
		}
	}
}

// HandleSockets receives the extra sockets for the birthday strategy.
func (a *Agent) HandleSockets(now proto.Instant, addrs []netip.AddrPort) {
	a.clock.advance(now)
	if !a.waitingSockets {
		return
	}
	a.waitingSockets = false
	// Bounded by the request: a driver that opened more than asked gets the rest
	// ignored, which keeps a birthday refresh within agentOutMax.
	a.sockets = append(a.sockets, addrs[:min(len(addrs), birthdaySockets)]...)
	a.refreshAt = now
}

// HandleTimeout runs every timer that is due.
func (a *Agent) HandleTimeout(now proto.Instant) {
	a.clock.advance(now)
	if !a.started && now >= a.cfg.StartAt {
		a.start(now)
	}
	// A path kept across a Refresh is heartbeated while the new search waits for
	// its start instant: recovery must not freeze for the start delay.
	a.heartbeat(now)
	if !a.started {
		return
	}
	if a.searching && now >= a.deadlineP {
		a.searching = false
		if a.active < 0 {
			a.failed = true
			a.emit(EventNoPath{Strategy: a.Strategy()})
		}
	}
	if a.searching {
		a.searchRound(now)
	}
}

// searchRound sends the probes that are due for the strategy.
func (a *Agent) searchRound(now proto.Instant) {
	if now >= a.nextRound {
		a.nextRound = now.Add(probeRoundInterval)
		if !a.primed {
			// Linux's port clash (DESIGN §9): a peer probe that reaches our NAT
			// before we sent anything poisons the port we are about to use. A
			// TTL-limited probe opens our mapping and dies before the peer's NAT.
			a.primed = true
			for _, t := range a.targets {
				switch {
				case t.plain:
					a.queueProbe(now, t.from, t.addr, 0) // plain: no priming
				case !t.lan && a.plan.Strategy != proto.StrategyNone:
					a.queueProbe(now, t.from, t.addr, primeTTL)
				}
			}
			a.nextRound = now.Add(probeRoundInterval / 4)
		} else {
			a.swept = true
			for _, t := range a.targets {
				// With no strategy for Local's family only the other family's
				// targets are probed.
				if t.plain || a.plan.Strategy != proto.StrategyNone {
					a.queueProbe(now, t.from, t.addr, 0)
				}
			}
		}
	}
	if a.plan.Strategy != proto.StrategyBirthday {
		return
	}
	if a.plan.LocalHard && len(a.sockets) > 1 && now >= a.refreshAt {
		// Each extra socket sends to the easy side's known address: 256 mappings
		// at random ports, each admitting that address. The probes only need to
		// open our mappings, so they are TTL-limited: arriving unsolicited at a
		// Linux NAT they would leave [UNREPLIED] entries that push the easy side's
		// matching probe onto another port (DESIGN §9).
		a.refreshAt = now.Add(birthdayRefresh)
		for _, s := range a.sockets[1:] {
			for _, t := range a.targets {
				if !t.lan && !t.plain {
					a.queueProbe(now, s, t.addr, primeTTL)
				}
			}
		}
	}
	if !a.plan.LocalHard && a.sprayed < birthdayProbes && now >= a.nextSpray && a.active < 0 {
		ip := a.remoteIP()
		if ip.IsValid() {
			// Paced: one probe per birthdayPace, catching up if the caller was late
			// but never more than a handful at once.
			for n := 0; n < 4 && now >= a.nextSpray && a.sprayed < birthdayProbes; n++ {
				port := uint16(1024 + a.rng.Uint64()%(65536-1024))
				a.queueProbe(now, a.cfg.Local, netip.AddrPortFrom(ip, port), 0)
				a.sprayed++
				a.nextSpray = a.nextSpray.Add(birthdayPace)
			}
			if now >= a.nextSpray {
				a.nextSpray = now.Add(birthdayPace)
			}
		}
	}
}

// remoteIP is the peer's public address: its server-reflexive one, or a public host
// address when it has no NAT (the server then sends no server-reflexive candidate).
func (a *Agent) remoteIP() netip.Addr {
	for _, c := range a.cfg.Remote {
		if c.Kind == proto.CandidateServerReflexive && sameFamily(c.Addr, a.cfg.Local) {
			return c.Addr.Addr()
		}
	}
	for _, t := range a.targets {
		if !t.lan && !t.plain {
			return t.addr.Addr()
		}
	}
	return netip.Addr{}
}

func (a *Agent) queueProbe(now proto.Instant, from, to netip.AddrPort, ttl uint8) {
	a.pruneExpired(now)
	if len(a.outstanding) >= maxOutstanding {
		// Oldest first out: a probe this old will not be answered.
		a.outstanding = append(a.outstanding[:0], a.outstanding[1:]...)
	}
	txid := a.rng.Uint64()
	if a.out.push(outPacket{from: from, to: to, ttl: ttl, txid: txid}) {
		// A probe that never leaves is not awaited.
		a.outstanding = append(a.outstanding, pending{txid: txid, from: from, to: to, sentAt: now})
	}
}

func (a *Agent) heartbeat(now proto.Instant) {
	if a.active < 0 {
		return
	}
	p := &a.paths[a.active]
	if now.Sub(p.lastReply) >= pathDeadAfter {
		dead := *p
		a.paths = slices.Delete(a.paths, a.active, a.active+1)
		a.active = -1
		var next *Path
		if i := a.best(now); i >= 0 {
			a.active = i
			a.activeSince = now
			n := a.paths[i]
			next = &n
		}
		a.emit(EventPathDown{Path: dead, Next: next})
		if a.active < 0 {
			// Search again: the peer may have moved, or the NAT rebooted.
			a.searching, a.failed = true, false
			a.deadlineP = now.Add(punchTimeout)
			a.nextRound = now
			a.primed = false
		}
		return
	}
	// Three heartbeats unanswered, the last of them given its full retry time, not
	// one: lost packets (1 % on each of four links) must not move traffic off a good
	// path (a flap).
	need := suspectBeats
	if a.dataCheck {
		need = 2
	}
	if !a.suspected && (now.Sub(p.lastReply) >= suspectAfter ||
		a.beatSent != 0 && a.beatsOut >= need && now.Sub(a.lastBeat) >= a.retry()) {
		a.suspected = true
		a.emit(EventPathSuspect{Path: *p})
	}
	if now >= a.nextBeat {
		// Every heartbeat is checked heartbeatRetry later: answered, the next one is
		// due a heartbeatInterval after it (answered sets nextBeat); unanswered, it is
		// sent again at once. The dead-path window thus holds a dozen chances, and a
		// couple of lost packets cannot kill, or even suspect, a live path.
		retry := a.beatSent != 0
		if a.beatSent == 0 {
			a.beatSent = now
		}
		a.beatsOut++
		a.lastBeat = now
		a.nextBeat = now.Add(a.retry())
		a.queueProbe(now, p.Local, p.Remote, 0)
		if retry && a.seenFrom.IsValid() {
			// The peer reached us from elsewhere lately: try that way back too.
			a.queueProbe(now, a.seenLocal, a.seenFrom, 0)
		}
	}
}

// pruneExpired forgets the probes sent pathDeadAfter or longer ago. Expiry is lazy:
// waking the owner for it would be a timer with nothing to send, and expiring in
// HandleTimeout made the fate of a late answer depend on whether the owner happened
// to call in between (a spurious call is a no-op, DESIGN §2). expired decides at the
// answer instead; this only reclaims the room. Probes are appended as they leave and
// time never decreases, so the expired ones are a prefix.
func (a *Agent) pruneExpired(now proto.Instant) {
	n := 0
	for n < len(a.outstanding) && a.expired(now, a.outstanding[n]) {
		n++
	}
	if n > 0 {
		a.outstanding = append(a.outstanding[:0], a.outstanding[n:]...)
	}
}

// expired reports whether a probe's answer comes too late to be taken.
func (a *Agent) expired(now proto.Instant, o pending) bool { return now.Sub(o.sentAt) >= pathDeadAfter }

// HandleDatagram takes a probe or probe reply that arrived on socket local from from.
func (a *Agent) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	a.clock.advance(now)
	h, _, err := proto.ParseHeader(p)
	if err != nil {
		return err
	}
	switch h.Type {
	case proto.TypeProbe:
		var m proto.Probe
		if err := m.Parse(p); err != nil {
			return err
		}
		if err := a.check(m.Pair, m.Flags, p); err != nil {
			return err
		}
		a.out.push(outPacket{from: local, to: from, reply: true, txid: m.TxID, observed: from})
		a.NoteTraffic(now, local, from)
		if !a.started {
			return nil
		}
		// Triggered check (RFC 8445 §7.3.1.4): the peer reached us from an address
		// we may not know (a new mapping of a symmetric NAT); probe it back from
		// the same socket so the path confirms from our side too.
		if a.active < 0 || a.paths[a.active].Remote != from {
			if !a.knownTarget(from) && len(a.targets) < maxTargets {
				if sock, plain, ok := a.socketFor(from); ok {
					a.targets = append(a.targets, target{addr: from, from: sock, plain: plain})
				}
			}
			a.queueProbe(now, local, from, 0)
		}
		return nil
	case proto.TypeProbeReply:
		var m proto.ProbeReply
		if err := m.Parse(p); err != nil {
			return err
		}
		if err := a.check(m.Pair, m.Flags, p); err != nil {
			return err
		}
		i := slices.IndexFunc(a.outstanding, func(o pending) bool { return o.txid == m.TxID })
		if i < 0 || a.outstanding[i].from != local || a.expired(now, a.outstanding[i]) {
			return ErrUnexpected
		}
		o := a.outstanding[i]
		a.outstanding = slices.Delete(a.outstanding, i, i+1)
		a.confirm(now, local, from, now.Sub(o.sentAt))
		return nil
	}
	return ErrNotProbe
}

// CheckPath asks for a heartbeat on the active path now: the owner saw a sign of
// trouble (its reliable transport's probe timeout fired). If the reply does not come
// within max(4 RTT, 500 ms) the path is suspect, well before an idle path would be.
func (a *Agent) CheckPath(now proto.Instant) {
	a.clock.advance(now)
	if a.active < 0 || a.beatSent != 0 {
		return
	}
	p := &a.paths[a.active]
	a.beatSent, a.lastBeat = now, now
	a.beatsOut, a.dataCheck = 1, true
	a.nextBeat = now.Add(a.retry())
	a.queueProbe(now, p.Local, p.Remote, 0)
}

// retry is how long a heartbeat waits for its answer before it is sent again:
// 3 RTT of the active path, within [heartbeatRetryMin, heartbeatRetry].
func (a *Agent) retry() time.Duration {
	return min(max(3*a.paths[a.active].RTT, heartbeatRetryMin), heartbeatRetry)
}

// LastReply is when the active path last answered (zero without one).
func (a *Agent) LastReply() proto.Instant {
	if a.active < 0 {
		return 0
	}
	return a.paths[a.active].lastReply
}

// Checking reports whether a heartbeat of the active path awaits its answer.
func (a *Agent) Checking() bool { return a.active >= 0 && a.beatSent != 0 }

// Suspected reports whether the active path is suspect: the owner sends through the
// relay meanwhile, if it has one.
func (a *Agent) Suspected() bool { return a.active >= 0 && a.suspected }

// answered records that the active path answered: any suspicion ends.
func (a *Agent) answered(now proto.Instant) {
	p := &a.paths[a.active]
	p.lastReply = now
	if a.suspected {
		a.emit(EventPathRestored{Path: *p})
	}
	if a.beatSent != 0 {
		a.nextBeat = a.lastBeat.Add(heartbeatInterval) // back to the normal cadence
	}
	a.suspected, a.beatSent, a.beatsOut, a.dataCheck = false, 0, 0, false
}

// overdue is how long an unanswered heartbeat may wait before the path is failing.
func (a *Agent) overdue() time.Duration { return max(4*a.paths[a.active].RTT, 500*time.Millisecond) }

// NoteTraffic records that an authenticated packet from the peer arrived on socket
// local from from: if that is the active path, it is alive. The node calls it for
// transport data too, so a busy path never needs a heartbeat reply to stay up.
func (a *Agent) NoteTraffic(now proto.Instant, local, from netip.AddrPort) {
	a.clock.advance(now)
	if a.active >= 0 && a.paths[a.active].Local == local && a.paths[a.active].Remote == from {
		a.answered(now)
		return
	}
	a.seenLocal, a.seenFrom = local, from
}

func (a *Agent) knownTarget(addr netip.AddrPort) bool {
	return slices.ContainsFunc(a.targets, func(t target) bool { return t.addr == addr })
}

// check authenticates a probe message: pair, role, then MAC. Nothing before it
// changes state.
func (a *Agent) check(pair uint64, flags uint8, p []byte) error {
	if pair != a.pair {
		return ErrOtherPair
	}
	if (flags&proto.ProbeControlling != 0) == a.cfg.Controlling {
		return ErrReflected
	}
	if !a.mac.verify(p) {
		return ErrBadMAC
	}
	return nil
}

func (a *Agent) isLAN(remote netip.AddrPort) bool {
	return slices.ContainsFunc(a.targets, func(t target) bool { return t.lan && t.addr == remote })
}

// confirm records a working path and makes it active if it is the best.
func (a *Agent) confirm(now proto.Instant, local, remote netip.AddrPort, rtt time.Duration) {
	i := slices.IndexFunc(a.paths, func(p Path) bool { return p.Local == local && p.Remote == remote })
	if i < 0 {
		a.paths = append(a.paths, Path{Local: local, Remote: remote, RTT: rtt, LAN: a.isLAN(remote)})
		i = len(a.paths) - 1
	} else {
		// RFC 6298-style smoothing keeps one slow reply from flipping the choice.
		a.paths[i].RTT = (7*a.paths[i].RTT + rtt) / 8
	}
	a.paths[i].lastReply = now
	if a.active == i {
		a.refreshed = false
		a.answered(now) // the active path still answers: keep it
		return
	}
	// The active path is failing when it has not answered for several of its RTTs:
	// then any path that just proved itself is better, hysteresis or not.
	failing := a.active >= 0 && a.beatSent != 0 && now.Sub(a.beatSent) > a.overdue()
	if a.active < 0 || a.refreshed && a.started || failing {
		a.refreshed = false
		a.activate(now, i)
		return
	}
	// LAN first, then IPv6 before IPv4, both at once; within a rank, a faster path
	// takes over only with hysteresis.
	cur, cand := a.paths[a.active], a.paths[i]
	better := ranksAbove(cand, cur) ||
		sameRank(cand, cur) && float64(cand.RTT) < switchRatio*float64(cur.RTT) && now.Sub(a.activeSince) >= switchHold
	if better {
		a.activate(now, i)
	}
}

func (a *Agent) activate(now proto.Instant, i int) {
	a.active = i
	a.lastRemote = a.paths[i].Remote
	a.suspected, a.beatSent, a.beatsOut, a.dataCheck = false, 0, 0, false
	a.seenLocal, a.seenFrom = netip.AddrPort{}, netip.AddrPort{}
	a.activeSince = now
	a.nextBeat = now.Add(heartbeatInterval)
	a.failed = false
	// Keep searching a little longer for a LAN path if this one is not; otherwise
	// stop probing candidates. An IPv4 path with IPv6 targets keeps the search to
	// its deadline: an IPv6 path may still confirm, and would take over.
	switch p := a.paths[i]; {
	case p.LAN:
		a.searching = false
	case is6(p.Remote) || !a.has6Target():
		a.deadlineP = proto.Min(a.deadlineP, now.Add(time.Second))
	}
	a.emit(EventPathUp{Path: a.paths[i]})
}

// best returns the index of the best live path, or -1.
func (a *Agent) best(now proto.Instant) int {
	best := -1
	for i, p := range a.paths {
		if now.Sub(p.lastReply) >= pathDeadAfter {
			continue
		}
		if best < 0 || ranksAbove(p, a.paths[best]) || sameRank(p, a.paths[best]) && p.RTT < a.paths[best].RTT {
			best = i
		}
	}
	return best
}

// TransmitPending reports whether PollTransmit has a datagram to return. A caller
// that asks for every datagram it sends checks this first: with none pending, as
// nearly always once a path is up, it costs less than PollTransmit's zero Transmit.
func (a *Agent) TransmitPending() bool { return a.out.len() > 0 }

// PollTransmit returns the next probe or reply.
func (a *Agent) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	a.clock.advance(now)
	o, ok := a.out.pop()
	if !ok {
		return proto.Transmit{}, false
	}
	var flags uint8
	if a.cfg.Controlling {
		flags = proto.ProbeControlling
	}
	var p []byte
	if o.reply {
		m := proto.ProbeReply{Pair: a.pair, TxID: o.txid, Flags: flags, Observed: o.observed}
		p = m.Append(buf[:0])
	} else {
		m := proto.Probe{Pair: a.pair, TxID: o.txid, Flags: flags}
		p = m.Append(buf[:0])
	}
	a.mac.seal(p)
	return proto.Transmit{From: o.from, To: o.to, TTL: o.ttl, Payload: p}, true
}

// PollEvent returns the next event.
func (a *Agent) PollEvent() (AgentEvent, bool) {
	return a.events.pop()
}

// emit queues an event for PollEvent, or counts it in EventDrops when full.
func (a *Agent) emit(e AgentEvent) { a.events.push(e) }

// Stats returns the agent's drop counters.
func (a *Agent) Stats() AgentStats {
	return AgentStats{TransmitDrops: a.out.drops, EventDrops: a.events.drops, NoSocket: a.noSocket}
}

// Deadline is when HandleTimeout must next be called.
func (a *Agent) Deadline() proto.Instant {
	d := proto.Never
	if !a.started {
		d = a.cfg.StartAt
	}
	if a.active >= 0 {
		d = proto.Min(d, proto.Min(a.nextBeat, a.paths[a.active].lastReply.Add(pathDeadAfter)))
		if !a.suspected {
			d = proto.Min(d, a.paths[a.active].lastReply.Add(suspectAfter))
			if a.beatSent != 0 && a.beatsOut >= 2 {
				d = proto.Min(d, a.lastBeat.Add(a.retry()))
			}
		}
	}
	if !a.started || !a.searching {
		return d
	}
	d = proto.Min(d, proto.Min(a.deadlineP, a.nextRound))
	if a.plan.Strategy == proto.StrategyBirthday {
		if a.plan.LocalHard && len(a.sockets) > 1 {
			d = proto.Min(d, a.refreshAt)
		} else if !a.plan.LocalHard && a.sprayed < birthdayProbes && a.active < 0 && a.remoteIP().IsValid() {
			// Without the peer's address (a relay-only introduction names none)
			// there is nothing to spray at: no timer, or the owner would spin.
			d = proto.Min(d, a.nextSpray)
		}
	}
	return d
}
