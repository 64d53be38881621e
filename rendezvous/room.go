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

// roomMember is one member of a room: a session of this server (slot) or, in a
// cluster, of another (PROTOCOL.md §13.1), named by its server, registration tag
// and peer ID.
type roomMember struct {
	server uint64
	tag    [proto.RegTagLen]byte
	peer   PeerID
	slot   int32 // its session slot here, nilSlot for a session of another server
	// seen (home only) is the member's last join: a remote member not seen for
	// roomMemberLiveness is dropped as left ([CLUSTER-6]).
	seen proto.Instant
}

// room is one room of the table: a room this server is the home of (on a lone
// server every room), or in a cluster a replica of another server's room, kept for
// the members of this server ([CLUSTER-4]).
type room struct {
	name    RoomName
	members []roomMember // in join order; members[0] is the owner
	epoch   uint32       // grows by one with every change of members (the home's)
	// emptySince is when the last member left; an empty room is on the table's
	// empty list (listed) and is forgotten at emptySince + RoomTTL ([ROOM-4]).
	emptySince proto.Instant
	listed     bool

	replica       bool          // another server is the home; members is its latest state
	home          uint64        // the home's server ID (this server's own when it is the home)
	createdUnixMs uint64        // home: when it became the home, for the claim rule ([CLUSTER-4])
	claimedAt     proto.Instant // home: when it last published its claim
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

	// sweepAt is when the homes' remote members are next checked for liveness
	// (Never while no home room has one).
	sweepAt proto.Instant
}

func newRoomTable(maxPeers int) roomTable {
	return roomTable{
		byName:  make(map[RoomName]int32),
		empty:   newLRU(),
		bySlot:  make([][]int32, maxPeers),
		pending: make(map[noticeKey]struct{}),
		sweepAt: proto.Never,
	}
}

func (t *roomTable) len() int { return len(t.byName) }

// create adds an empty room called name, held by home (the caller checked it is
// absent and that the table has room), and returns its slot. It is not on the
// empty list: the caller adds its first member at once.
func (t *roomTable) create(name RoomName, maxMembers int, home uint64) int32 {
	var r int32
	if n := len(t.free); n > 0 {
		r = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		r = int32(len(t.rooms))
		t.rooms = append(t.rooms, room{members: make([]roomMember, 0, maxMembers)})
		t.links = append(t.links, link{prev: nilSlot, next: nilSlot})
	}
	rm := &t.rooms[r]
	*rm = room{name: name, members: rm.members[:0], home: home}
	t.byName[name] = r
	return r
}

// forget removes room r, which has no member of this server, from the table.
func (t *roomTable) forget(r int32) {
	rm := &t.rooms[r]
	if rm.listed {
		t.empty.remove(t.links, r)
		rm.listed = false
	}
	delete(t.byName, rm.name)
	rm.members = rm.members[:0]
	t.free = append(t.free, r)
}

// index returns the position of slot among room r's members, or -1.
func (t *roomTable) index(r, slot int32) int {
	for k := range t.rooms[r].members {
		if t.rooms[r].members[k].slot == slot {
			return k
		}
	}
	return -1
}

// indexPeer returns the position of peer id among room r's members, or -1.
func (t *roomTable) indexPeer(r int32, id *PeerID) int {
	for k := range t.rooms[r].members {
		if t.rooms[r].members[k].peer == *id {
			return k
		}
	}
	return -1
}

// add appends m to room r's members (the caller checked the bounds and counts
// the epoch).
func (t *roomTable) add(r int32, m roomMember) {
	rm := &t.rooms[r]
	if rm.listed {
		t.empty.remove(t.links, r) // it was waiting to be forgotten
		rm.listed = false
	}
	rm.members = append(rm.members, m)
	if m.slot != nilSlot {
		t.bySlot[m.slot] = append(t.bySlot[m.slot], r)
	}
}

