package node

import (
	"bytes"
	"errors"
	"slices"
	"time"

	"github.com/natpass/natpass/proto"
)

// Rooms (PROTOCOL.md §13, DESIGN §13): the server session joins named rooms on the
// node's server and keeps each one's latest member list; Node turns a new list
// into events and, when our own join is answered, connects to every member it has
// no peer for (a late joiner links to everyone already there; the others accept
// its introductions).
const (
	// maxRooms bounds the rooms a node is in (joins past it are refused with
	// ErrTooManyRooms and counted in Stats.RoomRefused): each costs a refresh
	// every roomRefresh and up to 15 links.
	maxRooms = 8
	// maxRoomLeaves bounds the room-leaves still being repeated; past it the
	// oldest is given up (the server drops us from its rooms when our session
	// ends anyway).
	maxRoomLeaves = maxRooms
	// roomRefresh: a joined room's room-join is repeated this often, so a lost
	// notice of a change costs at most that long (PROTOCOL §13).
	roomRefresh = 10 * time.Second
	// roomTries bounds the room-joins (and room-leaves) sent for one answer, at
	// the introduce-request's backoff (introduceRTO doubling to introduceRTOMax).
	roomTries = introduceTries
	// roomEarlyRefresh: an introduction of a stranger refreshes the rooms early
	// at most this often (strangerIntroduced).
	roomEarlyRefresh = time.Second
)

// Errors of JoinRoom.
var (
	ErrRoomName     = errors.New("node: room name must be 1–64 bytes")
	ErrTooManyRooms = errors.New("node: too many rooms")
)

// roomJoin is one room the node is in, or is joining.
type roomJoin struct {
	name     string
	txid     uint64        // of our room-joins: the answer carries it
	tries    int           // joins sent since the last answer
	since    proto.Instant // the first of them went then
	next     proto.Instant
	answered bool // our join was answered (we are a member)
	// rebase: a registration with a server (again) since the last answer; the
	// room may have been made anew there (a restarted server counts epochs from
	// the start), so the answer to our join is taken whatever its epoch.
	rebase  bool
	epoch   uint32
	members []string // in join order: members[0] is the owner
}

// roomLeave is a room-leave repeated until the server answers it.
type roomLeave struct {
	name  string
	txid  uint64
	tries int
	next  proto.Instant
}

// Server-session events about rooms.
type (
	// srvRoomState: room has a new state; prev is the members before (nil: the
	// first state since our join), joined says our own join was just answered,
	// link that Node connects to every member it has no peer for (on our join, and
	// on the first answer after a registration with a server again).
	srvRoomState struct {
		room          string
		epoch         uint32
		members, prev []string
		joined, link  bool
	}
	srvRoomError struct{ e EventRoomError }
)

func (srvRoomState) srvEvent() {}
func (srvRoomError) srvEvent() {}

// joinRoom starts joining room name (a room we are in or joining: nothing).
func (s *serverSession) joinRoom(now proto.Instant, name string) error {
	if len(name) == 0 || len(name) > proto.MaxRoomNameLen {
		return ErrRoomName
	}
	if s.room(name) != nil {
		return nil
	}
	if len(s.rooms) >= maxRooms {
		s.stats.RoomRefused++
		return ErrTooManyRooms
	}
	s.dropLeave(name) // joining again: the leave is overtaken
	s.rooms = append(s.rooms, &roomJoin{name: name, txid: s.rng.Uint64(), next: now})
	s.timers.earlier(srvRoom, now)
	return nil
}

// leaveRoom leaves room name: its state is forgotten at once, and a room-leave is
// repeated until the server answers it.
func (s *serverSession) leaveRoom(now proto.Instant, name string) {
	i := slices.IndexFunc(s.rooms, func(r *roomJoin) bool { return r.name == name })
	if i < 0 {
		return
	}
	s.rooms = slices.Delete(s.rooms, i, i+1)
	if len(s.leaves) >= maxRoomLeaves {
		s.leaves = slices.Delete(s.leaves, 0, 1)
	}
	s.leaves = append(s.leaves, roomLeave{name: name, txid: s.rng.Uint64(), next: now})
	s.timers.earlier(srvRoom, now)
}

func (s *serverSession) room(name string) *roomJoin {
	if i := slices.IndexFunc(s.rooms, func(r *roomJoin) bool { return r.name == name }); i >= 0 {
		return s.rooms[i]
	}
	return nil
}

func (s *serverSession) dropLeave(name string) {
	s.leaves = slices.DeleteFunc(s.leaves, func(l roomLeave) bool { return l.name == name })
}

