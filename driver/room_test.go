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
