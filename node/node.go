package node

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/crypto/curve25519"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/punch"
)

// Node timing.
const (
	registerRTO     = 500 * time.Millisecond
	registerRTOMax  = 3 * time.Second        // a restarted server finds its nodes again within seconds
	introduceRTO    = 300 * time.Millisecond // doubling to introduceRTOMax: the first message waits on it
	introduceRTOMax = 2 * time.Second
	introduceTries  = 8
	// A peer that has not reported its NAT yet (error code 9) is asked for again
	// this much later, doubling to notReadyRetryMax, at most notReadyRetries times.
	notReadyRetry    = 100 * time.Millisecond
	notReadyRetryMax = time.Second
	notReadyRetries  = 30
	// The keepalive carrying a new NAT report is repeated until acknowledged.
	reportRTO         = 300 * time.Millisecond // doubling: introductions wait for the report
	reportTries       = 5
	serverLostAfter   = 3 // keepalive intervals without an ack
	defaultRegisterTO = 30 * time.Second
	maxPeers          = 1024
	maxPendingIntros  = 64
	maxEvents         = 1024
)

// timer names the node's own timers; children keep their own and the node folds
// their deadlines into Deadline.
type timer uint8

const (
	timerRegister   timer = iota // retransmit register
	timerKeepalive               // next keepalive
	timerServerLost              // no keepalive ack for too long
	timerIntroduce               // retransmit introduce requests
	timerReport                  // repeat the NAT-report keepalive until acked
	timerCount
)

// Errors from HandleDatagram; the owner counts them by kind.
var (
	ErrNotFromServer = errors.New("node: signaling from an address that is not the server")
	ErrUnexpected    = errors.New("node: message answers nothing we asked")
	ErrUnknownPair   = errors.New("node: probe for no known pair")
	ErrUnhandled     = errors.New("node: message type the node does not take")
)

// Stats counts what the node dropped, by reason.
type Stats struct {
	Malformed, NotFromServer, Unexpected, UnknownPair, BadProbe, Unhandled int
	BadHandshake, BadTransport                                             int // refused by keyx, or by rudp after decryption
	Duplicates                                                             int // transport packets whose keyx counter or rudp packet number was seen before: normally the network repeating a datagram (keyx checks the counter before the AEAD, as WireGuard does, so a forged packet with an old counter lands here too)
	HandshakeErrors, SealErrors                                            int // our own handshake or seal failed
	RelayDrops                                                             int // packets for a relay not ready, or too large for it
	Handshakes                                                             int // keyx sessions established (first ones and rekeys)
}

// Node is one device's client state machine; see the package doc for the contract.
type Node struct {
	cfg  Config
	rng  *rand.Rand
	priv [32]byte
	pub  [32]byte

	timers [timerCount]proto.Instant

	// Server session.
	registered bool
	// everRegistered: a registration succeeded once; later ones are re-registrations,
	// retried for as long as it takes (only the first is bounded by RegisterTimeout).
	everRegistered bool
	closed         bool
	regTxID        uint64
	regRTO         time.Duration
	regGiveUp      proto.Instant
	session        proto.Session
	observed       netip.AddrPort
	altPort        netip.AddrPort
	altAddr        netip.AddrPort
	keepalive      time.Duration
	kaSeq          uint32
	reportSeq      uint32 // seq of the keepalive that first carried the current report
	reportLeft     int    // repeats left for it
	nat            proto.NATBehavior
	predicted      netip.AddrPort // our sequential NAT's next external address
	classifier     *punch.Classifier
	classified     bool

	// Peers, in introduction order (iteration order reaches the wire).
	peers  []*peer
	byID   map[string]*peer
	byPair map[uint64]*peer
	intros []introRequest
	// Connect calls waiting for the NAT measurement, so the server passes our
	// behaviour on in the introduction.
	waiting []string

	sockTags map[uint64]any // tag → *punch.Classifier or *peer
	nextTag  uint64

	keyx        *keyx.Endpoint
	byKey       map[[32]byte]*peer
	byRelayAddr map[netip.AddrPort]*peer // synthetic relay path address → peer
	byChannel   map[uint16]*peer         // our relay channel → peer
	relaySeq    int                      // numbers the synthetic relay addresses
	open        [maxDatagram]byte        // decrypted payloads land here

	out    []outMsg
	events []Event
	stats  Stats
}

// outMsg is a node-level datagram waiting for PollTransmit.
type outMsg struct {
	to  netip.AddrPort
	msg interface{ Append([]byte) []byte }
}

