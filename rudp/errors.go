package rudp

import "errors"

// Errors from Send and Close: the caller's request cannot be done.
var (
	// ErrMessageTooLarge: the message exceeds Config.MaxMessageSize.
	ErrMessageTooLarge = errors.New("rudp: message larger than MaxMessageSize")
	// ErrSendBufferFull: queued and unacknowledged bytes would exceed
	// Config.SendBufferBytes, or the lane holds Config.SendQueueBytes of bytes not yet
	// sent once; wait for packets to leave and acknowledgements to come
	// (Stats().SendBuffered, LaneStats.Unsent).
	ErrSendBufferFull = errors.New("rudp: send buffer full")
	// ErrClosed: the connection is closing or closed.
	ErrClosed = errors.New("rudp: connection closed")
	// ErrBadLane: the lane is not configured.
	ErrBadLane = errors.New("rudp: no such lane")
	// ErrBadMode: the mode is not one of the four.
	ErrBadMode = errors.New("rudp: no such mode")
)

// Errors from HandleDatagram: the datagram was dropped and the connection's state is
// unchanged. Malformed frames are reported with the proto sentinel errors wrapped.
var (
	// ErrDuplicate: the packet number was already received (or is too old to tell).
	ErrDuplicate = errors.New("rudp: duplicate packet")
	// ErrProtocol: a well-formed packet the peer may not send: an acknowledgement of
	// a packet never sent, a lane that does not exist, a sequence number outside the
	// window, data beyond the flow-control limit. Like every refused datagram it is
	// dropped and counted (Stats.InvalidDatagrams) and the connection goes on: a
	// peer that keeps breaking the rules stalls what it breaks, nothing else.
	ErrProtocol = errors.New("rudp: protocol violation")
	// ErrEmpty: a packet without frames.
	ErrEmpty = errors.New("rudp: packet has no frames")
)
