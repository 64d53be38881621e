package punch

import (
	"net/netip"
	"slices"

	"github.com/natpass/natpass/proto"
)

// Dual stack (DESIGN §14, PROTOCOL.md §5.12). A node on a dual-stack host has a
// socket per family: Local, which the strategy is chosen for, and OtherLocal. The
// peer's candidates of Local's family are probed as the plan says; those of
// OtherLocal's family are probed from OtherLocal in plain rounds (every target each
// round at full TTL: no prediction, no birthday, no priming), since the other
// family is in practice IPv6, where firewalls do not translate and simultaneous
// open always works; candidates of a family the node has no socket for are skipped
// and counted (AgentStats.NoSocket).

// is6 reports whether a is an IPv6 address (an IPv4-mapped one counts as IPv4, as
// a dual-stack socket sends it).
func is6(a netip.AddrPort) bool { return !a.Addr().Unmap().Is4() }

// sameFamily reports whether a and b are of one IP family.
func sameFamily(a, b netip.AddrPort) bool { return is6(a) == is6(b) }

// socketFor returns the socket a target is probed from, and whether that is the
// other-family socket (plain rounds); ok is false when the node has no socket of
// the target's family.
func (a *Agent) socketFor(addr netip.AddrPort) (from netip.AddrPort, plain, ok bool) {
	switch {
	case sameFamily(addr, a.cfg.Local) && a.rebound.IsValid():
		return a.rebound, false, true
	case sameFamily(addr, a.cfg.Local):
		return a.cfg.Local, false, true
	case a.cfg.OtherLocal.IsValid() && sameFamily(addr, a.cfg.OtherLocal):
		return a.cfg.OtherLocal, true, true
	}
	return netip.AddrPort{}, false, false
}

// hasPlain reports whether any target is probed from OtherLocal.
func (a *Agent) hasPlain() bool {
	for _, t := range a.targets {
		if t.plain {
			return true
		}
	}
	return false
}

// has6Target reports whether any target is an IPv6 address: an IPv4 path that
// confirms first is then kept while the search goes on for an IPv6 one.
func (a *Agent) has6Target() bool {
	for _, t := range a.targets {
		if is6(t.addr) {
			return true
		}
	}
	return false
}

// Strategy is the strategy of the family a direct path is expected on, in the
// order a dual-stack node prefers paths (IPv6 first, as sim.OracleFamily): the
// plan's for Local's family, simultaneous open for OtherLocal's when the peer has
// candidates there. It is StrategyNone only when no family has a strategy. Without
// OtherLocal it is Plan().Strategy.
func (a *Agent) Strategy() proto.Strategy {
	other := proto.StrategyNone
	if a.hasPlain() {
		other = proto.StrategySimultaneousOpen
	}
	if other != proto.StrategyNone && is6(a.cfg.OtherLocal) {
		return other
	}
	if a.plan.Strategy != proto.StrategyNone {
		return a.plan.Strategy
	}
	return other
}

// ranksAbove reports whether path p is preferred to q by kind alone: a LAN path
// first, then IPv6 before IPv4. Paths of the same rank are compared by RTT.
func ranksAbove(p, q Path) bool {
	if p.LAN != q.LAN {
		return p.LAN
	}
	return is6(p.Remote) && !is6(q.Remote)
}

// sameRank reports whether p and q differ only in RTT.
func sameRank(p, q Path) bool { return p.LAN == q.LAN && is6(p.Remote) == is6(q.Remote) }

// peerFamilyMatches reports whether the peer registered over Local's family: its
// first server-reflexive candidate (the address it registered from; the server
// lists the other-family address after it), else its first host candidate (a node
// lists Local first), is of that family. Without candidates it is assumed.
// Otherwise the introduction's RemoteNAT describes the peer's other family, and
// says nothing of the side Local's family meets.
func peerFamilyMatches(cfg *AgentConfig) bool {
	for _, kind := range [...]proto.CandidateKind{proto.CandidateServerReflexive, proto.CandidateHost} {
		for _, c := range cfg.Remote {
			if c.Kind == kind {
				return sameFamily(c.Addr, cfg.Local)
			}
		}
	}
	return true
}

// dropEmptyPlan: a peer with candidates, none of Local's family, leaves Local's
// plan nothing to probe (no birthday sockets, no prediction): its strategy is none,
// and only the other family's targets, if any, are searched.
func (a *Agent) dropEmptyPlan() {
	local := func(c proto.Candidate) bool { return sameFamily(c.Addr, a.cfg.Local) }
	if len(a.cfg.Remote) == 0 || slices.ContainsFunc(a.cfg.Remote, local) {
		return
	}
	a.plan = Plan{Strategy: proto.StrategyNone}
}
