package driver

import (
	"context"
	"testing"
	"time"
)

// A Conn's path events are a bounded queue: 16 unread ones are kept, the oldest go
// first and are counted, and Path has the latest.
func TestPathEventsAreBoundedAndCounted(t *testing.T) {
	n := &Node{}
	c := newConn(n, "peer", false)
	const sent = pathQueue + 5
	for i := range sent {
		c.setPath(PathEvent{Kind: PathRelay, RTT: time.Duration(i)})
	}
	if got := n.pathDrops.Load(); got != sent-pathQueue {
		t.Fatalf("%d path events counted as dropped, want %d", got, sent-pathQueue)
	}
	for i := sent - pathQueue; i < sent; i++ {
		if e := <-c.PathEvents(); e.RTT != time.Duration(i) {
			t.Fatalf("event %d has RTT %v: the queue kept the wrong ones", i, e.RTT)
		}
	}
	if c.Path().RTT != sent-1 {
		t.Fatalf("Path is %+v, want the latest", c.Path())
	}
}

// Peers that connect while nobody accepts past the accept queue's bound are refused,
// counted, and told (their Connect fails); the queued ones are still accepted.
func TestAcceptQueueIsBoundedAndCounted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := startServer(t)
	a, err := Listen(ctx, Config{Server: s.Addr().String(), ID: "acceptor", Secret: testSecret,
		Listen: "127.0.0.1:0", AcceptQueue: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var errs []error
	for i, id := range []string{"caller-1", "caller-2"} {
		b := listen(t, ctx, s, id)
		conn, err := b.Connect(ctx, "acceptor")
		if err == nil && i == 1 {
			// The refusal arrives as the peer's close once the session is up.
			select {
			case <-conn.Done():
				err = conn.closeErr()
			case <-time.After(5 * time.Second):
			}
		}
		errs = append(errs, err)
	}
	if errs[0] != nil || errs[1] == nil {
		t.Fatalf("connect results %v: want the first queued and the second refused", errs)
	}
	if got := a.Stats().IncomingRefused; got != 1 {
		t.Fatalf("IncomingRefused %d, want 1", got)
	}
	if c, err := a.Accept(ctx); err != nil || c.Peer() != "caller-1" {
		t.Fatalf("Accept: %v, %v; want caller-1", c, err)
	}
}