// strangerIntroduced: a new peer, id, was introduced. A peer that is no member of
// our rooms while we are in some is most likely one that just joined, whose
// notice we lost: refresh the rooms now (at most every roomEarlyRefresh), so the
// state that lists it arrives before its link is up (the introduction's start
// delay, 500 ms by default), and the application can tell a member's link from
// any other peer's.
func (s *serverSession) strangerIntroduced(now proto.Instant, id string) {
	if len(s.rooms) == 0 || now < s.roomEarlyAt {
		return
	}
	for _, r := range s.rooms {
		if !r.answered || slices.Contains(r.members, id) {
			return
		}
	}
	s.roomEarlyAt = now.Add(roomEarlyRefresh)
	for _, r := range s.rooms {
		r.next = now
	}
	s.timers.earlier(srvRoom, now)
}

// rejoinRooms: the node registered again (a server restart, or a move to another
// server of the cluster): every room is joined again at once.
func (s *serverSession) rejoinRooms(now proto.Instant) {
	for _, r := range s.rooms {
		r.tries, r.next, r.rebase = 0, now, true
	}
	for i := range s.leaves {
		s.leaves[i].next = now
	}
	if len(s.rooms)+len(s.leaves) > 0 {
		s.timers.earlier(srvRoom, now)
	}
}

// retryRooms sends the room-joins and room-leaves that are due: a join not yet
// answered, or a refresh (an answered one every roomRefresh), at the
// introduce-request's backoff until answered. From the checkAfterSends-th send on
// the server is checked (a dead one moves the node to the next, where
// onRegistered joins again); a join gives up with EventRoomError only after
// roomTries sends that a server which answers its keepalives left unanswered.
func (s *serverSession) retryRooms(now proto.Instant) {
	keep := s.rooms[:0]
	for _, r := range s.rooms {
		if now >= r.next {
			if r.tries >= roomTries && s.lastAnswer > r.since {
				s.emit(srvRoomError{EventRoomError{Room: r.name, Text: "no answer from the server"}})
				continue
			}
			if r.tries == 0 {
				r.since = now
			}
			r.tries++
			r.next = now.Add(min(introduceRTO<<(min(r.tries, roomTries)-1), introduceRTOMax))
			s.unanswered(now, r.tries)
			s.queue(&proto.RoomJoin{Session: s.session, TxID: r.txid, Room: []byte(r.name)})
		}
		s.timers.earlier(srvRoom, r.next)
		keep = append(keep, r)
	}
	clear(s.rooms[len(keep):])
	s.rooms = keep
	s.retryLeaves(now)
}

func (s *serverSession) retryLeaves(now proto.Instant) {
	keep := s.leaves[:0]
	for _, l := range s.leaves {
		if now >= l.next {
			if l.tries >= roomTries {
				continue // the server drops us when our session ends anyway
			}
			l.tries++
			l.next = now.Add(min(introduceRTO<<(l.tries-1), introduceRTOMax))
			s.unanswered(now, l.tries)
			s.queue(&proto.RoomLeave{Session: s.session, TxID: l.txid, Room: []byte(l.name)})
		}
		s.timers.earlier(srvRoom, l.next)
		keep = append(keep, l)
	}
	s.leaves = keep
}

// onRoomState takes a room-state from the current server: the answer to one of
// our joins or leaves (its txid), or a change sent unsolicited (txid = the session
// tag, [ERR-2]). A state older than the one held is dropped (Stats.RoomStale).
func (s *serverSession) onRoomState(now proto.Instant, m *proto.RoomState) error {
	if i := slices.IndexFunc(s.leaves, func(l roomLeave) bool { return l.txid == m.TxID }); i >= 0 {
		s.leaves = slices.Delete(s.leaves, i, i+1)
		return nil
	}
	r := s.room(string(m.Room))
	tagged := s.registered && m.TxID == proto.SessionTag(&s.session)
	if r == nil || (m.TxID != r.txid && !tagged) {
		return s.stats.count(ErrUnexpected)
	}
	own := m.TxID == r.txid
	if own {
		r.tries = 0
		r.next = now.Add(roomRefresh)
		s.timers.earlier(srvRoom, r.next)
	}
	rebased := own && r.rebase
	switch {
	case rebased:
		r.rebase = false // a new registration: this answer is the baseline
	case r.answered && m.Epoch == r.epoch:
		return nil // a refresh's answer: nothing changed
	case r.answered && m.Epoch < r.epoch:
		s.stats.RoomStale++
		return nil
	}
	listed := slices.ContainsFunc(m.Members, func(id []byte) bool { return bytes.Equal(id, s.cfg.ID) })
	joined := !r.answered && (own || listed)
	if !r.answered && !joined {
		return s.stats.count(ErrUnexpected) // a change from before our join went through
	}
	prev := r.members
	if joined {
		prev = nil
	}
	r.answered, r.epoch = true, m.Epoch
	r.members = make([]string, len(m.Members))
	for i, id := range m.Members {
		r.members[i] = string(id)
	}
	s.emit(srvRoomState{room: r.name, epoch: r.epoch, members: slices.Clone(r.members), prev: prev,
		joined: joined, link: joined || rebased})
	return nil
}

