package node

import (
	"net/netip"
	"testing"

	"golang.org/x/crypto/curve25519"

	"github.com/natpass/natpass/proto"
)

var fuzzStranger = netip.MustParseAddrPort("198.51.100.99:7777")

// fuzzNode is a registered node with one introduced peer: the state where the most
// code can be reached from the network.
func fuzzNode(t testing.TB) *Node {
	n := newTestNode()
	reg := (&proto.Registered{TxID: startNode(t, n), Observed: testLocal, Keepalive: 25}).Append(nil)
	if err := n.HandleDatagram(1, testLocal, testServer, reg); err != nil {
		t.Fatal(err)
	}
	drainTx(n, 1)
	var peerPriv [32]byte
	peerPriv[0] = 9
	pub, _ := curve25519.X25519(peerPriv[:], curve25519.Basepoint)
	intro := proto.Introduction{PeerID: []byte("bob"), RelayToken: []byte{1, 2, 3},
		Candidates: []proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: fuzzStranger}}}
	copy(intro.PeerKey[:], pub)
	if err := n.HandleDatagram(2, testLocal, testServer, intro.Append(nil)); err != nil {
		t.Fatal(err)
	}
	drainTx(n, 2)
	return n
}

// FuzzNodeDatagram feeds arbitrary datagrams to a live node, from the server and from
// a stranger. Nothing panics; a datagram the node rejects gets no reply at all; the
// peer table does not grow from a stranger's datagrams; a drop is counted.
func FuzzNodeDatagram(f *testing.F) {
	f.Add([]byte{0xE1, 0x30}, false)
	f.Add((&proto.Probe{Pair: 1}).Append(nil), false)
	f.Add((&proto.Introduction{PeerID: []byte("eve")}).Append(nil), true)
	f.Add((&proto.KeepaliveAck{Seq: 1, Observed: fuzzStranger}).Append(nil), true)
	f.Add([]byte{0xE1, 0x23, 0, 1, 0xE1, 0x13}, true)
	f.Add([]byte{0x00, 0x01, 0x00, 0x00}, false)
	f.Fuzz(func(t *testing.T, p []byte, fromServer bool) {
		n := fuzzNode(t)
		from := fuzzStranger
		if fromServer {
			from = testServer
		}
		peers := len(n.Peers())
		before := n.Stats()
		err := n.HandleDatagram(3, testLocal, from, p)
		var buf [2048]byte
		for i := 0; ; i++ {
			tx, ok := n.PollTransmit(3, buf[:])
			if !ok {
				break
			}
			if err != nil && tx.To == from {
				t.Fatalf("rejected datagram (%v) got a reply %x", err, tx.Payload)
			}
			if i > 10_000 {
				t.Fatal("PollTransmit never ends")
			}
		}
		if !fromServer && len(n.Peers()) != peers {
			t.Fatal("a stranger's datagram added a peer")
		}
		if err != nil && n.Stats() == before {
			t.Fatalf("rejected datagram (%v) not counted", err)
		}
		for {
			if _, ok := n.PollEvent(); !ok {
				break
			}
		}
		_ = n.Deadline()
	})
}