type introRequest struct {
	peer     string
	txid     uint64
	tries    int
	next     proto.Instant
	notReady int  // code-9 answers so far
	refresh  bool // the pair is known: ask for a new introduction, not a repeat
}

// New returns a node that has sent nothing; call Start.
func New(cfg Config) *Node {
	if cfg.RegisterTimeout == 0 {
		cfg.RegisterTimeout = defaultRegisterTO
	}
	if cfg.Rand == nil {
		panic("node: Config.Rand is nil")
	}
	n := &Node{
		cfg:      cfg,
		rng:      rand.New(rand.NewChaCha8(cfg.Seed)),
		priv:     cfg.PrivateKey,
		byID:     map[string]*peer{},
		byPair:   map[uint64]*peer{},
		sockTags: map[uint64]any{},
		byKey:    map[[32]byte]*peer{},

		byRelayAddr: map[netip.AddrPort]*peer{},
		byChannel:   map[uint16]*peer{},
	}
	n.keyx = keyx.New(keyx.Config{PrivateKey: keyx.PrivateKey(cfg.PrivateKey), Rand: cfg.Rand}, 0)
	pub, err := curve25519.X25519(n.priv[:], curve25519.Basepoint)
	if err != nil {
		panic("node: invalid private key: " + err.Error())
	}
	copy(n.pub[:], pub)
	for i := range n.timers {
		n.timers[i] = proto.Never
	}
	return n
}

// PublicKey is the node's static public key.
func (n *Node) PublicKey() [32]byte { return n.pub }

// Stats returns the drop counters.
func (n *Node) Stats() Stats { return n.stats }

// NAT returns the measured NAT behaviour (unknown until EventNATReport).
func (n *Node) NAT() proto.NATBehavior { return n.nat }

// Observed is the node's address as the server sees it.
func (n *Node) Observed() netip.AddrPort { return n.observed }

// Start sends the first register.
func (n *Node) Start(now proto.Instant) {
	n.regTxID = n.rng.Uint64()
	n.regRTO = registerRTO
	n.regGiveUp = now.Add(n.cfg.RegisterTimeout)
	n.sendRegister(now)
}

func (n *Node) sendRegister(now proto.Instant) {
	n.queue(n.cfg.Server, &proto.Register{TxID: n.regTxID, Ticket: n.cfg.Ticket, Hosts: n.cfg.hosts()})
	n.timers[timerRegister] = now.Add(n.regRTO)
	n.regRTO = min(2*n.regRTO, registerRTOMax)
}

func (n *Node) queue(to netip.AddrPort, m interface{ Append([]byte) []byte }) {
	n.out = append(n.out, outMsg{to: to, msg: m})
}

func (n *Node) emit(e Event) {
	if len(n.events) < maxEvents {
		n.events = append(n.events, e)
	}
}

// Connect asks the server to introduce peer. Calling it for a peer that is already
// introduced does nothing; both sides calling it at once end with one pair.
func (n *Node) Connect(now proto.Instant, peerID string) {
	if p, ok := n.byID[peerID]; ok && (p.closed || p.closing) {
		n.forget(p) // its connection ended (or is ending): this is a new one
	}
	if _, ok := n.byID[peerID]; ok || slices.ContainsFunc(n.intros, func(r introRequest) bool { return r.peer == peerID }) {
		return
	}
	if !n.classified {
		if !slices.Contains(n.waiting, peerID) {
			n.waiting = append(n.waiting, peerID)
		}
		return
	}
	if len(n.intros) >= maxPendingIntros {
		n.emit(EventPeerError{Peer: peerID, Code: proto.CodeRateLimited, Text: "too many introductions pending"})
		return
	}
	n.intros = append(n.intros, introRequest{peer: peerID, txid: n.rng.Uint64(), next: now})
	n.timers[timerIntroduce] = now
	n.HandleTimeout(now)
}

// HandleDatagram takes one datagram that arrived on socket local from from.
func (n *Node) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	h, _, err := proto.ParseHeader(p)
	if err != nil {
		n.stats.Malformed++
		return err
	}
	switch {
	case h.Type >= proto.TypeRegister && h.Type <= proto.TypeError:
		return n.handleSignal(now, local, from, h.Type, p)
	case h.Type >= proto.TypePunchFirst && h.Type <= proto.TypePunchLast:
		return n.handleProbe(now, local, from, p)
	case h.Type == proto.TypeRelayDeliver:
		return n.handleRelayDeliver(now, local, from, p)
	case h.Type == proto.TypeRelayAllocated:
		if !n.isServer(from) {
			n.stats.NotFromServer++
			return ErrNotFromServer
		}
		var m proto.RelayAllocated
		if err := m.Parse(p); err != nil {
			return n.count(err)
		}
		return n.onRelayAllocated(now, &m)
	case h.Type == proto.TypeTransportData:
		return n.handleTransport(now, local, from, p)
	case h.Type >= proto.TypeKeyxFirst && h.Type <= proto.TypeKeyxLast:
		return n.handleKeyx(now, local, from, p)
	}
	n.stats.Unhandled++
	return ErrUnhandled
}

