package rudp

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// A message sent into a dead path backs the probe timeout off; PathChanged makes the
// probe due at once, and the message is sent again without waiting out the backoff.
func TestPathChangedProbesAtOnce(t *testing.T) {
	c := New(Config{}, 0)
	if err := c.Send(0, 0, ReliableOrdered, []byte("input")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	if _, ok := c.PollTransmit(0, buf); !ok {
		t.Fatal("nothing sent")
	}
	// The path is dead: let three probe timeouts fire, each answered by nothing.
	now := proto.Instant(0)
	for i := 0; i < 3; i++ {
		now = c.Deadline()
		c.HandleTimeout(now)
		for {
			if _, ok := c.PollTransmit(now, buf); !ok {
				break
			}
		}
	}
	if c.ptoCount < 3 {
		t.Fatalf("ptoCount %d after three timeouts", c.ptoCount)
	}
	backedOff := c.Deadline().Sub(now)
	now = now.Add(10 * time.Millisecond)
	c.PathChanged(now)
	if c.ptoCount != 0 || c.Deadline() != now {
		t.Fatalf("after PathChanged: ptoCount %d, deadline in %v (was %v away)", c.ptoCount, c.Deadline().Sub(now), backedOff)
	}
	c.HandleTimeout(now)
	if _, ok := c.PollTransmit(now, buf); !ok {
		t.Error("no probe on the new path")
	}
}
