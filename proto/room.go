package proto

import (
	"bytes"
	"encoding/binary"
)

// Rooms (PROTOCOL.md §13): a node joins a named room on its server; the server
// answers, and tells every member on every change, with the room's member list.
const (
	TypeRoomJoin  MsgType = 0x0B
	TypeRoomLeave MsgType = 0x0C
	TypeRoomState MsgType = 0x0D

	// MaxRoomNameLen bounds a room name (bytes; any bytes).
	MaxRoomNameLen = 64
	// MaxRoomMembers bounds a room on the wire: a room-state lists every member
	// and still fits a datagram (16 IDs of 64 bytes: 1,123 bytes in all).
	MaxRoomMembers = 16
)

// CodeRoomFull: the room holds its server's member cap.
const CodeRoomFull ErrorCode = 12

// RoomJoin (client → server) joins room Room, or confirms membership (a join of a
// room the session is in is a refresh); RoomState answers it.
type RoomJoin struct {
	Session Session
	TxID    uint64
	Room    []byte
}

func (m *RoomJoin) Append(b []byte) []byte {
	return appendRoomRequest(b, TypeRoomJoin, &m.Session, m.TxID, m.Room)
}
func (m *RoomJoin) Parse(p []byte) error {
	return parseRoomRequest(p, TypeRoomJoin, &m.Session, &m.TxID, &m.Room)
}

// RoomLeave (client → server) leaves room Room; RoomState answers it, without the
// leaver.
type RoomLeave struct {
	Session Session
	TxID    uint64
	Room    []byte
}

func (m *RoomLeave) Append(b []byte) []byte {
	return appendRoomRequest(b, TypeRoomLeave, &m.Session, m.TxID, m.Room)
}
func (m *RoomLeave) Parse(p []byte) error {
	return parseRoomRequest(p, TypeRoomLeave, &m.Session, &m.TxID, &m.Room)
}

func appendRoomRequest(b []byte, t MsgType, s *Session, txid uint64, room []byte) []byte {
	b = AppendHeader(b, t)
	b = append(b, s[:]...)
	b = binary.BigEndian.AppendUint64(b, txid)
	return appendVec8(b, "room name", room, 1, MaxRoomNameLen)
}

func parseRoomRequest(p []byte, t MsgType, s *Session, txid *uint64, room *[]byte) error {
	rest, err := body(p, t)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	r.array(s[:])
	*txid = r.u64()
	*room = r.vec8(1, MaxRoomNameLen)
	return r.done()
}

// RoomState (server → client) is room Room at Epoch: its members in the order they
// joined, so the first is the owner (the earliest member still present). TxID is
// the join or leave it answers, or, sent unsolicited on a change, the session tag
// ([ERR-2]). A node keeps the state of the highest epoch it has seen.
type RoomState struct {
	TxID    uint64
	Room    []byte
	Epoch   uint32
	Members [][]byte
}

func (m *RoomState) Append(b []byte) []byte {
	mustLen("room members", len(m.Members), 0, MaxRoomMembers)
	b = AppendHeader(b, TypeRoomState)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = appendVec8(b, "room name", m.Room, 1, MaxRoomNameLen)
	b = binary.BigEndian.AppendUint32(b, m.Epoch)
	b = append(b, byte(len(m.Members)))
	for _, id := range m.Members {
		b = appendVec8(b, "room member", id, 1, MaxPeerIDLen)
	}
	return b
}

func (m *RoomState) Parse(p []byte) error {
	rest, err := body(p, TypeRoomState)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.TxID = r.u64()
	m.Room = r.vec8(1, MaxRoomNameLen)
	m.Epoch = r.u32()
	n := int(r.u8())
	if n > MaxRoomMembers {
		r.fail(ErrTooLong)
	}
	m.Members = m.Members[:0]
	for i := 0; i < n && r.err == nil; i++ {
		id := r.vec8(1, MaxPeerIDLen)
		for _, prev := range m.Members {
			if r.err == nil && bytes.Equal(prev, id) {
				r.fail(ErrMalformed) // [ROOM-1]: each member once
			}
		}
		m.Members = append(m.Members, id)
	}
	return r.done()
}
