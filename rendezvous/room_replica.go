package rendezvous

import (
	"github.com/natpass/natpass/proto"
)

// The member server's side of a room whose home is elsewhere (PROTOCOL.md §13.1):
// it keeps the home's latest state as a replica, answers its nodes' joins when the
// home answers, passes every newer state on to its members, and becomes the home
// itself when nobody holds the room.

// handleRoomState takes a cluster-room-state: the answer to one of our forwarded
// joins (its ask ID) or a notice of a change (ask ID 0, on srv.<id>.room).
func (s *Server) handleRoomState(now proto.Instant, subject string, p []byte) error {
	m := &s.roomStateMsg
	if err := m.Parse(p); err != nil {
		s.stats.Cluster.DropMalformed++
		return err
	}
	s.stats.Cluster.RoomStatesIn++
	var a *pendingAsk
	if m.AskID != 0 {
		if a = s.takeAsk(now, subject, askRoom); a == nil {
			s.stats.Cluster.DropUnknownAsk++ // a late answer, or a second home's
		}
	} else if subject != s.ownSubject+".room" {
		s.stats.Cluster.DropSubject++
		return ErrClusterSubject
	}
	asker := int32(nilSlot)
	if a != nil {
		if i, ok := s.peers.byCookie[a.cookie]; ok {
			asker = i
		}
	}
	if m.Status == proto.ClusterRoomFull {
		if asker != nilSlot {
			ss := &s.peers.sessions[asker]
			s.stats.Rooms.Full++
			_ = s.sendError(s.socketIndex(ss.local), ss.addr, a.txid, proto.CodeRoomFull, textRoomFull, unlimited)
		}
		return nil
	}
	r, ok := s.replicaFor(makeRoomName(m.Room), asker, a)
	if !ok {
		return nil
	}
	s.mergeReplica(r, m, asker)
	if asker != nilSlot {
		ss := &s.peers.sessions[asker]
		_ = s.sendRoomState(s.socketIndex(ss.local), ss.addr, a.txid, r)
	}
	if s.rooms.rooms[r].replica && !s.rooms.hasLocal(r) {
		s.forgetRoom(r)
	}
	s.sendRoomNotices()
	return nil
}

// replicaFor returns the replica of room name, created for asker's join when there
// is none; false when the state has nobody to go to here, or when this server is
// the room's home itself (two homes: its claim settles which keeps the room).
func (s *Server) replicaFor(name RoomName, asker int32, a *pendingAsk) (int32, bool) {
	t := &s.rooms
	r, ok := t.byName[name]
	switch {
	case ok && !t.rooms[r].replica:
		s.stats.Cluster.RoomStale++
		s.claimRoom(r)
		return nilSlot, false
	case ok:
		return r, true
	case asker == nilSlot:
		return nilSlot, false
	}
	if t.len() >= s.cfg.MaxRooms {
		if t.empty.head == nilSlot {
			ss := &s.peers.sessions[asker]
			s.stats.Rooms.TableFull++
			_ = s.sendError(s.socketIndex(ss.local), ss.addr, a.txid, proto.CodeServerFull, textServerFull, unlimited)
			return nilSlot, false // the home drops the member when its refreshes stop
		}
		s.forgetRoom(t.empty.head)
		s.stats.Rooms.Expired++
	}
	r = t.create(name, s.cfg.MaxRoomMembers, 0)
	t.rooms[r].replica = true
	return r, true
}

// mergeReplica makes m, the home's state, replica r's, when it is newer (or the
// replica is new), and owes it to every member of ours in it but asker, which gets
// the answer. A state of another home not newer than ours is answered with a
// refresh that raises that home's epoch past ours ([CLUSTER-5]).
func (s *Server) mergeReplica(r int32, m *proto.ClusterRoomState, asker int32) {
	t := &s.rooms
	rm := &t.rooms[r]
	if rm.home != 0 && m.Epoch <= rm.epoch {
		if m.Server != rm.home {
			s.stats.Cluster.RoomStale++
			s.refreshReplica(r)
		}
		return
	}
	for k := range rm.members {
		if j := rm.members[k].slot; j != nilSlot {
			t.unlinkSlot(j, r)
		}
	}
	rm.members = rm.members[:0]
	for k := range m.Members {
		x := &m.Members[k]
		mem := roomMember{server: x.Server, tag: x.Tag, peer: makePeerID(x.PeerID), slot: nilSlot}
		if j, ok := s.peers.byPeer[mem.peer]; ok && mem.server == s.id && s.peers.sessions[j].tag == mem.tag &&
			len(t.bySlot[j]) < s.cfg.MaxRoomsPerSession {
			mem.slot = j
		}
		t.add(r, mem)
	}
	rm.epoch, rm.home = m.Epoch, m.Server
	s.notifyRoom(r, asker, 0)
}

