package node_test

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/crypto/curve25519"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rendezvous"
	"github.com/natpass/natpass/rudp"
)

var (
	contractServer = netip.MustParseAddrPort("198.51.100.1:3478")
	contractAlt    = netip.MustParseAddrPort("198.51.100.1:3479")
	contractA      = netip.MustParseAddrPort("192.0.2.10:40000")
	contractB      = netip.MustParseAddrPort("203.0.113.20:40000")
	contractSecret = []byte("natpass node contract test secret")
)

// contractWall is the Unix time at the start of the virtual timeline.
const contractWall = 1798761600

func contractNode(t *testing.T, id string, local netip.AddrPort, seed byte) *node.Node {
	priv := [32]byte{1: seed, 2: 0x5a} // byte 0 loses its low bits to clamping
	pub, _ := curve25519.X25519(priv[:], curve25519.Basepoint)
	tk := proto.Ticket{PeerID: []byte(id), ExpiryUnix: contractWall + 3600}
	copy(tk.PublicKey[:], pub)
	return node.New(node.Config{ID: []byte(id), Ticket: rendezvous.MintTicket(contractSecret, tk),
		PrivateKey: priv, Local: local, Server: contractServer, Seed: [32]byte{seed, 1},
		Rand: rand.NewChaCha8([32]byte{seed, 2}), Wall: proto.WallClock{Time: time.Unix(contractWall, 0)}})
}

// nodeSnapshot is what a rejected datagram or a spurious timeout must leave alone:
// everything the node shows but its drop counters.
type nodeSnapshot struct {
	Registered bool
	Observed   netip.AddrPort
	Peers      []string
	Path       proto.PathKind
	Conn       rudp.Stats
}

// nodeSubject is b of two nodes on open addresses, registered with one server,
// introduced and with their encrypted session up (a direct path confirmed).
func nodeSubject(t *testing.T) *machinetest.Subject {
	srv, err := rendezvous.NewServer(rendezvous.Config{Secret: contractSecret, Seed: [32]byte{9},
		Primary: contractServer, AltPort: contractAlt, WallClock: proto.WallClock{Time: time.Unix(contractWall, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := contractNode(t, "a", contractA, 1), contractNode(t, "b", contractB, 2)
	net := machinetest.NewNet(t, 0, 10*time.Millisecond)
	net.Add("server", machinetest.Of(srv), contractServer, contractAlt)
	na := net.Add("a", machinetest.Of(a), contractA)
	nb := net.Add("b", machinetest.Of(b), contractB)
	a.Start(0)
	b.Start(0)
	run := func(d time.Duration) {
		for end := net.Now.Add(d); net.Now < end; {
			net.RunUntil(min(end, net.Now.Add(100*time.Millisecond)))
			openSockets(net, na, a)
			openSockets(net, nb, b)
		}
	}
	run(15 * time.Second) // both measure their NATs
	a.Connect(net.Now, "b")
	run(30 * time.Second)
	if k, ok := b.Peer("a"); !ok || k != proto.PathDirect {
		t.Fatalf("no direct path to test on (path %v, known %v); a's events %v, b's %v", k, ok, na.Events, nb.Events)
	}
	// A transport packet of a's, captured to be delivered again.
	if err := a.Send(net.Now, "b", 0, rudp.Unreliable, []byte("captured")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	tx, ok := a.PollTransmit(net.Now, buf)
	if !ok || tx.To != contractB {
		t.Fatalf("no transport packet to b: %+v", tx)
	}
	captured := append([]byte(nil), tx.Payload...)
	if err := b.HandleDatagram(net.Now, contractB, contractA, captured); err != nil {
		t.Fatal(err)
	}
	net.RunUntil(net.Now.Add(time.Second))
	snap := func() any {
		path, _ := b.Peer("a")
		st, _ := b.ConnStats("a")
		return nodeSnapshot{b.Registered(), b.Observed(), b.Peers(), path, st}
	}
	forged := append([]byte(nil), captured...)
	forged[len(forged)-1] ^= 1
	m := machinetest.Of(b)
	return &machinetest.Subject{
		Machine: m, Now: net.Now, Local: contractB, From: contractA, Snapshot: snap,
		Rejected: [][]byte{
			nil, {0xE1}, {0xEF, 0x00}, // short; an unknown version
			captured, // a replay: keyx's window has its counter
			forged,   // the AEAD fails
			(&proto.Registered{TxID: 1, Observed: contractA, Keepalive: 25}).Append(nil), // not from the server
			(&proto.Probe{Pair: 12345}).Append(nil),                                      // no such pair
		},
		Inputs: [][]byte{captured, (&proto.KeepaliveAck{Seq: 1, Observed: contractB}).Append(nil)},
		// The steady state of a lossy network: a datagram seen before, dropped and
		// counted, with nothing to send.
		Steady: func(now proto.Instant) proto.Instant {
			now = now.Add(time.Microsecond)
			_ = m.HandleDatagram(now, contractB, contractA, captured)
			machinetest.Discard(m, now, buf)
			return now
		},
	}
}

// openSockets answers the node's EventOpenSockets with sockets on its address that
// the net routes to it.
func openSockets(net *machinetest.Net, nd *machinetest.Node, n *node.Node) {
	for i, e := range nd.Events {
		o, ok := e.(node.EventOpenSockets)
		if !ok {
			continue
		}
		nd.Events[i] = nil
		var addrs []netip.AddrPort
		for range o.N {
			a := netip.AddrPortFrom(nd.Addrs[0].Addr(), nd.Addrs[0].Port()+uint16(len(nd.Addrs)))
			nd.Addrs = append(nd.Addrs, a)
			addrs = append(addrs, a)
		}
		n.HandleSockets(net.Now, o.Tag, addrs)
		net.Drain()
	}
}

// idleNodeSubject is a node the server refused: it sends nothing more.
func idleNodeSubject(t *testing.T) *machinetest.Subject {
	n := contractNode(t, "c", contractA, 3)
	m := machinetest.Of(n)
	n.Start(0)
	var reg proto.Register
	txs, _ := machinetest.Drain(t, m, 0, make([]byte, 2048))
	for _, tx := range txs {
		if reg.Parse(tx.Payload) != nil {
			t.Fatalf("Start sent %x, not a register", tx.Payload)
		}
	}
	refusal := (&proto.Error{TxID: reg.TxID, Code: proto.CodeBadTicket, Text: []byte("no")}).Append(nil)
	return &machinetest.Subject{Machine: m, Now: 1, Local: contractA, From: contractServer,
		Rejected: [][]byte{{0xE1, 0x30}},
		Idle: func(now proto.Instant) proto.Instant {
			if err := m.HandleDatagram(now, contractA, contractServer, refusal); err != nil {
				t.Fatal(err)
			}
			return now
		}}
}

func TestNodeContract(t *testing.T) {
	machinetest.Check(t, machinetest.Spec{New: nodeSubject, Seed: 12, Diverges: map[string]string{
		machinetest.IdleDeadlineNever: "a registered node keeps its keepalive timer; TestRefusedNodeContract covers idle",
	}})
}

func TestRefusedNodeContract(t *testing.T) {
	machinetest.Check(t, machinetest.Spec{New: idleNodeSubject, Seed: 13})
}
