package node

import (
	"net/netip"
	"slices"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/punch"
)

// Port prediction that keeps up with the node's own flows (PROTOCOL.md §9.3). A
// sequential NAT gives every new flow (socket, destination) its next port, so the
// next port measured at classification is stale once the node talks to anyone new:
// a room member behind such a NAT punches several peers at once, and a
// symmetric×symmetric link alone probes 24 ports. The node sees every datagram it
// sends, so it counts the new flows and keeps the prediction where the NAT is:
// measured next + delta × flows opened since. The keepalive carries the current
// prediction, sent again before an introduce-request when it moved, so the server
// hands peers a fresh one. And a hard side whose mapping toward an easy peer (the
// one the peer must aim at) landed outside the window the peer was given asks for a
// refreshed introduction that names that mapping's port (realign).
const (
	// maxFlows bounds the flows remembered; past it the idle ones are forgotten,
	// and a flow that still finds no room is counted (Stats.FlowsUntracked) and
	// taken as new each time, which overestimates (the window only looks ahead).
	maxFlows = 4096
	// flowIdle: a flow unused this long is taken as gone from the NAT. NATs keep
	// UDP mappings at least 2 minutes (RFC 4787 REQ-5); too long only means a
	// reused port is counted as kept, the safe side (the window looks ahead).
	flowIdle = 2 * time.Minute
	// predictKeepaliveDelay: a moved prediction goes to the server in a keepalive
	// this long after the flow that moved it (a burst of flows costs one), so the
	// server introduces us to the next peer with a current one.
	predictKeepaliveDelay = 50 * time.Millisecond
)

// maxAnnounced bounds the keepalives whose prediction is remembered until the
// server acknowledges one; past it the oldest is forgotten (a peer may then be
// realigned once more than needed).
const maxAnnounced = 8

// announcement is the prediction a keepalive carried.
type announcement struct {
	seq       uint32
	predicted netip.AddrPort
}

// announce notes the prediction of keepalive s.kaSeq.
func (s *serverSession) announce(predicted netip.AddrPort) {
	if len(s.announced) >= maxAnnounced {
		s.announced = slices.Delete(s.announced, 0, 1)
	}
	s.announced = append(s.announced, announcement{s.kaSeq, predicted})
}

// announceAcked: the server acknowledged keepalive seq, so it holds that
// prediction or a later one.
func (s *serverSession) announceAcked(seq uint32) {
	i := slices.IndexFunc(s.announced, func(a announcement) bool { return a.seq == seq })
	if i > 0 {
		s.announced = slices.Delete(s.announced, 0, i)
	}
}

// lastAnnounced is the prediction of the latest keepalive.
func (s *serverSession) lastAnnounced() netip.AddrPort {
	if len(s.announced) == 0 {
		return netip.AddrPort{}
	}
	return s.announced[len(s.announced)-1].predicted
}

type flowKey struct{ from, to netip.AddrPort }

// flowTracker remembers the flows the node sent on, with their last use.
type flowTracker struct {
	last   map[flowKey]proto.Instant
	opened int // new flows since the NAT measurement
}

// tracking reports whether flows are counted: until the NAT is measured (the
// classifier's and the server's flows must be known when counting starts), and
// after, only behind a sequential NAT with a prediction.
func (s *serverSession) tracking() bool {
	return !s.classified || s.predicted.IsValid() && s.nat.PortDelta != 0
}

// noteFlow sees a datagram leave from local socket from to to. For a new flow
// behind a sequential NAT it returns the external port the NAT gave it (ok).
func (s *serverSession) noteFlow(now proto.Instant, from, to netip.AddrPort) (port uint16, ok bool) {
	if !s.tracking() {
		return 0, false
	}
	f := &s.flows
	if f.last == nil {
		f.last = map[flowKey]proto.Instant{}
	}
	k := flowKey{from, to}
	if at, seen := f.last[k]; seen && now.Sub(at) < flowIdle {
		f.last[k] = now
		return 0, false
	}
	if len(f.last) >= maxFlows {
		f.prune(now)
	}
	if len(f.last) < maxFlows {
		f.last[k] = now
	} else {
		s.stats.FlowsUntracked++
	}
	if !s.classified {
		return 0, false
	}
	port, ok = s.predictedAt(f.opened)
	f.opened++
	s.timers.earlier(srvPredict, now.Add(predictKeepaliveDelay))
	return port, ok
}

// prune forgets the idle flows.
func (f *flowTracker) prune(now proto.Instant) {
	for k, at := range f.last {
		if now.Sub(at) >= flowIdle {
			delete(f.last, k)
		}
	}
}

// predictedAt is the port of the k-th new flow after the measurement.
func (s *serverSession) predictedAt(k int) (uint16, bool) {
	return proto.StepPort(s.predicted.Port(), k*int(s.nat.PortDelta))
}

