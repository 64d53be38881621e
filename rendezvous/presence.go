package rendezvous

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// session is one registered node: everything an introduction needs about it, its
// cookie, and its request budget.
type session struct {
	// addr, local and lastActive come first, in the slot's first cache line: they are
	// all a relayed frame reads and writes of its two sessions (relay.go), and at game
	// rates across many sessions each slot it touches is a likely cache miss.
	addr       netip.AddrPort // observed (server-reflexive) address; replies go here
	local      netip.AddrPort // server socket it registered on
	lastActive proto.Instant  // last request or relay frame with its cookie or on its channel

	cookie proto.Session
	// tag is the registration's public random identity: pair IDs and PSKs derive
	// from the two sides' tags, so another server of the cluster derives the same.
	tag    [proto.RegTagLen]byte
	peer   PeerID
	key    [proto.KeyLen]byte // static public key, from the ticket
	hosts  [proto.MaxHostCandidates]netip.AddrPort
	nhosts uint8
	// suites is the suite set the node registered with, as it sent it; every
	// introduction to its peers carries it (PROTOCOL.md [INTRO-3]).
	suites proto.SuiteSet
	nat    proto.NATBehavior // unknown until the node reports it (keepalive or ReportNAT)
	// predicted is the node's own guess of its sequential NAT's next external
	// address, passed to peers as a predicted candidate; zero when it has none.
	predicted netip.AddrPort

	ticketExpiryUnix uint64
	regTxID          uint64        // txid of the register that created it, for retransmits
	lastSeen         proto.Instant // last keepalive or register from addr on local
	registeredAt     proto.Instant // when the session was created
	registeredUnixMs uint64        // the same in wall time: the newest registration of an ID wins (§12.3)
	// rtt is the node's round trip to the server (0: not measured): from the
	// registered reply (regSentAt, while rttPending) to the node's first nat-probe,
	// which it sends as soon as it is registered. It sizes the pair's start delay
	// and introduction repeats (introTiming).
	rtt        time.Duration
	regSentAt  proto.Instant
	rttPending bool
	// The other-family binding (register-family, PROTOCOL.md [SRV-14]): the node's
	// address in the IP family other than addr's, the server socket it reached, when
	// a register-family or keepalive last refreshed it, that family's NAT report
	// (stored for diagnostics, never passed on: peers probe other-family candidates
	// without prediction), and the txid of the register-family that made it, for
	// retransmissions. addr2 is zero when the session has none.
	addr2     netip.AddrPort
	local2    netip.AddrPort
	lastSeen2 proto.Instant
	nat2      proto.NATBehavior
	regf2TxID uint64
	// relayPeers: the pairs it allocated a relay channel of, by the key at the
	// other end, so that a newer pair of the same keys replaces an older one
	// (relay.go). Entries whose channel has ended are dropped at the next
	// allocation: at most MaxRelayChannelsPerSession+1.
	relayPeers []relayPeer
	limiter
}

// presence is the bounded table of sessions: a slab of max slots allocated once,
// two indexes (cookie, peer ID) and one list in refresh order. Since every session
// has the same timeout, the head of the list is the next to expire, which makes the
// expiry timer O(1) with no heap.
type presence struct {
	sessions []session
	links    []link
	free     []int32 // stack of unused slots
	byCookie map[proto.Session]int32
	byPeer   map[PeerID]int32
	lru      lruList
	// bound lists the sessions with an other-family binding, in the order their
	// bindings were refreshed (its own links): the head's binding expires next.
	links2 []link
	bound  lruList
	nbound int
}

func newPresence(max int) presence {
	p := presence{
		sessions: make([]session, max),
		links:    make([]link, max),
		links2:   make([]link, max),
		free:     make([]int32, max),
		byCookie: make(map[proto.Session]int32, max),
		byPeer:   make(map[PeerID]int32, max),
		lru:      newLRU(),
		bound:    newLRU(),
	}
	for i := range p.free {
		p.free[i] = int32(max - 1 - i) // slot 0 is used first
	}
	return p
}

func (p *presence) len() int   { return len(p.sessions) - len(p.free) }
func (p *presence) full() bool { return len(p.free) == 0 }

// add takes a free slot for s and indexes it; the caller checked !full() and that
// neither the cookie nor the peer ID is present.
func (p *presence) add(s session) int32 {
	i := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.sessions[i] = s
	p.byCookie[s.cookie] = i
	p.byPeer[s.peer] = i
	p.lru.pushBack(p.links, i)
	return i
}

func (p *presence) remove(i int32) {
	s := &p.sessions[i]
	delete(p.byCookie, s.cookie)
	delete(p.byPeer, s.peer)
	p.lru.remove(p.links, i)
	p.unbind(i)
	*s = session{}
	p.free = append(p.free, i)
}

// refresh marks i as seen at now, moving it to the back of the expiry order.
func (p *presence) refresh(i int32, now proto.Instant) {
	p.sessions[i].lastSeen = now
	p.lru.touch(p.links, i)
}

// oldest returns the least recently refreshed session, or nilSlot.
func (p *presence) oldest() int32 { return p.lru.head }

// bind sets session i's other-family binding to addr on local, seen at now, and
// moves it to the back of the binding expiry order.
func (p *presence) bind(i int32, addr, local netip.AddrPort, now proto.Instant) {
	s := &p.sessions[i]
	if s.addr2.IsValid() {
		p.bound.touch(p.links2, i)
	} else {
		p.bound.pushBack(p.links2, i)
		p.nbound++
	}
	s.addr2, s.local2, s.lastSeen2 = addr, local, now
}

// unbind drops session i's other-family binding, if it has one.
func (p *presence) unbind(i int32) {
	s := &p.sessions[i]
	if !s.addr2.IsValid() {
		return
	}
	p.bound.remove(p.links2, i)
	p.nbound--
	s.addr2, s.local2, s.lastSeen2, s.nat2, s.regf2TxID = netip.AddrPort{}, netip.AddrPort{}, 0, proto.NATBehavior{}, 0
}

// oldestBound returns the session whose binding was refreshed longest ago, or nilSlot.
func (p *presence) oldestBound() int32 { return p.bound.head }