// refreshReplica sends the home a join of one of our members in replica r with
// the replica's home and epoch, so that a new home raises its epoch past ours.
func (s *Server) refreshReplica(r int32) {
	rm := &s.rooms.rooms[r]
	for k := range rm.members {
		if rm.members[k].slot == nilSlot {
			continue
		}
		m := proto.ClusterRoomJoin{Member: clusterMember(&rm.members[k]), HomeSeen: rm.home, EpochSeen: rm.epoch, Room: rm.name.Bytes()}
		if s.publish(roomSubject(rm.name.Bytes()), "", m.Append) {
			s.stats.Cluster.RoomJoinsSent++
		}
		return
	}
}

// formRoom: nobody holds the room a forwarded join (a) was for, so this server
// becomes its home ([CLUSTER-4]): from its replica, without the members of the
// old home's server, or new; then the join is served here.
func (s *Server) formRoom(a *pendingAsk) error {
	i, ok := s.peers.byCookie[a.cookie]
	if !ok {
		return nil // the node left meanwhile
	}
	ss := &s.peers.sessions[i]
	sock := s.socketIndex(ss.local)
	t := &s.rooms
	r, ok := t.byName[a.room]
	switch {
	case ok && !t.rooms[r].replica:
		// An earlier join made us the home already.
	case ok:
		s.reformRoom(r)
	default:
		var err error
		if r, err = s.newRoom(sock, ss.addr, a.txid, a.room); err != nil {
			return err
		}
		s.stats.Cluster.RoomsFormed++
	}
	rm := &t.rooms[r]
	if rm.createdUnixMs == 0 {
		rm.createdUnixMs = uint64(max(s.wall.TimeAt(s.now).UnixMilli(), 1))
		s.claimRoom(r)
	}
	return s.joinHome(r, i, sock, ss.addr, a.txid)
}

// reformRoom makes replica r a room this server is the home of: the old home's
// members go (their server is gone), the others stay (their servers' refreshes
// keep them), and the change raises the epoch past the replica's.
func (s *Server) reformRoom(r int32) {
	t := &s.rooms
	rm := &t.rooms[r]
	old := rm.home
	rm.replica, rm.home = false, s.id
	s.stats.Cluster.RoomsReformed++
	for k := len(rm.members) - 1; k >= 0; k-- {
		m := &rm.members[k]
		if m.server == old || m.server == s.id && m.slot == nilSlot {
			peer := m.peer
			t.removeAt(r, k, s.now)
			s.pushEvent(EventRoomLeft{Peer: peer, Room: rm.name})
			continue
		}
		m.seen = s.now
	}
	rm.epoch++
	t.sweepAt = proto.Min(t.sweepAt, s.now.Add(roomSweepInterval))
	s.interest.markRoom(rm.name)
	s.notifyRoom(r, nilSlot, 0)
}

// sweepRoomMembers drops, from every room this server is the home of, the remote
// members whose servers stopped refreshing them ([CLUSTER-6]).
func (s *Server) sweepRoomMembers(now proto.Instant) {
	t := &s.rooms
	if now < t.sweepAt {
		return
	}
	t.sweepAt = proto.Never
	// Bounded by the table: MaxRooms rooms of at most MaxRoomMembers members.
	for r := range t.rooms {
		rm := &t.rooms[r]
		if rm.replica || len(rm.members) == 0 {
			continue
		}
		for k := len(rm.members) - 1; k >= 0; k-- {
			m := &rm.members[k]
			if m.slot != nilSlot || m.server == s.id {
				continue
			}
			if now >= m.seen.Add(roomMemberLiveness) {
				s.stats.Cluster.RoomMembersTimedOut++
				s.leaveAt(int32(r), k)
				continue
			}
			t.sweepAt = now.Add(roomSweepInterval)
		}
	}
	s.sendRoomNotices()
}
