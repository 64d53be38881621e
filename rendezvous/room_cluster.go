package rendezvous

import (
	"encoding/hex"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// Rooms across a cluster (PROTOCOL.md §13.1). A room's home is the server
// subscribed to its subject; it holds the member list (sessions of any server) and
// the epoch. Any other server with members in the room keeps a replica: the home's
// latest state, with its own members resolved to session slots so that it can pass
// each state on to them. Every room-join a node sends to a server that is not the
// home is forwarded to the room's subject (refreshes too: they keep the member
// alive at the home); "no responders" makes the forwarding server the home.
const (
	// roomMemberLiveness: a remote member not refreshed for this long is dropped as
	// left (three of its node's 10 s refreshes, [CLUSTER-6]).
	roomMemberLiveness = 30 * time.Second
	// roomSweepInterval: how often a home checks its remote members' liveness.
	roomSweepInterval = 5 * time.Second
	// roomClaimInterval: a home claims its room again, when another server's request
	// reaches it, at most this often, so two homes made at once find each other
	// even when their first claims crossed unseen ([CLUSTER-4]).
	roomClaimInterval = 10 * time.Second
)

// roomSubject is a room's subject: "room." and its name in hex.
func roomSubject(name []byte) string { return "room." + hex.EncodeToString(name) }

// clusterMember names room member m for another server.
func clusterMember(m *roomMember) proto.ClusterRoomMember {
	return proto.ClusterRoomMember{Server: m.server, Tag: m.tag, PeerID: m.peer.Bytes()}
}

// forwardRoomJoin sends session i's room-join (txid) to the home of room name,
// with the home and epoch of the replica this server holds ([CLUSTER-4], [CLUSTER-5]).
func (s *Server) forwardRoomJoin(now proto.Instant, sock int, from netip.AddrPort, i int32, txid uint64, name RoomName) error {
	t := &s.rooms
	r, ok := t.byName[name]
	in := ok && t.index(r, i) >= 0
	if !in && len(t.bySlot[i]) >= s.cfg.MaxRoomsPerSession || !ok && t.len() >= s.cfg.MaxRooms && t.empty.head == nilSlot {
		s.stats.Rooms.TableFull++
		_ = s.sendError(sock, from, txid, proto.CodeServerFull, textServerFull, unlimited)
		return ErrRoomsFull
	}
	a := s.addAsk(now, askRoom)
	a.cookie, a.txid, a.room = s.peers.sessions[i].cookie, txid, name
	me := s.localMember(i)
	m := proto.ClusterRoomJoin{AskID: a.id, Member: clusterMember(&me), Room: name.Bytes()}
	if ok {
		m.HomeSeen, m.EpochSeen = t.rooms[r].home, t.rooms[r].epoch
	}
	if s.publish(roomSubject(name.Bytes()), s.replySubject(a.id), m.Append) {
		s.stats.Cluster.RoomJoinsSent++
	}
	return nil
}

// handleRoomJoinAsk serves a cluster-room-join at the room's home.
func (s *Server) handleRoomJoinAsk(now proto.Instant, p []byte, reply string) error {
	m := &s.roomJoinMsg
	if err := m.Parse(p); err != nil {
		s.stats.Cluster.DropMalformed++
		return err
	}
	r, ok := s.rooms.byName[makeRoomName(m.Room)]
	if !ok || s.rooms.rooms[r].replica {
		s.stats.Cluster.DropRoomNotHome++ // we handed the room over, or forgot it
		return nil
	}
	mem := roomMember{server: m.Member.Server, tag: m.Member.Tag, peer: makePeerID(m.Member.PeerID), slot: nilSlot, seen: now}
	if mem.server == s.id {
		j, ok := s.peers.byPeer[mem.peer]
		if !ok || s.peers.sessions[j].tag != mem.tag {
			return nil // our own member, whose session ended meanwhile
		}
		mem.slot = j
	}
	s.stats.Cluster.RoomJoinsServed++
	status, changed := s.homeJoin(r, mem, m.HomeSeen, m.EpochSeen)
	if reply != "" {
		s.publishRoomState(reply, m.AskID, r, status)
	}
	var skip uint64 // the server that asked has the answer
	if reply != "" {
		skip = mem.server
	}
	if changed {
		s.notifyRoom(r, mem.slot, skip)
		s.sendRoomNotices()
	}
	if rm := &s.rooms.rooms[r]; mem.server != s.id && now >= rm.claimedAt.Add(roomClaimInterval) {
		s.claimRoom(r)
	}
	return nil
}

// homeJoin adds mem to room r (this server is its home) or refreshes it, after
// raising the epoch past a replica's of another home ([CLUSTER-5]); it reports
// the answer's status and whether the room changed.
func (s *Server) homeJoin(r int32, mem roomMember, homeSeen uint64, epochSeen uint32) (proto.ClusterStatus, bool) {
	t := &s.rooms
	rm := &t.rooms[r]
	before := rm.epoch
	raised := homeSeen != 0 && homeSeen != s.id && epochSeen >= rm.epoch
	if raised {
		rm.epoch = epochSeen
		s.stats.Cluster.RoomEpochRaises++
	}
	status := proto.ClusterOK
	k := t.indexPeer(r, &mem.peer)
	switch {
	case k >= 0 && rm.members[k].server == mem.server && rm.members[k].tag == mem.tag:
		rm.members[k].seen = s.now // a refresh
		s.stats.Rooms.Refreshes++
	case k < 0 && len(rm.members) >= s.cfg.MaxRoomMembers:
		s.stats.Rooms.Full++
		status = proto.ClusterRoomFull
	case mem.slot != nilSlot && k < 0 && len(t.bySlot[mem.slot]) >= s.cfg.MaxRoomsPerSession:
		s.stats.Rooms.TableFull++
		status = proto.ClusterRoomFull
	default:
		if k >= 0 {
			s.leaveAt(r, k) // the peer ID in another session: it moved
		}
		t.add(r, mem)
		rm.epoch++
		s.stats.Rooms.Joins++
		s.pushEvent(EventRoomJoined{Peer: mem.peer, Room: rm.name})
		if mem.slot == nilSlot && t.sweepAt == proto.Never {
			t.sweepAt = s.now.Add(roomSweepInterval)
		}
	}
	if raised && rm.epoch == epochSeen {
		rm.epoch++ // the raise alone is a change
	}
	return status, rm.epoch != before
}

// publishRoomState sends room r's state (this server is its home) to subject,
// answering ask (0: a notice).
func (s *Server) publishRoomState(subject string, ask uint64, r int32, status proto.ClusterStatus) {
	rm := &s.rooms.rooms[r]
	members := s.roomClusterMembers[:0]
	for k := range rm.members {
		members = append(members, clusterMember(&rm.members[k]))
	}
	m := proto.ClusterRoomState{AskID: ask, Server: s.id, Status: status, Epoch: rm.epoch, Room: rm.name.Bytes(), Members: members}
	if s.publish(subject, "", m.Append) {
		s.stats.Cluster.RoomStatesSent++
	}
}

// noticeServers sends room r's state to every other server with members in it but
// skip, once each ([CLUSTER-7]).
func (s *Server) noticeServers(r int32, skip uint64) {
	var told [proto.MaxRoomMembers]uint64
	n := 0
	rm := &s.rooms.rooms[r]
	for k := range rm.members {
		id := rm.members[k].server
		if id == s.id || id == skip || contains(told[:n], id) {
			continue
		}
		told[n] = id
		n++
		s.publishRoomState(serverSubject(id)+".room", 0, r, proto.ClusterOK)
	}
}

func contains(list []uint64, x uint64) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}

