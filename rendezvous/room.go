package rendezvous

import (
	"net/netip"

	"github.com/natpass/natpass/proto"
)

// Rooms (PROTOCOL.md §13): named groups of sessions. The server keeps each room's
// members in join order (the first is the owner), answers room-join and room-leave
// with the room's state, and tells every other member of each change with an
// unsolicited room-state whose txid is that member's session tag ([ERR-2]).
//
// Members are session slots, not peer IDs: a member belongs to one registration,
// and every session end (timeout, replaced, moved, expired ticket) passes through
// endSession, which takes the slot out of its rooms before the slot is reused
// ([ROOM-3]). A node that registers again therefore joins again, as it must anyway
// to learn the room's state.
//
// A change may owe notices to up to 15 members, more than the transmit queue holds,
// so notices wait in a bounded FIFO (roomNoticeQueueLen) that the handler and then
// HandleTimeout drain as transmit room allows (Deadline is now while any wait). A
// notice carries no state: it names (member, room), and the state sent is the
// room's state when the notice goes out, so one pending notice per member and room
// is enough and later changes fold into it.

// roomNoticeQueueLen bounds the notices waiting for transmit room: a full room
// churning owes 15 per change; 1024 absorbs 68 such changes between drains. A
// notice that does not fit is dropped and counted; the member learns the state at
// its next refresh (a node repeats room-join every 10 s).
const roomNoticeQueueLen = 1024

// RoomName is a room name (1–64 bytes) held by value, like PeerID.
type RoomName struct {
	n uint8
	b [proto.MaxRoomNameLen]byte
}

// makeRoomName copies name, which the parser has bounded to MaxRoomNameLen.
func makeRoomName(name []byte) RoomName {
	var r RoomName
	r.n = uint8(copy(r.b[:], name))
	return r
}

// Bytes returns the name; the slice aliases r.
func (r *RoomName) Bytes() []byte { return r.b[:r.n] }

func (r RoomName) String() string { return string(r.b[:r.n]) }

// room is one room of the table.
type room struct {
	name    RoomName
	members []int32 // session slots in join order; members[0] is the owner
	epoch   uint32  // grows by one with every change of members
	// emptySince is when the last member left; an empty room is on the table's
	// empty list and is forgotten at emptySince + RoomTTL ([ROOM-4]).
	emptySince proto.Instant
}

// roomNotice owes the member in slot (while it holds cookie) the state of room.
type roomNotice struct {
	cookie proto.Session
	slot   int32
	room   int32
}

// noticeKey names a pending notice. The cookie is part of it: a slot reused by a
// new session must not find the old session's notice and skip its own.
type noticeKey struct {
	cookie proto.Session
	room   int32
}

// roomTable holds the rooms: a slab that grows to MaxRooms and reuses freed slots,
// an index by name, the empty rooms in the order they became empty (all share one
// TTL, so the head is the next to be forgotten), each session slot's rooms, and
// the notices waiting for transmit room.
type roomTable struct {
	rooms  []room
	links  []link
	free   []int32
	byName map[RoomName]int32
	empty  lruList
	// bySlot[i] lists the rooms session slot i is in (at most MaxRoomsPerSession);
	// its capacity is kept when the session ends, so steady churn allocates nothing.
	bySlot [][]int32

	notices      [roomNoticeQueueLen]roomNotice
	nhead, nsize int
	pending      map[noticeKey]struct{} // the (slot, room) pairs in notices
}

func newRoomTable(maxPeers int) roomTable {
	return roomTable{
		byName:  make(map[RoomName]int32),
		empty:   newLRU(),
		bySlot:  make([][]int32, maxPeers),
		pending: make(map[noticeKey]struct{}),
	}
}

func (t *roomTable) len() int { return len(t.byName) }

// create adds an empty room called name (the caller checked it is absent and
// that the table has room) and returns its slot. It is not on the empty list: the
// caller adds its first member at once.
func (t *roomTable) create(name RoomName, maxMembers int) int32 {
	var r int32
	if n := len(t.free); n > 0 {
		r = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		r = int32(len(t.rooms))
		t.rooms = append(t.rooms, room{members: make([]int32, 0, maxMembers)})
		t.links = append(t.links, link{prev: nilSlot, next: nilSlot})
	}
	rm := &t.rooms[r]
	rm.name, rm.members, rm.epoch = name, rm.members[:0], 0
	t.byName[name] = r
	return r
}

// forget removes empty room r from the table.
func (t *roomTable) forget(r int32) {
	t.empty.remove(t.links, r)
	delete(t.byName, t.rooms[r].name)
	t.free = append(t.free, r)
}

