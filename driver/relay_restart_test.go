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
	f := newRelayRestart(t, "relay-restart")
	ab, ba := f.streams[0], f.streams[1]
	addrs := f.s.Addrs()
	mark := f.marks()
	f.s.Close()
	// The loss is reported as the path going to none, for this reason
	// (node.HandleTimeout, timerServerLost).
	f.waitPaths(mark, PathNone, "server not answering")
	sentAtLoss := [2]int64{ab.sent.Load(), ba.sent.Load()}
	receivedAtLoss := [2]int64{ab.received.Load(), ba.received.Load()}
	// Messages sent while the nodes know the server is gone wait in the send
	// buffers; make sure there are some before the server returns.
	ab.waitSent(t, f.ctx, sentAtLoss[0]+40, "during the outage")
	ba.waitSent(t, f.ctx, sentAtLoss[1]+8, "during the outage")

	mark = f.marks()
	f.recover(restartServer(t, f.cfg, addrs), mark)
	t.Logf("a->b %d messages (%d sent, %d received at the loss), b->a %d (%d, %d)",
		ab.sent.Load(), sentAtLoss[0], receivedAtLoss[0], ba.sent.Load(), sentAtLoss[1], receivedAtLoss[1])
	f.lostThenRelay("server not answering")
}

// A server that is back before the nodes miss it (well within three keepalives)
// has forgotten their sessions and channels all the same: the next keepalive's
// "no session" answer makes each node register again, report the relay lost (its
// frames were dropped meanwhile) and allocate its channel again, and the session
// recovers as above.
func TestRelayedSessionSurvivesQuickServerRestart(t *testing.T) {
	f := newRelayRestart(t, "quick-restart")
	addrs := f.s.Addrs()
	mark := f.marks()
	f.s.Close()
	f.recover(restartServer(t, f.cfg, addrs), mark)
	f.lostThenRelay("server lost the session")
}

// DESIGN §12 on real sockets: two servers that share the secret, both nodes
// registered on the first and relayed through it; the first is killed mid-stream.
// The nodes move to the second, allocate their channels there with the tokens
// they hold, and the same connection delivers every message once and in order,
// without a new handshake.
func TestRelayedSessionMovesToNextServer(t *testing.T) {
	f := newRelayFailover(t, "failover")
	for i, n := range f.nodes {
		if n.Server() != f.s.Addr() {
			t.Fatalf("%s: registered with %v, want the first server %v", f.nodes[i].ID(), n.Server(), f.s.Addr())
		}
	}
	mark := f.marks()
	killed := time.Now()
	f.s.Close()
	f.waitPaths(mark, PathRelay, "server changed")
	t.Logf("relay ready on the next server %v after the kill", time.Since(killed).Round(time.Millisecond))
	f.recover(f.s2, mark)
	for i, n := range f.nodes {
		if n.Server() != f.s2.Addr() {
			t.Errorf("%s: registered with %v, want the second server %v", f.nodes[i].ID(), n.Server(), f.s2.Addr())
		}
	}
	f.lostThenRelay("server not answering")
}

// lostThenRelay checks the application's view, Conn.PathEvents, on both sides:
// the relay's loss for reason, then the relay again.
func (f *relayRestart) lostThenRelay(reason string) {
	f.t.Helper()
	for i, c := range f.conns {
		var seen []PathEvent
		for len(c.PathEvents()) > 0 {
			seen = append(seen, <-c.PathEvents())
		}
		lost := slices.IndexFunc(seen, func(e PathEvent) bool { return e.Kind == PathNone && e.Reason == reason })
		if lost < 0 || !slices.ContainsFunc(seen[lost:], func(e PathEvent) bool { return e.Kind == PathRelay }) {
			f.t.Errorf("%s: Conn.PathEvents %+v; want %q, then the relay", f.nodes[i].ID(), seen, reason)
		}
	}
}

// relayRestart is the fixture of the server-restart tests: a server with fast
// keepalives, two nodes that may only talk through its relay, connected, and a
// numbered stream each way, a->b every 5 ms and b->a every 25 ms.
type relayRestart struct {
	t          *testing.T
	ctx        context.Context
	cancel     context.CancelFunc
	cfg        ServerConfig
	s          *Server
	s2         *Server // with newRelayFailover: the second server the nodes list
	ready      string  // the reason of the relay's path event after recovery
	nodes      [2]*Node
	logs       [2]*pathLog
	conns      [2]*Conn   // a's, b's
	streams    [2]*stream // a->b, b->a
	stop       chan struct{}
	handshakes int // both nodes' at the start
}

func newRelayRestart(t *testing.T, name string) *relayRestart { return newRelayFixture(t, name, false) }

// newRelayFailover is newRelayRestart with a second server, independent but
// sharing the secret, which both nodes list after the first.
func newRelayFailover(t *testing.T, name string) *relayRestart { return newRelayFixture(t, name, true) }

