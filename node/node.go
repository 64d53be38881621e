package node

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"slices"

	"golang.org/x/crypto/curve25519"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/proto"
)

// maxDrainTimerRounds bounds how often one drain runs timers that its own actions
// made due (each round needs a new event to happen at all).
const maxDrainTimerRounds = 8

// maxServers bounds Config.Servers: a cluster lists a handful; the bound keeps the
// round robin's cost obvious.
const maxServers = 64

// maxPeers bounds the peers a node keeps; introductions past it are refused
// (Stats.Unexpected).
const maxPeers = 1024

// Node is one device's client state machine; see the package doc for the contract.
//
// It is a router over child machines: the server session (serverSession), the keyx
// endpoint that does every peer's handshakes, and one peerConn per peer. It
// demultiplexes datagrams by first byte and message type (and keyx receiver index,
// relay channel or probe pair ID) to one child, and after every call drains them in
// a fixed order — server session, keyx endpoint, peers in introduction order — acting
// on what they report until none has anything more to say.
type Node struct {
	cfg  Config
	rng  *rand.Rand
	priv [32]byte
	pub  [32]byte

	srv  *serverSession
	keyx *keyx.Endpoint
	env  *peerEnv
	// echoes: the second copies of the handshake messages sent (echo.go).
	echoes echoQueue

	// Peers, in introduction order (iteration order reaches the wire), and the
	// indexes that route to them. All bounded by maxPeers.
	peers       []*peerConn
	byID        map[string]*peerConn
	byPair      map[uint64]*peerConn
	byKey       map[[32]byte]*peerConn
	byRelayAddr map[netip.AddrPort]*peerConn // synthetic relay path address → peer
	byChannel   map[uint16]*peerConn         // our relay channel → peer
	relaySeq    uint64                       // numbers the synthetic relay addresses
	connSeq     uint64                       // numbers peer connections (Credit)
	// lastByKey is byKey's latest hit (peerByKey): a bulk flow looks up the same key
	// for every packet, and comparing 32 bytes is cheaper than hashing them. Every
	// change to byKey clears it.
	lastByKey *peerConn

	sockTags map[uint64]any // tag → the server session or a *peerConn
	nextTag  uint64

	open [maxDatagram]byte // decrypted payloads land here

	// events waits for PollEvent. It needs no cap of its own: messages hold credit
	// until Consumed (at most 2·RecvWindow/32 per peer out at once; rudp drops and
	// counts unreliable ones past its bound), the rest are a few state changes per
	// peer per call, and the owner drains after every call.
	events queue[Event]
	stats  Stats
	now    proto.Instant // the latest instant of any call
}

// advance moves the node's clock; a decrease is the caller's bug (DESIGN §2), caught
// here for every child at once.
func (n *Node) advance(now proto.Instant) {
	if now < n.now {
		panic("node: time went backwards")
	}
	n.now = now
}

// New returns a node that has sent nothing; call Start.
func New(cfg Config) *Node {
	if cfg.RegisterTimeout == 0 {
		cfg.RegisterTimeout = defaultRegisterTO
	}
	if cfg.Rand == nil {
		panic("node: Config.Rand is nil")
	}
	if cfg.Server.IsValid() && len(cfg.Servers) > 0 {
		panic("node: Config sets both Server and Servers")
	}
	if len(cfg.Servers) > maxServers {
		panic("node: Config.Servers longer than 64")
	}
	if len(cfg.OtherServers) > len(cfg.servers()) {
		panic("node: Config.OtherServers longer than the server list")
	}
	cfg.Servers = slices.Clone(cfg.Servers)
	cfg.OtherServers = slices.Clone(cfg.OtherServers)
	n := &Node{
		cfg: cfg, rng: rand.New(rand.NewChaCha8(cfg.Seed)), priv: cfg.PrivateKey,
		byID: map[string]*peerConn{}, byPair: map[uint64]*peerConn{}, byKey: map[[32]byte]*peerConn{},
		byRelayAddr: map[netip.AddrPort]*peerConn{}, byChannel: map[uint16]*peerConn{},
		sockTags: map[uint64]any{},
	}
	n.keyx = keyx.New(keyx.Config{PrivateKey: keyx.PrivateKey(cfg.PrivateKey), Rand: cfg.Rand,
		Suites: cfg.Suites, AESHardware: cfg.AESHardware}, 0)
	pub, err := curve25519.X25519(n.priv[:], curve25519.Basepoint)
	if err != nil {
		panic("node: invalid private key: " + err.Error())
	}
	copy(n.pub[:], pub)
	n.srv = newServerSession(&n.cfg, n.rng, &n.stats, &n.echoes)
	n.srv.suites = n.keyx.Suites()
	n.srv.reserve = n.reservedFlows
	n.env = &peerEnv{cfg: &n.cfg, keyx: n.keyx, stats: &n.stats, srv: n.srv, rng: n.rng, echoes: &n.echoes}
	return n
}

