package node

import (
	"errors"
	"net/netip"
	"time"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// relayHeadroom is what rudp's headroom leaves in front of the keyx transport header:
// room for relay framing to be prepended without a copy.
const relayHeadroom = 4

// maxDatagram bounds what the node decrypts into its scratch buffer.
const maxDatagram = 65535

// handshakeRetry is when an unanswered first handshake is started again (doubling)
// when the path's round trip is not known. On a path whose round trip is measured
// (pathRoundTrip) it is handshakeRetryPerLink times that, at least
// handshakeRetryMin: a lost initiation or response (1 % loss per access link costs
// ≈ 8 % of relayed handshakes a packet) should cost a few round trips, not 600 ms.
// Too early a repeat costs one round trip (the response in flight is for the
// discarded initiation), never the connection: the delays double, and restart
// when the handshake moves to another path.
const (
	handshakeRetry        = 600 * time.Millisecond
	handshakeRetryMin     = 150 * time.Millisecond
	handshakeRetryPerLink = 3
)

// answerExpected is how long after the latest first initiation its response is
// expected: over a relay with a measured link time, twice that; otherwise the
// first retry's interval.
func (pc *peerConn) answerExpected() time.Duration {
	if pc.hsRemote == pc.relay.addr && pc.relay.linkTime > 0 {
		return 2 * pc.relay.linkTime
	}
	return pc.handshakeRetryDelay(pc.hsRemote, 1)
}

// handshakeRetryDelay is when, after its tries-th initiation to remote, an
// unanswered first handshake is started again.
func (pc *peerConn) handshakeRetryDelay(remote netip.AddrPort, tries int) time.Duration {
	base := handshakeRetry
	if rtt := pc.pathRoundTrip(remote); rtt > 0 {
		base = min(max(handshakeRetryPerLink*rtt, handshakeRetryMin), handshakeRetry)
	}
	return min(base<<min(tries-1, 3), 5*time.Second)
}

// pathRoundTrip is what the peer knows of the round trip to remote: over the relay
// its measured link time (the relayed round trip is ours to the server plus the
// peer's; the link time is at least the longer of the two allocations', the later
// side linking both, so three of it cover both legs), on the active direct path
// the round trip its probes measured; 0 when unknown.
func (pc *peerConn) pathRoundTrip(remote netip.AddrPort) time.Duration {
	if remote == pc.relay.addr {
		return pc.relay.linkTime
	}
	if p, ok := pc.agent.Active(); ok && p.Remote == remote {
		return p.RTT
	}
	return 0
}

// initiate starts a handshake on the peer's route if this side initiates and no
// session is up (or, with rekey, to replace the current one).
func (pc *peerConn) initiate(now proto.Instant, rekey bool) {
	if !pc.initiator || pc.closed || pc.established && !rekey {
		return
	}
	local, remote, ok := pc.route()
	if !ok {
		return
	}
	if err := pc.keyx.Initiate(now, pc.cfg.Wall.TimeAt(now), pc.pub(), local, remote); err != nil && !errors.Is(err, keyx.ErrRateLimited) {
		pc.stats.HandshakeErrors++
	}
	if !pc.established {
		// keyx repeats a lost initiation only after 5 s (WireGuard's REKEY_TIMEOUT);
		// a first message should not wait that long, so the peer asks sooner.
		if remote != pc.hsRemote {
			pc.hsTries = 0 // another path: its own round trip, its own backoff
		}
		pc.hsTries++
		pc.hsSentAt, pc.hsRemote = now, remote
		pc.timers.set(peerHandshake, now.Add(pc.handshakeRetryDelay(remote, pc.hsTries)))
	}
}

// initiateOnNewPath starts the first handshake when a path to the peer appears (the
// relay is ready, a direct path is confirmed), unless one is already in flight: a
// new initiation would discard it while its response may be on the way (the old
// path still works), and the responder refuses a second initiation within 20 ms of
// the first (keyx.InitiationMinInterval). The retry timer covers a lost one, on
// whichever path is current when it fires. Except when the new path's round trip
// rtt is known and a response over it would come before the one in flight is
// expected (relayed: twice the link time after it was sent, about the relayed
// round trip): the one in flight is late (relayed before the peer's channel was
// ready, it never comes), so the new path gets a new initiation.
func (pc *peerConn) initiateOnNewPath(now proto.Instant, rtt time.Duration) {
	if !pc.established && pc.timers.armed(peerHandshake) &&
		(rtt <= 0 || now.Add(rtt) >= pc.hsSentAt.Add(pc.answerExpected()) ||
			now.Sub(pc.hsSentAt) < keyx.InitiationMinInterval) {
		return
	}
	pc.initiate(now, false)
}

// onKeyx takes the keyx endpoint's news about this peer.
func (pc *peerConn) onKeyx(now proto.Instant, e keyx.Event) {
	switch e := e.(type) {
	case keyx.EventEstablished:
		pc.stats.Handshakes++
		// A handshake packet of the peer came: the connection, made at the
		// introduction, counts its idle timeout from here, not from its setup.
		pc.conn.HeardPeer(now)
		if e.Session.Initiator() {
			// The responder takes the session only at our first transport packet
			// (key confirmation): send one at once, empty if rudp has nothing.
			pc.confirmPending = true
		}
		pc.timers.stop(peerHandshake)
		pc.hsTries = 0
		if !pc.established {
			pc.established = true
			pc.emit(EventConnected{Peer: pc.id})
		}
	case keyx.EventRekey:
		pc.initiate(now, true) // the old session works until the new one is up
	case keyx.EventHandshakeTimeout:
		// WireGuard retries while there is a path; so do we, for a first handshake
		// and for a rekey alike (a lost rekey initiation must not leave the old
		// session to expire).
		pc.initiate(now, true)
	}
}

// handleTransport takes the plaintext of an authenticated transport packet that came
// from from to local.
func (pc *peerConn) handleTransport(now proto.Instant, local, from netip.AddrPort, pt []byte) {
	pc.lastLocal, pc.lastFrom = local, from
	pc.lastRecv = now
	pc.agent.NoteTraffic(now, local, from)
	if len(pt) == 0 || pc.closed {
		return // a key confirmation carries nothing
	}
	if err := pc.conn.HandleDatagram(now, pt); errors.Is(err, rudp.ErrDuplicate) {
		pc.stats.Duplicates++
	} else if err != nil {
		pc.stats.BadTransport++
	}
	pc.drainConn(now)
}

// drainConn turns the connection's events into node events.
func (pc *peerConn) drainConn(now proto.Instant) {
	for {
		e, ok := pc.conn.PollEvent()
		if !ok {
			return
		}
		switch e := e.(type) {
		case *rudp.EventMessage:
			pc.lastData = now
			pc.emit(EventMessage{Peer: pc.id, Lane: e.Lane, Mode: e.Mode, Data: pc.conn.TakeData(),
				Credit: Credit{conn: pc.connNum, rudp: e.Credit}})
		case *rudp.EventProbeTimeout:
			// Data went unacknowledged: check the path now rather than at the next
			// heartbeat (a NAT may have rebooted under us).
			pc.agent.CheckPath(now)
			pc.drainAgent(now)
		case *rudp.EventClosed:
			pc.closed = true
			// Nothing more goes through the relay for it: no refreshes, no
			// allocations after a re-registration.
			pc.relay.client = relayClientOff
			pc.timers.clear()
			pc.emit(EventPeerClosed{Peer: pc.id, Reason: e.Reason})
		}
	}
}

// pollConn seals the peer's next rudp packet in place and writes it into *t; it
// writes *t only when it reports true.
func (pc *peerConn) pollConn(now proto.Instant, buf []byte, t *proto.Transmit) bool {
	if !pc.established {
		return false
	}
	local, remote, ok := pc.route()
	if !ok {
		return false
	}
	sess := pc.keyx.Current(pc.pub())
	if sess == nil || !sess.Confirmed() {
		return false
	}
	pt, ok := pc.conn.PollTransmit(now, buf)
	if !ok {
		if !pc.confirmPending {
			return false
		}
		pt = buf[relayHeadroom+proto.TransportHeaderLen : relayHeadroom+proto.TransportHeaderLen]
	}
	pc.confirmPending = false
	// pt sits at buf[relayHeadroom+TransportHeaderLen:]: Seal writes the header in
	// front of it and encrypts it where it is.
	out, err := sess.Seal(now, buf[relayHeadroom:relayHeadroom], pt)
	if err != nil {
		pc.stats.SealErrors++
		return false
	}
	*t = proto.Transmit{From: local, To: remote, Payload: out}
	return true
}

// connDeadline is when the connection needs a timer call. A connection with no path
// (no direct path, no relay, no server to relay through) is only woken to end when
// its idle timeout passes: its wish to send now would spin the caller, but a peer
// that stays unreachable must not hold it open for ever.
func (pc *peerConn) connDeadline() proto.Instant {
	if !pc.established || pc.closed {
		return proto.Never
	}
	if _, _, ok := pc.route(); !ok {
		return pc.conn.IdleDeadline()
	}
	if pc.confirmPending {
		return 0
	}
	return pc.conn.Deadline()
}
