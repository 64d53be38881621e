package node

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/punch"
	"github.com/natpass/natpass/rudp"
)

// peer is everything the node keeps about one introduced peer.
type peer struct {
	id        string
	key       [32]byte // the peer's static public key, from the server's introduction
	psk       [32]byte
	flags     uint8
	remoteNAT proto.NATBehavior
	agent     *punch.Agent
	path      proto.PathKind

	// initiator: our static key sorts lower, so we start the handshakes (both
	// sides starting at once would race; one rule picks one).
	initiator   bool
	conn        *rudp.Conn
	established bool // a keyx session is current
	closed      bool
	closing     bool // ClosePeer was called: the connection drains its close
	// confirmPending: we initiated the current session and have not yet sent on it;
	// the responder takes it into use at our first packet.
	confirmPending bool
	// introStart is the start instant of the latest introduction; repeated copies of
	// it name the same instant (to the millisecond), a refresh names another.
	introStart proto.Instant
	relay      relayState
	// hsRetryAt: our first handshake is unanswered; start it again at this instant.
	hsRetryAt proto.Instant
	hsTries   int
	// lastRecv is when the latest authenticated transport packet of the peer came.
	lastRecv proto.Instant
	// retryAt: after punching gave up with the relay carrying the traffic, try for a
	// direct path again at this instant (DESIGN §6.6: every 30–60 s).
	retryAt proto.Instant
	// lastFrom is where the latest authenticated transport packet came from (and the
	// socket it reached): the path to answer on while the agent has none, as
	// WireGuard roams.
	lastLocal, lastFrom netip.AddrPort
}

// route returns the path data to the peer takes now: the agent's active direct path,
// else the relay once the peer holds its channel, else the source of the peer's
// latest authenticated packet (it reached us; answering there is what WireGuard does).
// The relay is named by its synthetic address; PollTransmit wraps what goes there.
func (p *peer) route(local netip.AddrPort) (netip.AddrPort, netip.AddrPort, bool) {
	if ap, ok := p.agent.Active(); ok && !(p.agent.Suspected() && p.relay.ready) {
		return ap.Local, ap.Remote, true
	}
	if p.relay.ready {
		return local, p.relay.addr, true
	}
	if p.lastFrom.IsValid() && p.lastFrom != p.relay.addr {
		return p.lastLocal, p.lastFrom, true
	}
	return netip.AddrPort{}, netip.AddrPort{}, false
}

// pub is the peer's key in keyx's type.
func (p *peer) pub() keyx.PublicKey { return keyx.PublicKey(p.key) }

// sameIntro reports whether an introduction starting at startAt is a repeated copy of
// the latest one (the server's copies agree to the millisecond; transit jitter makes
// them differ by a little more).
func (p *peer) sameIntro(startAt proto.Instant) bool {
	d := startAt.Sub(p.introStart)
	return d > -50*time.Millisecond && d < 50*time.Millisecond
}