// PublicKey is the node's static public key.
func (n *Node) PublicKey() [32]byte { return n.pub }

// NAT returns the measured NAT behaviour (unknown until EventNATReport).
func (n *Node) NAT() proto.NATBehavior { return n.srv.nat }

// Observed is the node's address as the server sees it.
func (n *Node) Observed() netip.AddrPort { return n.srv.observed }

// OtherObserved is the address of the node's other-family socket (Config.OtherLocal)
// as the server sees it: zero until the server answered register-family, and again
// once the binding is lost (DESIGN §14).
func (n *Node) OtherObserved() netip.AddrPort {
	if !n.srv.fam.bound {
		return netip.AddrPort{}
	}
	return n.srv.fam.observed
}

// Server is the server the node registers with now (it changes when the node moves
// to the next server of Config.Servers).
func (n *Node) Server() netip.AddrPort { return n.srv.server }

// Registered reports whether the server currently admits the node.
func (n *Node) Registered() bool { return n.srv.registered }

// Start sends the first register.
func (n *Node) Start(now proto.Instant) {
	n.advance(now)
	n.srv.start(now)
	n.drain(now)
}

// Connect asks the server to introduce peer. Calling it for a peer that is already
// introduced does nothing; both sides calling it at once end with one pair.
func (n *Node) Connect(now proto.Instant, peerID string) {
	n.advance(now)
	if p, ok := n.byID[peerID]; ok && (p.closed || p.closing) {
		n.forget(p) // its connection ended (or is ending): this is a new one
	}
	if _, ok := n.byID[peerID]; !ok {
		n.srv.introduce(now, peerID, false)
	}
	n.HandleTimeout(now)
}

// NetworkChanged tells the node that its network changed (an interface went up or
// down, the device moved): it tells the server where it is now and has every peer
// introduced afresh, without waiting for paths to time out. Sessions and messages
// survive; only paths are searched again.
func (n *Node) NetworkChanged(now proto.Instant) {
	n.advance(now)
	if !n.srv.registered || n.srv.closed {
		return
	}
	n.srv.networkChanged(now)
	for _, p := range n.peers {
		p.networkChanged(now)
	}
	n.HandleTimeout(now)
}

// HandleDatagram takes one datagram that arrived on socket local from from.
func (n *Node) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	n.advance(now)
	err := n.route(now, local, from, p)
	n.drain(now)
	return err
}