func (n *Node) isServer(a netip.AddrPort) bool {
	return a == n.cfg.Server || a.IsValid() && (a == n.altPort || a == n.altAddr)
}

func (n *Node) handleSignal(now proto.Instant, local, from netip.AddrPort, t proto.MsgType, p []byte) error {
	// Our own nat-probe coming back through a hairpinning NAT is the one signaling
	// message that arrives from somewhere other than the server.
	if t == proto.TypeNATProbe && n.classifier != nil {
		err := n.classifier.HandleDatagram(now, local, from, p)
		n.afterClassifier(now)
		return n.count(err)
	}
	if !n.isServer(from) {
		n.stats.NotFromServer++
		return ErrNotFromServer
	}
	switch t {
	case proto.TypeRegistered:
		var m proto.Registered
		if err := m.Parse(p); err != nil {
			return n.count(err)
		}
		if n.registered || m.TxID != n.regTxID {
			n.stats.Unexpected++
			return ErrUnexpected
		}
		n.onRegistered(now, local, &m)
	case proto.TypeKeepaliveAck:
		var m proto.KeepaliveAck
		if err := m.Parse(p); err != nil {
			return n.count(err)
		}
		if !n.registered {
			n.stats.Unexpected++
			return ErrUnexpected
		}
		n.timers[timerServerLost] = now.Add(serverLostAfter * n.keepalive)
		for _, p := range n.peers {
			p.relay.checkOut = false // the server answers
		}
		if n.reportLeft > 0 && m.Seq >= n.reportSeq {
			n.reportLeft = 0
			n.timers[timerReport] = proto.Never
		}
		if m.Observed != n.observed {
			n.onNetworkChange(now, m.Observed)
		}
	case proto.TypeNATProbeReply:
		if n.classifier == nil {
			n.stats.Unexpected++
			return ErrUnexpected
		}
		err := n.classifier.HandleDatagram(now, local, from, p)
		n.afterClassifier(now)
		return n.count(err)
	case proto.TypeIntroduction:
		var m proto.Introduction
		if err := m.Parse(p); err != nil {
			return n.count(err)
		}
		return n.onIntroduction(now, &m)
	case proto.TypeError:
		var m proto.Error
		if err := m.Parse(p); err != nil {
			return n.count(err)
		}
		n.onError(now, &m)
	default:
		n.stats.Unhandled++
		return ErrUnhandled
	}
	return nil
}

// count files a child's or parser's error under a drop reason and passes it on.
func (n *Node) count(err error) error {
	switch {
	case err == nil:
	case errors.Is(err, punch.ErrUnexpected), errors.Is(err, ErrUnexpected):
		n.stats.Unexpected++
	case errors.Is(err, punch.ErrBadMAC), errors.Is(err, punch.ErrReflected), errors.Is(err, punch.ErrOtherPair):
		n.stats.BadProbe++
	default:
		n.stats.Malformed++
	}
	return err
}

func (n *Node) onRegistered(now proto.Instant, local netip.AddrPort, m *proto.Registered) {
	again := n.everRegistered
	n.everRegistered = true
	n.registered = true
	n.timers[timerRegister] = proto.Never
	n.session = m.Session
	n.observed = m.Observed
	n.altPort, n.altAddr = m.AltPort, m.AltAddr
	// A server bound to every address names its alt port by port alone
	// (PROTOCOL §5.2): that port on the IP we reached it at.
	if n.altPort.IsValid() && n.altPort.Addr().IsUnspecified() {
		n.altPort = netip.AddrPortFrom(n.cfg.Server.Addr(), n.altPort.Port())
	}
	if n.altPort == n.cfg.Server {
		// Not another socket: answers "from the alt port" would make every
		// filtering test pass and the NAT look open.
		n.altPort = netip.AddrPort{}
	}
	if n.altAddr.IsValid() && n.altAddr.Addr().IsUnspecified() {
		n.altAddr = netip.AddrPort{}
	}
	n.keepalive = time.Duration(m.Keepalive) * time.Second
	n.timers[timerKeepalive] = now.Add(n.keepalive)
	n.timers[timerServerLost] = now.Add(serverLostAfter * n.keepalive)
	n.emit(EventRegistered{Observed: m.Observed})
	n.startClassifier(now)
	if again {
		// The server lost our session (a restart, or it expired): relay channels died
		// with it. A peer still on the relay hears so (a server back before we
		// missed it answers "no session" and the relay drops our frames meanwhile);
		// then the channels are allocated again with the tokens we hold.
		for _, p := range n.peers {
			if p.closed {
				continue // its connection ended: nobody to tell, nothing to relay
			}
			if p.path == proto.PathRelay {
				p.path = proto.PathNone
				n.emit(EventPathChanged{Peer: p.id, Kind: proto.PathNone, Reason: "server lost the session"})
			}
			n.restartRelay(now, p)
		}
	}
}

