package rendezvous

import (
	"net/netip"

	"github.com/natpass/natpass/proto"
)

// PeerID is a peer ID held by value (1–64 bytes), so events and tables own their
// copy and it can key a map without allocating.
type PeerID struct {
	n uint8
	b [proto.MaxPeerIDLen]byte
}

// makePeerID copies id, which the caller has already bounded to MaxPeerIDLen.
func makePeerID(id []byte) PeerID {
	var p PeerID
	p.n = uint8(copy(p.b[:], id))
	return p
}

// Bytes returns the ID; the slice aliases p.
func (p *PeerID) Bytes() []byte { return p.b[:p.n] }

func (p PeerID) String() string { return string(p.b[:p.n]) }

// Event is what the server reports to its driver: one of the Event* types below.
// The set is closed (the unexported method seals it).
type Event interface{ isEvent() }

// EventRegistered: a node registered (Replaced: it took over the session of an
// earlier registration of the same peer ID).
type EventRegistered struct {
	Peer     PeerID
	Addr     netip.AddrPort
	Replaced bool
}

// EventRebound: a keepalive came from a new address on the session's socket; the
// session now lives there (the node's NAT rebound or the node moved).
type EventRebound struct {
	Peer     PeerID
	Old, New netip.AddrPort
}

// ExpireReason says why a session ended.
type ExpireReason uint8

const (
	ExpireTimeout       ExpireReason = iota + 1 // no keepalive for SessionTimeout
	ExpireTicketExpired                         // its ticket passed its expiry
	ExpireMoved                                 // the node registered on another server of the cluster
	ExpireReplaced                              // another node registered the ID (error 10 sent)
)

func (r ExpireReason) String() string {
	switch r {
	case ExpireTimeout:
		return "timeout"
	case ExpireTicketExpired:
		return "ticket expired"
	case ExpireMoved:
		return "moved to another server"
	case ExpireReplaced:
		return "replaced by a newer registration"
	}
	return "invalid"
}

// EventExpired: a session ended. Replacement by a new registration is reported as
// EventRegistered{Replaced: true} instead.
type EventExpired struct {
	Peer   PeerID
	Reason ExpireReason
}

// EventIntroduced: Requester asked for Target and both were sent an introduction.
type EventIntroduced struct {
	Requester, Target PeerID
	PairID            uint64
	Flags             uint8
}

// EventRoomJoined: Peer joined Room (a refresh is not reported).
type EventRoomJoined struct {
	Peer PeerID
	Room RoomName
}

// EventRoomLeft: Peer left Room, by room-leave or because its session ended.
type EventRoomLeft struct {
	Peer PeerID
	Room RoomName
}

func (EventRegistered) isEvent() {}
func (EventRoomJoined) isEvent() {}
func (EventRoomLeft) isEvent()   {}
func (EventRebound) isEvent()    {}
func (EventExpired) isEvent()    {}
func (EventIntroduced) isEvent() {}
