package node

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

var (
	testServer = netip.MustParseAddrPort("203.0.113.1:3478")
	testLocal  = netip.MustParseAddrPort("10.0.0.2:40000")
)

func newTestNode() *Node {
	return New(Config{ID: []byte("alice"), Ticket: []byte("ticket"), PrivateKey: [32]byte{1},
		Local: testLocal, Server: testServer, Seed: [32]byte{7}, RegisterTimeout: 10 * time.Second,
		Rand: rand.NewChaCha8([32]byte{8})})
}

// startNode starts n and returns the txid of the register it sent.
func startNode(t testing.TB, n *Node) uint64 {
	n.Start(0)
	for _, tx := range drainTx(n, 0) {
		var m proto.Register
		if m.Parse(tx.Payload) == nil {
			return m.TxID
		}
	}
	t.Fatal("Start sent no register")
	return 0
}

func drainTx(n *Node, now proto.Instant) []proto.Transmit {
	var out []proto.Transmit
	var buf [1500]byte
	for {
		t, ok := n.PollTransmit(now, buf[:])
		if !ok {
			return out
		}
		t.Payload = append([]byte(nil), t.Payload...)
		out = append(out, t)
	}
}

func TestRegisterRetransmitsThenGivesUp(t *testing.T) {
	n := newTestNode()
	n.Start(0)
	var sends []proto.Instant
	now := proto.Instant(0)
	for i := 0; i < 100; i++ {
		for _, tx := range drainTx(n, now) {
			var m proto.Register
			if err := m.Parse(tx.Payload); err != nil || tx.To != testServer || tx.From != testLocal {
				t.Fatalf("unexpected transmit %+v (%v)", tx, err)
			}
			sends = append(sends, now)
		}
		if n.Deadline() == proto.Never {
			break
		}
		now = n.Deadline()
		n.HandleTimeout(now)
	}
	if len(sends) < 4 {
		t.Fatalf("only %d registers sent", len(sends))
	}
	// Backoff doubles: each gap at least the one before it.
	for i := 2; i < len(sends); i++ {
		if sends[i].Sub(sends[i-1]) < sends[i-1].Sub(sends[i-2]) {
			t.Errorf("gap %d shrank: %v then %v", i, sends[i-1].Sub(sends[i-2]), sends[i].Sub(sends[i-1]))
		}
	}
	e, ok := n.PollEvent()
	if _, closed := e.(EventClosed); !ok || !closed {
		t.Fatalf("event %v, want EventClosed", e)
	}
	if now < proto.Instant(10*time.Second) {
		t.Errorf("gave up at %v, before the 10 s timeout", time.Duration(now))
	}
}

func TestSignalingOnlyFromServer(t *testing.T) {
	n := newTestNode()
	txid := startNode(t, n)
	reg := (&proto.Registered{TxID: txid, Observed: testLocal, Keepalive: 25}).Append(nil)
	stranger := netip.MustParseAddrPort("198.51.100.9:3478")
	if err := n.HandleDatagram(1, testLocal, stranger, reg); !errors.Is(err, ErrNotFromServer) {
		t.Fatalf("err %v, want ErrNotFromServer", err)
	}
	if n.Registered() || n.Stats().NotFromServer != 1 {
		t.Fatalf("a stranger's registered changed state")
	}
	wrongTx := (&proto.Registered{TxID: txid + 1, Observed: testLocal, Keepalive: 25}).Append(nil)
	if err := n.HandleDatagram(1, testLocal, testServer, wrongTx); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("err %v, want ErrUnexpected", err)
	}
	if err := n.HandleDatagram(1, testLocal, testServer, reg); err != nil {
		t.Fatal(err)
	}
	if !n.Registered() || n.Observed() != testLocal {
		t.Fatal("not registered")
	}
	// Registration starts the NAT measurement: its probes go to the server.
	txs := drainTx(n, 1)
	if len(txs) == 0 {
		t.Fatal("no NAT probes after registration")
	}
	for _, tx := range txs {
		var m proto.NATProbe
		if err := m.Parse(tx.Payload); err != nil {
			t.Errorf("transmit after registered is not a nat-probe: %v", err)
		}
	}
}

