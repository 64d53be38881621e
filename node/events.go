package node

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// Event is one of the Event* types below.
type Event interface{ nodeEvent() }

// EventRegistered: the server Server admitted the node and sees it at Observed.
// It comes again after every re-registration: with another Server after a move
// (EventServerChanged).
type EventRegistered struct {
	Observed netip.AddrPort
	Server   netip.AddrPort
}

// EventServerChanged: the node left its server From and is registering with To,
// the next of Config.Servers (DESIGN §12). Reason says why: "server not
// answering" (keepalives unacknowledged), "server moving" (it answered code 11),
// "no answer to register", "server full". Direct paths carry on; a relayed peer
// reports path none now and the relay again, on To, with reason "server changed"
// once both ends hold a channel there.
type EventServerChanged struct {
	From, To netip.AddrPort
	Reason   string
}

// EventNATReport: the node measured the NAT in front of it (DESIGN §6.2): Behavior
// and Observed are Local's family's. On a dual-stack node (Config.OtherLocal)
// OtherBehavior and OtherObserved are the other family's, zero until it is
// measured. The first report is always Local's family's (with the other's when
// that finished first); it comes again when the other family's measurement
// completes later, with the latest of both.
type EventNATReport struct {
	Behavior      proto.NATBehavior
	Observed      netip.AddrPort
	OtherBehavior proto.NATBehavior
	OtherObserved netip.AddrPort
}

// EventOpenSockets asks the owner to open N more UDP sockets and report their
// addresses with HandleSockets(now, Tag, addrs).
type EventOpenSockets struct {
	Tag uint64
	N   int
}

// EventIntroduced: the server introduced a peer (we asked, or it asked for us).
type EventIntroduced struct {
	Peer     string
	Strategy proto.Strategy
	// RelayOnly: the introduction shared no addresses (one side asked for the
	// relay only, RelayForce): the pair goes through the relay and nothing is
	// punched, whatever Strategy the NATs would allow.
	RelayOnly bool
}

// EventPathChanged: a peer's traffic moved. Reason says why, for humans and logs
// ("direct confirmed", "direct timed out", "symmetric×symmetric", ...).
type EventPathChanged struct {
	Peer          string
	Kind          proto.PathKind
	Local, Remote netip.AddrPort
	RTT           time.Duration
	Reason        string
}

// EventPeerError: the server refused a request about a peer.
type EventPeerError struct {
	Peer string
	Code proto.ErrorCode
	Text string
}

// EventClosed: the node stopped; Reason says why. Code is the server's error code
// that stopped it: proto.CodeReplaced (another node registered this peer ID: the
// newest registration wins), CodeBadTicket, CodeExpiredTicket; 0 when no server
// answered.
type EventClosed struct {
	Reason string
	Code   proto.ErrorCode
}

// EventConnected: the encrypted session with a peer is up; Send now delivers.
type EventConnected struct{ Peer string }

// EventMessage is a message from a peer. Data is the application's and stays valid.
// Credit is the flow-control credit the message holds: give it back with
// Node.Consumed when the application has taken the message (credits of one peer
// connection add up with Credit.Add). Until then the peer's window stays that much
// smaller, so a slow reader slows the sender instead of piling messages up (DESIGN
// §11).
type EventMessage struct {
	Peer   string
	Lane   int
	Mode   rudp.Mode
	Data   []byte
	Credit Credit
}

// Credit is flow-control credit held by delivered messages of one peer connection.
// The zero Credit holds nothing.
type Credit struct {
	conn uint64 // the connection's number: credit never reaches a later connection
	rudp rudp.Credit
}

// Add returns the credit of both. Credit of two connections with the same peer (the
// connection was replaced while the caller held the old one's credit) is not added:
// the newer connection's is kept, since an ended connection's credit is worth
// nothing.
func (c Credit) Add(o Credit) Credit {
	switch {
	case c.conn == o.conn:
		return Credit{conn: c.conn, rudp: c.rudp.Add(o.rudp)}
	case c.conn > o.conn:
		return c
	}
	return o
}

// IsZero reports whether c holds nothing.
func (c Credit) IsZero() bool { return c.conn == 0 || c.rudp.IsZero() }

// EventPeerClosed: the connection with a peer ended, closed by either side:
// Reason.Local says which; Reason.Code is the application's (0 for a normal close)
// or rudp's 0xff01 idle timeout; Reason.Text is for humans.
type EventPeerClosed struct {
	Peer   string
	Reason proto.CloseReason
}

func (EventConnected) nodeEvent()     {}
func (EventMessage) nodeEvent()       {}
func (EventPeerClosed) nodeEvent()    {}
func (EventRegistered) nodeEvent()    {}
func (EventNATReport) nodeEvent()     {}
func (EventOpenSockets) nodeEvent()   {}
func (EventIntroduced) nodeEvent()    {}
func (EventPathChanged) nodeEvent()   {}
func (EventPeerError) nodeEvent()     {}
func (EventClosed) nodeEvent()        {}
func (EventServerChanged) nodeEvent() {}

// EventRoomState: a room this node is in has a new state (PROTOCOL.md §13): its
// Members in the order they joined, this node among them, and its Owner, the
// earliest member still present (Members[0]). Epoch counts the room's changes; the
// node passes on only states newer than the one it holds. The first one after
// JoinRoom says the join went through; the node then connects to every member it
// has no peer for.
type EventRoomState struct {
	Room    string
	Epoch   uint32
	Members []string
	Owner   string
}

// EventRoomMemberJoined: Member joined Room (it comes after the EventRoomState
// that lists it; not for the members already there when this node joined).
type EventRoomMemberJoined struct{ Room, Member string }

// EventRoomMemberLeft: Member left Room (it left, or its session ended), after the
// EventRoomState without it. Its link, if any, stays: the application decides.
type EventRoomMemberLeft struct{ Room, Member string }

// EventRoomOwnerChanged: Room's owner is now Owner (the earliest member still
// present), Previous having left.
type EventRoomOwnerChanged struct{ Room, Owner, Previous string }

// EventRoomError: the server refused to let this node into Room — Code
// proto.CodeRoomFull (the room holds the server's member cap) or another error
// code — or never answered (Code 0). The node is not in the room.
type EventRoomError struct {
	Room string
	Code proto.ErrorCode
	Text string
}

func (EventRoomState) nodeEvent()        {}
func (EventRoomMemberJoined) nodeEvent() {}
func (EventRoomMemberLeft) nodeEvent()   {}
func (EventRoomOwnerChanged) nodeEvent() {}
func (EventRoomError) nodeEvent()        {}