// index returns the position of slot among room r's members, or -1.
func (t *roomTable) index(r, slot int32) int {
	for k, m := range t.rooms[r].members {
		if m == slot {
			return k
		}
	}
	return -1
}

// add appends slot to room r's members (the caller checked the bounds).
func (t *roomTable) add(r, slot int32) {
	rm := &t.rooms[r]
	if len(rm.members) == 0 && rm.epoch > 0 {
		t.empty.remove(t.links, r) // it was waiting to be forgotten
	}
	rm.members = append(rm.members, slot)
	rm.epoch++
	t.bySlot[slot] = append(t.bySlot[slot], r)
}

// remove takes slot out of room r (it is a member), keeping the others' order; a
// room left empty goes on the empty list.
func (t *roomTable) remove(r, slot int32, now proto.Instant) {
	rm := &t.rooms[r]
	k := t.index(r, slot)
	rm.members = append(rm.members[:k], rm.members[k+1:]...)
	rm.epoch++
	if len(rm.members) == 0 {
		rm.emptySince = now
		t.empty.pushBack(t.links, r)
	}
	mine := t.bySlot[slot]
	for k, x := range mine {
		if x == r {
			t.bySlot[slot] = append(mine[:k], mine[k+1:]...)
			break
		}
	}
}

// pushNotice owes the member in slot the state of room r; false when the queue is
// full. A notice already pending for the pair covers this one.
func (t *roomTable) pushNotice(slot int32, cookie proto.Session, r int32) bool {
	key := noticeKey{cookie, r}
	if _, ok := t.pending[key]; ok {
		return true
	}
	if t.nsize == roomNoticeQueueLen {
		return false
	}
	t.notices[(t.nhead+t.nsize)%roomNoticeQueueLen] = roomNotice{cookie: cookie, slot: slot, room: r}
	t.nsize++
	t.pending[key] = struct{}{}
	return true
}

func (t *roomTable) popNotice() roomNotice {
	n := t.notices[t.nhead]
	t.nhead = (t.nhead + 1) % roomNoticeQueueLen
	t.nsize--
	delete(t.pending, noticeKey{n.cookie, n.room})
	return n
}

// --- the server's side ---------------------------------------------------------------

var textRoomFull = []byte("room full")

func (s *Server) handleRoomJoin(now proto.Instant, sock int, from netip.AddrPort, p []byte) error {
	m := &s.roomJoin
	if err := m.Parse(p); err != nil {
		s.stats.DropMalformed++
		return err
	}
	i, err := s.session(now, sock, from, &m.Session, m.TxID, len(p))
	if err != nil {
		return err
	}
	t := &s.rooms
	name := makeRoomName(m.Room)
	r, ok := t.byName[name]
	switch {
	case ok && t.index(r, i) >= 0:
		// Already in: a refresh, answered with the state and changing nothing.
		s.stats.Rooms.Refreshes++
		return s.sendRoomState(sock, from, m.TxID, r)
	case ok && len(t.rooms[r].members) >= s.cfg.MaxRoomMembers:
		s.stats.Rooms.Full++
		_ = s.sendError(sock, from, m.TxID, proto.CodeRoomFull, textRoomFull, unlimited)
		return ErrRoomFull
	case len(t.bySlot[i]) >= s.cfg.MaxRoomsPerSession:
		s.stats.Rooms.TableFull++
		_ = s.sendError(sock, from, m.TxID, proto.CodeServerFull, textServerFull, unlimited)
		return ErrRoomsFull
	}
	if !ok {
		if t.len() >= s.cfg.MaxRooms {
			if t.empty.head == nilSlot {
				s.stats.Rooms.TableFull++
				_ = s.sendError(sock, from, m.TxID, proto.CodeServerFull, textServerFull, unlimited)
				return ErrRoomsFull
			}
			// An empty room is only waiting to be forgotten: forget it now.
			t.forget(t.empty.head)
			s.stats.Rooms.Expired++
		}
		r = t.create(name, s.cfg.MaxRoomMembers)
	}
	t.add(r, i)
	s.stats.Rooms.Joins++
	s.pushEvent(EventRoomJoined{Peer: s.peers.sessions[i].peer, Room: name})
	err = s.sendRoomState(sock, from, m.TxID, r)
	s.notifyMembers(r, i)
	s.sendRoomNotices()
	return err
}

