package node

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/relayframe"
)

// RelayPolicy is the application's choice about relaying through the server (DESIGN
// §6.7).
type RelayPolicy uint8

const (
	// RelayAuto: relay from the first message, move to a direct path when one is
	// confirmed, back to the relay when it dies.
	RelayAuto RelayPolicy = iota
	// RelayForce: relay only; the server shares no addresses with the peer.
	RelayForce
	// RelayNever: direct or nothing.
	RelayNever
)

// introFlags are the introduce-request flags of the policy.
func (r RelayPolicy) introFlags() uint8 {
	switch r {
	case RelayForce:
		return proto.IntroRelayOnly
	case RelayNever:
		return proto.IntroNoRelay
	}
	return 0
}

// A relay stall is how a node notices quickly that its server died (keepalives
// notice only after serverLostAfter intervals, minutes): relayed data in flight
// with the peer silent for quietRelayMin (or 4 RTT, if longer) makes the node
// check on the server with a keepalive, repeated checkRepeats times; none
// acknowledged within relayCheckWait counts the server lost, and a node with
// several servers moves to the next (DESIGN §12: kill to relayed traffic
// resuming, p95 within 3 s). relayCheckEvery spaces such checks while the server
// answers but the peer stays silent, so a silent peer costs one keepalive and its
// repeats every 5 s, not a stream of them.
//
// A first handshake over the relay has no data in flight to stall: a channel
// ready for handshakeQuietRelay with the session still not up (our initiation
// unanswered, or the peer's never come) checks the same way. The server that
// said "ready" may have died right after, taking the handshake with it; the
// node must move and allocate again for the pair to meet (issue 14).
const (
	quietRelayMin       = 500 * time.Millisecond
	relayCheckWait      = time.Second
	relayCheckEvery     = 5 * time.Second
	handshakeQuietRelay = 2 * time.Second
)

// relayUnlinkedAfter: a peer with no session whose relay channel the server has
// not linked to the peer's this long after giving it asks for a new introduction,
// once. Both sides allocate as their introductions arrive, so the peer holds no
// channel of the pair: its copy of the introduction died with a server, and it
// does not know us at all (PROTOCOL §8.4). The new introduction reaches both.
const relayUnlinkedAfter = 4 * time.Second

// unlinkedDue is when the relay not linked makes the peer ask for a new
// introduction; Never when it need not.
func (pc *peerConn) unlinkedDue() proto.Instant {
	if pc.established || pc.closed || pc.relay.reintroduced || pc.relay.unlinkedSince == 0 || pc.relay.client.Ready() {
		return proto.Never
	}
	return pc.relay.unlinkedSince.Add(relayUnlinkedAfter)
}

// relayPath is one peer's relay: relayframe.Client keeps the channel (PROTOCOL.md §8);
// this keeps what makes the relay a path.
type relayPath struct {
	client relayframe.Client
	// channel is the channel the router was last told of (peerRelayChannel), so
	// that a new one replaces it in the router's index.
	channel uint16
	// addr is a synthetic address that names "through the relay to this peer" to
	// keyx and the routing code: the relay is one more path. It comes from the
	// RFC 6666 discard prefix 100::/64, which no real packet uses.
	addr netip.AddrPort
	// checkOut: a stalled relay made us ask the server whether it is there, and the
	// answer has not come; lastCheck is when we last asked, if checked.
	checkOut  bool
	checked   bool
	lastCheck proto.Instant
	// moved: the node registered with another server since the relay was last
	// ready, so its next "ready" is news of a server change.
	moved bool
	// refreshAsked: the server refused the token we hold and we asked for a fresh
	// introduction (with a fresh token); a second refusal is only reported.
	refreshAsked bool
	// readyAt is when the channel last became ready: a first handshake over it
	// that has not finished handshakeQuietRelay later makes the node check on its
	// server (quietRelayDue).
	readyAt proto.Instant
	// askedAt is when the node last began allocating the channel, and linkTime how
	// long it took from there to "ready" (0: not measured): at least our round
	// trip to the server, and the peer's allocation too when it was the later
	// one, so it scales with the relayed round trip (handshakeRetryDelay).
	askedAt  proto.Instant
	linkTime time.Duration
	// unanswered counts the relay-allocates sent since the server last answered
	// one: from checkAfterSends on, the node checks on its server.
	unanswered int
	// unlinkedSince is when the server first gave a channel that it has not yet
	// linked to the peer's (0: none, or linked); reintroduced: that made us ask
	// for a new introduction once (unlinkedDue).
	unlinkedSince proto.Instant
	reintroduced  bool
	// everReady: the server linked our channel to the peer's once, so the peer
	// holds the pair's token as we do.
	everReady bool
	// echoed: this allocation's first relay-allocate went twice already (echo.go);
	// Start and Restart begin a new allocation.
	echoed bool
}

