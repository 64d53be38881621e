package rudp

import (
	"errors"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// SendQueueBytes bounds each lane's bytes not yet sent once: a lane holding that
// many refuses messages with ErrSendBufferFull, a lane below it takes a message
// whole whatever its size, another lane still takes messages, and room comes back as
// fragments leave (first transmissions, not retransmissions), expire or the
// connection closes.
func TestSendQueueBytes(t *testing.T) {
	cfg := Config{SendQueueBytes: 10_000, Lanes: []LaneConfig{{Weight: 1}, {Weight: 1}}}
	c := New(cfg, 0)
	for i, want := range []error{nil, nil, nil, ErrSendBufferFull} {
		if err := c.Send(0, 0, ReliableOrdered, make([]byte, 4000)); !errors.Is(err, want) {
			t.Fatalf("message %d on lane 0: %v, want %v", i, err, want)
		}
	}
	if got := c.LaneStats(0).Unsent; got != 12_000 {
		t.Fatalf("lane 0: %d bytes unsent, want 12000", got)
	}
	if err := c.Send(0, 1, ReliableOrdered, make([]byte, 4000)); err != nil {
		t.Fatalf("lane 1 is bounded on its own: %v", err)
	}
	// Packets leave (the initial window allows them at once): lane 0 has room again.
	buf := make([]byte, 1452)
	for c.LaneStats(0).Unsent >= 10_000 {
		if _, ok := c.PollTransmit(0, buf); !ok {
			t.Fatalf("nothing to send with %d bytes unsent", c.LaneStats(0).Unsent)
		}
	}
	if err := c.Send(0, 0, ReliableOrdered, make([]byte, 4000)); err != nil {
		t.Fatalf("after packets left: %v", err)
	}
	// What is unsent is what was queued less the first transmissions.
	if s := c.LaneStats(0); s.Unsent != 16_000-int(s.BytesSent) {
		t.Fatalf("lane 0: %d bytes unsent, %d of 16000 sent", s.Unsent, s.BytesSent)
	}

	big := New(cfg, 0)
	if err := big.Send(0, 0, ReliableOrdered, make([]byte, 9000)); err != nil {
		t.Fatal(err)
	}
	if err := big.Send(0, 0, ReliableOrdered, make([]byte, 50_000)); err != nil {
		t.Fatalf("a message larger than the bound on a lane below it: %v", err)
	}
	if err := big.Send(0, 0, Unreliable, make([]byte, 1)); !errors.Is(err, ErrSendBufferFull) {
		t.Fatalf("behind it: %v", err)
	}

	// An expired message gives its bytes back; so does Close.
	exp := New(cfg, 0)
	if err := exp.SendBy(0, proto.Instant(time.Millisecond), 0, Unreliable, make([]byte, 9000)); err != nil {
		t.Fatal(err)
	}
	if err := exp.SendBy(0, proto.Instant(time.Millisecond), 1, Unreliable, make([]byte, 9000)); err != nil {
		t.Fatal(err)
	}
	exp.PollTransmit(proto.Instant(2*time.Millisecond), buf) // drops both at their expiry
	if s := exp.LaneStats(0); s.Unsent != 0 || s.MessagesExpired != 1 {
		t.Fatalf("after expiry: %d bytes unsent, %d expired", s.Unsent, s.MessagesExpired)
	}
	if err := exp.Send(proto.Instant(2*time.Millisecond), 0, ReliableOrdered, make([]byte, 9000)); err != nil {
		t.Fatal(err)
	}
	if err := exp.Close(proto.Instant(2*time.Millisecond), 0, ""); err != nil {
		t.Fatal(err)
	}
	if got := exp.LaneStats(0).Unsent; got != 0 {
		t.Fatalf("after Close: %d bytes unsent", got)
	}

	// By default only SendBufferBytes bounds the queue.
	off := New(Config{}, 0)
	for i := range 20 {
		if err := off.Send(0, 0, ReliableOrdered, make([]byte, 100_000)); err != nil {
			t.Fatalf("unbounded queue, message %d: %v", i, err)
		}
	}
}
