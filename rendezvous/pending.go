package rendezvous

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/relayframe"
)

// Introductions are delivered reliably and in step. Each side acknowledges its copy
// (introduction-ack); the server repeats unacknowledged copies. Every copy of one
// pair's introduction names the same start instant, firstSent plus the configured
// start delay, by shrinking the start delay by the time since the first copy: a side
// that got a repeated copy still starts punching together with the other, which a
// Linux NAT demands (DESIGN §9, PROTOCOL.md §5.8).
const (
	maxPendingIntros = 256                    // pairs being introduced at once
	introRepeatRTO   = 200 * time.Millisecond // repeat an unacknowledged copy after this (round trip unknown)
	introRepeats     = 6                      // copies per side at most
	introMemory      = 5 * time.Second        // a pair's start instant is kept this long
	refreshMerge     = 2 * time.Second        // refreshes this close are one introduction
)

// With both sides' round trips to the server measured (and the start delay not
// configured), a copy is repeated after introRepeatPerRTT of its side's round trip
// (within introRepeatMin and introRepeatRTO), and the start delay is
// startDelayPerRTT of the longer round trip (within minStartDelay and
// DefaultStartDelay): two repeats of a lost copy still fit before the start
// instant, as with the fixed 500 ms and 200 ms, at a fraction of the wait on
// short paths (issue 18).
const (
	introRepeatMin    = 50 * time.Millisecond
	introRepeatPerRTT = 1.5
	startDelayPerRTT  = 3
	minStartDelay     = 150 * time.Millisecond
)

// pendingIntro is one pair being introduced.
type pendingIntro struct {
	live      bool
	pairID    uint64
	firstSent proto.Instant
	sides     [2]pendingSide // [0] the first requester, [1] its target
	flags     uint8
	delay     time.Duration // the start delay: firstSent plus it is the start instant
	token     [relayframe.TokenLen]byte
	tokenLen  int
}

// pendingSide is one side of a pending introduction: a local session (cookie), or a
// session on another server of the cluster (remote), whose copy that server sends.
type pendingSide struct {
	tag    [proto.RegTagLen]byte
	cookie proto.Session // zero for a remote side
	peer   PeerID
	remote bool
	txid   uint64 // this side's introduce-request txid; 0 if it never asked
	acked  bool
	sent   int
	next   proto.Instant
	rto    time.Duration // this side's copies are repeated this long after the last
	// predicted is the other side's predicted address as this side's first copy
	// carried it; every repeat carries it too ([INTRO-4]).
	predicted netip.AddrPort
	// addr is the side's session address when the introduction was made: the
	// other side's copies name it as its server-reflexive candidate.
	addr netip.AddrPort
	// rebound, when set, is the other side's fresh socket's address from its
	// rebound request: this side's copies carry it as the predicted candidate.
	rebound netip.AddrPort
}

// pendingTable is a fixed array: bounded, allocated once, scanned linearly (256
// entries of which a handful are live). Entries are taken lowest index first, so the
// live ones cluster at the start: scans stop at hi, above which no entry is live.
// The deadline is read after every datagram the server takes, most of them relay
// frames while no introduction is pending: scanning all 256 entries (450 bytes each)
// there was a third of the server's CPU at game rates (BENCHMARKS, issue 18).
type pendingTable struct {
	entries [maxPendingIntros]pendingIntro
	// hi bounds the live entries: every live entry's index is below it. add raises
	// it; deadline lowers it to just past the last live entry it saw.
	hi int
	// due is the earliest repeat due as deadline last computed it, good while
	// fresh. Entries change only through pointers that used, find and add hand
	// out, and each of those clears fresh; so a datagram that never touched the
	// table (a relay frame, a keepalive) costs its rearm no scan at all, even with
	// many introductions still remembered (BENCHMARKS, issue 18: the scan was 7 %
	// of the server's CPU at game rate after a burst of introductions).
	due   proto.Instant
	fresh bool
}

// used are the entries that may be live, for a caller that may change them.
func (t *pendingTable) used() []pendingIntro {
	t.fresh = false
	return t.entries[:t.hi]
}

// find returns the live entry of pairID, forgetting entries past introMemory.
func (t *pendingTable) find(now proto.Instant, pairID uint64) *pendingIntro {
	for i := range t.used() {
		e := &t.entries[i]
		if e.live && now >= e.firstSent.Add(introMemory) {
			e.live = false
		}
		if e.live && e.pairID == pairID {
			return e
		}
	}
	return nil
}

