package node

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// roomNode returns a node registered with testServer, and the session the fake
// server gave it.
func roomNode(t *testing.T) (*Node, proto.Session) {
	t.Helper()
	n := newTestNode()
	n.Start(0)
	admit(t, n, 1, drainTx(n, 0), testServer)
	events(n)
	return n, n.srv.session
}

// roomJoins returns the room-joins among txs.
func roomJoins(txs []proto.Transmit) []proto.RoomJoin {
	var out []proto.RoomJoin
	for _, tx := range txs {
		var m proto.RoomJoin
		if m.Parse(tx.Payload) == nil {
			out = append(out, m)
		}
	}
	return out
}

// joinTxID joins room at now and returns the txid of the room-join it sent.
func joinTxID(t *testing.T, n *Node, now proto.Instant, room string) uint64 {
	t.Helper()
	if err := n.JoinRoom(now, room); err != nil {
		t.Fatal(err)
	}
	js := roomJoins(drainTx(n, now))
	if len(js) != 1 || string(js[0].Room) != room || js[0].Session != n.srv.session {
		t.Fatalf("JoinRoom sent %+v, want one room-join of %q with the session", js, room)
	}
	return js[0].TxID
}

// ackKeepalives has the server answer every keepalive among txs at now.
func ackKeepalives(t *testing.T, n *Node, now proto.Instant, txs []proto.Transmit) {
	t.Helper()
	for _, tx := range txs {
		var k proto.Keepalive
		if k.Parse(tx.Payload) != nil {
			continue
		}
		ack := (&proto.KeepaliveAck{Seq: k.Seq, Observed: n.Observed()}).Append(nil)
		if err := n.HandleDatagram(now, testLocal, tx.To, ack); err != nil {
			t.Fatal(err)
		}
	}
}

// roomState is the server's room-state datagram.
func roomState(txid uint64, room string, epoch uint32, members ...string) []byte {
	m := proto.RoomState{TxID: txid, Room: []byte(room), Epoch: epoch}
	for _, id := range members {
		m.Members = append(m.Members, []byte(id))
	}
	return m.Append(nil)
}

func roomEvents(evs []Event) []string {
	var out []string
	for _, e := range evs {
		switch e := e.(type) {
		case EventRoomState, EventRoomMemberJoined, EventRoomMemberLeft, EventRoomOwnerChanged, EventRoomError:
			out = append(out, fmt.Sprintf("%T%+v", e, e))
		}
	}
	return out
}

// PROTOCOL §13: "it joins with room-join and repeats it until answered; then it
// connects to every member listed that it has no link to ... It repeats room-join
// every 10 s as a refresh".
func TestRoomJoinRetriedAnsweredRefreshedAndLinks(t *testing.T) {
	n, _ := roomNode(t)
	txid := joinTxID(t, n, 2, "lobby")
	// Unanswered: repeated with the same txid at a growing interval (the server
	// answers its keepalives: it is there, so the checks find nothing).
	var at []proto.Instant
	now := proto.Instant(2)
	for len(at) < 3 {
		now = n.Deadline()
		n.HandleTimeout(now)
		txs := drainTx(n, now)
		ackKeepalives(t, n, now, txs)
		for _, j := range roomJoins(txs) {
			if j.TxID != txid {
				t.Fatalf("repeat with txid %x, want %x", j.TxID, txid)
			}
			at = append(at, now)
		}
	}
	if at[1].Sub(at[0]) <= at[0].Sub(2) {
		t.Errorf("repeats at %v: the interval did not grow", at)
	}
	if err := n.HandleDatagram(now, testLocal, testServer, roomState(txid, "lobby", 3, "bob", "carol", "alice")); err != nil {
		t.Fatal(err)
	}
	got := roomEvents(events(n))
	want := []string{`node.EventRoomState{Room:lobby Epoch:3 Members:[bob carol alice] Owner:bob}`}
	if !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	// A late joiner links to everyone already there.
	for _, id := range []string{"bob", "carol"} {
		if !n.srv.pendingIntro(id) {
			t.Errorf("no introduction of %s asked for", id)
		}
	}
	if n.srv.pendingIntro("alice") || !slices.Equal(n.Rooms(), []string{"lobby"}) {
		t.Errorf("asked to meet itself, or rooms %v", n.Rooms())
	}
	// Answered: the next room-join is the refresh, 10 s later.
	start := now
	for i := 0; i < 1000; i++ {
		now = n.Deadline()
		n.HandleTimeout(now)
		txs := drainTx(n, now)
		ackKeepalives(t, n, now, txs)
		if js := roomJoins(txs); len(js) > 0 {
			if d := now.Sub(start); d != roomRefresh || js[0].TxID != txid {
				t.Fatalf("refresh after %v with txid %x, want %v and %x", d, js[0].TxID, roomRefresh, txid)
			}
			return
		}
	}
	t.Fatal("no refresh")
}

