package node

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// Event is one of the Event* types below.
type Event interface{ nodeEvent() }

// EventRegistered: the server admitted the node and sees it at Observed.
type EventRegistered struct{ Observed netip.AddrPort }

// EventNATReport: the node measured the NAT in front of it (DESIGN §6.2).
type EventNATReport struct {
	Behavior proto.NATBehavior
	Observed netip.AddrPort
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
	Strategy string
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

// EventClosed: the node stopped; Reason says why.
type EventClosed struct{ Reason string }

// EventConnected: the encrypted session with a peer is up; Send now delivers.
type EventConnected struct{ Peer string }

// EventMessage is a message from a peer. Data is the node's copy and stays valid.
type EventMessage struct {
	Peer string
	Lane int
	Mode rudp.Mode
	Data []byte
}

// EventPeerClosed: the connection with a peer ended: closed by either side (Local
// says which; Code is the application's, 0 for a normal close, or rudp's 0xff01 idle
// timeout, 0xff02 protocol violation, 0xff03 flow control), with Reason for humans.
type EventPeerClosed struct {
	Peer   string
	Code   uint16
	Local  bool
	Reason string
}

func (EventConnected) nodeEvent()   {}
func (EventMessage) nodeEvent()     {}
func (EventPeerClosed) nodeEvent()  {}
func (EventRegistered) nodeEvent()  {}
func (EventNATReport) nodeEvent()   {}
func (EventOpenSockets) nodeEvent() {}
func (EventIntroduced) nodeEvent()  {}
func (EventPathChanged) nodeEvent() {}
func (EventPeerError) nodeEvent()   {}
func (EventClosed) nodeEvent()      {}