func (n *Node) startClassifier(now proto.Instant) {
	var seed [32]byte
	binaryPut(seed[:], n.rng.Uint64(), n.rng.Uint64())
	n.classifier = punch.NewClassifier(punch.ClassifierConfig{
		Session: n.session, Local: n.cfg.Local, Hosts: n.cfg.hosts(),
		Server: n.cfg.Server, AltPort: n.altPort, AltAddr: n.altAddr, Seed: seed,
	})
	n.classifier.Start(now)
	n.afterClassifier(now)
}

// afterClassifier drains the classifier's events.
func (n *Node) afterClassifier(now proto.Instant) {
	c := n.classifier
	for {
		e, ok := c.PollEvent()
		if !ok {
			return
		}
		switch e := e.(type) {
		case punch.EventNeedSockets:
			n.requestSockets(c, e.N)
		case punch.EventClassified:
			n.nat = e.Behavior
			n.predicted = e.Next
			n.classified = true
			n.emit(EventNATReport{Behavior: e.Behavior, Observed: e.Observed})
			n.sendKeepalive(now)
			// Peers learn our NAT only through the server: make sure it has it.
			n.reportSeq, n.reportLeft = n.kaSeq, reportTries
			n.timers[timerReport] = now.Add(reportRTO)
			for _, id := range n.waiting {
				n.Connect(now, id)
			}
			n.waiting = n.waiting[:0]
		}
	}
}

func (n *Node) requestSockets(owner any, count int) {
	n.nextTag++
	n.sockTags[n.nextTag] = owner
	n.emit(EventOpenSockets{Tag: n.nextTag, N: count})
}

// HandleSockets receives the sockets an EventOpenSockets asked for.
func (n *Node) HandleSockets(now proto.Instant, tag uint64, addrs []netip.AddrPort) {
	owner, ok := n.sockTags[tag]
	if !ok {
		return
	}
	delete(n.sockTags, tag)
	switch o := owner.(type) {
	case *punch.Classifier:
		o.HandleSockets(now, addrs)
		n.afterClassifier(now)
	case *peer:
		o.agent.HandleSockets(now, addrs)
		n.afterAgent(now, o)
	}
}

func (n *Node) sendKeepalive(now proto.Instant) {
	n.kaSeq++
	n.queue(n.cfg.Server, &proto.Keepalive{Session: n.session, Seq: n.kaSeq, NAT: n.nat, Predicted: n.predicted})
	n.timers[timerKeepalive] = now.Add(n.keepalive)
}

// onNetworkChange: the server sees us at a new address (NAT rebinding, reboot, or a
// move). Peers know only our old candidates, so every pair is introduced afresh.
func (n *Node) onNetworkChange(now proto.Instant, observed netip.AddrPort) {
	n.observed = observed
	for _, p := range n.peers {
		n.reintroduce(now, p)
	}
}

// NetworkChanged tells the node that its network changed (an interface went up or
// down, the device moved): it tells the server where it is now and has every peer
// introduced afresh, without waiting for paths to time out. Sessions and messages
// survive; only paths are searched again.
func (n *Node) NetworkChanged(now proto.Instant) {
	if !n.registered || n.closed {
		return
	}
	// The keepalive moves our session to the address it arrives from before the
	// introduce-requests that follow it on the same path ask for our candidates.
	n.sendKeepalive(now)
	for _, p := range n.peers {
		// Old paths left with the old address; sending on them from the new one
		// could poison the peer's NAT before the fresh search primes it.
		p.agent.Forget()
		p.lastLocal, p.lastFrom = netip.AddrPort{}, netip.AddrPort{}
		if p.path == proto.PathDirect {
			p.path = proto.PathNone
			n.emit(EventPathChanged{Peer: p.id, Kind: proto.PathNone, Reason: "network changed"})
		}
		n.reintroduce(now, p)
	}
	n.HandleTimeout(now)
}