// roomError takes the server's refusal of one of our room-joins or room-leaves; it
// reports whether m answered one.
func (s *serverSession) roomError(now proto.Instant, m *proto.Error) bool {
	if i := slices.IndexFunc(s.leaves, func(l roomLeave) bool { return l.txid == m.TxID }); i >= 0 {
		s.leaves = slices.Delete(s.leaves, i, i+1)
		return true
	}
	i := slices.IndexFunc(s.rooms, func(r *roomJoin) bool { return r.txid == m.TxID })
	if i < 0 {
		return false
	}
	r := s.rooms[i]
	switch m.Code {
	case proto.CodeMoving:
		r.tries = 0 // joined again on the next server, once it admits us
		s.moving(now)
		return true
	case proto.CodeNoSession:
		r.tries = 0
		if s.registered {
			s.reregister(now)
		}
		return true
	case proto.CodeRateLimited:
		return true // the join's backoff repeats it
	}
	s.rooms = slices.Delete(s.rooms, i, i+1)
	s.emit(srvRoomError{EventRoomError{Room: r.name, Code: m.Code, Text: string(bytes.Clone(m.Text))}})
	return true
}

// JoinRoom joins room name on the node's server (PROTOCOL.md §13): the room-join
// is repeated until the server answers, then every roomRefresh while the node is
// in the room, and again after every registration (a server restart or a move).
// The answer comes as EventRoomState (or EventRoomError: room full, no answer);
// then the node connects to every member it has no peer for. A room the node is in
// or joining already: nothing. A name of 0 or over 64 bytes is ErrRoomName; a
// node in maxRooms (8) rooms refuses with ErrTooManyRooms.
func (n *Node) JoinRoom(now proto.Instant, name string) error {
	n.advance(now)
	if n.srv.closed {
		return ErrPeerClosed
	}
	err := n.srv.joinRoom(now, name)
	n.HandleTimeout(now)
	return err
}

// LeaveRoom leaves room name: the node forgets its state at once (no more room
// events) and tells the server, repeating until it answers. Links with its members
// stay; close them with ClosePeer.
func (n *Node) LeaveRoom(now proto.Instant, name string) {
	n.advance(now)
	n.srv.leaveRoom(now, name)
	n.HandleTimeout(now)
}

// Rooms returns the rooms the node is in (joined and answered), in join order.
func (n *Node) Rooms() []string {
	var out []string
	for _, r := range n.srv.rooms {
		if r.answered {
			out = append(out, r.name)
		}
	}
	return out
}

// onRoomState turns a room's new state into events, derived from the one before,
// and links to the members when the server session says so.
func (n *Node) onRoomState(now proto.Instant, e srvRoomState) {
	owner := ""
	if len(e.members) > 0 {
		owner = e.members[0]
	}
	n.emit(EventRoomState{Room: e.room, Epoch: e.epoch, Members: e.members, Owner: owner})
	if e.prev != nil {
		me := string(n.cfg.ID)
		for _, id := range e.members {
			if id != me && !slices.Contains(e.prev, id) {
				n.emit(EventRoomMemberJoined{Room: e.room, Member: id})
				n.memberAppeared(now, id)
			}
		}
		for _, id := range e.prev {
			if id != me && !slices.Contains(e.members, id) {
				n.emit(EventRoomMemberLeft{Room: e.room, Member: id})
			}
		}
		if len(e.prev) > 0 && e.prev[0] != owner {
			n.emit(EventRoomOwnerChanged{Room: e.room, Owner: owner, Previous: e.prev[0]})
		}
	}
	if e.link {
		for _, id := range e.members {
			n.linkMember(now, id)
		}
	}
}

// linkMember asks for an introduction of room member id unless the node has a
// live peer for it (or is id).
func (n *Node) linkMember(now proto.Instant, id string) {
	if id == string(n.cfg.ID) {
		return
	}
	if p, ok := n.byID[id]; ok && (p.closed || p.closing) {
		n.forget(p) // its connection ended: link anew
	}
	if _, ok := n.byID[id]; !ok {
		n.srv.introduce(now, id, false)
	}
}
