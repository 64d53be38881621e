package node

import (
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
