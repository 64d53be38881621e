package proto

import (
	"bytes"
	"encoding/binary"
)

// Rooms across a cluster (PROTOCOL.md §13.1): a room has one home server, the one
// subscribed to the room's subject; the other servers forward their members' joins
// and leaves there and pass the home's states on to their nodes.
const (
	TypeClusterRoomJoin  MsgType = 0x46
	TypeClusterRoomLeave MsgType = 0x47
	TypeClusterRoomState MsgType = 0x48
	TypeClusterRoomClaim MsgType = 0x49
)

// ClusterRoomFull is a cluster-room-state's status when the home refused a join
// because the room holds its member cap (error 12 to the node).
const ClusterRoomFull ClusterStatus = 5

// ClusterRoomMember is one member of a room as the servers name it: the server
// holding its session, its registration tag and its peer ID.
type ClusterRoomMember struct {
	Server uint64
	Tag    [RegTagLen]byte
	PeerID []byte
}

func (m *ClusterRoomMember) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, m.Server)
	b = append(b, m.Tag[:]...)
	return appendVec8(b, "peer id", m.PeerID, 1, MaxPeerIDLen)
}

func (r *reader) roomMember(m *ClusterRoomMember) {
	m.Server = r.u64()
	r.array(m.Tag[:])
	m.PeerID = r.vec8(1, MaxPeerIDLen)
}

// ClusterRoomJoin (to the room's subject) asks the room's home to add Member, or
// to refresh it when it is in the room. AskID names the request (its answer, a
// ClusterRoomState, goes to the message's reply subject); 0 when no answer is
// wanted (a handover). HomeSeen and EpochSeen are the home and epoch of the state
// the sending server holds for the room (0 and 0: none): a home that is not
// HomeSeen and whose epoch is not past EpochSeen moves its epoch past it
// ([CLUSTER-5]).
type ClusterRoomJoin struct {
	AskID     uint64
	Member    ClusterRoomMember
	HomeSeen  uint64
	EpochSeen uint32
	Room      []byte
}

func (m *ClusterRoomJoin) Append(b []byte) []byte {
	b = AppendHeader(b, TypeClusterRoomJoin)
	b = binary.BigEndian.AppendUint64(b, m.AskID)
	b = m.Member.append(b)
	b = binary.BigEndian.AppendUint64(b, m.HomeSeen)
	b = binary.BigEndian.AppendUint32(b, m.EpochSeen)
	return appendVec8(b, "room name", m.Room, 1, MaxRoomNameLen)
}

func (m *ClusterRoomJoin) Parse(p []byte) error {
	rest, err := body(p, TypeClusterRoomJoin)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.AskID = r.u64()
	r.roomMember(&m.Member)
	m.HomeSeen = r.u64()
	m.EpochSeen = r.u32()
	m.Room = r.vec8(1, MaxRoomNameLen)
	return r.done()
}

// ClusterRoomLeave (to the room's subject, no reply) tells the room's home that
// Member left the room or its session ended.
type ClusterRoomLeave struct {
	Member ClusterRoomMember
	Room   []byte
}

func (m *ClusterRoomLeave) Append(b []byte) []byte {
	b = AppendHeader(b, TypeClusterRoomLeave)
	b = m.Member.append(b)
	return appendVec8(b, "room name", m.Room, 1, MaxRoomNameLen)
}

func (m *ClusterRoomLeave) Parse(p []byte) error {
	rest, err := body(p, TypeClusterRoomLeave)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	r.roomMember(&m.Member)
	m.Room = r.vec8(1, MaxRoomNameLen)
	return r.done()
}

// ClusterRoomState (from the home Server) is room Room at Epoch, its members in
// join order: the answer to request AskID (on its reply subject), or, with AskID
// 0, a notice of a change (to srv.<id>.room of each server holding members).
// Status is ClusterOK, or ClusterRoomFull when it refuses a join (the members are
// the room's, unchanged).
type ClusterRoomState struct {
	AskID   uint64
	Server  uint64
	Status  ClusterStatus
	Epoch   uint32
	Room    []byte
	Members []ClusterRoomMember
}

func (m *ClusterRoomState) Append(b []byte) []byte {
	mustLen("room members", len(m.Members), 0, MaxRoomMembers)
	if m.Status != ClusterOK && m.Status != ClusterRoomFull {
		panic("proto: ClusterRoomState status")
	}
	b = AppendHeader(b, TypeClusterRoomState)
	b = binary.BigEndian.AppendUint64(b, m.AskID)
	b = binary.BigEndian.AppendUint64(b, m.Server)
	b = append(b, byte(m.Status))
	b = binary.BigEndian.AppendUint32(b, m.Epoch)
	b = appendVec8(b, "room name", m.Room, 1, MaxRoomNameLen)
	b = append(b, byte(len(m.Members)))
	for i := range m.Members {
		b = m.Members[i].append(b)
	}
	return b
}

func (m *ClusterRoomState) Parse(p []byte) error {
	rest, err := body(p, TypeClusterRoomState)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.AskID = r.u64()
	m.Server = r.u64()
	m.Status = ClusterStatus(r.u8())
	if r.err == nil && m.Status != ClusterOK && m.Status != ClusterRoomFull {
		r.fail(ErrMalformed) // [CLUSTER-3]
	}
	m.Epoch = r.u32()
	m.Room = r.vec8(1, MaxRoomNameLen)
	n := int(r.u8())
	if r.err == nil && n > MaxRoomMembers {
		r.fail(ErrTooLong)
	}
	m.Members = m.Members[:0]
	for i := 0; i < n && r.err == nil; i++ {
		m.Members = append(m.Members, ClusterRoomMember{})
		x := &m.Members[len(m.Members)-1]
		r.roomMember(x)
		for k := range m.Members[:len(m.Members)-1] {
			if r.err == nil && bytes.Equal(m.Members[k].PeerID, x.PeerID) {
				r.fail(ErrMalformed) // [CLUSTER-3]: each peer ID once
			}
		}
	}
	return r.done()
}

// ClusterRoomClaim (to the room's subject, no reply) announces that Server holds
// room Room as its home since CreatedUnixMs. Of two homes of one room the older
// (CreatedUnixMs, then the lower server ID) keeps it ([CLUSTER-4]).
type ClusterRoomClaim struct {
	Server        uint64
	CreatedUnixMs uint64
	Room          []byte
}

func (m *ClusterRoomClaim) Append(b []byte) []byte {
	b = AppendHeader(b, TypeClusterRoomClaim)
	b = binary.BigEndian.AppendUint64(b, m.Server)
	b = binary.BigEndian.AppendUint64(b, m.CreatedUnixMs)
	return appendVec8(b, "room name", m.Room, 1, MaxRoomNameLen)
}

func (m *ClusterRoomClaim) Parse(p []byte) error {
	rest, err := body(p, TypeClusterRoomClaim)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.Server = r.u64()
	m.CreatedUnixMs = r.u64()
	m.Room = r.vec8(1, MaxRoomNameLen)
	return r.done()
}
