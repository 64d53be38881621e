package rendezvous

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/natpass/natpass/proto"
)

func joinBytes(c proto.Session, txid uint64, room string) []byte {
	m := proto.RoomJoin{Session: c, TxID: txid, Room: []byte(room)}
	return m.Append(nil)
}

func leaveBytes(c proto.Session, txid uint64, room string) []byte {
	m := proto.RoomLeave{Session: c, TxID: txid, Room: []byte(room)}
	return m.Append(nil)
}

// roomNode is a registered test node: its ID, address and cookie.
type roomNode struct {
	id     string
	addr   netip.AddrPort
	cookie proto.Session
}

func (n roomNode) tag() uint64 { return proto.SessionTag(&n.cookie) }

// roomNodes registers n nodes, each from its own address.
func (h *harness) roomNodes(n int) []roomNode {
	h.t.Helper()
	nodes := make([]roomNode, n)
	for k := range nodes {
		id := fmt.Sprintf("n%02d", k)
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + k)}), 40000)
		r := h.register(id, byte(k+1), addr)
		nodes[k] = roomNode{id: id, addr: addr, cookie: r.Session}
	}
	return nodes
}

// flush fires the server's timer while it is due now, as a driver does, and
// returns what it sent.
func (h *harness) flush() []sent {
	h.t.Helper()
	var all []sent
	for range 64 {
		if h.s.Deadline() > h.now {
			return all
		}
		h.s.HandleTimeout(h.now)
		out, _ := h.drain()
		all = append(all, out...)
	}
	h.t.Fatal("deadline stays at now")
	return nil
}

// state parses d as a room-state.
func roomState(t tb, d sent) proto.RoomState {
	t.Helper()
	var st proto.RoomState
	if err := st.Parse(d.Payload); err != nil {
		t.Fatalf("not a room-state: %x: %v", d.Payload, err)
	}
	return st
}

func memberIDs(st proto.RoomState) []string {
	var ids []string
	for _, m := range st.Members {
		ids = append(ids, string(m))
	}
	return ids
}

// checkState fails unless st is room at epoch with members, answering txid.
func checkState(t tb, st proto.RoomState, txid uint64, room string, epoch uint32, members ...string) {
	t.Helper()
	if st.TxID != txid || string(st.Room) != room || st.Epoch != epoch || !slices.Equal(memberIDs(st), members) {
		t.Fatalf("room-state txid %x %q epoch %d %v, want txid %x %q epoch %d %v",
			st.TxID, st.Room, st.Epoch, memberIDs(st), txid, room, epoch, members)
	}
}

// join sends a room-join from n and returns the answer and the notices sent with it
// (those that fit the transmit queue).
func (h *harness) join(n roomNode, txid uint64, room string) (proto.RoomState, []sent) {
	h.t.Helper()
	err, out, _ := h.deliver(srvPrimary, n.addr, joinBytes(n.cookie, txid, room))
	if err != nil || len(out) == 0 || out[0].To != n.addr {
		h.t.Fatalf("join %s: err %v, %d datagrams", n.id, err, len(out))
	}
	return roomState(h.t, out[0]), out[1:]
}

// checkNotices fails unless out holds exactly one room-state for each of to, at its
// registered address from the primary socket, with its session tag as txid, each
// the state room/epoch/members.
func checkNotices(t tb, out []sent, to []roomNode, room string, epoch uint32, members ...string) {
	t.Helper()
	if len(out) != len(to) {
		t.Fatalf("%d notices, want %d", len(out), len(to))
	}
	for _, n := range to {
		k := slices.IndexFunc(out, func(d sent) bool { return d.To == n.addr })
		if k < 0 {
			t.Fatalf("no notice to %s", n.id)
		}
		if out[k].From != srvPrimary {
			t.Fatalf("notice to %s from %v", n.id, out[k].From)
		}
		checkState(t, roomState(t, out[k]), n.tag(), room, epoch, members...)
		out = slices.Delete(out, k, k+1)
	}
}