// reintroduce asks the server for a fresh introduction of p.
func (n *Node) reintroduce(now proto.Instant, p *peer) {
	if slices.ContainsFunc(n.intros, func(r introRequest) bool { return r.peer == p.id }) {
		return
	}
	n.intros = append(n.intros, introRequest{peer: p.id, txid: n.rng.Uint64(), next: now, refresh: true})
	n.timers[timerIntroduce] = proto.Min(n.timers[timerIntroduce], now)
}

func (n *Node) onError(now proto.Instant, m *proto.Error) {
	if n.onRelayError(now, m) {
		return
	}
	if i := slices.IndexFunc(n.intros, func(r introRequest) bool { return r.txid == m.TxID }); i >= 0 {
		if r := &n.intros[i]; m.Code == proto.CodePeerNotReady && r.notReady < notReadyRetries {
			// The server holds the introduction until the peer's NAT report is in,
			// so both sides start punching together with the same facts.
			r.notReady++
			r.tries = 0
			r.next = now.Add(min(notReadyRetry<<min(r.notReady-1, 4), notReadyRetryMax))
			n.timers[timerIntroduce] = proto.Min(n.timers[timerIntroduce], r.next)
			return
		}
		n.emit(EventPeerError{Peer: n.intros[i].peer, Code: m.Code, Text: string(m.Text)})
		n.intros = slices.Delete(n.intros, i, i+1)
		return
	}
	switch m.Code {
	case proto.CodeNoSession:
		// The server forgot us (restart, expiry): register again.
		n.registered = false
		n.regTxID = n.rng.Uint64()
		n.regRTO = registerRTO
		n.regGiveUp = now.Add(n.cfg.RegisterTimeout)
		n.timers[timerKeepalive], n.timers[timerServerLost] = proto.Never, proto.Never
		n.sendRegister(now)
	case proto.CodeBadTicket, proto.CodeExpiredTicket:
		if m.TxID == n.regTxID && !n.registered {
			n.close("server refused the ticket: " + string(m.Text))
		}
	}
}

func (n *Node) close(reason string) {
	if n.closed {
		return
	}
	n.closed = true
	for i := range n.timers {
		n.timers[i] = proto.Never
	}
	n.emit(EventClosed{Reason: reason})
}

// probeKey derives the pair's probe key from the static-static DH (which only the two
// peers can compute) and the server's per-pair PSK.
func probeKey(priv, peerPub, psk *[32]byte) (punch.Key, error) {
	ss, err := curve25519.X25519(priv[:], peerPub[:])
	if err != nil {
		return punch.Key{}, err
	}
	h := hmac.New(sha256.New, ss)
	h.Write([]byte("natpass probe key"))
	h.Write(psk[:])
	var k punch.Key
	copy(k[:], h.Sum(nil))
	return k, nil
}

func (n *Node) onIntroduction(now proto.Instant, m *proto.Introduction) error {
	id := string(m.PeerID)
	// Every copy of a valid introduction is acknowledged, the repeats too: the server
	// repeats until it hears. A low-order key makes the introduction invalid.
	key, err := probeKey(&n.priv, &m.PeerKey, &m.PSK)
	if err != nil {
		n.stats.Malformed++
		return err
	}
	n.queue(n.cfg.Server, &proto.IntroductionAck{Session: n.session, PeerID: bytes.Clone(m.PeerID)})
	if i := slices.IndexFunc(n.intros, func(r introRequest) bool { return r.peer == id }); i >= 0 {
		n.intros = slices.Delete(n.intros, i, i+1)
	}
	startAt := now.Add(time.Duration(m.StartDelayMs) * time.Millisecond)
	if p, ok := n.byID[id]; ok && p.closed && m.Flags&proto.IntroRefresh == 0 {
		n.forget(p) // the peer connects again after our connection ended
	}
	if p, ok := n.byID[id]; ok {
		if p.key != m.PeerKey {
			n.stats.Unexpected++
			return ErrUnexpected
		}
		if m.Flags&proto.IntroRefresh != 0 && !p.sameIntro(startAt) {
			// A new introduction of a known pair: search again with its candidates,
			// keeping the session, the connection and any path that still answers.
			p.introStart = startAt
			p.agent.Refresh(startAt, n.nat, m.NAT, m.Candidates, n.sameNAT(m.Candidates))
			n.afterAgent(now, p)
		}
		return nil // otherwise a repeated copy, or both sides connected at once
	}
	if len(n.peers) >= maxPeers {
		n.stats.Unexpected++
		return ErrUnexpected
	}
	var seed [32]byte
	binaryPut(seed[:], n.rng.Uint64(), n.rng.Uint64())
	p := &peer{id: id, key: m.PeerKey, psk: m.PSK, flags: m.Flags, remoteNAT: m.NAT,
		initiator: bytes.Compare(n.pub[:], m.PeerKey[:]) < 0}
	if err := n.newConn(now, p); err != nil {
		n.stats.Malformed++ // a low-order key from the server
		return err
	}
	p.agent = punch.NewAgent(punch.AgentConfig{
		Key:         key,
		Controlling: bytes.Compare(n.pub[:], m.PeerKey[:]) < 0,
		Local:       n.cfg.Local,
		LocalNAT:    n.nat,
		RemoteNAT:   m.NAT,
		Remote:      slices.Clone(m.Candidates),
		StartAt:     now.Add(time.Duration(m.StartDelayMs) * time.Millisecond),
		SameNAT:     n.sameNAT(m.Candidates),
		Seed:        seed,
	})
	p.introStart = startAt
	p.retryAt, p.hsRetryAt = proto.Never, proto.Never
	n.peers = append(n.peers, p)
	n.byID[id] = p
	n.byPair[p.agent.Pair()] = p
	n.emit(EventIntroduced{Peer: id, Strategy: p.agent.Plan().Strategy.String()})
	n.startRelay(now, p, m.RelayToken, m.Flags)
	n.afterAgent(now, p)
	n.HandleTimeout(now) // the first relay-allocate goes out with the ack
	return nil
}