// removeAt takes the k-th member out of room r, keeping the others' order (the
// caller counts the epoch); a home room left empty goes on the empty list.
func (t *roomTable) removeAt(r int32, k int, now proto.Instant) {
	rm := &t.rooms[r]
	slot := rm.members[k].slot
	rm.members = append(rm.members[:k], rm.members[k+1:]...)
	if len(rm.members) == 0 && !rm.replica {
		rm.emptySince = now
		rm.listed = true
		t.empty.pushBack(t.links, r)
	}
	if slot != nilSlot {
		t.unlinkSlot(slot, r)
	}
}

// unlinkSlot takes room r off session slot's list of rooms.
func (t *roomTable) unlinkSlot(slot, r int32) {
	mine := t.bySlot[slot]
	for k, x := range mine {
		if x == r {
			t.bySlot[slot] = append(mine[:k], mine[k+1:]...)
			return
		}
	}
}

// hasLocal reports whether room r has a member of this server.
func (t *roomTable) hasLocal(r int32) bool {
	for k := range t.rooms[r].members {
		if t.rooms[r].members[k].slot != nilSlot {
			return true
		}
	}
	return false
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
	if s.cfg.Cluster && (!ok || t.rooms[r].replica) {
		// Not the home: the room's home, wherever it is, decides ([CLUSTER-4]).
		return s.forwardRoomJoin(now, sock, from, i, m.TxID, name)
	}
	if !ok {
		if r, err = s.newRoom(sock, from, m.TxID, name); err != nil {
			return err
		}
	}
	return s.joinHome(r, i, sock, from, m.TxID)
}

// newRoom creates room name, held by this server, for a join answering txid: a
// full table forgets its oldest empty room, or refuses with error 7.
func (s *Server) newRoom(sock int, from netip.AddrPort, txid uint64, name RoomName) (int32, error) {
	t := &s.rooms
	if t.len() >= s.cfg.MaxRooms {
		if t.empty.head == nilSlot {
			s.stats.Rooms.TableFull++
			_ = s.sendError(sock, from, txid, proto.CodeServerFull, textServerFull, unlimited)
			return nilSlot, ErrRoomsFull
		}
		// An empty room is only waiting to be forgotten: forget it now.
		s.forgetRoom(t.empty.head)
		s.stats.Rooms.Expired++
	}
	r := t.create(name, s.cfg.MaxRoomMembers, s.id)
	if s.cfg.Cluster {
		s.interest.markRoom(name)
	}
	return r, nil
}

// joinHome adds session i to room r, which this server is the home of, answering
// its room-join (txid) at to from socket sock ([ROOM-2]).
func (s *Server) joinHome(r, i int32, sock int, to netip.AddrPort, txid uint64) error {
	t := &s.rooms
	ss := &s.peers.sessions[i]
	k := t.indexPeer(r, &ss.peer)
	switch {
	case k >= 0 && t.rooms[r].members[k].slot == i:
		// Already in: a refresh, answered with the state and changing nothing.
		s.stats.Rooms.Refreshes++
		t.rooms[r].members[k].seen = s.now
		if s.cfg.Cluster && s.now >= t.rooms[r].claimedAt.Add(roomClaimInterval) {
			s.claimRoom(r) // a home made at the same time as ours hears of it ([CLUSTER-4])
		}
		return s.sendRoomState(sock, to, txid, r)
	case k < 0 && len(t.rooms[r].members) >= s.cfg.MaxRoomMembers:
		s.stats.Rooms.Full++
		_ = s.sendError(sock, to, txid, proto.CodeRoomFull, textRoomFull, unlimited)
		return ErrRoomFull
	case len(t.bySlot[i]) >= s.cfg.MaxRoomsPerSession:
		s.stats.Rooms.TableFull++
		_ = s.sendError(sock, to, txid, proto.CodeServerFull, textServerFull, unlimited)
		if len(t.rooms[r].members) == 0 {
			s.forgetRoom(r)
		}
		return ErrRoomsFull
	}
	if k >= 0 {
		s.leaveAt(r, k) // the same peer ID in another session (on another server): it moved
	}
	t.add(r, s.localMember(i))
	t.rooms[r].epoch++
	s.stats.Rooms.Joins++
	s.pushEvent(EventRoomJoined{Peer: ss.peer, Room: t.rooms[r].name})
	err := s.sendRoomState(sock, to, txid, r)
	s.notifyRoom(r, i, 0)
	s.sendRoomNotices()
	return err
}

