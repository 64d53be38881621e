package driver

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natpass/natpass/rudp"
)

// listenRUDP is listen with the given rudp configuration.
func listenRUDP(t testing.TB, ctx context.Context, s *Server, id string, rc rudp.Config) *Node {
	t.Helper()
	n, err := Listen(ctx, Config{Server: s.Addr().String(), ID: id, Secret: testSecret, Listen: "127.0.0.1:0", RUDP: rc})
	if err != nil {
		t.Fatalf("Listen %s: %v", id, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// streamChunk fills buf with the bytes of a pseudo-random stream that the
// receiver can regenerate to check what arrived, without holding it all.
type streamGen struct{ rng *rand.Rand }

func newStreamGen() *streamGen { return &streamGen{rand.New(rand.NewPCG(12, 34))} }

func (g *streamGen) fill(buf []byte) {
	for i := 0; i < len(buf); i += 8 {
		v := g.rng.Uint64()
		for j := i; j < min(i+8, len(buf)); j++ {
			buf[j] = byte(v)
			v >>= 8
		}
	}
}

// queuePeak is the most bytes c's receive queue ever held (as qBytes counts them).
func queuePeak(c *Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.qPeak
}

// The acceptance (DESIGN §11): a slow reader slows the sender down; it
// never loses data and never loses the connection. The receiver does not Recv for
// 10 s while the sender offers 64 MiB (32 under the race detector): the sender
// blocks in Send once the window (the receiver's queue) and its own send buffer
// are full, nothing closes, the receiver's queue stays within the window, and
// once reading resumes every byte arrives intact and in order.
func TestSlowReaderSlowsSender(t *testing.T) {
	if testing.Short() {
		t.Skip("pauses the reader for 10 s")
	}
	const msgLen, pause = 64 << 10, 10 * time.Second
	total := 64 << 20
	if raceEnabled {
		total = 32 << 20 // still more than the window and the send buffer hold (20 MiB)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startServer(t)
	a, b := listen(t, ctx, s, "slow-a"), listen(t, ctx, s, "slow-b")
	ca, cb := connectPair(t, ctx, a, b)
	// Send waits while the lane holds rudp.SendQueueBlocking bytes not yet sent (the
	// driver's default SendQueueBytes), so what it accepted is what the window lets
	// out plus that queue and the one message that crossed it, not the whole 16 MiB
	// send buffer besides.
	window, queue := recvWindow(rudp.Config{}), rudp.SendQueueBlocking+msgLen

	var sent atomic.Int64 // bytes whose Send returned
	senderDone := make(chan error, 1)
	go func() {
		gen, buf := newStreamGen(), make([]byte, msgLen)
		for off := 0; off < total; off += msgLen {
			gen.fill(buf)
			if err := ca.Send(0, rudp.ReliableOrdered, buf); err != nil {
				senderDone <- err
				return
			}
			sent.Add(msgLen)
		}
		senderDone <- ca.Flush(ctx)
	}()

	time.Sleep(pause) // the reader reads nothing
	checkSenderHeld(t, ctx, ca, cb, &sent, senderDone, window+queue)
	t.Logf("after %v: Send accepted %d bytes, the receiver queued %d (window %d)", pause, sent.Load(), queuePeak(cb), window)
	readStream(t, ctx, cb, total)
	if err := <-senderDone; err != nil {
		t.Fatalf("sender: %v", err)
	}
	if peak := queuePeak(cb); peak > window {
		t.Errorf("the receive queue held %d bytes; the window is %d", peak, window)
	}
	for _, c := range []*Conn{ca, cb} {
		if err := c.closeErr(); err != nil {
			t.Errorf("%s's connection ended: %v", c.Peer(), err)
		}
	}
}

// checkSenderHeld checks, while cb reads nothing, that ca's sender is held: it has
// not finished, a send with a deadline returns on it, Send accepted at most held
// bytes, both ends are open and the receiver queued something.
func checkSenderHeld(t *testing.T, ctx context.Context, ca, cb *Conn, sent *atomic.Int64, senderDone <-chan error, held int) {
	t.Helper()
	select {
	case err := <-senderDone:
		t.Fatalf("the sender finished (%v) while the reader read nothing: %d bytes went out", err, sent.Load())
	default:
	}
	// Send is blocked, and a send with a deadline returns on it (and sent nothing).
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	err := ca.SendContext(short, 0, rudp.ReliableOrdered, []byte("probe"))
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendContext with the window closed: %v, want context.DeadlineExceeded", err)
	}
	// What Send accepted is what the receiver holds (at most the window) plus
	// what the sender buffers (at most its send buffer).
	if got := sent.Load(); got > int64(held) {
		t.Errorf("Send accepted %d bytes while the reader slept; the window and send buffer hold %d", got, held)
	}
	for _, c := range []*Conn{ca, cb} {
		select {
		case <-c.Done():
			t.Fatalf("%s's connection closed while the reader slept: %v", c.Peer(), c.closeErr())
		default:
		}
	}
	if queuePeak(cb) == 0 {
		t.Error("the receiver queued nothing while it did not read")
	}
}

// readStream reads total bytes of the streamGen stream from c and checks them.
func readStream(t *testing.T, ctx context.Context, c *Conn, total int) {
	t.Helper()
	gen, want := newStreamGen(), make([]byte, 64<<10)
	for off := 0; off < total; {
		m, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv after %d bytes: %v", off, err)
		}
		if len(m.Data) > len(want) {
			want = make([]byte, len(m.Data))
		}
		gen.fill(want[:len(m.Data)])
		if !bytes.Equal(m.Data, want[:len(m.Data)]) {
			t.Fatalf("the bytes at offset %d differ from those sent", off)
		}
		off += len(m.Data)
	}
}

// A reader that takes messages one at a time, pausing now and then, empties its
// queue again and again: each time, the credit it took goes back to the sender,
// so the sender (held to a window of 128 KiB, which 5,000 messages fill many
// times over) is never left waiting on credit parked in the driver, and when the
// reader has read everything no credit is left parked. The receiver's batches are
// made larger than the window, so that only the empty-queue rule returns credit:
// without it the sender stalls once the first window is read.
func TestDrainedReaderNeverStallsSender(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startServer(t)
	rc := rudp.Config{MaxMessageSize: 64 << 10, RecvWindow: 128 << 10}
	a, b := listenRUDP(t, ctx, s, "drain-a", rc), listenRUDP(t, ctx, s, "drain-b", rc)
	b.creditBatch = 1 << 30 // before any message: Recv reads it
	ca, cb := connectPair(t, ctx, a, b)
	const count, size = 5000, 200
	senderDone := make(chan error, 1)
	go func() {
		msg := make([]byte, size)
		for i := range count {
			msg[0], msg[1] = byte(i), byte(i>>8)
			if err := ca.SendContext(ctx, 0, rudp.ReliableOrdered, msg); err != nil {
				senderDone <- err
				return
			}
		}
		senderDone <- ca.Flush(ctx)
	}()
	for i := range count {
		m, err := cb.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv %d: %v (a sender left waiting for credit runs into the test's deadline)", i, err)
		}
		if len(m.Data) != size || int(m.Data[0])|int(m.Data[1])<<8 != i&0xffff {
			t.Fatalf("message %d: %d bytes, number %d", i, len(m.Data), int(m.Data[0])|int(m.Data[1])<<8)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if err := <-senderDone; err != nil {
		t.Fatalf("sender: %v", err)
	}
	if peak := queuePeak(cb); peak > rc.RecvWindow {
		t.Errorf("the receive queue held %d bytes; the window is %d", peak, rc.RecvWindow)
	}
	// The last Recv emptied the queue: the loop takes the credit it parked.
	for {
		cb.mu.Lock()
		parked := cb.creditBytes
		cb.mu.Unlock()
		if parked == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d bytes of credit stay parked after the reader read everything", parked)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
