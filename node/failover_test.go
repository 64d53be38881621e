package node

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

var (
	testServer2 = netip.MustParseAddrPort("203.0.113.2:3478")
	testServer3 = netip.MustParseAddrPort("203.0.113.3:3478")
)

func newListNode(servers ...netip.AddrPort) *Node {
	return New(Config{ID: []byte("alice"), Ticket: []byte("ticket"), PrivateKey: [32]byte{1},
		Local: testLocal, Servers: servers, Seed: [32]byte{7}, RegisterTimeout: 10 * time.Second,
		Rand: rand.NewChaCha8([32]byte{8})})
}

// registers returns the txids of the registers among txs sent to server.
func registers(txs []proto.Transmit, server netip.AddrPort) []uint64 {
	var ids []uint64
	for _, tx := range txs {
		var m proto.Register
		if m.Parse(tx.Payload) == nil && tx.To == server {
			ids = append(ids, m.TxID)
		}
	}
	return ids
}

// admit answers n's latest register to server at now (from the transmits txs).
func admit(t *testing.T, n *Node, now proto.Instant, txs []proto.Transmit, server netip.AddrPort) []proto.Transmit {
	t.Helper()
	ids := registers(txs, server)
	if len(ids) == 0 {
		t.Fatalf("no register to %v among %d transmits", server, len(txs))
	}
	reg := (&proto.Registered{TxID: ids[len(ids)-1], Session: proto.Session{byte(server.Port()), server.Addr().As4()[3], 9},
		Observed: testLocal, Keepalive: 25}).Append(nil)
	if err := n.HandleDatagram(now, testLocal, server, reg); err != nil {
		t.Fatal(err)
	}
	if !n.Registered() || n.Server() != server {
		t.Fatalf("registered %v with %v, want %v", n.Registered(), n.Server(), server)
	}
	return drainTx(n, now)
}

// events takes every event n has.
func events(n *Node) []Event {
	var evs []Event
	for e, ok := n.PollEvent(); ok; e, ok = n.PollEvent() {
		evs = append(evs, e)
	}
	return evs
}

func serverChanges(evs []Event) []EventServerChanged {
	var out []EventServerChanged
	for _, e := range evs {
		if c, ok := e.(EventServerChanged); ok {
			out = append(out, c)
		}
	}
	return out
}

func TestServerAndServersBothSetPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New took both Server and Servers")
		}
	}()
	New(Config{Server: testServer, Servers: []netip.AddrPort{testServer2}, Rand: rand.NewChaCha8([32]byte{})})
}

// DESIGN §12: a register unanswered for registerMoveAfter moves the node to the
// next server of its list, round robin: s1, s2, s3, then s1 again; the first
// registration still gives up at RegisterTimeout.
func TestUnansweredRegisterMovesRoundRobin(t *testing.T) {
	n := newListNode(testServer, testServer2, testServer3)
	n.Start(0)
	var order []netip.AddrPort // the server of each register, in order, without repeats
	var movedAt []proto.Instant
	now := proto.Instant(0)
	for range 200 {
		for _, tx := range drainTx(n, now) {
			if len(registers([]proto.Transmit{tx}, tx.To)) == 1 && (len(order) == 0 || order[len(order)-1] != tx.To) {
				order = append(order, tx.To)
			}
		}
		for _, c := range serverChanges(events(n)) {
			if c.Reason != "no answer to register" {
				t.Errorf("move %+v, want reason \"no answer to register\"", c)
			}
			movedAt = append(movedAt, now)
		}
		if n.Deadline() == proto.Never {
			break
		}
		now = n.Deadline()
		n.HandleTimeout(now)
	}
	want := []netip.AddrPort{testServer, testServer2, testServer3, testServer}
	if !slices.Equal(order, want) {
		t.Errorf("registered with %v, want %v", order, want)
	}
	for i, at := range movedAt {
		if w := proto.Instant(time.Duration(i+1) * registerMoveAfter); at != w {
			t.Errorf("move %d at %v, want %v", i, time.Duration(at), time.Duration(w))
		}
	}
	if n.Deadline() != proto.Never || now < proto.Instant(10*time.Second) {
		t.Errorf("still trying at %v (deadline %v), want closed at the 10 s register timeout", time.Duration(now), n.Deadline())
	}
}