// sameNAT reports whether the peer's server-reflexive address shares our public IP:
// then its host candidates may be reachable whatever the NAT does.
func (n *Node) sameNAT(cands []proto.Candidate) bool {
	return slices.ContainsFunc(cands, func(c proto.Candidate) bool {
		return c.Kind == proto.CandidateServerReflexive && c.Addr.Addr() == n.observed.Addr()
	})
}

func (n *Node) handleProbe(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	// The pair ID sits right after the header in both probe messages.
	if len(p) < proto.HeaderLen+8 {
		n.stats.Malformed++
		return proto.ErrShort
	}
	pair := uint64(0)
	for _, b := range p[proto.HeaderLen : proto.HeaderLen+8] {
		pair = pair<<8 | uint64(b)
	}
	pe, ok := n.byPair[pair]
	if !ok {
		n.stats.UnknownPair++
		return ErrUnknownPair
	}
	err := pe.agent.HandleDatagram(now, local, from, p)
	n.afterAgent(now, pe)
	return n.count(err)
}

// afterAgent drains a peer's agent events into node events.
func (n *Node) afterAgent(now proto.Instant, p *peer) {
	for {
		e, ok := p.agent.PollEvent()
		if !ok {
			return
		}
		switch e := e.(type) {
		case punch.EventNeedSockets:
			n.requestSockets(p, e.N)
		case punch.EventPathUp:
			p.path = proto.PathDirect
			p.retryAt = proto.Never
			n.emit(EventPathChanged{Peer: p.id, Kind: proto.PathDirect, Local: e.Path.Local, Remote: e.Path.Remote,
				RTT: e.Path.RTT, Reason: "direct confirmed"})
			p.conn.PathChanged(now)
			n.initiate(now, p, false)
		case punch.EventPathDown:
			if e.Next != nil {
				n.emit(EventPathChanged{Peer: p.id, Kind: proto.PathDirect, Local: e.Next.Local, Remote: e.Next.Remote,
					RTT: e.Next.RTT, Reason: "direct timed out; another direct path"})
				p.conn.PathChanged(now)
				continue
			}
			n.fallBack(now, p, "direct timed out")
			// The peer may have moved or its NAT rebooted: fresh candidates from the
			// server, and a start instant both sides share.
			n.reintroduce(now, p)
		case punch.EventPathSuspect:
			// Ask the server for fresh candidates now; if the path comes back, the
			// refreshed search finds it again (or keeps it) at no cost. Traffic goes
			// through the relay meanwhile (route), so a blackholed path costs a
			// second, not the 6.5 s it takes to declare it dead.
			n.reintroduce(now, p)
			if p.relay.ready && p.path == proto.PathDirect {
				p.path = proto.PathRelay
				n.emit(EventPathChanged{Peer: p.id, Kind: proto.PathRelay, Remote: n.cfg.Server, Reason: "direct not answering"})
				p.conn.PathChanged(now)
			}
		case punch.EventPathRestored:
			if p.path != proto.PathDirect {
				p.path = proto.PathDirect
				n.emit(EventPathChanged{Peer: p.id, Kind: proto.PathDirect, Local: e.Path.Local, Remote: e.Path.Remote,
					RTT: e.Path.RTT, Reason: "direct answering again"})
				p.conn.PathChanged(now)
			}
		case punch.EventNoPath:
			reason := "no direct path found"
			if e.Strategy == proto.StrategyNone {
				reason = "no direct path possible: " + n.nat.Allocation.String() + "×" + p.remoteNAT.Allocation.String() +
					" symmetric NATs"
			}
			n.fallBack(now, p, reason)
		}
	}
}

