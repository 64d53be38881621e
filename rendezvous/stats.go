package rendezvous

// Stats counts what the server did with every datagram. Each way a datagram can be
// dropped or refused has its own counter, so an operator can tell a flood from a
// misconfigured client. Counters only grow; Sessions and Sources are gauges.
type Stats struct {
	DatagramsIn, BytesIn   uint64
	DatagramsOut, BytesOut uint64

	// Answered requests.
	Registered    uint64 // new sessions (including replacements)
	Retransmits   uint64 // a register repeated verbatim, answered with the same session
	Replaced      uint64 // registrations that replaced a session of the same peer ID
	Keepalives    uint64
	Rebinds       uint64 // keepalives from a new address on the session's socket
	NATProbes     uint64
	Introductions uint64 // pairs introduced (two datagrams each)
	Rebounds      uint64 // rebound introductions whose fresh address the target's copy carries (PROTOCOL.md §5.7)
	STUNBindings  uint64 // Binding success responses (PROTOCOL.md §10)
	Expired       uint64 // sessions ended by timeout or ticket expiry

	// Dual stack (register-family, PROTOCOL.md §5.12, [SRV-14]).
	FamilyBinds       uint64 // register-family that bound (or replaced) a session's other-family address
	FamilyRetransmits uint64 // a register-family repeated verbatim, answered alike
	FamilyRebinds     uint64 // other-family keepalives from a new address: the binding moved
	FamilyExpired     uint64 // bindings dropped for want of a refresh within the session timeout

	// Refused with an error message (PROTOCOL.md §5.9 code in brackets).
	BadTicket        uint64 // [2]
	ExpiredTicket    uint64 // [3] at register, or a session whose ticket ran out
	UnknownPeer      uint64 // [4]
	NoSession        uint64 // [5]
	RateLimitNotices uint64 // [6] at most one per second per source or session
	ServerFull       uint64 // [7]
	RelayDenied      uint64 // [8]
	PeerNotReady     uint64 // [9] target has not reported its NAT yet
	IntroAcks        uint64 // introduction copies acknowledged
	IntroRepeats     uint64 // introduction copies sent again for want of an ack
	NoAltSocket      uint64 // [1] nat-probe change the server has no socket for
	SelfIntroduction uint64 // [1]
	SameFamily       uint64 // [1] register-family from the family the session registered over
	STUNUnknownAttr  uint64 // STUN 420: a Binding request with an unsupported attribute

	// Dropped without a reply.
	DropNotNatpass         uint64 // first byte neither STUN nor natpass
	DropUnknownVersion     uint64 // natpass prefix, other version
	DropMalformed          uint64 // natpass message that does not parse
	DropNotForServer       uint64 // a reply type, a peer-to-peer type, or unassigned
	DropRelay              uint64 // relay types the server does not accept (0x21, 0x23–0x2F)
	DropUnknownSocket      uint64 // arrived on a local address not in the config
	DropBadSource          uint64 // source address invalid or port 0
	DropRateLimited        uint64 // refused by a source or session bucket
	DropBusy               uint64 // server-wide unauthenticated budget spent
	DropNoSessionBusy      uint64 // server-wide no-session budget spent: an unknown cookie not answered
	DropAmplification      uint64 // reply would have exceeded an unauthenticated request
	DropQueueFull          uint64 // transmit queue full: the caller did not drain
	DropSTUNMalformed      uint64
	DropSTUNNotRequest     uint64 // responses, indications, other methods
	DropSTUNBadFingerprint uint64
	DropSTUNChangeRequest  uint64 // RFC 3489 request asking for a change of address

	SourceEvictions uint64 // per-source limiter entries reused for a new source
	EventsDropped   uint64 // event queue full: the caller did not drain

	Sessions int // registered sessions now
	Sources  int // per-source limiter entries now
	// FamilyBindings: sessions with an other-family address bound now.
	FamilyBindings int

	Admission AdmissionStats // the admission challenge of registers ([SRV-15])
	Relay     RelayStats     // relay-allocate and relay-send (PROTOCOL.md §8)
	Cluster   ClusterStats   // the cluster bus (PROTOCOL.md §12)
	Rooms     RoomStats      // room-join and room-leave (PROTOCOL.md §13)
}

// AdmissionStats counts the admission challenge of registers (PROTOCOL.md [SRV-15]).
// A challenge that could not be sent is counted here and as DropBusy,
// DropAmplification or DropQueueFull.
type AdmissionStats struct {
	Retries uint64 // retry messages queued
	// Challenges by cause: the source's bucket was empty, the server-wide budget of
	// unproven registers was spent (load), or a proven register found its source's
	// proven bucket empty.
	ChallengedSource, ChallengedLoad, ChallengedProven uint64
	TokensValid                                        uint64 // registers whose token the server minted for their source
	TokensInvalid                                      uint64 // registers with a stale, misplaced or forged token, taken as tokenless
}