// Unsolicited code 11 with the session's tag: the node leaves for the next server
// at once (DESIGN §12, draining).
func TestMovingMovesAtOnce(t *testing.T) {
	n := newListNode(testServer, testServer2)
	n.Start(0)
	admit(t, n, 1, drainTx(n, 0), testServer)
	events(n)
	moving := (&proto.Error{TxID: proto.SessionTag(&n.srv.session), Code: proto.CodeMoving, Text: []byte("draining")}).Append(nil)
	if err := n.HandleDatagram(2, testLocal, testServer, moving); err != nil {
		t.Fatal(err)
	}
	ch := serverChanges(events(n))
	if len(ch) != 1 || ch[0] != (EventServerChanged{From: testServer, To: testServer2, Reason: "server moving"}) {
		t.Fatalf("server changes %+v, want one to %v for \"server moving\"", ch, testServer2)
	}
	txs := drainTx(n, 2)
	if n.Registered() || len(registers(txs, testServer2)) != 1 {
		t.Fatalf("registered %v; transmits %d, want a register to %v at once", n.Registered(), len(txs), testServer2)
	}
	// The old server is not the server any more: its answers are not taken.
	late := (&proto.KeepaliveAck{Seq: 1, Observed: testLocal}).Append(nil)
	if err := n.HandleDatagram(3, testLocal, testServer, late); !errors.Is(err, ErrNotFromServer) {
		t.Errorf("an answer from the old server: %v, want ErrNotFromServer", err)
	}
	admit(t, n, 4, txs, testServer2)
}

// Code 11 answering the register itself (the next server is draining too), or
// code 7 (server full), moves at the register's next repetition, not at once:
// servers that all refuse are asked at the register's backoff.
func TestRefusedRegisterMovesAtRepetition(t *testing.T) {
	for _, code := range []proto.ErrorCode{proto.CodeMoving, proto.CodeServerFull} {
		n := newListNode(testServer, testServer2)
		n.Start(0)
		ids := registers(drainTx(n, 0), testServer)
		refusal := (&proto.Error{TxID: ids[0], Code: code}).Append(nil)
		if err := n.HandleDatagram(1, testLocal, testServer, refusal); err != nil {
			t.Fatal(err)
		}
		if txs := drainTx(n, 1); len(txs) != 0 || len(serverChanges(events(n))) != 0 {
			t.Fatalf("code %d: %d transmits at once; want the move at the register's repetition", code, len(txs))
		}
		at := n.Deadline()
		if at < proto.Instant(registerRTO*3/4) || at > proto.Instant(registerRTO*5/4) {
			t.Fatalf("code %d: next step at %v, want the repetition at %v ± 25 %%", code, time.Duration(at), registerRTO)
		}
		n.HandleTimeout(at)
		why := map[proto.ErrorCode]string{proto.CodeMoving: "server moving", proto.CodeServerFull: "server full"}[code]
		if ch := serverChanges(events(n)); len(ch) != 1 || ch[0].Reason != why || len(registers(drainTx(n, at), testServer2)) != 1 {
			t.Fatalf("code %d: changes %+v; want a move to %v for %q and its register", code, ch, testServer2, why)
		}
	}
}

// Unsolicited code 10 with the session's tag: another node registered our ID. The
// node stops for good with a clear reason and never registers again.
func TestReplacedCloses(t *testing.T) {
	n := newListNode(testServer, testServer2)
	n.Start(0)
	admit(t, n, 1, drainTx(n, 0), testServer)
	events(n)
	replaced := (&proto.Error{TxID: proto.SessionTag(&n.srv.session), Code: proto.CodeReplaced}).Append(nil)
	if err := n.HandleDatagram(2, testLocal, testServer, replaced); err != nil {
		t.Fatal(err)
	}
	evs := events(n)
	i := slices.IndexFunc(evs, func(e Event) bool { _, ok := e.(EventClosed); return ok })
	if i < 0 || evs[i].(EventClosed).Code != proto.CodeReplaced {
		t.Fatalf("events %+v, want EventClosed with code %d", evs, proto.CodeReplaced)
	}
	if n.Deadline() != proto.Never {
		t.Errorf("deadline %v after the close, want Never", n.Deadline())
	}
	n.HandleTimeout(proto.Instant(time.Hour))
	if txs := drainTx(n, proto.Instant(time.Hour)); len(txs) != 0 {
		t.Errorf("%d datagrams after the close (a register taking the ID back?)", len(txs))
	}
}

