package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/relayframe"
	"github.com/natpass/natpass/rendezvous"
	"github.com/natpass/natpass/rudp"
)

// testSecret is the loopback tests' server secret.
var testSecret = []byte("driver loopback test secret 0123")

// startServer runs a server on 127.0.0.1 with its alternate address on 127.0.0.2
// (all of 127/8 is loopback on Linux), closed when the test ends.
func startServer(t testing.TB) *Server {
	t.Helper()
	s, err := ListenServer(ServerConfig{Listen: "127.0.0.1:0", AltAddr: "127.0.0.2:0", Secret: testSecret})
	if err != nil {
		t.Fatalf("ListenServer: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func listen(t testing.TB, ctx context.Context, s *Server, id string) *Node {
	t.Helper()
	n, err := Listen(ctx, Config{Server: s.Addr().String(), ID: id, Secret: testSecret, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("Listen %s: %v", id, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// connectPair connects a to b and returns both ends.
func connectPair(t testing.TB, ctx context.Context, a, b *Node) (ca, cb *Conn) {
	t.Helper()
	type res struct {
		c   *Conn
		err error
	}
	acc := make(chan res, 1)
	go func() {
		c, err := b.Accept(ctx)
		acc <- res{c, err}
	}()
	ca, err := a.Connect(ctx, b.ID())
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	r := <-acc
	if r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	if r.c.Peer() != a.ID() {
		t.Fatalf("Accept gave peer %q, want %q", r.c.Peer(), a.ID())
	}
	return ca, r.c
}

func TestLoopbackConnectSendRecv(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startServer(t)
	a := listen(t, ctx, s, "alice")
	b := listen(t, ctx, s, "bob")
	ca, cb := connectPair(t, ctx, a, b)

	const n = 200
	for i := range n {
		if err := ca.Send(0, rudp.ReliableOrdered, fmt.Appendf(nil, "a->b %d", i)); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if err := cb.Send(0, rudp.ReliableOrdered, fmt.Appendf(nil, "b->a %d", i)); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	for i := range n {
		m, err := cb.Recv(ctx)
		if err != nil {
			t.Fatalf("b Recv %d: %v", i, err)
		}
		if want := fmt.Sprintf("a->b %d", i); string(m.Data) != want {
			t.Fatalf("b got %q, want %q", m.Data, want)
		}
		m, err = ca.Recv(ctx)
		if err != nil {
			t.Fatalf("a Recv %d: %v", i, err)
		}
		if want := fmt.Sprintf("b->a %d", i); string(m.Data) != want {
			t.Fatalf("a got %q, want %q", m.Data, want)
		}
	}
	waitDirect(t, ctx, ca)
	if err := ca.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	st, err := ca.Stats()
	if err != nil || st.SendBuffered != 0 || st.PacketsAcked == 0 {
		t.Errorf("after Flush: stats %+v, err %v; want nothing buffered and acks counted", st, err)
	}
	// A normal close reads as io.EOF on the other side.
	if err := ca.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := cb.Recv(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("Recv after peer close: %v, want io.EOF", err)
	}
	if _, err := ca.Recv(ctx); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Recv after local close: %v, want ErrConnClosed", err)
	}
	if err := ca.Send(0, rudp.ReliableOrdered, []byte("late")); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Send after close: %v, want ErrConnClosed", err)
	}
}

func TestLoopbackBulkWithFlush(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startServer(t)
	a := listen(t, ctx, s, "bulk-a")
	b := listen(t, ctx, s, "bulk-b")
	ca, cb := connectPair(t, ctx, a, b)
	bulk(t, ctx, ca, cb, 4<<20)
	// The transfer's equal-size packets went out in GSO runs where the kernel can
	// (and arrived intact, above). Read the socket after Close: the loop owns it.
	a.Close()
	if gsoSupported && !a.loop.main.noGSO && a.loop.stats.gsoSends.Load() == 0 {
		t.Error("a 4 MiB transfer made no GSO send")
	}
	t.Logf("GSO sends: %d for %d datagrams (GSO off: %v)", a.loop.stats.gsoSends.Load(), a.loop.stats.datagramsOut.Load(), a.loop.main.noGSO)
}

// A bulk transfer through the relay as fast as loopback carries it (the server's
// relay budget raised past it) loses nothing at the server: the loop drains the
// server after every datagram of a burst, so its small transmit queue never
// overflows (it did when a burst was drained once: thousands of relayed frames
// dropped as DropQueueFull).
func TestRelayedBulkDropsNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unlimited := relayframe.ByteRate{BytesPerSecond: 1 << 30, Burst: 64 << 20}
	cfg := ServerConfig{Listen: "127.0.0.1:0", AltAddr: "127.0.0.2:0", Secret: testSecret,
		Tune: rendezvous.Config{RelaySessionRate: unlimited, RelayServerRate: unlimited}}
	s, err := ListenServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var nodes [2]*Node
	for i, id := range []string{"relay-bulk-a", "relay-bulk-b"} {
		n, err := Listen(ctx, Config{Server: s.Addr().String(), ID: id, Secret: testSecret, Listen: "127.0.0.1:0", Relay: node.RelayForce})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes[i] = n
	}
	ca, cb := connectPair(t, ctx, nodes[0], nodes[1])
	for ca.Path().Kind != PathRelay {
		select {
		case <-ctx.Done():
			t.Fatalf("path %+v, want the relay", ca.Path())
		case <-time.After(10 * time.Millisecond):
		}
	}
	bulk(t, ctx, ca, cb, 16<<20)
	st := s.Stats().Relay
	if st.DropQueueFull != 0 || st.Forwarded < (16<<20)/1500 {
		t.Fatalf("relay: %d frames forwarded, %d dropped with the transmit queue full; want ≥ %d and none", st.Forwarded, st.DropQueueFull, (16<<20)/1500)
	}
}

// bulk sends size bytes a → b in 16 KiB reliable-ordered messages, more than rudp's
// initial flow-control window, and checks every byte arrived in order.
func bulk(t *testing.T, ctx context.Context, ca, cb *Conn, size int) {
	t.Helper()
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i * 7 >> 3)
	}
	errc := make(chan error, 1)
	go func() {
		for off := 0; off < len(want); off += 16 << 10 {
			if err := ca.SendContext(ctx, 0, rudp.ReliableOrdered, want[off:off+16<<10]); err != nil {
				errc <- err
				return
			}
		}
		errc <- ca.Flush(ctx)
	}()
	var got []byte
	for len(got) < len(want) {
		m, err := cb.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv after %d bytes: %v", len(got), err)
		}
		got = append(got, m.Data...)
	}
	if err := <-errc; err != nil {
		t.Fatalf("sender: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("received bytes differ from sent")
	}
}

// waitDirect waits for c's path to be direct. The session may come up on the
// route of the peer's first authenticated packet a moment before this side's
// agent confirms the path, so Connect returning does not imply it yet.
func waitDirect(t testing.TB, ctx context.Context, c *Conn) {
	t.Helper()
	for c.Path().Kind != PathDirect {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: path %+v, want direct", c.Peer(), c.Path())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// A connection that ended can be made again between the same two nodes.
func TestReconnectAfterClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startServer(t)
	a, b := listen(t, ctx, s, "re-a"), listen(t, ctx, s, "re-b")
	ca, cb := connectPair(t, ctx, a, b)
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Conn{ca, cb} {
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatal("the close never finished")
		}
	}
	ca2, cb2 := connectPair(t, ctx, a, b)
	if ca2 == ca || cb2 == cb {
		t.Fatal("Connect/Accept returned the closed connections")
	}
	if err := ca2.Send(0, rudp.ReliableOrdered, []byte("again")); err != nil {
		t.Fatal(err)
	}
	m, err := cb2.Recv(ctx)
	if err != nil || string(m.Data) != "again" {
		t.Fatalf("Recv on the new connection: %q, %v", m.Data, err)
	}
}