func (s *Server) handleRoomLeave(now proto.Instant, sock int, from netip.AddrPort, p []byte) error {
	m := &s.roomLeave
	if err := m.Parse(p); err != nil {
		s.stats.DropMalformed++
		return err
	}
	i, err := s.session(now, sock, from, &m.Session, m.TxID, len(p))
	if err != nil {
		return err
	}
	r, ok := s.rooms.byName[makeRoomName(m.Room)]
	if !ok {
		// No such room: its state is empty (a repeated leave whose room was
		// forgotten meanwhile, or a leave of a room never joined).
		st := proto.RoomState{TxID: m.TxID, Room: m.Room}
		return s.commitReply(sock, from, st.Append(s.tx.begin()), unlimited)
	}
	if s.rooms.index(r, i) >= 0 {
		s.leaveRoom(r, i)
	}
	err = s.sendRoomState(sock, from, m.TxID, r)
	s.sendRoomNotices()
	return err
}

// leaveRoom takes session i out of room r and owes the others the new state.
func (s *Server) leaveRoom(r, i int32) {
	s.rooms.remove(r, i, s.now)
	s.stats.Rooms.Leaves++
	s.pushEvent(EventRoomLeft{Peer: s.peers.sessions[i].peer, Room: s.rooms.rooms[r].name})
	s.notifyMembers(r, nilSlot)
}

// leaveAllRooms takes session i, which is ending, out of every room it is in
// ([ROOM-3]). The notices go out at the next HandleTimeout (Deadline is now).
func (s *Server) leaveAllRooms(i int32) {
	// Bounded by MaxRoomsPerSession: each iteration removes one room from the list.
	for len(s.rooms.bySlot[i]) > 0 {
		s.leaveRoom(s.rooms.bySlot[i][0], i)
	}
}

// notifyMembers owes every member of room r but except its new state.
func (s *Server) notifyMembers(r, except int32) {
	for _, j := range s.rooms.rooms[r].members {
		if j == except {
			continue
		}
		if !s.rooms.pushNotice(j, s.peers.sessions[j].cookie, r) {
			s.stats.Rooms.NoticesDropped++
		}
	}
}

// sendRoomNotices sends as many owed notices as the transmit queue has room for,
// each the room's state now, to the member's registered address from its socket,
// with its session tag as txid ([ERR-2]). A notice whose member has left the room
// or ended its session is skipped.
func (s *Server) sendRoomNotices() {
	t := &s.rooms
	for t.nsize > 0 && s.tx.free() > 0 {
		n := t.popNotice()
		ss := &s.peers.sessions[n.slot]
		if ss.cookie != n.cookie || t.index(n.room, n.slot) < 0 {
			continue
		}
		if s.sendRoomState(s.socketIndex(ss.local), ss.addr, proto.SessionTag(&ss.cookie), n.room) == nil {
			s.stats.Rooms.NoticesSent++
		}
	}
}

// sendRoomState sends room r's state, answering txid, to to from socket sock.
func (s *Server) sendRoomState(sock int, to netip.AddrPort, txid uint64, r int32) error {
	b := s.tx.begin()
	if b == nil {
		s.stats.DropQueueFull++
		return ErrQueueFull
	}
	rm := &s.rooms.rooms[r]
	members := s.roomMembers[:0]
	for _, j := range rm.members {
		members = append(members, s.peers.sessions[j].peer.Bytes())
	}
	st := proto.RoomState{TxID: txid, Room: rm.name.Bytes(), Epoch: rm.epoch, Members: members}
	return s.commitReply(sock, to, st.Append(b), unlimited)
}

// expireRooms forgets the rooms that have been empty for RoomTTL ([ROOM-4]).
func (s *Server) expireRooms(now proto.Instant) {
	t := &s.rooms
	// Bounded by the table size: each iteration forgets one room.
	for r := t.empty.head; r != nilSlot; r = t.empty.head {
		if now < t.rooms[r].emptySince.Add(s.cfg.RoomTTL) {
			return
		}
		t.forget(r)
		s.stats.Rooms.Expired++
	}
}

// roomDeadline is when the next empty room is forgotten, or now while notices wait
// for transmit room.
func (s *Server) roomDeadline() proto.Instant {
	t := &s.rooms
	if t.nsize > 0 {
		return s.now
	}
	if r := t.empty.head; r != nilSlot {
		return t.rooms[r].emptySince.Add(s.cfg.RoomTTL)
	}
	return proto.Never
}

// RoomStats counts the room messages (PROTOCOL.md §13).
type RoomStats struct {
	Rooms          int    // rooms in the table now, empty ones included
	Joins          uint64 // sessions added to a room
	Leaves         uint64 // sessions taken out of a room (room-leave or session end)
	Refreshes      uint64 // room-joins of a room the session was in
	Full           uint64 // [12] the room held MaxRoomMembers
	TableFull      uint64 // [7] MaxRooms rooms (none empty), or MaxRoomsPerSession for the session
	Expired        uint64 // empty rooms forgotten
	NoticesSent    uint64 // unsolicited room-states sent to members
	NoticesDropped uint64 // notices the bounded notice queue had no room for
}