// fallBack moves a peer's traffic to the relay (or to nothing) when no direct path
// is left, and says why.
func (n *Node) fallBack(now proto.Instant, p *peer, reason string) {
	if p.relay.ready {
		if p.agent.Plan().Strategy != proto.StrategyNone {
			// Try for a direct path again later: the network may change.
			p.retryAt = now.Add(30*time.Second + time.Duration(n.rng.Uint64()%uint64(30*time.Second)))
		}
		p.path = proto.PathRelay
		n.emit(EventPathChanged{Peer: p.id, Kind: proto.PathRelay, Remote: n.cfg.Server, Reason: reason})
		p.conn.PathChanged(now)
		return
	}
	p.path = proto.PathNone
	n.emit(EventPathChanged{Peer: p.id, Kind: proto.PathNone, Reason: reason})
}

// HandleTimeout runs every timer that is due, the children's included.
func (n *Node) HandleTimeout(now proto.Instant) {
	if n.closed {
		return
	}
	if now >= n.timers[timerRegister] {
		if now >= n.regGiveUp && !n.everRegistered {
			n.close("no answer from the server")
			return
		}
		n.sendRegister(now)
	}
	if now >= n.timers[timerKeepalive] {
		n.sendKeepalive(now)
	}
	if now >= n.timers[timerServerLost] {
		// Keepalives unanswered: the server restarted or our mapping died. Register
		// again; live direct paths are unaffected, relayed ones are told.
		n.timers[timerServerLost] = now.Add(serverLostAfter * n.keepalive)
		for _, p := range n.peers {
			if p.path == proto.PathRelay && !p.closed {
				p.path = proto.PathNone
				n.emit(EventPathChanged{Peer: p.id, Kind: proto.PathNone, Reason: "server not answering"})
			}
			p.relay.ready = false
		}
		n.onError(now, &proto.Error{Code: proto.CodeNoSession})
	}
	if now >= n.timers[timerReport] {
		n.timers[timerReport] = proto.Never
		if n.reportLeft > 0 {
			n.reportLeft--
			n.sendKeepalive(now)
			if n.reportLeft > 0 {
				n.timers[timerReport] = now.Add(reportRTO << (reportTries - n.reportLeft))
			}
		}
	}
	if now >= n.timers[timerIntroduce] {
		n.timers[timerIntroduce] = proto.Never
		keep := n.intros[:0]
		for _, r := range n.intros {
			if now >= r.next {
				if r.tries >= introduceTries {
					n.emit(EventPeerError{Peer: r.peer, Text: "no introduction from the server"})
					continue
				}
				r.tries++
				r.next = now.Add(min(introduceRTO<<(r.tries-1), introduceRTOMax))
				flags := n.policyFlags()
				if r.refresh {
					flags |= proto.IntroRefresh
				}
				n.queue(n.cfg.Server, &proto.IntroduceRequest{Session: n.session, TxID: r.txid, PeerID: []byte(r.peer), Flags: flags})
			}
			n.timers[timerIntroduce] = proto.Min(n.timers[timerIntroduce], r.next)
			keep = append(keep, r)
		}
		n.intros = keep
	}
	if c := n.classifier; c != nil && now >= c.Deadline() {
		c.HandleTimeout(now)
		n.afterClassifier(now)
	}
	for _, p := range n.peers {
		if now >= p.agent.Deadline() {
			p.agent.HandleTimeout(now)
			n.afterAgent(now, p)
		}
	}
	for _, p := range n.peers {
		if now >= p.relay.next && n.registered {
			n.sendAllocate(now, p)
		}
		if now >= p.retryAt {
			p.retryAt = proto.Never
			n.reintroduce(now, p)
		}
		if now >= n.quietCheckDue(p) {
			p.agent.CheckPath(now)
			n.afterAgent(now, p)
		}
		if now >= p.hsRetryAt {
			p.hsRetryAt = proto.Never
			n.initiate(now, p, false)
		}
		if now >= n.quietRelayDue(p) {
			// Relayed data goes unanswered: ask the server whether it is there. A
			// keepalive not acknowledged within relayCheckWait means it is not.
			p.relay.checkOut, p.relay.checked, p.relay.lastCheck = true, true, now
			n.sendKeepalive(now)
			n.timers[timerServerLost] = proto.Min(n.timers[timerServerLost], now.Add(relayCheckWait))
		}
	}
	if now >= n.keyx.Deadline() {
		n.keyx.HandleTimeout(now)
		n.afterKeyx(now)
	}
	for _, p := range n.peers {
		if now >= n.connDeadline(p) {
			ptos := p.conn.Stats().PTOs
			p.conn.HandleTimeout(now)
			if p.conn.Stats().PTOs > ptos {
				// Data went unacknowledged: check the path now rather than at the next
				// heartbeat (a NAT may have rebooted under us).
				p.agent.CheckPath(now)
				n.afterAgent(now, p)
			}
			n.afterConn(now, p)
		}
	}
}