// PROTOCOL.md §13 [ROOM-2], [ROOM-3]: "otherwise it is appended, the epoch grows by
// one, the joiner is answered with the state (its txid) and every other member is
// sent it unsolicited (txid = that member's session tag)"; a refresh changes
// nothing; a leave answers the state without the leaver.
func TestRoomJoinRefreshLeave(t *testing.T) {
	h := newHarness(t, nil)
	n := h.roomNodes(3)
	a, b, c := n[0], n[1], n[2]

	st, notices := h.join(a, 10, "lobby")
	checkState(t, st, 10, "lobby", 1, a.id)
	checkNotices(t, notices, nil, "lobby", 1)

	st, notices = h.join(b, 11, "lobby")
	checkState(t, st, 11, "lobby", 2, a.id, b.id)
	checkNotices(t, notices, []roomNode{a}, "lobby", 2, a.id, b.id)

	st, notices = h.join(c, 12, "lobby")
	checkState(t, st, 12, "lobby", 3, a.id, b.id, c.id)
	checkNotices(t, notices, []roomNode{a, b}, "lobby", 3, a.id, b.id, c.id)

	// A refresh: the same state, nobody told.
	st, notices = h.join(a, 13, "lobby")
	checkState(t, st, 13, "lobby", 3, a.id, b.id, c.id)
	checkNotices(t, notices, nil, "lobby", 3)

	// The owner leaves: the next earliest member owns the room.
	err, out, evs := h.deliver(srvPrimary, a.addr, leaveBytes(a.cookie, 14, "lobby"))
	if err != nil || len(out) != 3 {
		t.Fatalf("leave: err %v, %d datagrams", err, len(out))
	}
	checkState(t, roomState(t, out[0]), 14, "lobby", 4, b.id, c.id)
	checkNotices(t, out[1:], []roomNode{b, c}, "lobby", 4, b.id, c.id)
	if len(evs) != 1 || evs[0] != (EventRoomLeft{Peer: makePeerID([]byte(a.id)), Room: makeRoomName([]byte("lobby"))}) {
		t.Fatalf("events %v", evs)
	}

	// A leave of a room one is not in changes nothing.
	err, out, _ = h.deliver(srvPrimary, a.addr, leaveBytes(a.cookie, 15, "lobby"))
	if err != nil || len(out) != 1 {
		t.Fatalf("second leave: err %v, %d datagrams", err, len(out))
	}
	checkState(t, roomState(t, out[0]), 15, "lobby", 4, b.id, c.id)

	// Re-joining appends at the end.
	st, notices = h.join(a, 16, "lobby")
	checkState(t, st, 16, "lobby", 5, b.id, c.id, a.id)
	checkNotices(t, notices, []roomNode{b, c}, "lobby", 5, b.id, c.id, a.id)

	// A room that does not exist has an empty state.
	err, out, _ = h.deliver(srvPrimary, a.addr, leaveBytes(a.cookie, 17, "nowhere"))
	if err != nil {
		t.Fatal(err)
	}
	checkState(t, roomState(t, only(t, out, &proto.RoomState{})), 17, "nowhere", 0)

	rs := h.s.Stats().Rooms
	if rs.Rooms != 1 || rs.Joins != 4 || rs.Leaves != 1 || rs.Refreshes != 1 || rs.NoticesSent != 7 {
		t.Fatalf("stats %+v", rs)
	}
}

func TestRoomEventsOnJoin(t *testing.T) {
	h := newHarness(t, nil)
	a := h.roomNodes(1)[0]
	err, _, evs := h.deliver(srvPrimary, a.addr, joinBytes(a.cookie, 1, "x"))
	if err != nil || len(evs) != 1 || evs[0] != (EventRoomJoined{Peer: makePeerID([]byte(a.id)), Room: makeRoomName([]byte("x"))}) {
		t.Fatalf("err %v, events %v", err, evs)
	}
	// A refresh is not an event.
	if _, _, evs = h.deliver(srvPrimary, a.addr, joinBytes(a.cookie, 2, "x")); len(evs) != 0 {
		t.Fatalf("refresh events %v", evs)
	}
}

