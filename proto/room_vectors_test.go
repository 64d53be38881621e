package proto

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func init() {
	add := func(file, name string, m message, fresh func() message) {
		vectorCases = append(vectorCases, vectorCase{File: file, Name: name, Msg: m, New: fresh})
	}
	add("room-join", "room-join", &RoomJoin{Session: vecSession, TxID: 0x0102030405060708, Room: []byte("lobby")},
		func() message { return new(RoomJoin) })
	add("room-leave", "room-leave", &RoomLeave{Session: vecSession, TxID: 9, Room: []byte("lobby")},
		func() message { return new(RoomLeave) })
	newState := func() message { return new(RoomState) }
	add("room-state", "room-state", &RoomState{TxID: 0x0102030405060708, Room: []byte("lobby"), Epoch: 3,
		Members: [][]byte{[]byte("alice"), []byte("bob"), []byte("carol")}}, newState)
	add("room-state", "room-state-empty", &RoomState{TxID: 9, Room: []byte("lobby"), Epoch: 4}, newState)
	full := &RoomState{TxID: 0x5e55104e01020304, Room: bytes.Repeat([]byte{'r'}, MaxRoomNameLen), Epoch: 1 << 31}
	for i := range MaxRoomMembers {
		full.Members = append(full.Members, bytes.Repeat([]byte{byte('a' + i)}, MaxPeerIDLen))
	}
	add("room-state", "room-state-largest", full, newState)
}

// roomRejectVectors are the must-reject inputs of the room messages (§13).
func roomRejectVectors() []rejectVector {
	var out []rejectVector
	add := func(typ, name, rule, class string, p []byte) {
		out = append(out, rejectVector{Name: kebab(typ) + "-" + name, Type: typ, Hex: hex.EncodeToString(p), Rule: rule, Error: class})
	}
	room65 := bytes.Repeat([]byte{'r'}, MaxRoomNameLen+1)
	join := (&RoomJoin{Session: vecSession, TxID: 1, Room: []byte("lobby")}).Append(nil)
	add("RoomJoin", "name-empty", "ROOM-1", "malformed", cat(hdr(TypeRoomJoin), sess, be64(1), vec8(nil)))
	add("RoomJoin", "name-65-bytes", "ROOM-1", "too-long", cat(hdr(TypeRoomJoin), sess, be64(1), vec8(room65)))
	add("RoomJoin", "byte-after-name", "WIRE-1", "trailing", plusByte(join))
	add("RoomLeave", "cut-short", "WIRE-2", "short", minusByte((&RoomLeave{Session: vecSession, TxID: 1, Room: []byte("x")}).Append(nil)))
	state := func(members ...[]byte) []byte {
		p := cat(hdr(TypeRoomState), be64(1), vec8([]byte("lobby")), be32(2), []byte{byte(len(members))})
		for _, m := range members {
			p = append(p, vec8(m)...)
		}
		return p
	}
	add("RoomState", "member-twice", "ROOM-1", "malformed", state(bob, []byte("x"), bob))
	add("RoomState", "member-empty", "ROOM-1", "malformed", state(bob, nil))
	add("RoomState", "member-65-bytes", "ROOM-1", "too-long", state(id65))
	many := make([][]byte, MaxRoomMembers+1)
	for i := range many {
		many[i] = []byte{byte('a' + i)}
	}
	add("RoomState", "17-members", "ROOM-1", "too-long", state(many...))
	add("RoomState", "count-beyond-members", "WIRE-2", "short", minusByte(state(bob)))
	add("RoomState", "byte-after-members", "WIRE-1", "trailing", plusByte(state(bob)))
	return out
}

func FuzzRoomJoin(f *testing.F)  { fuzzMessage(f, func() message { return new(RoomJoin) }) }
func FuzzRoomLeave(f *testing.F) { fuzzMessage(f, func() message { return new(RoomLeave) }) }
func FuzzRoomState(f *testing.F) { fuzzMessage(f, func() message { return new(RoomState) }) }