// route hands a datagram to the child it is for.
func (n *Node) route(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	h, _, err := proto.ParseHeader(p)
	if err != nil {
		n.stats.Malformed++
		return err
	}
	switch {
	case h.Type == proto.TypeIntroduction:
		return n.handleIntroduction(now, from, p)
	case h.Type >= proto.TypeRegister && h.Type <= proto.TypeError, h.Type == proto.TypeRoomState, h.Type == proto.TypeRetry:
		return n.srv.handleSignal(now, local, from, h.Type, p)
	case h.Type >= proto.TypePunchFirst && h.Type <= proto.TypePunchLast:
		return n.handleProbe(now, local, from, p)
	case h.Type == proto.TypeRelayDeliver:
		return n.handleRelayDeliver(now, local, from, p)
	case h.Type == proto.TypeRelayAllocated:
		return n.handleRelayAllocated(now, from, p)
	case h.Type == proto.TypeTransportData:
		return n.handleTransport(now, local, from, p)
	case h.Type >= proto.TypeKeyxFirst && h.Type <= proto.TypeKeyxLast:
		return n.handleKeyx(now, local, from, p)
	}
	n.stats.Unhandled++
	return ErrUnhandled
}

// HandleSockets receives the sockets an EventOpenSockets asked for.
func (n *Node) HandleSockets(now proto.Instant, tag uint64, addrs []netip.AddrPort) {
	n.advance(now)
	owner, ok := n.sockTags[tag]
	if !ok {
		return
	}
	delete(n.sockTags, tag)
	switch o := owner.(type) {
	case *serverSession:
		o.handleSockets(now, addrs)
	case *peerConn:
		o.handleSockets(now, addrs)
	case rebindOwner:
		o.pc.rebindSockets(addrs)
	}
	n.drain(now)
}

// HandleTimeout runs every timer that is due, the children's.
func (n *Node) HandleTimeout(now proto.Instant) {
	n.advance(now)
	if n.srv.closed {
		return
	}
	if now >= n.srv.Deadline() {
		n.srv.HandleTimeout(now)
	}
	for _, p := range n.peers {
		p.HandleTimeout(now)
	}
	if now >= n.keyx.Deadline() {
		n.keyx.HandleTimeout(now)
	}
	n.drain(now)
}

// PollTransmit returns the next datagram to send: the server session's first, then
// the keyx endpoint's handshakes, then each peer's.
func (n *Node) PollTransmit(now proto.Instant, buf []byte) (t proto.Transmit, ok bool) {
	n.advance(now)
	p, ok := n.pollTransmit(now, buf, &t)
	if !ok {
		return proto.Transmit{}, false // pollTransmit may have written t
	}
	n.noteTransmit(now, &t, p)
	return t, true
}

// pollTransmit is PollTransmit into *t, naming the peer the datagram is for (nil:
// the server's, or a handshake's); *t is the datagram only when it reports true
// (a packet the relay refused may have been written there). The children fill *t
// in place, and none returns a zero Transmit when it has nothing: copying an
// 88-byte Transmit through each level of calls cost more per datagram than the
// routing itself.
func (n *Node) pollTransmit(now proto.Instant, buf []byte, t *proto.Transmit) (*peerConn, bool) {
	if n.srv.pollTransmit(now, buf, t) {
		return nil, true
	}
	if n.echoes.count > 0 {
		if et, ok := n.echoes.pop(now, buf); ok {
			*t = et
			return nil, true
		}
	}
	if n.pollHandshake(now, buf, t) {
		return nil, true
	}
	if n.srv.tracking() {
		// Behind a sequential NAT, probes to a sequential peer go before any other
		// peer's: both sides aim at the other's next ports, so the first round must
		// open ours before the other agents that start at the same instant take
		// them (flows.go).
		for _, p := range n.peers {
			if p.bothSequential() && !p.closed {
				if at, ok := p.agent.PollTransmit(now, buf); ok {
					*t = at
					return p, true
				}
			}
		}
	}
	for _, p := range n.peers {
		if p.pollTransmit(now, buf, t) {
			return p, true
		}
	}
	return nil, false
}

// pollHandshake writes the keyx endpoint's next handshake datagram into *t (wrapped
// for the relay when it goes there) and reports whether there was one.
func (n *Node) pollHandshake(now proto.Instant, buf []byte, t *proto.Transmit) bool {
	if !n.keyx.TransmitPending() {
		return false
	}
	for {
		kt, ok := n.keyx.PollTransmit(now, buf)
		if !ok {
			return false
		}
		hs := isHandshake(kt.Payload)
		*t = kt
		if p, toRelay := n.byRelayAddr[t.To]; toRelay {
			if !p.wrapRelay(t, buf, 0) {
				continue
			}
		}
		if hs {
			n.echoes.add(now, *t, &n.stats)
		}
		return true
	}
}