// [ROOM-2]: "one that would take the room past the server's member cap ... gets
// error 12 (room full)"; the room is unchanged.
func TestRoomFullRefusedStateUnchanged(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxRoomMembers = 2 })
	n := h.roomNodes(3)
	h.join(n[0], 1, "r")
	h.join(n[1], 2, "r")
	err, out, evs := h.deliver(srvPrimary, n[2].addr, joinBytes(n[2].cookie, 3, "r"))
	if err != ErrRoomFull || errorCode(t, out) != proto.CodeRoomFull || len(evs) != 0 {
		t.Fatalf("err %v, events %v", err, evs)
	}
	st, notices := h.join(n[0], 4, "r")
	checkState(t, st, 4, "r", 2, n[0].id, n[1].id)
	checkNotices(t, notices, nil, "r", 2)
	if h.s.Stats().Rooms.Full != 1 {
		t.Fatalf("stats %+v", h.s.Stats().Rooms)
	}
}

// The server's default cap is the wire's: 16 members. The 16th join owes 15
// notices, more than the transmit queue holds: what does not fit goes out at the
// HandleTimeout that Deadline asks for at once.
func TestRoomNoticesBeyondTransmitQueue(t *testing.T) {
	h := newHarness(t, nil)
	n := h.roomNodes(proto.MaxRoomMembers + 1)
	var ids []string
	for k := range proto.MaxRoomMembers - 1 {
		h.join(n[k], uint64(k+1), "big")
		h.flush()
		ids = append(ids, n[k].id)
	}
	st, notices := h.join(n[15], 99, "big")
	ids = append(ids, n[15].id)
	checkState(t, st, 99, "big", 16, ids...)
	if len(notices) != txQueueLen-1 {
		t.Fatalf("%d notices with the answer, want %d", len(notices), txQueueLen-1)
	}
	if d := h.s.Deadline(); d != h.now {
		t.Fatalf("deadline %v with notices waiting, want now %v", d, h.now)
	}
	notices = append(notices, h.flush()...)
	checkNotices(t, notices, n[:15], "big", 16, ids...)

	// The 17th is refused.
	err, out, _ := h.deliver(srvPrimary, n[16].addr, joinBytes(n[16].cookie, 100, "big"))
	if err != ErrRoomFull || errorCode(t, out) != proto.CodeRoomFull {
		t.Fatalf("17th: err %v", err)
	}
	if h.s.Stats().Rooms.NoticesDropped != 0 {
		t.Fatalf("stats %+v", h.s.Stats().Rooms)
	}
}

// [ROOM-3]: "A session that ends (timeout, replaced, moved, expired ticket) leaves
// every room it was in the same way."
func TestRoomSessionTimeoutLeaves(t *testing.T) {
	h := newHarness(t, nil)
	n := h.roomNodes(2)
	a, b := n[0], n[1]
	h.join(a, 1, "r")
	h.join(a, 2, "s")
	h.join(b, 3, "r")
	h.join(b, 4, "s")
	// Only b keeps its session alive.
	var notices []sent
	var evs []Event
	for k := range 4 {
		h.now = h.now.Add(25 * time.Second)
		err, out, e := h.deliver(srvPrimary, b.addr, keepaliveBytes(b.cookie, uint32(k)))
		if err != nil {
			t.Fatal(err)
		}
		notices = append(notices, out[1:]...) // after the ack
		notices = append(notices, h.flush()...)
		evs = append(evs, e...)
	}
	if _, ok := h.s.Peer([]byte(a.id)); ok {
		t.Fatal("a's session still alive")
	}
	if len(notices) != 2 {
		t.Fatalf("%d notices, want 2", len(notices))
	}
	checkNotices(t, notices[:1], []roomNode{b}, "r", 3, b.id)
	checkNotices(t, notices[1:], []roomNode{b}, "s", 3, b.id)
	var left int
	for _, e := range evs {
		if e, ok := e.(EventRoomLeft); ok && e.Peer.String() == a.id {
			left++
		}
	}
	if left != 2 {
		t.Fatalf("events %v", evs)
	}
}

