package rendezvous

import "errors"

// Sentinel errors HandleDatagram returns. Each one is also a counter in Stats; the
// driver may log or count them and must not treat them as fatal: the server has
// already dropped the datagram or answered it with an error message.
var (
	// ErrBadTicket: the ticket did not parse, has an unknown version or a bad MAC
	// (answered with error code 2).
	ErrBadTicket = errors.New("rendezvous: bad ticket")
	// ErrTicketExpired: the ticket's expiry has passed (error code 3).
	ErrTicketExpired = errors.New("rendezvous: ticket expired")
	// ErrNoSession: the session cookie is unknown or expired (error code 5).
	ErrNoSession = errors.New("rendezvous: no such session")
	// ErrUnknownPeer: introduce names a peer that is not registered (error code 4).
	ErrUnknownPeer = errors.New("rendezvous: unknown peer")
	// ErrPeerNotReady: introduce names a peer that has not reported its NAT yet
	// (error code 9; the requester asks again).
	ErrPeerNotReady = errors.New("rendezvous: peer not ready")
	// ErrServerFull: the presence table is full (error code 7).
	ErrServerFull = errors.New("rendezvous: presence table full")
	// ErrRateLimited: the source address or session is over its rate (a session
	// hears error code 6 at most once per second; otherwise silently dropped).
	ErrRateLimited = errors.New("rendezvous: rate limited")
	// ErrChallenged: a register was answered with retry, an admission challenge
	// (PROTOCOL.md [SRV-15]): the node repeats it with the token.
	ErrChallenged = errors.New("rendezvous: register answered with an admission challenge")
	// ErrBusy: a server-wide budget for answering unauthenticated senders is spent
	// (UnauthRate, or NoSessionRate for an unknown cookie).
	ErrBusy = errors.New("rendezvous: unauthenticated reply budget spent")
	// ErrNotForServer: a natpass message type the server does not accept (a reply
	// type, a peer-to-peer type, or an unassigned one).
	ErrNotForServer = errors.New("rendezvous: message type not accepted by the server")
	// ErrUnknownSocket: the datagram arrived on a local address not in the config.
	ErrUnknownSocket = errors.New("rendezvous: datagram on an unknown local socket")
	// ErrNoAltSocket: a nat-probe asked for a change the server has no socket for
	// (error code 1).
	ErrNoAltSocket = errors.New("rendezvous: no socket for the requested change")
	// ErrSelfIntroduction: introduce names the requester itself (error code 1).
	ErrSelfIntroduction = errors.New("rendezvous: introduction to oneself")
	// ErrRelayDenied: relay-only asked of a server whose relay is off (error code 8).
	ErrRelayDenied = errors.New("rendezvous: relay denied")
	// ErrAmplification: a reply would have been larger than the request of an
	// unauthenticated sender; it was not sent.
	ErrAmplification = errors.New("rendezvous: reply larger than request suppressed")
	// ErrQueueFull: the transmit queue was full (the caller did not drain).
	ErrQueueFull = errors.New("rendezvous: transmit queue full")
	// ErrDraining: the server is draining and told the sender to move (error 11).
	ErrDraining = errors.New("rendezvous: server draining")
	// ErrReplaced: the cookie belonged to a session a newer registration of its ID
	// replaced (error 10 sent again).
	ErrReplaced = errors.New("rendezvous: session replaced by a newer registration")
	// ErrSameFamily: a register-family came from the IP family the session
	// registered over (error code 1): it binds nothing.
	ErrSameFamily = errors.New("rendezvous: register-family from the registered family")
	// ErrRoomFull: a room-join found the room at MaxRoomMembers (error code 12).
	ErrRoomFull = errors.New("rendezvous: room full")
	// ErrRoomsFull: a room-join would pass MaxRooms or the session's
	// MaxRoomsPerSession (error code 7).
	ErrRoomsFull = errors.New("rendezvous: room table full")
)