// localMember names session i as a room member.
func (s *Server) localMember(i int32) roomMember {
	ss := &s.peers.sessions[i]
	return roomMember{server: s.id, tag: ss.tag, peer: ss.peer, slot: i, seen: s.now}
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
	replica := s.rooms.rooms[r].replica
	if k := s.rooms.index(r, i); k >= 0 && replica {
		s.replicaLeave(r, k)
	} else if k >= 0 {
		s.leaveAt(r, k)
	}
	err = s.sendRoomState(sock, from, m.TxID, r)
	if replica && !s.rooms.hasLocal(r) {
		s.forgetRoom(r) // its last member here left: the home keeps the room
	}
	s.sendRoomNotices()
	return err
}

// leaveAt takes the k-th member out of room r, which this server is the home of,
// and owes the others the new state.
func (s *Server) leaveAt(r int32, k int) {
	t := &s.rooms
	peer := t.rooms[r].members[k].peer
	t.removeAt(r, k, s.now)
	t.rooms[r].epoch++
	s.stats.Rooms.Leaves++
	s.pushEvent(EventRoomLeft{Peer: peer, Room: t.rooms[r].name})
	s.notifyRoom(r, nilSlot, 0)
}

// leaveAllRooms takes session i, which is ending, out of every room it is in
// ([ROOM-3]). The notices go out at the next HandleTimeout (Deadline is now).
func (s *Server) leaveAllRooms(i int32) {
	t := &s.rooms
	// Bounded by MaxRoomsPerSession: each iteration removes one room from the list.
	for len(t.bySlot[i]) > 0 {
		r := t.bySlot[i][0]
		k := t.index(r, i)
		if !t.rooms[r].replica {
			s.leaveAt(r, k)
			continue
		}
		s.replicaLeave(r, k)
		if !t.hasLocal(r) {
			s.forgetRoom(r)
		}
	}
}

// forgetRoom forgets room r (no member of this server is in it): a home stops
// receiving the room's subject.
func (s *Server) forgetRoom(r int32) {
	name := s.rooms.rooms[r].name
	s.rooms.forget(r)
	if s.cfg.Cluster {
		s.interest.markRoom(name)
	}
}

// notifyRoom owes room r's new state to every member of this server but except
// and, in a cluster, to every other server with members but skip ([CLUSTER-7]).
func (s *Server) notifyRoom(r, except int32, skip uint64) {
	rm := &s.rooms.rooms[r]
	for k := range rm.members {
		j := rm.members[k].slot
		if j == nilSlot || j == except {
			continue
		}
		if !s.rooms.pushNotice(j, s.peers.sessions[j].cookie, r) {
			s.stats.Rooms.NoticesDropped++
		}
	}
	if s.cfg.Cluster && !rm.replica {
		s.noticeServers(r, skip)
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
	for k := range rm.members {
		members = append(members, rm.members[k].peer.Bytes())
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
		s.forgetRoom(r)
		s.stats.Rooms.Expired++
	}
}

// roomDeadline is when the next empty room is forgotten or the homes' remote
// members are checked, or now while notices wait for transmit room.
func (s *Server) roomDeadline() proto.Instant {
	t := &s.rooms
	if t.nsize > 0 {
		return s.now
	}
	d := t.sweepAt
	if r := t.empty.head; r != nilSlot {
		d = proto.Min(d, t.rooms[r].emptySince.Add(s.cfg.RoomTTL))
	}
	return d
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