// [ROOM-3] again: a new registration of the member's ID ends its session, so the
// member leaves; the new session joins again.
func TestRoomReRegistrationLeaves(t *testing.T) {
	h := newHarness(t, nil)
	n := h.roomNodes(2)
	a, b := n[0], n[1]
	h.join(a, 1, "r")
	h.join(b, 2, "r")
	moved := netip.MustParseAddrPort("203.0.113.200:1000")
	r := h.register(a.id, 1, moved) // same key, new address: a new session
	checkNotices(t, h.flush(), []roomNode{b}, "r", 3, b.id)
	a = roomNode{id: a.id, addr: moved, cookie: r.Session}
	st, notices := h.join(a, 3, "r")
	checkState(t, st, 3, "r", 4, b.id, a.id)
	checkNotices(t, notices, []roomNode{b}, "r", 4, b.id, a.id)
}

// [ROOM-4]: "An empty room is forgotten after the room TTL"; joined again, it starts
// over.
func TestRoomEmptyForgottenAfterTTL(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RoomTTL = time.Minute; c.SessionTimeout = time.Hour })
	a := h.roomNodes(1)[0]
	h.join(a, 1, "r")
	h.deliver(srvPrimary, a.addr, leaveBytes(a.cookie, 2, "r"))
	h.wait(time.Minute - time.Millisecond)
	if got := h.s.Stats().Rooms.Rooms; got != 1 {
		t.Fatalf("%d rooms before the TTL, want 1", got)
	}
	h.wait(time.Millisecond)
	if rs := h.s.Stats().Rooms; rs.Rooms != 0 || rs.Expired != 1 {
		t.Fatalf("after the TTL: %+v", rs)
	}
	st, _ := h.join(a, 3, "r")
	checkState(t, st, 3, "r", 1, a.id)

	// A join before the TTL keeps the room and its epoch.
	h.deliver(srvPrimary, a.addr, leaveBytes(a.cookie, 4, "r"))
	h.wait(time.Second)
	st, _ = h.join(a, 5, "r")
	checkState(t, st, 5, "r", 3, a.id)
	h.wait(2 * time.Minute)
	if rs := h.s.Stats().Rooms; rs.Rooms != 1 {
		t.Fatalf("occupied room forgotten: %+v", rs)
	}
}

// [ROOM-4]: "Rooms, and the rooms of one session, are bounded; a join beyond either
// bound gets error 7." An empty room gives its place to a new one.
func TestRoomTableBounds(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxRooms = 2; c.MaxRoomsPerSession = 1 })
	n := h.roomNodes(3)
	h.join(n[0], 1, "r1")
	err, out, _ := h.deliver(srvPrimary, n[0].addr, joinBytes(n[0].cookie, 2, "r2"))
	if err != ErrRoomsFull || errorCode(t, out) != proto.CodeServerFull {
		t.Fatalf("second room of a session: err %v", err)
	}
	h.join(n[1], 3, "r2")
	err, out, _ = h.deliver(srvPrimary, n[2].addr, joinBytes(n[2].cookie, 4, "r3"))
	if err != ErrRoomsFull || errorCode(t, out) != proto.CodeServerFull {
		t.Fatalf("third room: err %v", err)
	}
	h.deliver(srvPrimary, n[1].addr, leaveBytes(n[1].cookie, 5, "r2"))
	st, _ := h.join(n[2], 6, "r3")
	checkState(t, st, 6, "r3", 1, n[2].id)
	if rs := h.s.Stats().Rooms; rs.Rooms != 2 || rs.TableFull != 2 || rs.Expired != 1 {
		t.Fatalf("stats %+v", rs)
	}
}