// PollTransmit returns the next datagram to send: the node's own signaling first,
// then the classifier's probes, then each peer's.
func (n *Node) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	if len(n.out) > 0 {
		o := n.out[0]
		n.out = n.out[1:]
		return proto.Transmit{From: n.cfg.Local, To: o.to, Payload: o.msg.Append(buf[:0])}, true
	}
	if c := n.classifier; c != nil {
		if t, ok := c.PollTransmit(now, buf); ok {
			return t, true
		}
	}
	for _, p := range n.peers {
		if t, ok := p.agent.PollTransmit(now, buf); ok {
			return t, true
		}
	}
	for {
		t, ok := n.keyx.PollTransmit(now, buf)
		if !ok {
			break
		}
		if t, ok := n.wrapRelay(t, buf, 0); ok {
			return t, true
		}
	}
	for _, p := range n.peers {
		for {
			t, ok := n.pollConn(now, p, buf)
			if !ok {
				break
			}
			if t, ok := n.wrapRelay(t, buf, relayHeadroom); ok {
				return t, true
			}
		}
	}
	return proto.Transmit{}, false
}

// PollEvent returns the next event for the application.
func (n *Node) PollEvent() (Event, bool) {
	if len(n.events) == 0 {
		return nil, false
	}
	e := n.events[0]
	n.events = n.events[1:]
	return e, true
}

// Deadline is when HandleTimeout must next be called.
func (n *Node) Deadline() proto.Instant {
	if n.closed {
		return proto.Never
	}
	d := proto.Never
	for _, t := range n.timers {
		d = proto.Min(d, t)
	}
	if c := n.classifier; c != nil {
		d = proto.Min(d, c.Deadline())
	}
	for _, p := range n.peers {
		d = proto.Min(d, p.agent.Deadline())
		d = proto.Min(d, n.connDeadline(p))
		if n.registered {
			d = proto.Min(d, p.relay.next)
		}
		d = proto.Min(d, p.retryAt)
		d = proto.Min(d, n.quietCheckDue(p))
		d = proto.Min(d, n.quietRelayDue(p))
		d = proto.Min(d, p.hsRetryAt)
	}
	return proto.Min(d, n.keyx.Deadline())
}

// Peer reports a peer's current path.
func (n *Node) Peer(id string) (kind proto.PathKind, ok bool) {
	p, ok := n.byID[id]
	if !ok {
		return proto.PathNone, false
	}
	return p.path, true
}

func binaryPut(dst []byte, a, b uint64) {
	for i := 0; i < 8; i++ {
		dst[i] = byte(a >> (56 - 8*i))
		dst[8+i] = byte(b >> (56 - 8*i))
	}
}

// policyFlags are the introduce-request flags of the node's relay policy.
func (n *Node) policyFlags() uint8 {
	switch n.cfg.Relay {
	case RelayForce:
		return proto.IntroRelayOnly
	case RelayNever:
		return proto.IntroNoRelay
	}
	return 0
}

// forget drops a peer whose connection has ended, so that a new Connect, or the
// peer's new introduction, starts from nothing: new keys, new relay channel, new
// connection.
func (n *Node) forget(p *peer) {
	n.keyx.RemovePeer(p.pub())
	delete(n.byID, p.id)
	delete(n.byKey, p.key)
	delete(n.byPair, p.agent.Pair())
	delete(n.byRelayAddr, p.relay.addr)
	if p.relay.channel != 0 {
		delete(n.byChannel, p.relay.channel)
	}
	for tag, owner := range n.sockTags {
		if owner == any(p) {
			delete(n.sockTags, tag) // sockets for it that come later are ignored
		}
	}
	n.peers = slices.DeleteFunc(n.peers, func(q *peer) bool { return q == p })
}