// relayClientOff is a Client that never sends: the policy forbids the relay, the
// introduction carried no token, or the connection ended.
var relayClientOff relayframe.Client

func relayAddrFor(i uint64) netip.AddrPort {
	var a [16]byte
	a[0], a[1] = 0x01, 0x00
	binary.BigEndian.PutUint64(a[8:], i+1)
	return netip.AddrPortFrom(netip.AddrFrom16(a), 1)
}

// startRelay begins allocating the relay for a newly introduced peer, unless the
// introduction or our policy forbids it.
func (pc *peerConn) startRelay(now proto.Instant, token []byte, flags uint8) {
	if len(token) == 0 || len(token) > proto.MaxRelayTokenLen || flags&proto.IntroNoRelay != 0 || pc.cfg.Relay == RelayNever {
		return
	}
	pc.relay.client.SetRetry(pc.srv.rtt.measuredRTO())
	pc.relay.client.Start(now, token, pc.rng.Uint64())
	pc.relay.askedAt, pc.relay.linkTime, pc.relay.echoed = now, 0, false
}

// restartRelay allocates the relay again after a re-registration: channels die with
// sessions (PROTOCOL.md §8.4). changed: the node registered with another server,
// which the relay's next path event says.
func (pc *peerConn) restartRelay(now proto.Instant, changed bool) {
	if pc.closed {
		return // its connection ended: nothing to relay
	}
	if pc.path == proto.PathRelay {
		pc.setPath(now, EventPathChanged{Kind: proto.PathNone, Reason: "server lost the session"})
	}
	pc.relay.checkOut, pc.relay.unanswered, pc.relay.unlinkedSince = false, 0, 0
	pc.relay.moved = pc.relay.moved || changed
	pc.relay.client.SetRetry(pc.srv.rtt.measuredRTO()) // perhaps another server now
	// ClientLost takes the channel out of the router's index.
	pc.relay.client.Restart(now)
	pc.relay.askedAt, pc.relay.linkTime, pc.relay.echoed = now, 0, false
	pc.drainRelay(now)
}

// dropRelay ends the relay without allocating again: the node registered again
// and the peer, with no session, waits for a new introduction and its token
// (rebase).
func (pc *peerConn) dropRelay(now proto.Instant) {
	if pc.path == proto.PathRelay {
		pc.setPath(now, EventPathChanged{Kind: proto.PathNone, Reason: "server lost the session"})
	}
	pc.relay.client, pc.relay.checkOut = relayClientOff, false
	pc.relay.unanswered, pc.relay.unlinkedSince = 0, 0
	pc.drainRelay(now) // the channel leaves the router's index
}

// serverLost: keepalives went unanswered, or the server is moving us away; a
// relayed peer has no path now (reason says why), and its channel is taken as gone
// (route stops using it) until the node registers again.
func (pc *peerConn) serverLost(now proto.Instant, reason string) {
	if pc.closed {
		return
	}
	if pc.path == proto.PathRelay {
		pc.setPath(now, EventPathChanged{Kind: proto.PathNone, Reason: reason})
	}
	pc.relay.unanswered = 0
	pc.relay.client.Restart(now) // ClientLost takes the channel out of the router's index
	pc.drainRelay(now)
}

// relayAllocated offers the server's relay-allocated to the relay client; it
// reports whether it answered this peer's request.
func (pc *peerConn) relayAllocated(now proto.Instant, m *proto.RelayAllocated) bool {
	if !pc.relay.client.HandleAllocated(now, m) {
		return false
	}
	pc.relay.unanswered = 0
	pc.drainRelay(now)
	return true
}

// relayError offers an error from the server to the relay client; it reports
// whether it answered this peer's relay-allocate.
func (pc *peerConn) relayError(now proto.Instant, m *proto.Error) bool {
	if !pc.relay.client.HandleError(now, m) {
		return false
	}
	pc.relay.unanswered = 0
	pc.drainRelay(now)
	return true
}

// serverAnswered: a keepalive was acknowledged, so a stalled relay is not the
// server's doing.
func (pc *peerConn) serverAnswered() { pc.relay.checkOut = false }

// pollAllocate writes a relay-allocate into *t when one is due.
func (pc *peerConn) pollAllocate(now proto.Instant, buf []byte, t *proto.Transmit) bool {
	if !pc.srv.registered || now < pc.relay.client.Deadline() {
		return false
	}
	b := pc.relay.client.AppendAllocate(now, buf[:0], pc.srv.session, []byte(pc.id))
	if len(b) == 0 {
		return false
	}
	pc.relay.unanswered++
	*t = proto.Transmit{From: pc.cfg.Local, To: pc.srv.server, Payload: b}
	if !pc.relay.echoed {
		pc.relay.echoed = true
		pc.echoes.add(now, *t, pc.stats)
	}
	return true
}

