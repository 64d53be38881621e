package driver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/rendezvous"
	"github.com/natpass/natpass/rudp"
)

// Issue 8, the relayed half on real sockets (the simulator's is
// lab.TestRelayedSessionSurvivesServerRestart): two nodes that may only talk
// through the relay stream numbered messages both ways while the server is killed
// and started again on the same addresses with the same secret. The nodes say the
// relay was lost, register again, allocate their channels again, and the same
// connection delivers every message, before, during and after the outage, exactly
// once and in order, without a new handshake.
func TestRelayedSessionSurvivesServerRestart(t *testing.T) {
	// It takes about 5 s (with the race detector too); 20 s is a generous bound.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := fastServerConfig()
	s, err := ListenServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var nodes [2]*Node
	var logs [2]*pathLog
	for i, id := range []string{"relay-restart-a", "relay-restart-b"} {
		logs[i] = &pathLog{changed: make(chan struct{}, 1)}
		n, err := Listen(ctx, Config{
			Server: s.Addr().String(), ID: id, Secret: testSecret, Listen: "127.0.0.1:0",
			Relay: node.RelayForce, OnPath: logs[i].add,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes[i] = n
	}
	a, b := nodes[0], nodes[1]
	ca, cb := connectPair(t, ctx, a, b)
	for i, c := range []*Conn{ca, cb} {
		logs[i].wait(t, ctx, nodes[i].ID(), 0, PathRelay, "relay ready")
		if k := c.Path().Kind; k != PathRelay {
			t.Fatalf("%s: path %v after connecting with the relay forced, want relay", nodes[i].ID(), k)
		}
	}
	handshakes := a.Stats().Node.Handshakes + b.Stats().Node.Handshakes

	// a sends every 5 ms, b every 25 ms; each side checks what it receives.
	stop := make(chan struct{})
	ab := startStream(ctx, ca, cb, 5*time.Millisecond, stop)
	ba := startStream(ctx, cb, ca, 25*time.Millisecond, stop)
	defer func() { // on a failure: let the goroutines end before the nodes close
		cancel()
		ab.wait()
		ba.wait()
	}()
	ab.waitReceived(t, ctx, 40, "a->b before the outage")
	ba.waitReceived(t, ctx, 8, "b->a before the outage")

	addrs := s.Addrs()
	mark := [2]int{logs[0].len(), logs[1].len()}
	s.Close()
	// The loss is reported as the path going to none, for this reason
	// (node.HandleTimeout, timerServerLost).
	for i := range nodes {
		logs[i].wait(t, ctx, nodes[i].ID(), mark[i], PathNone, "server not answering")
	}
	sentAtLoss := [2]int64{ab.sent.Load(), ba.sent.Load()}
	receivedAtLoss := [2]int64{ab.received.Load(), ba.received.Load()}
	// Messages sent while the nodes know the server is gone wait in the send
	// buffers; make sure there are some before the server returns.
	ab.waitSent(t, ctx, sentAtLoss[0]+40, "a->b during the outage")
	ba.waitSent(t, ctx, sentAtLoss[1]+8, "b->a during the outage")

	s2 := restartServer(t, cfg, addrs)
	mark = [2]int{logs[0].len(), logs[1].len()}
	for i := range nodes {
		logs[i].wait(t, ctx, nodes[i].ID(), mark[i], PathRelay, "relay ready")
	}
	st := s2.Stats()
	if st.Sessions != 2 || st.Relay.Allocations < 2 {
		t.Errorf("restarted server: %d sessions, %d relay allocations; want both nodes registered and their channels allocated",
			st.Sessions, st.Relay.Allocations)
	}
	sentAtRecovery := [2]int64{ab.sent.Load(), ba.sent.Load()}
	// Traffic after recovery goes through the new channels: more than was sent by
	// the time the relay was ready again arrives, then the streams stop.
	ab.waitReceived(t, ctx, sentAtRecovery[0]+40, "a->b after the restart")
	ba.waitReceived(t, ctx, sentAtRecovery[1]+8, "b->a after the restart")
	close(stop)
	for _, sr := range []*stream{ab, ba} {
		sr.waitSenderDone()
		if err := sr.sendErr; err != nil {
			t.Fatalf("%s: %v", sr.name, err)
		}
		if err := sr.from.Flush(ctx); err != nil {
			t.Fatalf("%s: Flush: %v", sr.name, err)
		}
		sr.waitReceived(t, ctx, sr.sent.Load(), "everything")
	}
	// Nothing more may arrive (a duplicate would): give a straggler a moment, then
	// stop the receivers and check what they saw.
	time.Sleep(50 * time.Millisecond)
	cancel()
	for _, sr := range []*stream{ab, ba} {
		sr.wait()
		if !errors.Is(sr.recvErr, context.Canceled) {
			t.Errorf("%s: receiver: %v", sr.name, sr.recvErr)
		}
		if got, sent := sr.received.Load(), sr.sent.Load(); got != sent {
			t.Errorf("%s: received %d of %d", sr.name, got, sent)
		}
	}
	if f := s2.Stats().Relay.Forwarded; f == 0 {
		t.Error("the restarted server forwarded nothing: the session did not recover through its relay")
	}
	t.Logf("a->b %d messages (%d sent, %d received at the loss), b->a %d (%d, %d)",
		ab.sent.Load(), sentAtLoss[0], receivedAtLoss[0], ba.sent.Load(), sentAtLoss[1], receivedAtLoss[1])

	for i, c := range []*Conn{ca, cb} {
		if k := c.Path().Kind; k != PathRelay {
			t.Errorf("%s: path %v after the restart, want relay", nodes[i].ID(), k)
		}
		select {
		case <-c.Done():
			t.Errorf("%s: the connection ended: %v", nodes[i].ID(), c.closeErr())
		default:
		}
		if logs[i].saw(PathDirect) {
			t.Errorf("%s: a direct path with the relay forced", nodes[i].ID())
		}
		// The application's view, Conn.PathEvents, tells the same story: the loss,
		// then the relay again.
		var seen []PathEvent
		for len(c.PathEvents()) > 0 {
			seen = append(seen, <-c.PathEvents())
		}
		lost := slices.IndexFunc(seen, func(e PathEvent) bool { return e.Kind == PathNone && e.Reason == "server not answering" })
		if lost < 0 || !slices.ContainsFunc(seen[lost:], func(e PathEvent) bool { return e.Kind == PathRelay }) {
			t.Errorf("%s: Conn.PathEvents %+v; want the server's loss, then the relay", nodes[i].ID(), seen)
		}
	}
	if h := a.Stats().Node.Handshakes + b.Stats().Node.Handshakes; h != handshakes {
		t.Errorf("%d new handshakes: the session should have survived", h-handshakes)
	}
	// The same Conn carried it all: neither side was handed a new connection.
	quick, cancelQuick := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelQuick()
	for _, n := range nodes {
		if c, err := n.Accept(quick); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Accept after the restart: %v, %v; want no new connection", n.ID(), c, err)
		}
	}
}

// fastServerConfig is a loopback server with one-second keepalives: its nodes
// count it lost after three missed ones (or two seconds after relayed data
// stalls), not after the default's minutes.
func fastServerConfig() ServerConfig {
	fast := rendezvous.Config{KeepaliveInterval: time.Second, SessionTimeout: 3 * time.Second}
	return ServerConfig{Listen: "127.0.0.1:0", AltAddr: "127.0.0.2:0", Secret: testSecret, Tune: fast}
}

// restartServer starts a server with cfg again on addrs, the Addrs of the one
// that was closed, so that its nodes find it where it was; it is closed when the
// test ends.
func restartServer(t *testing.T, cfg ServerConfig, addrs []netip.AddrPort) *Server {
	t.Helper()
	cfg.Listen, cfg.AltPort, cfg.AltAddr = addrs[0].String(), addrs[1].String(), addrs[2].String()
	s, err := ListenServer(cfg)
	if err != nil {
		t.Fatalf("restarting the server on %v: %v", addrs, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// pathLog records a node's path events (Config.OnPath) for a test to wait on.
type pathLog struct {
	mu      sync.Mutex
	events  []PathEvent
	changed chan struct{} // capacity 1: an event was added
}

// add runs on the node's goroutine.
func (l *pathLog) add(_ string, e PathEvent) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *pathLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// find returns the first event from index from on with kind and reason.
func (l *pathLog) find(from int, kind PathKind, reason string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events[from:] {
		if e.Kind == kind && e.Reason == reason {
			return true
		}
	}
	return false
}

// saw reports whether any event moved the path to kind.
func (l *pathLog) saw(kind PathKind) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Kind == kind {
			return true
		}
	}
	return false
}

// wait waits for an event with kind and reason at index from or later.
func (l *pathLog) wait(t *testing.T, ctx context.Context, who string, from int, kind PathKind, reason string) {
	t.Helper()
	for !l.find(from, kind, reason) {
		select {
		case <-l.changed:
		case <-ctx.Done():
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("%s: no path event %v %q after event %d; events: %+v", who, kind, reason, from, l.events)
		}
	}
}

// stream sends numbered reliable-ordered messages from one Conn at a steady rate
// and checks, on the other, that they arrive in order, each once.
type stream struct {
	name       string
	from, to   *Conn
	sent       atomic.Int64 // messages Send accepted
	received   atomic.Int64 // messages received in order
	sendErr    error        // set before senderDone closes
	recvErr    error        // set before recvDone closes
	senderDone chan struct{}
	recvDone   chan struct{}
}

func startStream(ctx context.Context, from, to *Conn, every time.Duration, stop <-chan struct{}) *stream {
	s := &stream{
		name: from.n.ID() + "->" + to.n.ID(), from: from, to: to,
		senderDone: make(chan struct{}), recvDone: make(chan struct{}),
	}
	go func() {
		defer close(s.senderDone)
		tick := time.NewTicker(every)
		defer tick.Stop()
		var msg [8]byte
		for seq := uint64(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			binary.BigEndian.PutUint64(msg[:], seq)
			// The send buffer holds the outage's messages; SendContext only waits
			// if it somehow filled.
			if err := from.SendContext(ctx, 0, rudp.ReliableOrdered, msg[:]); err != nil {
				if ctx.Err() == nil {
					s.sendErr = fmt.Errorf("send %d: %w", seq, err)
				}
				return
			}
			s.sent.Add(1)
		}
	}()
	go func() {
		defer close(s.recvDone)
		for want := uint64(0); ; want++ {
			m, err := to.Recv(ctx)
			if err != nil {
				s.recvErr = err
				return
			}
			if len(m.Data) != 8 || binary.BigEndian.Uint64(m.Data) != want {
				s.recvErr = fmt.Errorf("message %d: got %x (lost, repeated or reordered)", want, m.Data)
				return
			}
			s.received.Add(1)
		}
	}()
	return s
}

func (s *stream) waitSenderDone() { <-s.senderDone }

// wait waits for both goroutines (after stop or the context's end).
func (s *stream) wait() {
	<-s.senderDone
	<-s.recvDone
}

// waitSent waits until n messages were sent.
func (s *stream) waitSent(t *testing.T, ctx context.Context, n int64, what string) {
	t.Helper()
	s.waitCount(t, ctx, &s.sent, s.senderDone, &s.sendErr, n, what+", sent")
}

// waitReceived waits until n messages arrived in order.
func (s *stream) waitReceived(t *testing.T, ctx context.Context, n int64, what string) {
	t.Helper()
	s.waitCount(t, ctx, &s.received, s.recvDone, &s.recvErr, n, what+", received")
}

// waitCount waits until count reaches n; done closing first (after setting *err)
// or ctx ending fails the test.
func (s *stream) waitCount(t *testing.T, ctx context.Context, count *atomic.Int64, done <-chan struct{}, err *error, n int64, what string) {
	t.Helper()
	for count.Load() < n {
		select {
		case <-done:
			t.Fatalf("%s, %s: stopped at %d of %d: %v", s.name, what, count.Load(), n, *err)
		case <-ctx.Done():
			t.Fatalf("%s, %s: %d of %d (%d sent, %d received)", s.name, what, count.Load(), n, s.sent.Load(), s.received.Load())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