// handleRoomLeaveAsk serves a cluster-room-leave at the room's home.
func (s *Server) handleRoomLeaveAsk(p []byte) error {
	m := &s.roomLeaveMsg
	if err := m.Parse(p); err != nil {
		s.stats.Cluster.DropMalformed++
		return err
	}
	r, ok := s.rooms.byName[makeRoomName(m.Room)]
	if !ok || s.rooms.rooms[r].replica {
		s.stats.Cluster.DropRoomNotHome++
		return nil
	}
	id := makePeerID(m.Member.PeerID)
	k := s.rooms.indexPeer(r, &id)
	if k < 0 || s.rooms.rooms[r].members[k].server != m.Member.Server || s.rooms.rooms[r].members[k].tag != m.Member.Tag {
		return nil // gone already, or that peer ID's newer session
	}
	s.stats.Cluster.RoomLeavesServed++
	s.leaveAt(r, k)
	s.sendRoomNotices()
	return nil
}

// replicaLeave takes our k-th member out of replica r and tells the home.
func (s *Server) replicaLeave(r int32, k int) {
	t := &s.rooms
	rm := &t.rooms[r]
	m := proto.ClusterRoomLeave{Member: clusterMember(&rm.members[k]), Room: rm.name.Bytes()}
	if s.publish(roomSubject(rm.name.Bytes()), "", m.Append) {
		s.stats.Cluster.RoomLeavesSent++
	}
	s.stats.Rooms.Leaves++
	s.pushEvent(EventRoomLeft{Peer: rm.members[k].peer, Room: rm.name})
	t.removeAt(r, k, s.now)
}

