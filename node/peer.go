package node

import (
	"net/netip"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/punch"
	"github.com/natpass/natpass/rudp"
)

// peer is everything the node keeps about one introduced peer.
type peer struct {
	id         string
	key        [32]byte // the peer's static public key, from the server's introduction
	psk        [32]byte
	relayToken []byte
	flags      uint8
	agent      *punch.Agent
	path       PathKind

	// initiator: our static key sorts lower, so we start the handshakes (both
	// sides starting at once would race; one rule picks one).
	initiator   bool
	conn        *rudp.Conn
	established bool // a keyx session is current
	closed      bool
	// confirmPending: we initiated the current session and have not yet sent on it;
	// the responder takes it into use at our first packet.
	confirmPending bool
	// lastFrom is where the latest authenticated transport packet came from (and the
	// socket it reached): the path to answer on while the agent has none, as
	// WireGuard roams.
	lastLocal, lastFrom netip.AddrPort
}

// route returns the path data to the peer takes now: the agent's active direct path,
// else the source of the peer's latest authenticated packet.
func (p *peer) route() (local, remote netip.AddrPort, ok bool) {
	if ap, ok := p.agent.Active(); ok {
		return ap.Local, ap.Remote, true
	}
	if p.lastFrom.IsValid() {
		return p.lastLocal, p.lastFrom, true
	}
	return netip.AddrPort{}, netip.AddrPort{}, false
}

// pub is the peer's key in keyx's type.
func (p *peer) pub() keyx.PublicKey { return keyx.PublicKey(p.key) }