// Codes 10 and 11 must carry the session's tag: with another TxID they are
// ignored and counted, as is any error naming nothing of ours, and any error from
// a server that is not the node's current one.
func TestStrayErrorsAreIgnored(t *testing.T) {
	n := newListNode(testServer, testServer2)
	n.Start(0)
	admit(t, n, 1, drainTx(n, 0), testServer)
	events(n)
	tag := proto.SessionTag(&n.srv.session)
	for i, c := range []struct {
		from netip.AddrPort
		m    proto.Error
	}{
		{testServer, proto.Error{TxID: tag + 1, Code: proto.CodeReplaced}},
		{testServer, proto.Error{TxID: ^tag, Code: proto.CodeMoving}},
		{testServer, proto.Error{TxID: 12345, Code: proto.CodeUnknownPeer}},
		{testServer2, proto.Error{TxID: tag, Code: proto.CodeReplaced}}, // not our server (now)
		{netip.MustParseAddrPort("198.51.100.7:3478"), proto.Error{TxID: tag, Code: proto.CodeMoving}},
	} {
		_ = n.HandleDatagram(2, testLocal, c.from, c.m.Append(nil))
		st := n.Stats()
		if strays, want := st.StrayErrors+st.NotFromServer, i+1; strays != want {
			t.Errorf("error %d (%+v from %v): %d counted, want %d", i, c.m, c.from, strays, want)
		}
		if evs := events(n); len(evs) != 0 || !n.Registered() || n.Server() != testServer {
			t.Errorf("error %d (%+v from %v) changed the node: events %+v, registered %v on %v", i, c.m, c.from, evs, n.Registered(), n.Server())
		}
	}
	if st := n.Stats(); st.StrayErrors != 3 || st.NotFromServer != 2 {
		t.Errorf("stray %d, not from the server %d; want 3 and 2", st.StrayErrors, st.NotFromServer)
	}
}

// Keepalives unanswered for serverLostAfter intervals move the node to the next
// server. It keeps its NAT report (no new measurement: this server has no
// alternate sockets to make one) and hands the report to the new server at once.
func TestKeepaliveLossMovesAndKeepsReport(t *testing.T) {
	n := newListNode(testServer, testServer2)
	n.Start(0)
	admit(t, n, 1, drainTx(n, 0), testServer)
	now := proto.Instant(1)
	var txs []proto.Transmit
	for n.Deadline() < proto.Instant(200*time.Second) {
		now = n.Deadline()
		n.HandleTimeout(now)
		txs = drainTx(n, now)
		if c := serverChanges(events(n)); len(c) > 0 {
			if c[0].Reason != "server not answering" || c[0].To != testServer2 {
				t.Fatalf("move %+v", c[0])
			}
			break
		}
	}
	if n.Server() != testServer2 || now < proto.Instant(serverLostAfter*25*time.Second) {
		t.Fatalf("on %v at %v, want moved to %v after %d keepalive intervals", n.Server(), time.Duration(now), testServer2, serverLostAfter)
	}
	nat := n.NAT()
	txs = append(txs, admit(t, n, now+1, txs, testServer2)...)
	var keepalives, probes int
	for _, tx := range txs {
		var ka proto.Keepalive
		var np proto.NATProbe
		switch {
		case ka.Parse(tx.Payload) == nil:
			keepalives++
			if ka.NAT != nat {
				t.Errorf("keepalive reports %+v, want the kept report %+v", ka.NAT, nat)
			}
		case np.Parse(tx.Payload) == nil:
			probes++
		}
	}
	if keepalives != 1 || probes != 0 {
		t.Errorf("after registering with %v: %d keepalives, %d nat-probes; want the report at once and no new measurement", testServer2, keepalives, probes)
	}
}