// [ROOM-2] "Replies go to authenticated sessions only (a room message with an
// unknown cookie gets error 5, within its size)"; malformed ones are dropped.
func TestRoomUnauthenticatedAndMalformed(t *testing.T) {
	h := newHarness(t, nil)
	for _, p := range [][]byte{joinBytes(proto.Session{7}, 1, "r"), leaveBytes(proto.Session{7}, 2, "r")} {
		err, out, _ := h.deliver(srvPrimary, strangerA, p)
		if err != ErrNoSession || errorCode(t, out) != proto.CodeNoSession || len(out[0].Payload) > len(p) {
			t.Fatalf("err %v, %d datagrams", err, len(out))
		}
	}
	a := h.roomNodes(1)[0]
	good := joinBytes(a.cookie, 3, "r")
	empty := append(good[:len(good)-2:len(good)-2], 0) // a name of 0 bytes
	long := append(proto.AppendHeader(nil, proto.TypeRoomJoin), make([]byte, 24)...)
	long = append(long, 65)
	long = append(long, make([]byte, 65)...)
	before := h.s.Stats().DropMalformed
	for _, p := range [][]byte{good[:len(good)-1], append(good, 0), empty, long} {
		err, out, _ := h.deliver(srvPrimary, a.addr, p)
		if err == nil || len(out) != 0 {
			t.Fatalf("%x: err %v, %d datagrams", p, err, len(out))
		}
	}
	if got := h.s.Stats().DropMalformed - before; got != 4 {
		t.Fatalf("%d counted as malformed, want 4", got)
	}
	if h.s.Stats().Rooms.Rooms != 0 {
		t.Fatal("a malformed join made a room")
	}
}

// A draining server answers room messages with error 11 like every request.
func TestRoomWhileDraining(t *testing.T) {
	h := newHarness(t, nil)
	a := h.roomNodes(1)[0]
	h.s.Drain(h.now)
	h.drain()
	h.flush()
	err, out, _ := h.deliver(srvPrimary, a.addr, joinBytes(a.cookie, 1, "r"))
	if err != ErrDraining || errorCode(t, out) != proto.CodeMoving {
		t.Fatalf("err %v", err)
	}
}

// roomModel is a naive oracle for the rooms of PROTOCOL.md §13: slices and maps,
// nothing bounded or indexed. Sessions never time out here (an hour); a node's
// session ends by registering again.
type roomModel struct {
	h     *harness
	nodes []roomNode
	rooms map[string]*modelRoom
	empty []string // empty rooms in the order they became empty
	txid  uint64
	// views[k][room] is the last room-state node k received for room.
	views []map[string]proto.RoomState
	// joined[k] lists node k's rooms in the order it joined them: the order in
	// which a session that ends leaves them (and so the order they become empty).
	joined [][]string
}

type modelRoom struct {
	members    []string
	epoch      uint32
	emptySince proto.Instant
}

const (
	modelRoomCap     = 3
	modelRoomsMax    = 2
	modelRoomsPerSes = 2
	modelRoomTTL     = time.Minute
)

var modelRoomNames = []string{"a", "b", "c"}

func (m *roomModel) roomsOf(id string) int {
	n := 0
	for _, r := range m.rooms {
		if slices.Contains(r.members, id) {
			n++
		}
	}
	return n
}

func (m *roomModel) forgetDue() {
	for len(m.empty) > 0 && m.h.now >= m.rooms[m.empty[0]].emptySince.Add(modelRoomTTL) {
		delete(m.rooms, m.empty[0])
		m.empty = m.empty[1:]
	}
}