// drainRelay turns the relay client's events into path decisions.
func (pc *peerConn) drainRelay(now proto.Instant) {
	for {
		e, ok := pc.relay.client.PollEvent()
		if !ok {
			break
		}
		switch e {
		case relayframe.ClientAllocated:
			if pc.relay.unlinkedSince == 0 && !pc.relay.client.Ready() {
				pc.relay.unlinkedSince = now
			}
		case relayframe.ClientReady:
			pc.relay.unlinkedSince, pc.relay.everReady = 0, true
			reason := "relay ready"
			if pc.relay.moved {
				reason = "server changed"
			}
			pc.relay.moved, pc.relay.refreshAsked, pc.relay.readyAt = false, false, now
			if pc.relay.askedAt != 0 && pc.relay.linkTime == 0 {
				pc.relay.linkTime = max(now.Sub(pc.relay.askedAt), time.Millisecond)
			}
			if _, _, direct := pc.agent.ActiveRoute(); !direct {
				pc.setPath(now, pc.relayPathEvent(reason))
			}
			pc.initiateOnNewPath(now, 0)
		case relayframe.ClientLost:
			if pc.path == proto.PathRelay {
				pc.setPath(now, EventPathChanged{Kind: proto.PathNone, Reason: "relay not linked to the peer"})
			}
		case relayframe.ClientDenied:
			pc.emit(EventPeerError{Peer: pc.id, Code: pc.relay.client.Denied(), Text: "relay denied by the server"})
			if !pc.relay.refreshAsked {
				// The token may have expired, or come from a server that does
				// not share this one's secret: a fresh introduction carries a
				// new one (PROTOCOL.md §8.2), and refresh starts the relay
				// again with it.
				pc.relay.refreshAsked = true
				pc.emit(peerWantsIntroduction{})
			}
		}
	}
	// The router finds the peer by our channel: it learns every change of it,
	// whichever event came with it (a new channel, one ended, one re-linked).
	if ch := pc.relay.client.Channel(); ch != pc.relay.channel {
		pc.emit(peerRelayChannel{old: pc.relay.channel, channel: ch})
		pc.relay.channel = ch
	}
}

// quietRelayDue is when relayed data in flight with the peer silent, or a first
// handshake over the relay unfinished, makes the peer check on the server; Never
// when no check is due.
func (pc *peerConn) quietRelayDue() proto.Instant {
	if !pc.srv.registered || pc.closed || !pc.relay.client.Ready() || pc.relay.checkOut {
		return proto.Never
	}
	if _, remote, ok := pc.route(); !ok || remote != pc.relay.addr {
		return proto.Never
	}
	inFlight, since, srtt := pc.conn.InFlight()
	quiet := max(4*srtt, quietRelayMin)
	var due proto.Instant
	switch {
	case !pc.established:
		// No session yet: the handshake rides the relay now (route), and the
		// peer's answer, or its initiation, is overdue.
		due = pc.relay.readyAt.Add(handshakeQuietRelay)
	case inFlight > 0:
		// Silence counts from the later of the peer's last packet and the start of
		// the data now in flight: data sent after a quiet spell has had no time to
		// be answered yet.
		due = max(pc.lastRecv, since).Add(quiet)
	case pc.lastData != 0 && pc.lastData == pc.lastRecv && !(pc.relay.checked && pc.relay.lastCheck >= pc.lastRecv):
		// The receiving end of a stream has nothing in flight (acknowledgements
		// are not), but the peer's data stopping dead, its last packet a message,
		// is as telling: check once per such silence, after twice as long (a
		// pausing application costs a keepalive per pause, at most one per
		// relayCheckEvery). Without it a receiver notices a dead server only at
		// rudp's PING, KeepaliveInterval later.
		due = pc.lastRecv.Add(2 * quiet)
	default:
		return proto.Never
	}
	if pc.relay.checked {
		due = max(due, pc.relay.lastCheck.Add(relayCheckEvery))
	}
	return due
}

// wrapRelay turns a transmit addressed to the peer's synthetic relay address into a
// relay-send to the server; others pass unchanged. The packet sits at buf[off:]; with
// off ≥ 4 the header goes in front without a copy.
func (pc *peerConn) wrapRelay(t *proto.Transmit, buf []byte, off int) bool {
	if t.To != pc.relay.addr {
		return true
	}
	if !pc.relay.client.Ready() || len(t.Payload) > proto.MaxRelayPacketLen {
		pc.stats.RelayDrops++
		return false
	}
	size := len(t.Payload)
	if off < proto.RelayDataHeaderLen {
		copy(buf[proto.RelayDataHeaderLen:], t.Payload)
		off = proto.RelayDataHeaderLen
	}
	start := off - proto.RelayDataHeaderLen
	relayframe.PutSendHeader(buf[start:], pc.relay.client.Channel())
	*t = proto.Transmit{From: pc.cfg.Local, To: pc.srv.server, Payload: buf[start : off+size]}
	return true
}