// PollEvent returns the next event for the application.
func (n *Node) PollEvent() (Event, bool) { return n.events.pop() }

// Deadline is when HandleTimeout must next be called.
func (n *Node) Deadline() proto.Instant {
	if n.srv.closed {
		return proto.Never
	}
	d := min(n.srv.Deadline(), n.keyx.Deadline(), n.echoes.deadline())
	for _, p := range n.peers {
		d = min(d, p.Deadline())
	}
	return d
}

// Peer reports a peer's current path.
func (n *Node) Peer(id string) (kind proto.PathKind, ok bool) {
	p, ok := n.byID[id]
	if !ok {
		return proto.PathNone, false
	}
	return p.path, true
}

// emit queues an event for the application.
func (n *Node) emit(e Event) { n.events.push(e) }

// drain empties the children's event queues in a fixed order — server session, keyx
// endpoint, peers — acting on each event, until a whole round finds nothing (an
// action may give an earlier child something to say again). A child's timer that an
// action armed for now (a peer asking for a fresh introduction) runs in the same call,
// so that Deadline is never in the past when the call returns.
func (n *Node) drain(now proto.Instant) {
	for round, progressed := 0, true; progressed; round++ {
		progressed = false
		if round > 0 && round < maxDrainTimerRounds && !n.srv.closed && n.srv.Deadline() <= now {
			n.srv.HandleTimeout(now)
		}
		for e, ok := n.srv.PollEvent(); ok; e, ok = n.srv.PollEvent() {
			n.onServerEvent(now, e)
			progressed = true
		}
		for e, ok := n.keyx.PollEvent(); ok; e, ok = n.keyx.PollEvent() {
			if p, known := n.peerByKey(keyxPeer(e)); known {
				p.onKeyx(now, e)
			}
			progressed = true
		}
		for i := 0; i < len(n.peers); i++ { // onPeerEvent may forget no peer, but may add
			p := n.peers[i]
			for e, ok := p.PollEvent(); ok; e, ok = p.PollEvent() {
				n.onPeerEvent(now, p, e)
				progressed = true
			}
		}
	}
}

// forget drops a peer whose connection has ended, so that a new Connect, or the
// peer's new introduction, starts from nothing: new keys, new relay channel, new
// connection.
func (n *Node) forget(p *peerConn) {
	n.keyx.RemovePeer(p.pub())
	delete(n.byID, p.id)
	delete(n.byKey, p.key)
	n.lastByKey = nil
	delete(n.byPair, p.agent.Pair())
	delete(n.byRelayAddr, p.relay.addr)
	if ch := p.relay.channel; ch != 0 && n.byChannel[ch] == p {
		delete(n.byChannel, ch)
	}
	for tag, owner := range n.sockTags {
		if owner == any(p) {
			delete(n.sockTags, tag) // sockets for it that come later are ignored
		}
	}
	n.peers = slices.DeleteFunc(n.peers, func(q *peerConn) bool { return q == p })
}

// sameNAT reports whether the peer's server-reflexive address shares our public IP:
// then its host candidates may be reachable whatever the NAT does.
func (n *Node) sameNAT(cands []proto.Candidate) bool {
	return slices.ContainsFunc(cands, func(c proto.Candidate) bool {
		return c.Kind == proto.CandidateServerReflexive && c.Addr.Addr() == n.srv.observed.Addr()
	})
}

// initiatorOf reports whether we start handshakes with the holder of key: the lower
// static key does (both starting at once would race; one rule picks one).
func (n *Node) initiatorOf(key [32]byte) bool { return bytes.Compare(n.pub[:], key[:]) < 0 }