func TestConnectWaitsForNATReport(t *testing.T) {
	n := newTestNode()
	txid := startNode(t, n)
	reg := (&proto.Registered{TxID: txid, Observed: testLocal, Keepalive: 25}).Append(nil)
	if err := n.HandleDatagram(1, testLocal, testServer, reg); err != nil {
		t.Fatal(err)
	}
	drainTx(n, 1)
	n.Connect(2, "bob")
	for _, tx := range drainTx(n, 2) {
		var m proto.IntroduceRequest
		if m.Parse(tx.Payload) == nil {
			t.Fatal("introduce-request sent before the NAT report")
		}
	}
	// Let the measurement time out (the fake server never answers probes).
	now := proto.Instant(2)
	sawIntro := false
	for i := 0; i < 200 && !sawIntro; i++ {
		now = n.Deadline()
		n.HandleTimeout(now)
		for _, tx := range drainTx(n, now) {
			var m proto.IntroduceRequest
			if m.Parse(tx.Payload) == nil && string(m.PeerID) == "bob" {
				sawIntro = true
			}
		}
	}
	if !sawIntro {
		t.Fatal("Connect never sent its introduce-request")
	}
}

// A server bound to every address announces its alt port on the unspecified IP
// (PROTOCOL §5.2): the node takes that port on the address it reached the server
// at (for its NAT probes, and as a source of server answers) and ignores an
// unspecified alt address.
func TestUnspecifiedAltPortMeansServerAddress(t *testing.T) {
	n := newTestNode()
	txid := startNode(t, n)
	reg := (&proto.Registered{TxID: txid, Observed: testLocal, Keepalive: 25,
		AltPort: netip.MustParseAddrPort("0.0.0.0:3479"), AltAddr: netip.MustParseAddrPort("0.0.0.0:3478")}).Append(nil)
	if err := n.HandleDatagram(1, testLocal, testServer, reg); err != nil {
		t.Fatal(err)
	}
	alt := netip.AddrPortFrom(testServer.Addr(), 3479)
	if n.srv.altPort != alt || n.srv.altAddr.IsValid() {
		t.Fatalf("alt port %v, alt address %v; want %v and none", n.srv.altPort, n.srv.altAddr, alt)
	}
	if !n.srv.isServer(alt) || n.srv.isServer(netip.MustParseAddrPort("0.0.0.0:3479")) {
		t.Fatalf("answers from %v should count as the server's, from 0.0.0.0:3479 not", alt)
	}

	// An alt port that names the primary socket itself is no alt port.
	m := newTestNode()
	same := (&proto.Registered{TxID: startNode(t, m), Observed: testLocal, Keepalive: 25,
		AltPort: netip.AddrPortFrom(netip.IPv4Unspecified(), testServer.Port())}).Append(nil)
	if err := m.HandleDatagram(1, testLocal, testServer, same); err != nil {
		t.Fatal(err)
	}
	if m.srv.altPort.IsValid() {
		t.Fatalf("alt port %v: the primary's own port taken as the alt port", m.srv.altPort)
	}
}

// A NAT measurement that could not finish (here: a server that answers no probe,
// as for a node registered over its TCP fallback) is run again at NetworkChanged,
// and an introduction asked for meanwhile waits for it (PROTOCOL.md §14 [STREAM-5]).
func TestNetworkChangeMeasuresAnIncompleteNATAgain(t *testing.T) {
	n := newTestNode()
	txid := startNode(t, n)
	reg := (&proto.Registered{TxID: txid, Observed: testLocal, Keepalive: 25}).Append(nil)
	if err := n.HandleDatagram(1, testLocal, testServer, reg); err != nil {
		t.Fatal(err)
	}
	probes := func(now proto.Instant) (probes, intros int) {
		for _, tx := range drainTx(n, now) {
			var p proto.NATProbe
			var r proto.IntroduceRequest
			switch {
			case p.Parse(tx.Payload) == nil:
				probes++
			case r.Parse(tx.Payload) == nil:
				intros++
			}
		}
		return probes, intros
	}
	now := proto.Instant(1)
	if p, _ := probes(now); p == 0 {
		t.Fatal("registration started no NAT measurement")
	}
	var report EventNATReport
	got := false
	for i := 0; i < 200 && !got; i++ {
		now = n.Deadline()
		n.HandleTimeout(now)
		probes(now)
		for e, ok := n.PollEvent(); ok; e, ok = n.PollEvent() {
			if r, ok := e.(EventNATReport); ok {
				report, got = r, true
			}
		}
	}
	if !got || report.Behavior.Mapping != proto.DependenceUnknown {
		t.Fatalf("report %+v: the fake server answered nothing, want mapping unknown", report.Behavior)
	}
	now += proto.Instant(time.Second)
	n.NetworkChanged(now)
	n.Connect(now, "bob")
	if p, intros := probes(now); p == 0 || intros != 0 {
		t.Fatalf("after NetworkChanged: %d nat-probes and %d introduce-requests, want a new measurement first", p, intros)
	}
}
