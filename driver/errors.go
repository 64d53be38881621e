package driver

import (
	"errors"
	"fmt"

	"github.com/natpass/natpass/proto"
)

// Errors of the Go API. Compare with errors.Is: most are returned wrapped, with
// the reason the machine gave.
var (
	// ErrClosed: the Node (or Server) was closed, or stopped on its own (the server
	// refused the ticket, or never answered).
	ErrClosed = errors.New("driver: node closed")
	// ErrConnClosed: the connection with the peer ended (Conn.Close, the peer's
	// close with an error code, idle timeout, protocol violation). A peer's normal
	// close (code 0) reads as io.EOF instead, once every message before it was read.
	ErrConnClosed = errors.New("driver: connection closed")
	// ErrPeerRefused: the server would not introduce the peer (unknown, not ready in
	// time, rate limited); the wrapped *PeerError has the code.
	ErrPeerRefused = errors.New("driver: server refused the introduction")
	// ErrReplaced: another node registered this node's peer ID (the newest
	// registration wins, on any server of the cluster): the node stopped and does
	// not register again, which would only take the ID back. It comes wrapped
	// together with ErrClosed, so errors.Is finds either.
	ErrReplaced = errors.New("driver: replaced by another node with the same ID")
	// ErrBadConfig: Listen or ListenServer got an unusable configuration.
	ErrBadConfig = errors.New("driver: bad configuration")
	// ErrNoOtherFamily: Node.OtherNAT on a node with no socket in the other IP
	// family (the servers have one family, the host routes only one, or
	// Config.ListenOther is "off").
	ErrNoOtherFamily = errors.New("driver: no socket in the other IP family")
)

// PeerError is the server's refusal to introduce a peer.
type PeerError struct {
	Peer string
	Code proto.ErrorCode
	Text string
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("driver: introduction to %q refused (code %d): %s", e.Peer, e.Code, e.Text)
}

func (e *PeerError) Unwrap() error { return ErrPeerRefused }

// Errors of rooms.
var (
	// ErrRoomRefused: the server would not let the node into the room, or never
	// answered; the wrapped *RoomError has the code.
	ErrRoomRefused = errors.New("driver: server refused the room")
	// ErrRoomFull: the room holds its server's member cap (error code 12). It
	// comes as a *RoomError, so errors.Is finds ErrRoomRefused too.
	ErrRoomFull = errors.New("driver: room full")
	// ErrRoomLeft: Room.Leave was called (or JoinRoom's context ended).
	ErrRoomLeft = errors.New("driver: left the room")
	// ErrNotMember: Room.Send named a peer that is not a member, or one the node
	// has no link with yet.
	ErrNotMember = errors.New("driver: not a linked member of the room")
)

// RoomError is the server's refusal of a room-join (Code 0: no answer).
type RoomError struct {
	Room string
	Code proto.ErrorCode
	Text string
}

func (e *RoomError) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("driver: room %q: %s", e.Room, e.Text)
	}
	return fmt.Sprintf("driver: room %q refused (code %d): %s", e.Room, e.Code, e.Text)
}

// Unwrap gives ErrRoomRefused, and ErrRoomFull for code 12.
func (e *RoomError) Unwrap() []error {
	if e.Code == proto.CodeRoomFull {
		return []error{ErrRoomRefused, ErrRoomFull}
	}
	return []error{ErrRoomRefused}
}