// add makes an entry for a new introduction, reusing the oldest when all are live.
func (t *pendingTable) add(now proto.Instant, pairID uint64) *pendingIntro {
	at := 0
	for i := range t.entries {
		e := &t.entries[i]
		if !e.live {
			at = i
			break
		}
		if e.firstSent < t.entries[at].firstSent {
			at = i
		}
	}
	t.hi = max(t.hi, at+1)
	t.fresh = false
	t.entries[at] = pendingIntro{live: true, pairID: pairID, firstSent: now}
	return &t.entries[at]
}

// repeatOf reports whether a request with txid from the registration tagged tag is
// a retransmission of one this entry already answered.
func (e *pendingIntro) repeatOf(tag *[proto.RegTagLen]byte, txid uint64) bool {
	sd := e.side(tag)
	return sd != nil && sd.txid == txid
}

// askedAgain reports whether cookie's side, which acknowledged its copy, asks with a
// new txid: it has the introduction, so this is a new one (it connects again after
// its connection ended), not a repeat.
func (e *pendingIntro) askedAgain(tag *[proto.RegTagLen]byte, txid uint64) bool {
	sd := e.side(tag)
	return sd != nil && sd.acked && sd.txid != 0 && sd.txid != txid
}

// side returns the side of e held by the registration tagged tag, or nil.
func (e *pendingIntro) side(tag *[proto.RegTagLen]byte) *pendingSide {
	for i := range e.sides {
		if e.sides[i].tag == *tag {
			return &e.sides[i]
		}
	}
	return nil
}

// deadline is the earliest repeat due.
func (t *pendingTable) deadline() proto.Instant {
	if t.fresh {
		return t.due
	}
	d := proto.Never
	last := -1
	for i := range t.entries[:t.hi] {
		e := &t.entries[i]
		if !e.live {
			continue
		}
		last = i
		for k := range e.sides {
			if s := &e.sides[k]; !s.acked && s.sent > 0 && s.sent < introRepeats {
				d = proto.Min(d, s.next)
			}
		}
	}
	t.hi = last + 1
	t.due, t.fresh = d, true
	return d
}

// startDelayMs is the start delay a copy sent now must carry so that it names the
// pair's one start instant.
func (s *Server) startDelayFor(now proto.Instant, e *pendingIntro) uint16 {
	left := e.firstSent.Add(e.delay).Sub(now) / time.Millisecond
	return uint16(max(left, 0))
}

// introTiming sets a new introduction's start delay and its sides' repeat
// intervals from the sessions' measured round trips. A configured start delay or
// a round trip not measured keep the fixed 500 ms (or the configured) and 200 ms;
// so does a pair with a side on another server (its record carries no round trip),
// where each server sends its own side's copy and both must name one instant;
// and so does a pair that will not punch by simultaneous open: port prediction and
// birthday searches open sockets and realign predictions before their start (a
// shorter delay cost sequential–sequential room links their direct path).
func (s *Server) introTiming(e *pendingIntro, req, tgt *session) {
	e.delay = time.Duration(s.startDelayMs) * time.Millisecond
	e.sides[0].rto, e.sides[1].rto = introRepeatRTO, introRepeatRTO
	if !s.deriveStart || req.rtt == 0 || tgt.rtt == 0 || !simultaneousOpen(req.nat, tgt.nat) && !v6SimultaneousOpen(req, tgt) {
		return
	}
	rto := func(rtt time.Duration) time.Duration {
		return min(max(time.Duration(float64(rtt)*introRepeatPerRTT), introRepeatMin), introRepeatRTO)
	}
	e.sides[0].rto, e.sides[1].rto = rto(req.rtt), rto(tgt.rtt)
	e.delay = min(max(startDelayPerRTT*max(req.rtt, tgt.rtt), minStartDelay), e.delay)
}

