package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// A session that comes up long after the introduction (here every relayed datagram
// is lost for the first 45 s, so the handshakes go unanswered) starts its
// connection's idle timeout then, not at the introduction, when the node made the
// connection: the messages queued meanwhile arrive, and the peer stays connected.
func TestSessionLongAfterIntroductionIsNotIdle(t *testing.T) {
	w := startMoveWorld(t, 0)
	blockedUntil := w.net.Now.Add(45 * time.Second)
	w.net.Drop = func(tx proto.Transmit) bool {
		h, _, err := proto.ParseHeader(tx.Payload)
		return err == nil && h.Type == proto.TypeRelaySend && w.net.Now < blockedUntil
	}
	w.a.Connect(w.net.Now, "b")
	w.net.Drain()
	w.run(100 * time.Millisecond) // the introduction
	for i := range 10 {
		if err := w.a.Send(w.net.Now, "b", 0, rudp.ReliableOrdered, fmt.Append(nil, "message ", i)); err != nil {
			t.Fatal(err)
		}
		w.sent++
	}
	w.run(50 * time.Second)
	w.stream(20, 20*time.Millisecond)
	w.run(2 * time.Second)
	if w.received != w.sent || w.bad != 0 {
		t.Errorf("b got %d of %d in order, %d out of order or repeated; events a %v, b %v", w.received, w.sent, w.bad, w.na.Events, w.nb.Events)
	}
	for _, evs := range [][]any{w.na.Events, w.nb.Events} {
		for _, e := range evs {
			if c, ok := e.(EventPeerClosed); ok {
				t.Errorf("the connection closed: %+v", c)
			}
		}
	}
}