func newRelayFixture(t *testing.T, name string, two bool) *relayRestart {
	// A test takes about 5 s (with the race detector too); 20 s is a generous bound.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	f := &relayRestart{t: t, ctx: ctx, cancel: cancel, cfg: fastServerConfig(), stop: make(chan struct{}), ready: "relay ready"}
	var err error
	if f.s, err = ListenServer(f.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.s.Close() })
	servers := []string{f.s.Addr().String()}
	if two {
		cfg2 := f.cfg
		cfg2.AltAddr = "127.0.0.3:0"
		if f.s2, err = ListenServer(cfg2); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.s2.Close() })
		servers = append(servers, f.s2.Addr().String())
		f.ready = "server changed"
	}
	for i, id := range []string{name + "-a", name + "-b"} {
		f.logs[i] = &pathLog{changed: make(chan struct{}, 1)}
		n, err := Listen(ctx, Config{
			Servers: servers, ID: id, Secret: testSecret, Listen: "127.0.0.1:0",
			Relay: node.RelayForce, OnPath: f.logs[i].add,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		f.nodes[i] = n
	}
	f.conns[0], f.conns[1] = connectPair(t, ctx, f.nodes[0], f.nodes[1])
	f.waitPaths([2]int{}, PathRelay, "relay ready")
	for i, c := range f.conns {
		if k := c.Path().Kind; k != PathRelay {
			t.Fatalf("%s: path %v after connecting with the relay forced, want relay", f.nodes[i].ID(), k)
		}
	}
	f.handshakes = f.nodes[0].Stats().Node.Handshakes + f.nodes[1].Stats().Node.Handshakes
	f.streams[0] = startStream(ctx, f.conns[0], f.conns[1], 5*time.Millisecond, f.stop)
	f.streams[1] = startStream(ctx, f.conns[1], f.conns[0], 25*time.Millisecond, f.stop)
	// Cleanups run last first: the goroutines end before the nodes close.
	t.Cleanup(func() {
		cancel()
		f.streams[0].wait()
		f.streams[1].wait()
	})
	f.streams[0].waitReceived(t, ctx, 40, "before the outage")
	f.streams[1].waitReceived(t, ctx, 8, "before the outage")
	return f
}

// marks are both nodes' path-event counts, to wait for events after them.
func (f *relayRestart) marks() [2]int { return [2]int{f.logs[0].len(), f.logs[1].len()} }

// waitPaths waits for a path event with kind and reason at each node, after its
// mark.
func (f *relayRestart) waitPaths(mark [2]int, kind PathKind, reason string) {
	f.t.Helper()
	for i, l := range f.logs {
		l.wait(f.t, f.ctx, f.nodes[i].ID(), mark[i], kind, reason)
	}
}

// recover checks that the session recovers through s2, the restarted server: the
// relay is ready again on both nodes (a path event after mark, taken before the
// restart), messages flow again, and once the streams
// stop every message sent has arrived once and in order, on the same connection,
// under the same keys.
func (f *relayRestart) recover(s2 *Server, mark [2]int) {
	t := f.t
	t.Helper()
	f.waitPaths(mark, PathRelay, f.ready)
	st := s2.Stats()
	if st.Sessions != 2 || st.Relay.Allocations < 2 {
		t.Errorf("restarted server: %d sessions, %d relay allocations; want both nodes registered and their channels allocated",
			st.Sessions, st.Relay.Allocations)
	}
	// Traffic after recovery goes through the new channels: more than was sent by
	// the time the relay was ready again arrives, then the streams stop.
	for i, least := range [2]int64{40, 8} {
		sr := f.streams[i]
		sr.waitReceived(t, f.ctx, sr.sent.Load()+least, "after the restart")
	}
	close(f.stop)
	for _, sr := range f.streams {
		sr.waitSenderDone()
		if err := sr.sendErr; err != nil {
			t.Fatalf("%s: %v", sr.name, err)
		}
		if err := sr.from.Flush(f.ctx); err != nil {
			t.Fatalf("%s: Flush: %v", sr.name, err)
		}
		sr.waitReceived(t, f.ctx, sr.sent.Load(), "everything")
	}
	// Nothing more may arrive (a duplicate would): give a straggler a moment, then
	// stop the receivers and check what they saw.
	time.Sleep(50 * time.Millisecond)
	f.cancel()
	for _, sr := range f.streams {
		sr.wait()
		if !errors.Is(sr.recvErr, context.Canceled) {
			t.Errorf("%s: receiver: %v", sr.name, sr.recvErr)
		}
		if got, sent := sr.received.Load(), sr.sent.Load(); got != sent {
			t.Errorf("%s: received %d of %d", sr.name, got, sent)
		}
	}
	if s2.Stats().Relay.Forwarded == 0 {
		t.Error("the restarted server forwarded nothing: the session did not recover through its relay")
	}
	for i, c := range f.conns {
		if k := c.Path().Kind; k != PathRelay {
			t.Errorf("%s: path %v after the restart, want relay", f.nodes[i].ID(), k)
		}
		select {
		case <-c.Done():
			t.Errorf("%s: the connection ended: %v", f.nodes[i].ID(), c.closeErr())
		default:
		}
		if f.logs[i].saw(PathDirect) {
			t.Errorf("%s: a direct path with the relay forced", f.nodes[i].ID())
		}
	}
	if h := f.nodes[0].Stats().Node.Handshakes + f.nodes[1].Stats().Node.Handshakes; h != f.handshakes {
		t.Errorf("%d new handshakes: the session should have survived", h-f.handshakes)
	}
	// The same Conn carried it all: neither side was handed a new connection.
	quick, cancelQuick := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelQuick()
	for _, n := range f.nodes {
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
