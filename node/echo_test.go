package node

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// relayedType is the message type inside a relay-send, or 0 for any other datagram.
func relayedType(p []byte) proto.MsgType {
	if len(p) <= proto.RelayDataHeaderLen+1 || proto.MsgType(p[1]) != proto.TypeRelaySend {
		return 0
	}
	return proto.MsgType(p[proto.RelayDataHeaderLen+1])
}

// A relayed first handshake whose initiation is lost completes on the initiation's
// echo, with no retry: two initiations leave in all (the lost one and its copy),
// the response's copy reaches the initiator and counts as a duplicate, not as a bad
// handshake, and the session carries messages.
func TestHandshakeEchoCoversLostInitiation(t *testing.T) {
	w := startMoveWorld(t, 0)
	initiations, responses, dropped := 0, 0, false
	w.net.Drop = func(tx proto.Transmit) bool {
		switch relayedType(tx.Payload) {
		case proto.TypeInitiation, proto.TypeInitiationAESGCM:
			initiations++
			if !dropped {
				dropped = true
				return true
			}
		case proto.TypeResponse:
			responses++
		}
		return false
	}
	w.a.Connect(w.net.Now, "b")
	w.net.Drain()
	w.run(3 * time.Second)
	w.stream(5, 20*time.Millisecond)
	if w.received != w.sent || w.bad != 0 {
		t.Fatalf("b got %d of %d messages in order (%d bad); events a %v, b %v", w.received, w.sent, w.bad, w.na.Events, w.nb.Events)
	}
	if initiations != 2 || responses != 2 {
		t.Errorf("%d initiations and %d responses relayed, want 2 and 2 (each with its echo, no retry)", initiations, responses)
	}
	sa, sb := w.a.Stats(), w.b.Stats()
	if sa.BadHandshake+sb.BadHandshake != 0 {
		t.Errorf("bad handshakes a %d, b %d: an echo must count as a duplicate", sa.BadHandshake, sb.BadHandshake)
	}
	if sa.Duplicates+sb.Duplicates == 0 {
		t.Error("no duplicate counted: the response's echo went missing")
	}
	if sa.EchoDrops+sb.EchoDrops != 0 {
		t.Errorf("echo drops a %d, b %d", sa.EchoDrops, sb.EchoDrops)
	}
}

// The keepalive carrying a new NAT report goes twice, the same bytes 5 ms apart:
// the server holds the peer's introductions until it has the report. (The fake
// server answers no probe: the measurement times out, and reports what it could.)
func TestNATReportKeepaliveEcho(t *testing.T) {
	n := newTestNode()
	reg := (&proto.Registered{TxID: startNode(t, n), Observed: testLocal, Keepalive: 25}).Append(nil)
	now := proto.Instant(40 * time.Millisecond)
	if err := n.HandleDatagram(now, testLocal, testServer, reg); err != nil {
		t.Fatal(err)
	}
	type sent struct {
		at proto.Instant
		b  string
	}
	var keepalives []sent
	var reportAt proto.Instant
	for i := 0; i < 400 && (reportAt == 0 || now < reportAt.Add(time.Second)); i++ {
		for _, tx := range drainTx(n, now) {
			var m proto.Keepalive
			if m.Parse(tx.Payload) == nil {
				keepalives = append(keepalives, sent{now, string(tx.Payload)})
			}
		}
		if n.srv.classified && reportAt == 0 {
			reportAt = now
		}
		now = n.Deadline()
		n.HandleTimeout(now)
	}
	if reportAt == 0 {
		t.Fatal("the NAT measurement never ended")
	}
	copies := 0
	for i := 1; i < len(keepalives); i++ {
		if keepalives[i].b == keepalives[i-1].b {
			copies++
			if keepalives[i-1].at != reportAt || keepalives[i].at.Sub(keepalives[i-1].at) != handshakeEchoDelay {
				t.Errorf("keepalive at %v copied at %v; want the report (at %v) copied %v later",
					keepalives[i-1].at, keepalives[i].at, reportAt, handshakeEchoDelay)
			}
		}
	}
	if copies != 1 {
		t.Fatalf("%d keepalives copied, want the report's only (%d keepalives)", copies, len(keepalives))
	}
}

// The first relay-allocate of a channel goes twice, the same bytes 5 ms apart;
// the ready polls and repeats after it go once.
func TestFirstRelayAllocateEcho(t *testing.T) {
	w := startMoveWorld(t, 0)
	type sent struct {
		at proto.Instant
		b  string
	}
	allocs := map[netip.AddrPort][]sent{}
	w.net.Drop = func(tx proto.Transmit) bool {
		if len(tx.Payload) > 1 && proto.MsgType(tx.Payload[1]) == proto.TypeRelayAllocate {
			allocs[tx.From] = append(allocs[tx.From], sent{w.net.Now, string(tx.Payload)})
		}
		return false
	}
	w.a.Connect(w.net.Now, "b")
	w.net.Drain()
	w.run(3 * time.Second)
	if len(allocs) != 2 {
		t.Fatalf("relay-allocates from %d nodes, want 2", len(allocs))
	}
	for from, s := range allocs {
		if len(s) < 2 || s[1].b != s[0].b || s[1].at.Sub(s[0].at) != handshakeEchoDelay {
			t.Fatalf("%v: first relay-allocate not copied %v later: %d sent", from, handshakeEchoDelay, len(s))
		}
		for i := 2; i < len(s); i++ {
			if s[i].b == s[i-1].b {
				t.Errorf("%v: relay-allocate %d repeats the bytes of the one before", from, i)
			}
		}
	}
	if ka, _ := w.a.Peer("b"); ka != proto.PathRelay {
		t.Fatalf("path %v, want relay", ka)
	}
}