// claimRoom publishes this server's claim to room r, which it is the home of.
func (s *Server) claimRoom(r int32) {
	rm := &s.rooms.rooms[r]
	rm.claimedAt = s.now
	m := proto.ClusterRoomClaim{Server: s.id, CreatedUnixMs: rm.createdUnixMs, Room: rm.name.Bytes()}
	if s.publish(roomSubject(rm.name.Bytes()), "", m.Append) {
		s.stats.Cluster.RoomClaims++
	}
}

// handleRoomClaim: another server claims a room. Of two homes the older keeps it;
// the newer hands its members over ([CLUSTER-4]).
func (s *Server) handleRoomClaim(p []byte) error {
	m := &s.roomClaimMsg
	if err := m.Parse(p); err != nil {
		s.stats.Cluster.DropMalformed++
		return err
	}
	r, ok := s.rooms.byName[makeRoomName(m.Room)]
	if m.Server == s.id || !ok || s.rooms.rooms[r].replica {
		return nil // our own claim echoed, or not a room we are the home of
	}
	rm := &s.rooms.rooms[r]
	if rm.createdUnixMs < m.CreatedUnixMs || rm.createdUnixMs == m.CreatedUnixMs && s.id < m.Server {
		s.claimRoom(r) // ours is older: tell the other again
		return nil
	}
	s.handOver(r, m.Server)
	return nil
}

// handOver gives room r to home: each member joins there (no answer wanted), and
// this server keeps a replica for its own members.
func (s *Server) handOver(r int32, home uint64) {
	t := &s.rooms
	rm := &t.rooms[r]
	s.stats.Cluster.RoomHandovers++
	for k := range rm.members {
		m := proto.ClusterRoomJoin{Member: clusterMember(&rm.members[k]), HomeSeen: s.id, EpochSeen: rm.epoch, Room: rm.name.Bytes()}
		if s.publish(roomSubject(rm.name.Bytes()), "", m.Append) {
			s.stats.Cluster.RoomJoinsSent++
		}
	}
	if rm.listed {
		t.empty.remove(t.links, r)
		rm.listed = false
	}
	rm.replica, rm.home, rm.createdUnixMs = true, home, 0
	s.interest.markRoom(rm.name)
	if !t.hasLocal(r) {
		s.forgetRoom(r)
	}
}