func (m *roomModel) leave(k int, name string) {
	id := m.nodes[k].id
	m.joined[k] = slices.DeleteFunc(m.joined[k], func(x string) bool { return x == name })
	r := m.rooms[name]
	r.members = slices.DeleteFunc(r.members, func(x string) bool { return x == id })
	r.epoch++
	if len(r.members) == 0 {
		r.emptySince = m.h.now
		m.empty = append(m.empty, name)
	}
}

// record files every datagram of out under the node it went to, checking that
// notices carry the node's session tag.
func (m *roomModel) record(t *rapid.T, out []sent, answerTo int, txid uint64) {
	for _, d := range out {
		k := slices.IndexFunc(m.nodes, func(n roomNode) bool { return n.addr == d.To })
		var st proto.RoomState
		if err := st.Parse(d.Payload); err != nil {
			continue // an error answer, checked by the caller
		}
		want := m.nodes[k].tag()
		if k == answerTo && st.TxID == txid {
			want = txid
		}
		if st.TxID != want {
			t.Fatalf("room-state to %s with txid %x, want %x", m.nodes[k].id, st.TxID, want)
		}
		m.views[k][string(st.Room)] = st
	}
}

// tick moves time on by a millisecond, forgetting the rooms due by then, as the
// server does at the start of every input.
func (m *roomModel) tick() {
	m.h.now = m.h.now.Add(time.Millisecond)
	m.forgetDue()
}

func (m *roomModel) step(t *rapid.T, p []byte, k int) error {
	err, out, _ := m.h.deliver(srvPrimary, m.nodes[k].addr, p)
	out = append(out, m.h.flush()...)
	m.record(t, out, k, m.txid)
	return err
}

func (m *roomModel) Join(t *rapid.T) {
	k := rapid.IntRange(0, len(m.nodes)-1).Draw(t, "node")
	name := rapid.SampledFrom(modelRoomNames).Draw(t, "room")
	id := m.nodes[k].id
	m.txid++
	m.tick()
	var want error
	r, ok := m.rooms[name]
	switch {
	case ok && slices.Contains(r.members, id):
	case ok && len(r.members) >= modelRoomCap:
		want = ErrRoomFull
	case m.roomsOf(id) >= modelRoomsPerSes:
		want = ErrRoomsFull
	case !ok && len(m.rooms) >= modelRoomsMax && len(m.empty) == 0:
		want = ErrRoomsFull
	}
	if err := m.step(t, joinBytes(m.nodes[k].cookie, m.txid, name), k); err != want {
		t.Fatalf("join %s %s: %v, want %v", id, name, err, want)
	}
	if want != nil || ok && slices.Contains(r.members, id) {
		return
	}
	switch {
	case !ok && len(m.rooms) >= modelRoomsMax:
		// The oldest empty room gives its place.
		delete(m.rooms, m.empty[0])
		m.empty = m.empty[1:]
		fallthrough
	case !ok:
		r = &modelRoom{}
		m.rooms[name] = r
	case len(r.members) == 0:
		m.empty = slices.DeleteFunc(m.empty, func(x string) bool { return x == name })
	}
	r.members = append(r.members, id)
	r.epoch++
	m.joined[k] = append(m.joined[k], name)
}

func (m *roomModel) Leave(t *rapid.T) {
	k := rapid.IntRange(0, len(m.nodes)-1).Draw(t, "node")
	name := rapid.SampledFrom(modelRoomNames).Draw(t, "room")
	m.txid++
	m.tick()
	if err := m.step(t, leaveBytes(m.nodes[k].cookie, m.txid, name), k); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if r, ok := m.rooms[name]; ok && slices.Contains(r.members, m.nodes[k].id) {
		m.leave(k, name)
	}
}

