//go:build linux

package driver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/natpass/natpass/internal/uring"
	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/rudp"
)

// heldServer starts a server whose sockets the holding reader reads (500 µs),
// skipping the test where io_uring is unavailable.
func heldServer(t *testing.T) *Server {
	t.Helper()
	s, err := ListenServer(ServerConfig{Listen: "127.0.0.1:0", AltAddr: "127.0.0.2:0", Secret: testSecret, ReadHold: 500 * time.Microsecond})
	if err != nil {
		t.Fatalf("ListenServer: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if h := s.Stats().Hold; h.Readers == 0 {
		// The readers start with the server; the first stats may come before.
		for i := 0; i < 100 && h.Readers+h.Fallbacks < uint64(len(s.Addrs())); i++ {
			time.Sleep(10 * time.Millisecond)
			h = s.Stats().Hold
		}
		if h.Readers == 0 {
			t.Skipf("io_uring unavailable here (%d sockets fell back to recvmmsg)", h.Fallbacks)
		}
	}
	return s
}

// relayPair starts two nodes on s forced onto its relay and connects them.
func relayPair(t testing.TB, ctx context.Context, s *Server, name string) (a, b *Node, ca, cb *Conn) {
	t.Helper()
	var nodes [2]*Node
	for i := range nodes {
		n, err := Listen(ctx, Config{Server: s.Addr().String(), ID: fmt.Sprintf("%s-%d", name, i), Secret: testSecret,
			Listen: "127.0.0.1:0", Relay: node.RelayForce})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	ca, cb = connectPair(t, ctx, nodes[0], nodes[1])
	for ca.Path().Kind != PathRelay {
		select {
		case <-ctx.Done():
			t.Fatalf("path %+v, want the relay", ca.Path())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nodes[0], nodes[1], ca, cb
}

// sendBurst sends n reliable messages a → b as fast as the connection takes
// them and counts every one at b.
func sendBurst(t *testing.T, ctx context.Context, ca, cb *Conn, n int) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		msg := make([]byte, 200)
		for i := range n {
			msg[0], msg[1] = byte(i), byte(i>>8)
			if err := ca.SendContext(ctx, 0, rudp.ReliableOrdered, msg); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := range n {
		m, err := cb.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv after %d of %d messages: %v", i, n, err)
		}
		if len(m.Data) != 200 || m.Data[0] != byte(i) || m.Data[1] != byte(i>>8) {
			t.Fatalf("message %d: got %d bytes starting %x", i, len(m.Data), m.Data[:min(2, len(m.Data))])
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("sender: %v", err)
	}
}

// A server with the hold on relays a burst of thousands of reliable messages
// between two real nodes, every one counted at the receiver, through its
// rings; once the nodes are gone it makes no wake-up however long it is left
// alone, and Close ends its readers' waits (which have no timeout then).
func TestHeldServerRelaysAndSleeps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := heldServer(t)
	a, b, ca, cb := relayPair(t, ctx, s, "held")
	sendBurst(t, ctx, ca, cb, 5000)
	st := s.Stats()
	// rudp packs several messages per datagram: every relayed frame was read
	// by a ring.
	if st.Relay.Forwarded < 500 || st.Hold.Datagrams < st.Relay.Forwarded || st.Hold.Wakeups == 0 {
		t.Fatalf("relayed %d frames, the rings read %d datagrams in %d wake-ups; want ≥ 500, ≥ the frames, > 0",
			st.Relay.Forwarded, st.Hold.Datagrams, st.Hold.Wakeups)
	}
	if st.Hold.Overflow != 0 || st.Hold.EnterErrors != 0 || st.TooLong != 0 {
		t.Fatalf("hold counters %+v, too long %d: want no overflow, no errors", st.Hold, st.TooLong)
	}
	a.Close()
	b.Close()
	// Quiet: wait until a stretch of 100 ms passes without a wake-up (the
	// nodes' goodbyes, the hold's last timeout), then count over 500 ms more.
	settled := s.Stats().Hold.Wakeups
	for {
		time.Sleep(100 * time.Millisecond)
		w := s.Stats().Hold.Wakeups
		if w == settled {
			break
		}
		settled = w
	}
	time.Sleep(500 * time.Millisecond)
	if w := s.Stats().Hold.Wakeups; w != settled {
		t.Fatalf("idle server woke %d times in 500 ms, want 0", w-settled)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close did not end the held readers' waits")
	}
}

// A lone message at a time (request, reply) through a held server is relayed
// in both directions: the reader waits per arrival when traffic is sparse.
func TestHeldServerSparseTraffic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := heldServer(t)
	_, _, ca, cb := relayPair(t, ctx, s, "sparse")
	for i := range 50 {
		if err := ca.Send(0, rudp.ReliableOrdered, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		m, err := cb.Recv(ctx)
		if err != nil || len(m.Data) != 1 || m.Data[0] != byte(i) {
			t.Fatalf("ping %d: %x, %v", i, m.Data, err)
		}
		if err := cb.Send(0, rudp.ReliableOrdered, m.Data); err != nil {
			t.Fatal(err)
		}
		if m, err = ca.Recv(ctx); err != nil || len(m.Data) != 1 || m.Data[0] != byte(i) {
			t.Fatalf("pong %d: %x, %v", i, m.Data, err)
		}
	}
	if h := s.Stats().Hold; h.Datagrams < 100 {
		t.Fatalf("the rings read %d datagrams, want ≥ 100", h.Datagrams)
	}
}

// Where io_uring cannot be used the server reads as without a hold, and says
// so: every socket counted as a fallback, none read through a ring.
func TestHeldServerFallsBack(t *testing.T) {
	uringDisabled.Store(true)
	defer uringDisabled.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := ListenServer(ServerConfig{Listen: "127.0.0.1:0", AltAddr: "127.0.0.2:0", Secret: testSecret, ReadHold: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, _, ca, cb := relayPair(t, ctx, s, "fallback")
	sendBurst(t, ctx, ca, cb, 1000)
	h := s.Stats().Hold
	if h.Fallbacks != uint64(len(s.Addrs())) || h.Readers != 0 || h.Datagrams != 0 {
		t.Fatalf("hold counters %+v with io_uring disabled: want %d fallbacks, no readers, no datagrams", h, len(s.Addrs()))
	}
}

// The held reader's path allocates nothing per datagram: a datagram sent to a
// held socket, the ring's wait, taking its completion, the machine's handling
// and the buffer's recycling.
func TestHeldReaderAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are measured without the race detector")
	}
	sock, srv := unrunServer(t)
	l := newLoop(srv, time.Now(), 1500)
	l.main, l.sockets[sock.addr] = sock, sock
	if !sock.prepareHold() {
		t.Skip("no eventfd here")
	}
	defer sock.closeHold()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := newUringReader(sock, 500*time.Microsecond, &l.stats)
	if uring.IsUnsupported(err) {
		t.Skipf("io_uring unavailable here: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if !l.detach(sock, r) {
		t.Fatal("detach: the loop stopped")
	}
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	payload := garbage(rand.New(rand.NewPCG(5, 6)))[:1]
	payload[0] = 0xE1 // not natpass: counted and dropped by the machine
	allocs := testing.AllocsPerRun(1000, func() {
		if !r.armed {
			r.arm()
		}
		if _, err := client.WriteToUDPAddrPort(payload, sock.addr); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ring.Enter(uring.Wait{MinComplete: 1}, false); err != nil {
			t.Fatal(err)
		}
		r.reap()
		l.deliver(r.ready)
		r.recycle()
	})
	if allocs != 0 {
		t.Errorf("a datagram through the held reader allocates %.1f times", allocs)
	}
	if got := l.stats.holdDatagrams.Load(); got < 1000 {
		t.Errorf("the ring read %d datagrams, want ≥ 1000", got)
	}
}