// simultaneousOpen reports whether peers behind NATs a and b punch by simultaneous
// open, as punch.Choose decides it (TestSimultaneousOpenAgreesWithPunch): both map
// independently of the destination (or do not translate, or are unknown), or one
// does and filters by address at most.
func simultaneousOpen(a, b proto.NATBehavior) bool {
	easy := func(n proto.NATBehavior) bool {
		return n.NoTranslation || n.Mapping == proto.EndpointIndependent || n.Mapping == proto.DependenceUnknown
	}
	anyPort := func(n proto.NATBehavior) bool {
		return n.Filtering == proto.EndpointIndependent || n.Filtering == proto.AddressDependent
	}
	ea, eb := easy(a), easy(b)
	return ea && eb || ea && anyPort(a) || eb && anyPort(b)
}

// v6SimultaneousOpen reports whether both sessions have an IPv6 address (registered
// or the other-family binding) behind NATs or firewalls that punch by simultaneous
// open: the peers search that family too, and find it first (dual-stack peers whose
// IPv4 NATs alone would need a birthday search).
func v6SimultaneousOpen(a, b *session) bool {
	v6 := func(ss *session) (proto.NATBehavior, bool) {
		switch {
		case ss.addr.Addr().Is6() && !ss.addr.Addr().Is4In6():
			return ss.nat, true
		case ss.addr2.IsValid() && ss.addr2.Addr().Is6() && !ss.addr2.Addr().Is4In6():
			return ss.nat2, true
		}
		return proto.NATBehavior{}, false
	}
	na, okA := v6(a)
	nb, okB := v6(b)
	return okA && okB && simultaneousOpen(na, nb)
}

// handleIntroductionAck marks one side's copy as delivered.
func (s *Server) handleIntroductionAck(now proto.Instant, sock int, from netip.AddrPort, p []byte) error {
	m := &s.introAck
	if err := m.Parse(p); err != nil {
		s.stats.DropMalformed++
		return err
	}
	i, err := s.session(now, sock, from, &m.Session, 0, len(p))
	if err != nil {
		return err
	}
	peer := s.anyPeer(makePeerID(m.PeerID))
	if peer == nil {
		return nil // the peer left meanwhile: nothing to repeat anyway
	}
	req := &s.peers.sessions[i]
	pairID, _ := s.derivePair(&req.tag, &peer.tag)
	if e := s.pending.find(now, pairID); e != nil {
		if sd := e.side(&req.tag); sd != nil && !sd.remote {
			sd.acked = true
		}
	}
	s.stats.IntroAcks++
	return nil
}

// repeatIntroductions sends the copies whose acknowledgement is late.
func (s *Server) repeatIntroductions(now proto.Instant) {
	for k := range s.pending.used() {
		e := &s.pending.entries[k]
		if !e.live {
			continue
		}
		for x := range e.sides {
			sd := &e.sides[x]
			if sd.acked || sd.sent == 0 || sd.sent >= introRepeats || now < sd.next {
				continue
			}
			to, ok := s.peers.byCookie[sd.cookie]
			other := s.sideSession(&e.sides[1-x])
			if sd.remote || !ok || other == nil || s.tx.free() == 0 {
				sd.sent = introRepeats // a side left, or no room: stop repeating
				continue
			}
			s.sendIntroCopy(now, e, sd, &s.peers.sessions[to], other)
			s.stats.IntroRepeats++
		}
	}
}

// sendIntroCopy sends side sd (the session to) its copy of e, about the session
// about, with the start delay that names the pair's start instant and the
// predicted address of its first copy. A sequential-NAT peer's prediction moves
// with every flow it opens after the introduction, its search toward this side
// among them: a repeat with the latest one would aim this side's window past the
// mapping it must hit (PROTOCOL.md §9.3).
func (s *Server) sendIntroCopy(now proto.Instant, e *pendingIntro, sd *pendingSide, to, about *session) {
	if sd.sent == 0 {
		sd.predicted = about.predicted
		if sd.rebound.IsValid() {
			sd.predicted = sd.rebound
		}
	}
	_, psk := s.derivePair(&to.tag, &about.tag)
	s.sendIntroduction(to, about, sd.predicted, sd.txid, e.token[:e.tokenLen], &psk, e.flags, s.startDelayFor(now, e))
	sd.sent++
	sd.next = now.Add(max(sd.rto, introRepeatMin))
}

// moved reports whether either session of the pair has another address than when
// the introduction was made: its copies name a stale candidate.
func (e *pendingIntro) moved(a, b *session) bool {
	for _, s := range []*session{a, b} {
		if sd := e.side(&s.tag); sd != nil && sd.addr != s.addr {
			return true
		}
	}
	return false
}
