package driver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natpass/natpass/rudp"
)

// smallWindows makes a link hold little: 64 KiB of window and of send buffer,
// about 870 of the tests' messages each. (A smaller RecvWindow would hold no less:
// every receiver accepts 64 KiB before its first window update, PROTOCOL.md §7.6
// [FLOW-1].)
var smallWindows = rudp.Config{MaxMessageSize: 1024, SendBufferBytes: 64 << 10, RecvWindow: 64 << 10}

// roomOf has the nodes join room "lobby" one after another and waits until every
// member has a link with every other.
func roomOf(t *testing.T, ctx context.Context, nodes ...*Node) []*Room {
	t.Helper()
	rooms := make([]*Room, len(nodes))
	for i, n := range nodes {
		r, err := n.JoinRoom(ctx, "lobby")
		if err != nil {
			t.Fatalf("%s: JoinRoom: %v", n.ID(), err)
		}
		rooms[i] = r
	}
	for _, r := range rooms {
		waitLinked(t, ctx, r, len(nodes)-1)
	}
	return rooms
}

func listenCfg(t *testing.T, ctx context.Context, s *Server, id string, cfg Config) *Node {
	t.Helper()
	cfg.Server, cfg.ID, cfg.Secret, cfg.Listen = s.Addr().String(), id, testSecret, "127.0.0.1:0"
	n, err := Listen(ctx, cfg)
	if err != nil {
		t.Fatalf("Listen %s: %v", id, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func roomMsg(from string, i int) string {
	return fmt.Sprintf("%s %06d %s", from, i, "................................")
}

// recvFrom reads want messages of from on r, in order, and fails on anything else.
func recvFrom(ctx context.Context, r *Room, from string, first, want int) error {
	for i := first; i < first+want; i++ {
		m, err := r.Recv(ctx)
		if err != nil {
			return fmt.Errorf("after %d of %s's messages: %w", i, from, err)
		}
		if m.From != from || string(m.Data) != roomMsg(from, i) {
			return fmt.Errorf("message %d: %q from %s, want %q", i, m.Data, m.From, roomMsg(from, i))
		}
	}
	return nil
}

// Issue 14, flow control per link: in a room of four, dan stops reading. ann
// broadcasts 10,000 messages (about 11 link windows): ben and cat receive every one
// while dan has read none, Broadcast never waits (dan's backlog sits in its
// outbox, which Backlog shows), and once dan reads again it gets every message
// once and in order (the marker that follows comes next).
func TestLoopbackRoomSlowMemberSlowsOnlyItself(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := startServer(t)
	var nodes []*Node
	for _, id := range []string{"ann", "ben", "cat", "dan"} {
		nodes = append(nodes, listenCfg(t, ctx, s, id, Config{RUDP: smallWindows}))
	}
	rooms := roomOf(t, ctx, nodes...)
	ann, dan := rooms[0], rooms[3]
	const total = 10_000
	got := make(chan error, 2)
	for _, r := range rooms[1:3] {
		go func() { got <- recvFrom(ctx, r, "ann", 0, total) }()
	}
	for i := range total {
		// ctx bounds a broadcast that waits on dan (it must not).
		if err := ann.BroadcastContext(ctx, 0, rudp.ReliableOrdered, []byte(roomMsg("ann", i))); err != nil {
			t.Fatalf("Broadcast %d: %v", i, err)
		}
	}
	for range 2 {
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	}
	var backlog MemberBacklog
	for _, b := range ann.Backlog() {
		if b.Member == "dan" {
			backlog = b
		}
	}
	if backlog.Messages < total/2 || backlog.Dropped != 0 {
		t.Errorf("dan's backlog %+v after ben and cat got all %d: want most of them waiting, none dropped", backlog, total)
	}
	if err := ann.Broadcast(0, rudp.ReliableOrdered, []byte("end")); err != nil {
		t.Fatal(err)
	}
	if err := recvFrom(ctx, dan, "ann", 0, total); err != nil {
		t.Fatalf("dan: %v", err)
	}
	if m, err := dan.Recv(ctx); err != nil || string(m.Data) != "end" {
		t.Fatalf("dan after the %d: %q %v, want the end marker", total, m.Data, err)
	}
	if err := ann.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range ann.Backlog() {
		if b.Messages != 0 || b.Dropped != 0 {
			t.Errorf("after Flush: %+v", b)
		}
	}
}

// When a stopped member's outbox is full, Broadcast waits for it alone;
// BroadcastContext's deadline bounds that, and its error names the member. The
// others got the message; the stopped member, once it reads, gets every message
// before that one, in order, and RoomMemberSlow was reported.
func TestLoopbackRoomBroadcastDeadlineNamesFullMember(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startServer(t)
	nodes := []*Node{
		listenCfg(t, ctx, s, "ann", Config{RUDP: smallWindows, RoomOutboxBytes: 8 << 10}),
		listenCfg(t, ctx, s, "ben", Config{RUDP: smallWindows}),
		listenCfg(t, ctx, s, "cat", Config{RUDP: smallWindows}),
	}
	rooms := roomOf(t, ctx, nodes...)
	ann, ben, cat := rooms[0], rooms[1], rooms[2]
	var benGot atomic.Int64
	benCtx, stopBen := context.WithCancel(ctx)
	defer stopBen()
	go func() {
		for n := 0; recvFrom(benCtx, ben, "ann", n, 1) == nil; n++ {
			benGot.Store(int64(n + 1))
		}
	}()
	var sent int
	var berr *BroadcastError
	for sent = 0; sent < 100_000; sent++ {
		// Long enough that a busy machine does not stall ben's link as long
		// (kernel socket buffers overflow on loopback, and rudp retransmits).
		bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := ann.BroadcastContext(bctx, 0, rudp.ReliableOrdered, []byte(roomMsg("ann", sent)))
		cancel()
		if errors.As(err, &berr) {
			break
		}
		if err != nil {
			t.Fatalf("Broadcast %d: %v", sent, err)
		}
	}
	if berr == nil || !slices.Equal(berr.Members, []string{"cat"}) || !errors.Is(berr, context.DeadlineExceeded) {
		t.Fatalf("after %d broadcasts: %v, want a deadline naming cat alone", sent, berr)
	}
	// ben gets message number sent too, the one cat did not.
	for benGot.Load() < int64(sent+1) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if n := benGot.Load(); n != int64(sent+1) {
		t.Fatalf("ben got %d messages, want %d", n, sent+1)
	}
	if err := recvFrom(ctx, cat, "ann", 0, sent); err != nil {
		t.Fatalf("cat: %v", err)
	}
	if err := ann.Broadcast(0, rudp.ReliableOrdered, []byte("end")); err != nil {
		t.Fatal(err)
	}
	if m, err := cat.Recv(ctx); err != nil || string(m.Data) != "end" {
		t.Fatalf("cat after %d: %q %v, want the end marker", sent, m.Data, err)
	}
	slow := false
	for len(ann.Events()) > 0 {
		e := <-ann.Events()
		slow = slow || e.Kind == RoomMemberSlow && e.Member == "cat"
	}
	if !slow {
		t.Error("no RoomMemberSlow for cat")
	}
}

// Bursts: 100,000 small broadcasts from one member (20,000 under the race
// detector) reach each of two others, every one, in order, counted end to end.
func TestLoopbackRoomBroadcastBurst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	total := 100_000
	if raceEnabled {
		total = 20_000
	}
	s := startServer(t)
	rooms := roomOf(t, ctx, listen(t, ctx, s, "ann"), listen(t, ctx, s, "ben"), listen(t, ctx, s, "cat"))
	got := make(chan error, 2)
	for _, r := range rooms[1:] {
		go func() { got <- recvFrom(ctx, r, "ann", 0, total) }()
	}
	for i := range total {
		if err := rooms[0].Broadcast(0, rudp.ReliableOrdered, []byte(roomMsg("ann", i))); err != nil {
			t.Fatalf("Broadcast %d: %v", i, err)
		}
	}
	for range 2 {
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	}
}