// A change comes unsolicited with the session tag as its txid [ERR-2]; the node
// keeps the highest epoch and derives joined, left and owner-changed events.
func TestRoomChangesTaggedNewestEpochAndDiff(t *testing.T) {
	n, session := roomNode(t)
	txid := joinTxID(t, n, 2, "lobby")
	tag := proto.SessionTag(&session)
	steps := []struct {
		txid    uint64
		from    netip.AddrPort
		epoch   uint32
		members []string
		err     error
		want    []string
	}{
		{txid, testServer, 2, []string{"bob", "alice"}, nil, []string{
			`node.EventRoomState{Room:lobby Epoch:2 Members:[bob alice] Owner:bob}`}},
		{tag, testServer, 3, []string{"bob", "alice", "carol"}, nil, []string{
			`node.EventRoomState{Room:lobby Epoch:3 Members:[bob alice carol] Owner:bob}`,
			`node.EventRoomMemberJoined{Room:lobby Member:carol}`}},
		// Another txid, another address, an older epoch, a repeat: nothing.
		{tag + 1, testServer, 9, []string{"alice"}, ErrUnexpected, nil},
		{tag, netip.MustParseAddrPort("198.51.100.9:3478"), 9, []string{"alice"}, ErrNotFromServer, nil},
		{tag, testServer, 2, []string{"alice"}, nil, nil},
		{txid, testServer, 3, []string{"bob", "alice", "carol"}, nil, nil},
		{tag, testServer, 5, []string{"alice", "carol"}, nil, []string{
			`node.EventRoomState{Room:lobby Epoch:5 Members:[alice carol] Owner:alice}`,
			`node.EventRoomMemberLeft{Room:lobby Member:bob}`,
			`node.EventRoomOwnerChanged{Room:lobby Owner:alice Previous:bob}`}},
	}
	for i, s := range steps {
		err := n.HandleDatagram(3, testLocal, s.from, roomState(s.txid, "lobby", s.epoch, s.members...))
		if !errors.Is(err, s.err) && !(err == nil && s.err == nil) {
			t.Errorf("step %d: err %v, want %v", i, err, s.err)
		}
		if got := roomEvents(events(n)); !slices.Equal(got, s.want) {
			t.Errorf("step %d: events %q, want %q", i, got, s.want)
		}
	}
	if st := n.Stats(); st.RoomStale != 1 {
		t.Errorf("RoomStale %d, want 1", st.RoomStale)
	}
	// A state for a room we are not in is no one's.
	if err := n.HandleDatagram(3, testLocal, testServer, roomState(tag, "other", 1, "alice")); !errors.Is(err, ErrUnexpected) {
		t.Errorf("state of a room we are not in: err %v", err)
	}
}

// Error 12 (room full) answering our join: EventRoomError, and the node is not in
// the room; an error with a txid that is not ours is not the room's.
func TestRoomFullIsReported(t *testing.T) {
	n, _ := roomNode(t)
	txid := joinTxID(t, n, 2, "lobby")
	stray := (&proto.Error{TxID: txid + 1, Code: proto.CodeRoomFull, Text: []byte("full")}).Append(nil)
	if err := n.HandleDatagram(3, testLocal, testServer, stray); err != nil {
		t.Fatal(err)
	}
	if got := roomEvents(events(n)); len(got) != 0 || n.Stats().StrayErrors != 1 {
		t.Fatalf("a stray error made %q (strays %d)", got, n.Stats().StrayErrors)
	}
	full := (&proto.Error{TxID: txid, Code: proto.CodeRoomFull, Text: []byte("room full")}).Append(nil)
	if err := n.HandleDatagram(3, testLocal, testServer, full); err != nil {
		t.Fatal(err)
	}
	want := []string{`node.EventRoomError{Room:lobby Code:12 Text:room full}`}
	if got := roomEvents(events(n)); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	if len(n.srv.rooms) != 0 || n.srv.timers.at[srvRoom] != proto.Never && len(roomJoins(drainTx(n, n.Deadline()))) > 0 {
		t.Error("the refused room is still joined")
	}
}

