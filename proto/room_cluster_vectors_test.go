package proto

import "encoding/hex"

// The room messages of the cluster (PROTOCOL.md §13.1): layout vectors in
// cluster.json beside the other cluster messages, must-reject ones in reject.json.
var (
	vecRoomMemberA = ClusterRoomMember{Server: 0x5e7e000000000001, Tag: [RegTagLen]byte{0: 0x7a, 15: 0x01}, PeerID: []byte("alice")}
	vecRoomMemberB = ClusterRoomMember{Server: 0x5e7e000000000002, Tag: [RegTagLen]byte{0: 0x62, 15: 0x02}, PeerID: []byte("bob")}
)

func init() {
	add := func(name string, m message, fresh func() message) {
		vectorCases = append(vectorCases, vectorCase{File: "cluster", Name: name, Msg: m, New: fresh})
	}
	newJoin := func() message { return new(ClusterRoomJoin) }
	add("cluster-room-join", &ClusterRoomJoin{AskID: 11, Member: vecRoomMemberA, HomeSeen: 0x5e7e000000000003, EpochSeen: 41,
		Room: []byte("lobby")}, newJoin)
	add("cluster-room-join-first", &ClusterRoomJoin{AskID: 12, Member: vecRoomMemberB, Room: []byte("lobby")}, newJoin)
	add("cluster-room-leave", &ClusterRoomLeave{Member: vecRoomMemberA, Room: []byte("lobby")},
		func() message { return new(ClusterRoomLeave) })
	newState := func() message { return new(ClusterRoomState) }
	add("cluster-room-state", &ClusterRoomState{AskID: 11, Server: 0x5e7e000000000002, Epoch: 42, Room: []byte("lobby"),
		Members: []ClusterRoomMember{vecRoomMemberB, vecRoomMemberA}}, newState)
	add("cluster-room-state-notice-empty", &ClusterRoomState{Server: 2, Epoch: 43, Room: []byte("lobby")}, newState)
	add("cluster-room-state-full", &ClusterRoomState{AskID: 12, Server: 2, Status: ClusterRoomFull, Epoch: 43, Room: []byte("lobby"),
		Members: []ClusterRoomMember{vecRoomMemberA}}, newState)
	add("cluster-room-claim", &ClusterRoomClaim{Server: 0x5e7e000000000002, CreatedUnixMs: 1798761600123, Room: []byte("lobby")},
		func() message { return new(ClusterRoomClaim) })
}

// roomClusterRejectVectors are the must-reject inputs of the cluster's room messages.
func roomClusterRejectVectors() []rejectVector {
	var out []rejectVector
	add := func(typ, name, rule, class string, p []byte) {
		out = append(out, rejectVector{Name: kebab(typ) + "-" + name, Type: typ, Hex: hex.EncodeToString(p), Rule: rule, Error: class})
	}
	tag := make([]byte, RegTagLen)
	member := func(id []byte) []byte { return cat(be64(1), tag, vec8(id)) }
	room := vec8([]byte("r"))

	join := (&ClusterRoomJoin{AskID: 1, Member: ClusterRoomMember{Server: 1, PeerID: bob}, Room: []byte("r")}).Append(nil)
	add("ClusterRoomJoin", "cut-short", "WIRE-2", "short", minusByte(join))
	add("ClusterRoomJoin", "byte-after-room", "WIRE-1", "trailing", plusByte(join))
	add("ClusterRoomJoin", "peer-id-empty", "CLUSTER-1", "malformed", cat(hdr(TypeClusterRoomJoin), be64(1), member(nil), be64(0), be32(0), room))
	add("ClusterRoomJoin", "room-name-65", "ROOM-1", "too-long", cat(hdr(TypeClusterRoomJoin), be64(1), member(bob), be64(0), be32(0), []byte{65}))

	leave := (&ClusterRoomLeave{Member: ClusterRoomMember{Server: 1, PeerID: bob}, Room: []byte("r")}).Append(nil)
	add("ClusterRoomLeave", "cut-short", "WIRE-2", "short", minusByte(leave))
	add("ClusterRoomLeave", "room-name-empty", "ROOM-1", "malformed", cat(hdr(TypeClusterRoomLeave), member(bob), vec8(nil)))

	state := func(status byte, n byte, members ...[]byte) []byte {
		return cat(hdr(TypeClusterRoomState), be64(1), be64(2), []byte{status}, be32(3), room, []byte{n}, cat(members...))
	}
	add("ClusterRoomState", "status-1", "CLUSTER-3", "malformed", state(1, 0))
	add("ClusterRoomState", "17-members", "CLUSTER-3", "too-long", state(0, 17))
	add("ClusterRoomState", "member-twice", "CLUSTER-3", "malformed", state(0, 2, member(bob), member(bob)))
	add("ClusterRoomState", "fewer-members-than-count", "WIRE-2", "short", state(0, 2, member(bob)))
	add("ClusterRoomState", "byte-after-members", "WIRE-1", "trailing", cat(state(0, 1, member(bob)), []byte{0}))

	claim := (&ClusterRoomClaim{Server: 1, CreatedUnixMs: 2, Room: []byte("r")}).Append(nil)
	add("ClusterRoomClaim", "cut-short", "WIRE-2", "short", minusByte(claim))
	add("ClusterRoomClaim", "byte-after-room", "WIRE-1", "trailing", plusByte(claim))
	return out
}
