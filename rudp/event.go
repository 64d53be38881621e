package rudp

import "github.com/natpass/natpass/proto"

// Event is something the application must hear about; PollEvent returns them. It is
// a sealed sum type: *EventMessage, *EventProbeTimeout or *EventClosed.
type Event interface{ isEvent() }

// EventMessage is a delivered message. The value and Data are owned by the Conn and
// valid until the next call on it: copy what you keep, or take Data with
// Conn.TakeData. Credit is the flow-control credit the message holds: give it back
// with Conn.Consumed once the application has taken the message.
type EventMessage struct {
	Lane   int
	Mode   Mode
	Data   []byte
	Credit Credit
}

// EventClosed is the Conn's last event: nothing is sent or delivered after it.
type EventClosed struct {
	Reason proto.CloseReason
}

// EventProbeTimeout: data went unacknowledged for a probe timeout (RFC 9002 §6.2),
// so the path may have died under the connection: a caller with other paths can
// check this one now rather than at its next heartbeat. Several timeouts between two
// polls are reported once.
type EventProbeTimeout struct{}

func (*EventProbeTimeout) isEvent() {}
func (*EventMessage) isEvent()      {}
func (*EventClosed) isEvent()       {}

// Close codes rudp itself uses in a proto.CloseReason (PROTOCOL.md §7.8); applications
// use the others (0 is "normal close").
const (
	CodeNormal      uint16 = 0
	CodeIdleTimeout uint16 = 0xff01 // nothing heard for IdleTimeout
	CodeProtocol    uint16 = 0xff02 // reserved: the peer broke PROTOCOL.md §7 (this version drops such packets instead, ErrProtocol)
	CodeFlowControl uint16 = 0xff03 // reserved: the peer sent beyond its flow-control limit (likewise)
)