func TestRoomBounds(t *testing.T) {
	n, _ := roomNode(t)
	for _, name := range []string{"", string(make([]byte, proto.MaxRoomNameLen+1))} {
		if err := n.JoinRoom(2, name); !errors.Is(err, ErrRoomName) {
			t.Errorf("name of %d bytes: err %v", len(name), err)
		}
	}
	for i := range maxRooms {
		if err := n.JoinRoom(2, fmt.Sprint("room", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.JoinRoom(2, "room0"); err != nil {
		t.Errorf("joining a room again: %v", err)
	}
	if err := n.JoinRoom(2, "one too many"); !errors.Is(err, ErrTooManyRooms) || n.Stats().RoomRefused != 1 {
		t.Errorf("join past %d rooms: err %v, refused %d", maxRooms, err, n.Stats().RoomRefused)
	}
	if got := len(roomJoins(drainTx(n, 2))); got != maxRooms {
		t.Errorf("%d room-joins sent, want %d", got, maxRooms)
	}
}

// After the server forgot the session (code 5) the node registers again and joins
// its rooms again; the answer is the new baseline whatever its epoch (a restarted
// server counts from the start), and the node links to members it has no peer for.
func TestRoomRejoinedAfterRegisteringAgain(t *testing.T) {
	n, _ := roomNode(t)
	txid := joinTxID(t, n, 2, "lobby")
	if err := n.HandleDatagram(3, testLocal, testServer, roomState(txid, "lobby", 7, "alice")); err != nil {
		t.Fatal(err)
	}
	events(n)
	gone := (&proto.Error{Code: proto.CodeNoSession}).Append(nil)
	if err := n.HandleDatagram(4, testLocal, testServer, gone); err != nil {
		t.Fatal(err)
	}
	txs := drainTx(n, 4)
	if len(roomJoins(txs)) != 0 {
		t.Fatal("room-join sent without a session")
	}
	txs = admit(t, n, 5, txs, testServer)
	js := roomJoins(txs)
	if len(js) != 1 || js[0].Session != n.srv.session {
		t.Fatalf("after registering again: room-joins %+v, want one with the new session", js)
	}
	if err := n.HandleDatagram(6, testLocal, testServer, roomState(js[0].TxID, "lobby", 2, "bob", "alice")); err != nil {
		t.Fatal(err)
	}
	want := []string{`node.EventRoomState{Room:lobby Epoch:2 Members:[bob alice] Owner:bob}`,
		`node.EventRoomMemberJoined{Room:lobby Member:bob}`,
		`node.EventRoomOwnerChanged{Room:lobby Owner:bob Previous:alice}`}
	if got := roomEvents(events(n)); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if !n.srv.pendingIntro("bob") {
		t.Error("no introduction of bob asked for after the rejoin")
	}
}

// LeaveRoom forgets the room at once and repeats room-leave until answered.
func TestRoomLeaveRepeatedUntilAnswered(t *testing.T) {
	n, session := roomNode(t)
	txid := joinTxID(t, n, 2, "lobby")
	if err := n.HandleDatagram(3, testLocal, testServer, roomState(txid, "lobby", 1, "alice")); err != nil {
		t.Fatal(err)
	}
	events(n)
	n.LeaveRoom(4, "lobby")
	leaves := func(now proto.Instant) (ids []uint64) {
		for _, tx := range drainTx(n, now) {
			var m proto.RoomLeave
			if m.Parse(tx.Payload) == nil && string(m.Room) == "lobby" && m.Session == session {
				ids = append(ids, m.TxID)
			}
		}
		return ids
	}
	first := leaves(4)
	if len(first) != 1 || len(n.Rooms()) != 0 {
		t.Fatalf("LeaveRoom sent %d room-leaves, rooms %v", len(first), n.Rooms())
	}
	now := n.Deadline()
	n.HandleTimeout(now)
	if again := leaves(now); len(again) != 1 || again[0] != first[0] {
		t.Fatalf("unanswered leave repeated as %v, want %v", again, first)
	}
	if err := n.HandleDatagram(now, testLocal, testServer, roomState(first[0], "lobby", 2)); err != nil {
		t.Fatal(err)
	}
	if len(roomEvents(events(n))) != 0 || len(n.srv.leaves) != 0 {
		t.Fatal("the leave's answer made events, or the leave goes on")
	}
	// A notice for the room left is no longer ours.
	if err := n.HandleDatagram(now, testLocal, testServer, roomState(proto.SessionTag(&session), "lobby", 3, "bob")); !errors.Is(err, ErrUnexpected) {
		t.Errorf("notice after leaving: err %v", err)
	}
}

// Issue 14: a room-join sent to a server that has died goes unanswered; that is
// taken as a sign the server is gone (a check, unanswered too), not as the room's
// refusal: the node moves to the next server of its list and joins the room
// there, and never reports EventRoomError or forgets the room.
func TestRoomJoinToDeadServerMovesAndJoinsThere(t *testing.T) {
	n := newListNode(testServer, testServer2)
	n.Start(0)
	admit(t, n, 1, drainTx(n, 0), testServer)
	events(n)
	joinTxID(t, n, 2, "lobby") // testServer is dead from here on: it answers nothing
	var evs []Event
	for now := proto.Instant(2); now < proto.Instant(60*time.Second); {
		now = n.Deadline()
		n.HandleTimeout(now)
		txs := drainTx(n, now)
		evs = append(evs, events(n)...)
		if len(registers(txs, testServer2)) == 0 {
			continue
		}
		txs = admit(t, n, now, txs, testServer2)
		js := roomJoins(txs)
		if len(js) != 1 || js[0].Session != n.srv.session {
			t.Fatalf("registered with %v: room-joins %+v, want one with the new session", testServer2, js)
		}
		if err := n.HandleDatagram(now, testLocal, testServer2, roomState(js[0].TxID, "lobby", 1, "bob", "alice")); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, events(n)...)
		if got := roomEvents(evs); len(got) != 1 || !strings.HasPrefix(got[0], "node.EventRoomState{Room:lobby") {
			t.Errorf("room events %q, want only the state from %v", got, testServer2)
		}
		if !slices.Equal(n.Rooms(), []string{"lobby"}) || !n.srv.pendingIntro("bob") {
			t.Errorf("rooms %v, bob asked for %v; want in lobby and linking to bob", n.Rooms(), n.srv.pendingIntro("bob"))
		}
		if c := serverChanges(evs); len(c) != 1 || c[0].Reason != "server not answering" || now > proto.Instant(10*time.Second) {
			t.Errorf("moved %+v at %v; want one move, for the unanswered check, within seconds", c, time.Duration(now))
		}
		return
	}
	t.Fatalf("never moved to %v; room events %q", testServer2, roomEvents(evs))
}

// A server that answers its keepalives but never a room-join is there and ignores
// us: the join gives up after roomTries sends with EventRoomError, and the node
// stays with the server.
func TestRoomJoinIgnoredByLiveServerGivesUp(t *testing.T) {
	n := newListNode(testServer, testServer2)
	n.Start(0)
	admit(t, n, 1, drainTx(n, 0), testServer)
	events(n)
	joinTxID(t, n, 2, "lobby")
	var evs []Event
	for now := proto.Instant(2); len(roomEvents(evs)) == 0 && now < proto.Instant(60*time.Second); {
		now = n.Deadline()
		n.HandleTimeout(now)
		ackKeepalives(t, n, now, drainTx(n, now))
		evs = append(evs, events(n)...)
	}
	want := []string{`node.EventRoomError{Room:lobby Code:0 Text:no answer from the server}`}
	if got := roomEvents(evs); !slices.Equal(got, want) || len(n.Rooms()) != 0 || len(n.srv.rooms) != 0 {
		t.Errorf("events %q, rooms %v; want %q and no room", got, n.Rooms(), want)
	}
	if c := serverChanges(evs); len(c) != 0 || n.Server() != testServer {
		t.Errorf("moved %+v from a server that answers", c)
	}
}
