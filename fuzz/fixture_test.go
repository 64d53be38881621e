package fuzz

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// Addresses of the in-memory wiring. Nothing routes them: the fixture hands each
// datagram to its machine by hand.
var (
	addrServer   = netip.MustParseAddrPort("203.0.113.1:3478")
	addrAltPort  = netip.MustParseAddrPort("203.0.113.1:3479")
	addrAltAddr  = netip.MustParseAddrPort("203.0.113.2:3478")
	addrNode     = netip.MustParseAddrPort("10.0.0.2:40000")
	addrNodeNAT  = netip.MustParseAddrPort("198.51.100.2:40000")
	addrPeer     = netip.MustParseAddrPort("198.51.100.7:50000")
	addrStranger = netip.MustParseAddrPort("192.0.2.99:7777")
)

// wallStart anchors the handshake timestamps; any fixed time does.
var wallStart = time.Unix(1798761600, 0)

// pair is a real node ("alice") with an established session to a stand-in peer
// ("bob") built from the same exported parts the node composes: a keyx.Endpoint and
// an rudp.Conn. The stand-in is what gives a fuzzer the session's keys: a second
// node keeps its keyx session unexported, so it could not seal chosen plaintext.
// The server is played by hand (registered, introduction), so every datagram the
// node sends is visible and nothing runs that the test did not ask for.
type pair struct {
	t        testing.TB
	now      proto.Instant
	node     *node.Node
	peerKeyx *keyx.Endpoint
	peerConn *rudp.Conn
	nodePub  keyx.PublicKey
	// events the node emitted, in order, since the last reset; peerMsgs the
	// messages the stand-in's connection delivered.
	events   []node.Event
	peerMsgs [][]byte
	peerGone bool // the stand-in's connection closed
	// forged is the packet number of the fuzzer's packet, hidden from the
	// stand-in's acknowledgements (hideAcks).
	forged     uint64
	haveForged bool
	// record keeps every datagram the node sends in sent (seeds are built from them).
	record bool
	sent   [][]byte
	buf    []byte
}

// fixture builds the pair and runs it until one reliable message went each way,
// so both directions are known to work before the fuzzer's input arrives.
func fixture(t testing.TB) *pair {
	p := &pair{t: t, buf: make([]byte, 65536)}
	nodePriv, peerPriv := keyPair()
	p.node = node.New(node.Config{ID: []byte("alice"), Ticket: []byte("ticket"), PrivateKey: nodePriv,
		Local: addrNode, Server: addrServer, Seed: [32]byte{7}, Rand: rand.NewChaCha8([32]byte{8}),
		Wall: proto.WallClock{At: 0, Time: wallStart}, RUDP: rudpConfig()})
	p.nodePub = keyx.PublicKey(p.node.PublicKey())
	p.node.Start(0)
	reg := p.takeRegister()
	p.fromServer((&proto.Registered{TxID: reg.TxID, Observed: addrNodeNAT, Keepalive: 25}).Append(nil))
	p.peerKeyx = keyx.New(keyx.Config{PrivateKey: peerPriv, Rand: rand.NewChaCha8([32]byte{9})}, p.now)
	if err := p.peerKeyx.AddPeer(p.nodePub, keyx.PresharedKey{}); err != nil {
		t.Fatal(err)
	}
	intro := proto.Introduction{PeerID: []byte("bob"), PeerKey: [32]byte(peerPriv.Public()),
		RelayToken: []byte{1, 2, 3}, StartDelayMs: 0,
		Candidates: []proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrPeer}}}
	p.fromServer(intro.Append(nil))
	// The stand-in's key sorts lower, so it initiates and the node answers: the node
	// has no confirmed path to start a handshake on (its probes go nowhere).
	if err := p.peerKeyx.Initiate(p.now, wallStart, p.nodePub, addrPeer, addrNodeNAT); err != nil {
		t.Fatal(err)
	}
	cfg := rudpConfig()
	cfg.Headroom, cfg.Tailroom = proto.TransportHeaderLen, proto.TagLen
	p.peerConn = rudp.New(cfg, p.now)
	p.settle()
	if err := p.peerConn.Send(p.now, 0, rudp.ReliableOrdered, []byte("hello alice")); err != nil {
		t.Fatal(err)
	}
	if err := p.node.Send(p.now, "bob", 0, rudp.ReliableOrdered, []byte("hello bob")); err != nil {
		t.Fatal(err)
	}
	p.run(5*time.Second, func() bool { return len(p.peerMsgs) == 1 && p.nodeMessages() == 1 })
	if len(p.peerMsgs) != 1 || p.nodeMessages() != 1 {
		t.Fatalf("fixture: no exchange (peer got %d, node got %d; events %v)", len(p.peerMsgs), p.nodeMessages(), p.events)
	}
	p.run(100*time.Millisecond, nil) // acks settle: nothing in flight when the fuzzer starts
	p.events, p.peerMsgs = nil, nil
	return p
}

// fixtureLanes is how many lanes both ends configure: enough that a fuzzed packet
// rarely touches them all, so a lane it left alone can show the connection still
// works.
const fixtureLanes = 4

func rudpConfig() rudp.Config {
	return rudp.Config{Lanes: make([]rudp.LaneConfig, fixtureLanes)}
}

// keyPair draws the node's and the stand-in's keys from fixed seeds, taking the first
// stand-in key that sorts below the node's (the lower key initiates, node/peer.go).
func keyPair() (nodePriv, peerPriv keyx.PrivateKey) {
	nodePriv[0] = 1
	nodePub := nodePriv.Public()
	for i := 2; ; i++ {
		peerPriv = keyx.PrivateKey{byte(i), 0x5a}
		pub := peerPriv.Public()
		if bytes.Compare(pub[:], nodePub[:]) < 0 {
			return nodePriv, peerPriv
		}
	}
}

