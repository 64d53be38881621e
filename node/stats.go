package node

import "github.com/natpass/natpass/keyx"

// Stats counts what the node dropped, by reason.
type Stats struct {
	Malformed, NotFromServer, Unexpected, UnknownPair, BadProbe, Unhandled int
	BadHandshake, BadTransport                                             int // refused by keyx, or by rudp after decryption
	Duplicates                                                             int // transport packets whose keyx counter or rudp packet number was seen before: normally the network repeating a datagram (keyx checks the counter before the AEAD, as WireGuard does, so a forged packet with an old counter lands here too)
	HandshakeErrors, SealErrors                                            int // our own handshake or seal failed
	RelayDrops                                                             int // packets for a relay not ready, or too large for it
	EchoDrops                                                              int // handshake echoes not kept: maxEchoes copies were waiting already (echo.go)
	Handshakes                                                             int // keyx sessions established (first ones and rekeys)
	QueueDrops                                                             int // signaling messages dropped because the owner did not drain the node (their timers repeat them)
	ProbeDrops                                                             int // the peers' punch agents: probes and events over their queues' bounds (punch.AgentStats)
	RoomRefused                                                            int // JoinRoom calls refused: the node was in maxRooms rooms already
	RoomStale                                                              int // room-states older than the one held (reordered or repeated notices)
	StrayErrors                                                            int // errors from the server whose TxID names no request of ours nor our session (a spoofed "replaced" or "moving" among them)
	FlowsUntracked                                                         int // new flows the port prediction could not remember (maxFlows full): counted as new again when reused
	Realigned                                                              int // refreshed introductions asked for because our mapping toward an easy peer fell outside the port window it was given (PROTOCOL §9.3)
	Rebinds                                                                int // fresh sockets taken to search again after a direct path was lost (PROTOCOL §9.3, re-punching after a NAT reboot)
	Relinks                                                                int // introductions asked for again for a room member whose link ended
	FamilyGaveUp                                                           int // register-family sent familyTries times unanswered: the other-family socket stays unbound until the next registration
	FamilyRefused                                                          int // register-family refused by the server (an error naming its txid): likewise
	FamilyLost                                                             int // other-family bindings dropped because a keepalive from that socket went unanswered for an interval (bound again at once)
	NoSocket                                                               int // the peers' candidates skipped for want of a socket of their family (punch.AgentStats.NoSocket)
	Rebased                                                                int // peers with no session yet started over from a new pair's introduction (a side registered again)
	Retries                                                                int // admission challenges (retry, PROTOCOL §5.13) answering our register: the register went again at once with the token
	RetriesWaited                                                          int // retries answering a register that carried a token: the new token waits for the register's next repetition (no loop with the server)
	// Keyx is the handshake endpoint's counters: its X25519 operations,
	// handshake-free cookie replies sent under load, transmits dropped (issue 16).
	Keyx keyx.Stats
}

// Stats returns the drop counters, its peers' punch agents' included.
func (n *Node) Stats() Stats {
	st := n.stats
	st.Keyx = n.keyx.Stats()
	for _, p := range n.peers {
		as := p.agent.Stats()
		st.ProbeDrops += as.TransmitDrops + as.EventDrops
		st.NoSocket += as.NoSocket
	}
	return st
}
