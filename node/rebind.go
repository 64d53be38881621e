package node

import (
	"net/netip"
	"slices"

	"github.com/natpass/natpass/proto"
)

// Re-punching from a fresh socket (PROTOCOL.md §9.3, "Re-punching after a NAT
// reboot"). A Linux NAT that forgot its mappings (a reboot, `conntrack -F`) keeps
// [UNREPLIED] entries for the peer's packets that reached it first; the host's next
// flow toward the peer then gets another port, which the peer's NAT filters, and the
// peer keeps the entries alive for as long as it sends to the old mapping (DESIGN
// §9). Searching again from the same socket cannot escape that. So, when the direct
// path stops answering, each side of a simultaneous-open pair opens a fresh socket,
// learns its mapping with a nat-probe from it, and asks for a refreshed introduction
// naming that mapping (introduce-request flag rebound); the server passes each to the
// other as a predicted candidate of one introduction, and both sides search again at
// its instant from their fresh sockets, TTL-primed first as always. The tuple of the
// two fresh mappings is new on both NATs, whichever of them rebooted.

// maxRebinds bounds the fresh sockets one peer takes over its life (the driver bounds
// every extra socket too); past it a lost path takes no new one (reintroduce).
const maxRebinds = 16

// rebindOwner owns a fresh socket asked for a peer's rebind (Node.requestSockets),
// told apart from the birthday sockets the peerConn itself asks for.
type rebindOwner struct{ pc *peerConn }

// Requests a peerConn makes of Node for a rebind.
type (
	peerWantsRebindSocket struct{}                      // one fresh socket
	peerRebinds           struct{ sock netip.AddrPort } // ask for an introduction naming sock's mapping
)

// rebindState is a peerConn's rebind bookkeeping.
type rebindState struct {
	waiting bool // a fresh socket is asked for
	count   int  // fresh sockets taken, at most maxRebinds
}

// pathLost: the direct path stopped answering (suspect, or dead with no other): ask
// for a refreshed introduction, from a fresh socket when this side rebinds.
func (pc *peerConn) pathLost() {
	// A NAT that rebooted forgot our mapping toward the server too: a keepalive now
	// moves our session to the new one, or introductions would go to the old.
	pc.emit(peerChecksServer{})
	switch {
	case pc.rebind.waiting:
		// The socket is on its way; its request follows.
	case pc.rebindable():
		pc.rebind.waiting = true
		pc.emit(peerWantsRebindSocket{})
	default:
		pc.emit(peerWantsIntroduction{})
	}
}

// rebindable reports whether this side takes a fresh socket when the path is lost:
// only for simultaneous open, where both sides aim at each other's mappings (the
// other strategies open mappings of their own). Both sides do: the side behind the
// NAT that rebooted must, since Linux gives its new flows the port of an existing
// mapping of the same socket (a clashed one, which the server may not have seen),
// while a fresh socket's flows all take the mapping its nat-probe saw.
func (pc *peerConn) rebindable() bool {
	return pc.agent.Plan().Strategy == proto.StrategySimultaneousOpen &&
		pc.rebind.count < maxRebinds && !pc.closed && !pc.closing
}

// rebindSockets receives the fresh socket (none: the driver could open none, and a
// refresh is asked for instead, naming the fresh socket the agent has, if any).
func (pc *peerConn) rebindSockets(addrs []netip.AddrPort) {
	pc.rebind.waiting = false
	if pc.closed {
		return
	}
	if len(addrs) == 0 {
		pc.emit(peerWantsIntroduction{})
		return
	}
	pc.rebind.count++
	pc.stats.Rebinds++
	pc.emit(peerRebinds{addrs[0]})
}

// newPrediction reports whether introduction m names another predicted address of
// the peer than the latest one did: a rebound introduction, new even when its start
// instant falls near the last one's (repeats carry their first copy's [INTRO-4]).
func (pc *peerConn) newPrediction(m *proto.Introduction) bool {
	return predictedOf(m) != pc.introPredicted
}

// predictedOf is m's predicted candidate (zero: none).
func predictedOf(m *proto.Introduction) netip.AddrPort {
	for _, c := range m.Candidates {
		if c.Kind == proto.CandidatePredicted {
			return c.Addr
		}
	}
	return netip.AddrPort{}
}

// reintroduce asks for a refreshed introduction of the known peer p. While p's agent
// searches from a fresh socket it is a rebound one naming that socket's mapping,
// learned again by a nat-probe: the peer aims at it only as an introduction told it,
// and the one that did may never have reached the peer (a server outage, a session
// lost), or our NAT may have given the socket another mapping since (a reboot). A
// plain refresh names none, and the peer would keep aiming at a stale prediction
// while we probe from a socket it never heard of, a deadlock no retry escapes.
func (n *Node) reintroduce(now proto.Instant, p *peerConn) {
	if sock := p.agent.Rebound(); sock.IsValid() && p.agent.Plan().Strategy == proto.StrategySimultaneousOpen {
		n.srv.introduceRebound(now, p.id, sock)
		return
	}
	n.srv.introduce(now, p.id, true)
}

// introduceRebound asks for a refreshed introduction of peer naming the mapping of
// the fresh socket sock: a nat-probe from sock learns it, then the request goes
// (retryIntroductions). A request of the pair already pending becomes this one.
func (s *serverSession) introduceRebound(now proto.Instant, peer string, sock netip.AddrPort) {
	find := func() int { return slices.IndexFunc(s.intros, func(r introRequest) bool { return r.peer == peer }) }
	i := find()
	if i < 0 {
		s.introduce(now, peer, true)
		if i = find(); i < 0 {
			return // waiting for the NAT measurement, or too many pending: a plain one
		}
	}
	r := &s.intros[i]
	r.refresh, r.fresh, r.observed, r.aim = true, sock, netip.AddrPort{}, netip.AddrPort{}
	r.txid, r.tries, r.next = s.rng.Uint64(), 0, now
	s.timers.earlier(srvIntroduce, now)
}

// reboundObserved takes a nat-probe-reply that reached local: the mapping of a
// rebound request's fresh socket, when it answers that request's probe. The request
// then goes at once, naming it.
func (s *serverSession) reboundObserved(now proto.Instant, local netip.AddrPort, m *proto.NATProbeReply) bool {
	i := slices.IndexFunc(s.intros, func(r introRequest) bool { return r.fresh.IsValid() && r.fresh == local && r.txid == m.TxID })
	if i < 0 {
		return false
	}
	if r := &s.intros[i]; !r.observed.IsValid() {
		r.observed, r.tries, r.next = m.Observed, 0, now
		s.timers.earlier(srvIntroduce, now)
	}
	return true
}