// takeRegister returns the register the node sent.
func (p *pair) takeRegister() proto.Register {
	var reg proto.Register
	for {
		tx, ok := p.node.PollTransmit(p.now, p.buf)
		if !ok {
			p.t.Fatal("fixture: node sent no register")
		}
		if reg.Parse(tx.Payload) == nil {
			p.drainNode()
			return reg
		}
	}
}

// fromServer hands the node a datagram from the server one millisecond later.
func (p *pair) fromServer(b []byte) {
	p.now = p.now.Add(time.Millisecond)
	if err := p.node.HandleDatagram(p.now, addrNode, addrServer, b); err != nil {
		p.t.Fatalf("fixture: node refused the server's %x: %v", b[:2], err)
	}
	p.drainNode()
}

// nodeMessages counts the messages among the node's events.
func (p *pair) nodeMessages() int {
	n := 0
	for _, e := range p.events {
		if _, ok := e.(node.EventMessage); ok {
			n++
		}
	}
	return n
}

// datagram is one datagram in flight between the node and the stand-in.
type datagram struct {
	toNode  bool
	payload []byte
}

// settle moves datagrams between the node and the stand-in at the current instant
// until neither has anything to send. Each machine is drained into a queue first, so
// no machine is called from inside another's drain.
func (p *pair) settle() {
	for round := 0; ; round++ {
		if round == 10_000 {
			p.t.Fatal("fixture: the pair never goes quiet")
		}
		q := append(p.drainNode(), p.drainPeer()...)
		if len(q) == 0 {
			return
		}
		for _, d := range q {
			if d.toNode {
				_ = p.node.HandleDatagram(p.now, addrNode, addrPeer, d.payload)
			} else {
				p.toPeer(d.payload)
			}
		}
	}
}

// drainNode follows the drain rule on the node: transmits (those for the stand-in
// kept, the rest dropped: the server and the punch probes are not played), then
// events.
func (p *pair) drainNode() []datagram {
	var q []datagram
	for i := 0; ; i++ {
		if i == 1<<20 {
			p.t.Fatal("node: PollTransmit never returns false")
		}
		tx, ok := p.node.PollTransmit(p.now, p.buf)
		if !ok {
			break
		}
		if p.record {
			p.sent = append(p.sent, bytes.Clone(tx.Payload))
		}
		if tx.To == addrPeer {
			q = append(q, datagram{payload: bytes.Clone(tx.Payload)})
		}
	}
	for {
		e, ok := p.node.PollEvent()
		if !ok {
			return q
		}
		p.events = append(p.events, e)
	}
}

// drainPeer drains the stand-in's handshake endpoint and connection; the
// connection's packets are sealed with the current session, as node/transport.go
// does.
func (p *pair) drainPeer() []datagram {
	var q []datagram
	for {
		tx, ok := p.peerKeyx.PollTransmit(p.now, p.buf)
		if !ok {
			break
		}
		q = append(q, datagram{toNode: true, payload: bytes.Clone(tx.Payload)})
	}
	for {
		if _, ok := p.peerKeyx.PollEvent(); !ok {
			break
		}
	}
	for sess := p.peerKeyx.Current(p.nodePub); sess != nil && !p.peerGone; {
		pt, ok := p.peerConn.PollTransmit(p.now, p.buf)
		if !ok {
			break
		}
		out, err := sess.Seal(p.now, nil, pt)
		if err != nil {
			p.t.Fatalf("stand-in: seal: %v", err)
		}
		q = append(q, datagram{toNode: true, payload: out})
	}
	p.drainPeerEvents()
	return q
}

func (p *pair) drainPeerEvents() {
	for {
		e, ok := p.peerConn.PollEvent()
		if !ok {
			return
		}
		switch e := e.(type) {
		case *rudp.EventMessage:
			p.peerMsgs = append(p.peerMsgs, bytes.Clone(e.Data))
		case *rudp.EventClosed:
			p.peerGone = true
		}
	}
}

// toPeer hands the stand-in a datagram the node sent it: handshake messages to its
// endpoint, transport data opened and given to its connection, probes ignored.
func (p *pair) toPeer(b []byte) {
	h, _, err := proto.ParseHeader(b)
	switch {
	case err != nil:
	case h.Type == proto.TypeTransportData:
		_, pt, err := p.peerKeyx.Open(p.now, nil, b)
		if err == nil && len(pt) > 0 && !p.peerGone {
			pt = hideAcks(pt, p.peerConn.Stats().PacketsSent, p.forged, p.haveForged)
			_ = p.peerConn.HandleDatagram(p.now, pt)
		}
	case h.Type >= proto.TypeKeyxFirst && h.Type <= proto.TypeKeyxLast:
		_ = p.peerKeyx.HandleDatagram(p.now, addrPeer, addrNodeNAT, b)
	}
}

// run steps virtual time from deadline to deadline for at most d, settling after
// each, until done (if not nil) holds.
func (p *pair) run(d time.Duration, done func() bool) {
	end := p.now.Add(d)
	for step := 0; ; step++ {
		p.settle()
		if done != nil && done() || step == 100_000 {
			return
		}
		next := min(p.node.Deadline(), p.peerKeyx.Deadline(), p.peerConn.Deadline())
		if next > end {
			p.now = end
			return
		}
		p.now = max(p.now, next)
		if p.node.Deadline() <= p.now {
			p.node.HandleTimeout(p.now)
		}
		if p.peerKeyx.Deadline() <= p.now {
			p.peerKeyx.HandleTimeout(p.now)
		}
		if p.peerConn.Deadline() <= p.now {
			p.peerConn.HandleTimeout(p.now)
		}
	}
}
