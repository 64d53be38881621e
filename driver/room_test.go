package driver

import (
	"context"
	"errors"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

func TestJoinRoomChecksName(t *testing.T) {
	n := &Node{}
	for _, name := range []string{"", string(make([]byte, proto.MaxRoomNameLen+1))} {
		if _, err := n.JoinRoom(context.Background(), name); !errors.Is(err, ErrBadConfig) {
			t.Errorf("room name of %d bytes: err %v, want ErrBadConfig", len(name), err)
		}
	}
}

func TestRoomErrorMatches(t *testing.T) {
	full := error(&RoomError{Room: "lobby", Code: proto.CodeRoomFull, Text: "room full"})
	if !errors.Is(full, ErrRoomFull) || !errors.Is(full, ErrRoomRefused) {
		t.Errorf("%v: not ErrRoomFull and ErrRoomRefused", full)
	}
	other := error(&RoomError{Room: "lobby", Code: proto.CodeServerFull})
	if errors.Is(other, ErrRoomFull) || !errors.Is(other, ErrRoomRefused) {
		t.Errorf("%v: ErrRoomFull, or not ErrRoomRefused", other)
	}
}

// Three nodes on loopback join one room one after the other: each sees the
// others, the last links to everyone, broadcasts reach every member with the
// sender named, and a member's Leave is seen by the others.
func TestLoopbackRoomThreeMembers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startServer(t)
	ids := []string{"ann", "ben", "cat"}
	rooms := make([]*Room, len(ids))
	for i, id := range ids {
		r, err := listen(t, ctx, s, id).JoinRoom(ctx, "lobby")
		if err != nil {
			t.Fatalf("%s: JoinRoom: %v", id, err)
		}
		rooms[i] = r
		if got := r.Members(); !slices.Equal(got, ids[:i+1]) || r.Owner() != "ann" {
			t.Fatalf("%s joined: members %v owner %q, want %v and ann", id, got, r.Owner(), ids[:i+1])
		}
	}
	for i, r := range rooms {
		waitLinked(t, ctx, r, len(ids)-1)
		if err := r.Broadcast(0, rudp.ReliableOrdered, []byte("hello from "+ids[i])); err != nil {
			t.Fatalf("%s: Broadcast: %v", ids[i], err)
		}
	}
	for i, r := range rooms {
		var got []string
		for range len(ids) - 1 {
			m, err := r.Recv(ctx)
			if err != nil {
				t.Fatalf("%s: Recv: %v", ids[i], err)
			}
			if string(m.Data) != "hello from "+m.From {
				t.Errorf("%s: %q from %s", ids[i], m.Data, m.From)
			}
			got = append(got, m.From)
		}
		sort.Strings(got)
		if want := slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == ids[i] }); !slices.Equal(got, want) {
			t.Errorf("%s heard from %v, want %v", ids[i], got, want)
		}
	}
	if err := rooms[0].Leave(); err != nil {
		t.Fatal(err)
	}
	if _, err := rooms[0].Recv(ctx); !errors.Is(err, ErrRoomLeft) {
		t.Errorf("Recv after Leave: %v", err)
	}
	for ctx.Err() == nil && !slices.Equal(rooms[1].Members(), ids[1:]) {
		time.Sleep(10 * time.Millisecond)
	}
	if rooms[1].Owner() != "ben" {
		t.Errorf("after ann left: members %v, owner %q, want ben", rooms[1].Members(), rooms[1].Owner())
	}
}

// waitLinked waits until r has n links up.
func waitLinked(t *testing.T, ctx context.Context, r *Room, n int) {
	t.Helper()
	for len(r.Linked()) < n {
		select {
		case <-ctx.Done():
			t.Fatalf("room %q: links up with %v, want %d", r.Name(), r.Linked(), n)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// A member's link that ends while both stay in the room is linked again (node's
// re-link at a backoff), and traffic flows on the new link: here ann closes her
// link with ben; both sides link again, and a message each way arrives.
func TestLoopbackRoomRelinksClosedLink(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startServer(t)
	ids := []string{"ann", "ben", "cat"}
	rooms := make([]*Room, len(ids))
	for i, id := range ids {
		r, err := listen(t, ctx, s, id).JoinRoom(ctx, "lobby")
		if err != nil {
			t.Fatalf("%s: JoinRoom: %v", id, err)
		}
		rooms[i] = r
	}
	for _, r := range rooms {
		waitLinked(t, ctx, r, len(ids)-1)
	}
	old, _ := rooms[0].Conn("ben")
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		r    *Room
		peer string
	}{{rooms[0], "ben"}, {rooms[1], "ann"}} {
		for {
			if c, ok := side.r.Conn(side.peer); ok && c != old && c.isUp() && c.closeErr() == nil {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: no new link with %s", side.r.n.ID(), side.peer)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if err := rooms[0].Send("ben", 0, rudp.ReliableOrdered, []byte("again")); err != nil {
		t.Fatalf("Send on the new link: %v", err)
	}
	if err := rooms[1].Send("ann", 0, rudp.ReliableOrdered, []byte("back")); err != nil {
		t.Fatalf("Send on the new link: %v", err)
	}
	for i, want := range map[int]string{1: "again", 0: "back"} {
		m, err := rooms[i].Recv(ctx)
		if err != nil || string(m.Data) != want {
			t.Fatalf("%s: Recv %q %v, want %q", ids[i], m.Data, err, want)
		}
	}
	relinks := 0
	for _, r := range rooms[:2] {
		if err := r.n.do(func(proto.Instant) { relinks += r.n.nm.Stats().Relinks }); err != nil {
			t.Fatal(err)
		}
	}
	if relinks == 0 {
		t.Error("linked again, but by no re-link")
	}
}