// currentPrediction is where the NAT's next new mapping goes once the searches
// already planned have started: the measured next address stepped by the flows
// opened since and by those the agents not yet started will open (zero without a
// prediction). A peer introduced now starts after them, so that is where it must
// aim.
func (s *serverSession) currentPrediction() netip.AddrPort {
	if !s.predicted.IsValid() || s.nat.PortDelta == 0 {
		return s.predicted
	}
	ahead := 0
	if s.reserve != nil {
		ahead = s.reserve()
	}
	p, ok := s.predictedAt(s.flows.opened + ahead)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(s.predicted.Addr(), p)
}

// measured: the classifier measured the NAT; counting starts again from its next
// port (the flows it knows of stay known).
func (s *serverSession) measured() { s.flows.opened = 0 }

// realign asks for a refreshed introduction of peer naming port as our predicted
// address: the peer, which aims a window of ports from the prediction, then aims
// at the mapping we opened toward it (PROTOCOL.md §9.3).
func (s *serverSession) realign(now proto.Instant, peer string, port uint16) {
	if s.pendingIntro(peer) || !s.predicted.IsValid() {
		return
	}
	s.introduce(now, peer, true)
	if i := len(s.intros) - 1; i >= 0 && s.intros[i].peer == peer {
		aim := netip.AddrPortFrom(s.predicted.Addr(), port)
		s.intros[i].aim = aim
		if s.registered {
			// The keepalive naming the aim goes twice before the request (which
			// then sends none): were it lost, the server would introduce with the
			// prediction before it, which our mapping lies behind, and a pair is
			// realigned only once.
			s.sendKeepaliveNaming(now, aim)
			s.sendKeepaliveNaming(now, aim)
		}
	}
}

// covers reports whether a peer told any one of the predictions aims at port
// (punch's window).
func (s *serverSession) covers(predictions []netip.AddrPort, port uint16) bool {
	for _, p := range predictions {
		if !p.IsValid() || !punch.PredictionCovers(p.Port(), port, int(s.nat.PortDelta)) {
			return false
		}
	}
	return len(predictions) > 0
}

// noteIntro keeps what the introduction m tells about where the peer aims at us.
// Behind a sequential NAT its search will take ports: the server hears of the
// moved prediction soon (srvPredict).
func (pc *peerConn) noteIntro(now proto.Instant, m *proto.Introduction) {
	if pc.srv.classified && pc.srv.tracking() {
		pc.srv.timers.earlier(srvPredict, now.Add(predictKeepaliveDelay))
	}
	pc.aim.srflx, pc.aim.predicted = netip.AddrPort{}, pc.aim.predicted[:0]
	for _, a := range pc.srv.announced {
		pc.aim.predicted = append(pc.aim.predicted, a.predicted)
	}
	for _, c := range m.Candidates {
		switch {
		case c.Kind == proto.CandidateServerReflexive:
			pc.aim.srflx = c.Addr
		case c.Kind == proto.CandidateHost && !pc.aim.srflx.IsValid() && isPublic(c.Addr.Addr()):
			// A peer with no NAT: the server sends its public host address only.
			pc.aim.srflx = c.Addr
		}
	}
}

// isPublic reports whether a is reachable across the Internet: not private,
// shared (RFC 6598), loopback or link-local.
func isPublic(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate() && !sharedSpace.Contains(a)
}

var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// noteTransmit counts the flow of t, which the node is sending (for pc when not
// nil). When it is our first datagram to an easy peer that predicts our ports, it
// opens the mapping the peer must hit; if the window the peer was given misses it,
// the peer is introduced again with that port as our prediction (once per
// introduction of the pair).
func (n *Node) noteTransmit(now proto.Instant, t *proto.Transmit, pc *peerConn) {
	if t.From == n.cfg.OtherLocal && t.From.IsValid() {
		return // the other family's flows do not cross Local's NAT
	}
	port, ok := n.srv.noteFlow(now, t.From, t.To)
	if !ok || pc == nil || pc.realigned || t.To != pc.aim.srflx || pc.closed {
		return
	}
	plan := pc.agent.Plan()
	if plan.Strategy != proto.StrategyPortPrediction || !plan.LocalHard || plan.RemoteHard {
		return
	}
	if n.srv.covers(pc.aim.predicted, port) {
		return
	}
	pc.realigned = true
	n.stats.Realigned++
	// Silent until the new introduction: our probes reaching the peer's NAT before
	// it aims at us would poison a Linux NAT there (DESIGN §9), and both sides
	// start again at the introduction's instant, primed as the first time.
	pc.agent.Forget()
	n.srv.realign(now, pc.id, port)
}

// bothSequential reports whether pc is punched by prediction on both sides.
func (pc *peerConn) bothSequential() bool {
	plan := pc.agent.Plan()
	return plan.Strategy == proto.StrategyPortPrediction && plan.LocalHard && plan.RemoteHard
}

// reservedFlows counts the new flows the peers' agents not yet started will open
// (Node sets it as the server session's reserve).
func (n *Node) reservedFlows() int {
	if !n.srv.tracking() || !n.srv.classified {
		return 0
	}
	k := 0
	for _, p := range n.peers {
		if p.closed {
			continue
		}
		for _, to := range p.agent.Pending() {
			if _, known := n.srv.flows.last[flowKey{n.cfg.Local, to}]; !known {
				k++
			}
		}
	}
	return k
}