// Reregister ends node k's session with a new registration: it leaves its rooms.
func (m *roomModel) Reregister(t *rapid.T) {
	k := rapid.IntRange(0, len(m.nodes)-1).Draw(t, "node")
	m.tick()
	for len(m.joined[k]) > 0 {
		m.leave(k, m.joined[k][0])
	}
	m.txid++
	// The same node (same key) registering again, as after a lost server: a new
	// session, the old one ends without error 10.
	err, out, _ := m.h.deliver(srvPrimary, m.nodes[k].addr, registerBytes(m.txid, ticketFor(m.nodes[k].id, byte(k+1))))
	var r proto.Registered
	if err != nil || r.Parse(out[0].Payload) != nil {
		t.Fatalf("register again: %v", err)
	}
	m.nodes[k].cookie = r.Session
	clear(m.views[k])
	m.record(t, append(out[1:], m.h.flush()...), -1, 0)
}

func (m *roomModel) Wait(t *rapid.T) {
	d := rapid.SampledFrom([]time.Duration{time.Second, 30 * time.Second, modelRoomTTL}).Draw(t, "wait")
	m.h.wait(d)
	m.forgetDue()
}

// Check: every member's last view of its room is the room's state, the owner is
// the earliest member present, and the server's table matches.
func (m *roomModel) Check(t *rapid.T) {
	for name, r := range m.rooms {
		for _, id := range r.members {
			k := slices.IndexFunc(m.nodes, func(n roomNode) bool { return n.id == id })
			v := m.views[k][name]
			if v.Epoch != r.epoch || !slices.Equal(memberIDs(v), r.members) {
				t.Fatalf("%s sees %s at epoch %d %v, want %d %v", id, name, v.Epoch, memberIDs(v), r.epoch, r.members)
			}
		}
	}
	if got := m.h.s.Stats().Rooms; got.Rooms != len(m.rooms) || got.NoticesDropped != 0 {
		t.Fatalf("server %+v, model has %d rooms", got, len(m.rooms))
	}
}

func TestRoomModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := newHarness(t, func(c *Config) {
			c.MaxRoomMembers, c.MaxRooms, c.MaxRoomsPerSession = modelRoomCap, modelRoomsMax, modelRoomsPerSes
			c.RoomTTL, c.SessionTimeout = modelRoomTTL, 100*time.Hour
			c.SessionRate = Rate{Interval: time.Nanosecond, Burst: 1000}
		})
		m := &roomModel{h: h, nodes: h.roomNodes(5), rooms: map[string]*modelRoom{}}
		for range m.nodes {
			m.views = append(m.views, map[string]proto.RoomState{})
			m.joined = append(m.joined, nil)
		}
		t.Repeat(rapid.StateMachineActions(m))
	})
}

// Room churn in steady state allocates nothing but its two events (an Event
// interface boxes its struct, as for registrations and introductions): a member
// leaving and joining again reuses the room's member slice, the session's room list
// and the notice queue.
func TestRoomChurnAllocatesNothing(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SessionRate = Rate{Interval: time.Nanosecond, Burst: 1000} })
	n := h.roomNodes(3)
	h.join(n[0], 1, "r")
	h.join(n[1], 2, "r")
	join, leave := joinBytes(n[2].cookie, 3, "r"), leaveBytes(n[2].cookie, 4, "r")
	cycle := func() {
		h.now = h.now.Add(time.Millisecond)
		_ = h.s.HandleDatagram(h.now, srvPrimary, n[2].addr, join)
		for {
			if _, ok := h.s.PollTransmit(h.now, h.buf); !ok {
				break
			}
		}
		_ = h.s.HandleDatagram(h.now, srvPrimary, n[2].addr, leave)
		for {
			if _, ok := h.s.PollTransmit(h.now, h.buf); !ok {
				break
			}
		}
		for {
			if _, ok := h.s.PollEvent(); !ok {
				break
			}
		}
	}
	for range 100 {
		cycle()
	}
	if a := testing.AllocsPerRun(200, cycle); a > 2 {
		t.Fatalf("%v allocations per join and leave", a)
	}
	if rs := h.s.Stats().Rooms; rs.NoticesSent < 600 {
		t.Fatalf("stats %+v", rs)
	}
}
