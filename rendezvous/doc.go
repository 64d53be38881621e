// Package rendezvous is the natpass rendezvous server as one pure state machine
// (DESIGN §2, §4, §6): it checks tickets, registers nodes at the address it observes,
// keeps them through keepalives, answers NAT-behaviour probes from the socket the
// node asks for, answers plain STUN Binding requests, and introduces two registered
// peers to each other with keys, candidates, NAT behaviour, a start delay, a relay
// token and a per-pair PSK.
//
//	node A                      server                      node B
//	  |-- register(ticket) -------->|                           |
//	  |<------- registered(cookie, observed) --|                |
//	  |-- keepalive(cookie) every 25 s ------->|                |
//	  |<------- keepalive-ack(observed) -------|                |
//	  |-- nat-probe(change) ---> primary / alt-port / alt-address socket
//	  |<------- nat-probe-reply(observed) from the socket asked for
//	  |-- introduce-request(B) ------->|                           |
//	  |<------- introduction(B) -------|------ introduction(A) --->|
//
// On a dual-stack host a node registered over one IP family binds its socket of the
// other family to the same session (register-family, PROTOCOL.md §5.12, [SRV-14],
// family.go) and keeps that binding with keepalives from it; peers then get the
// bound address as a second server-reflexive candidate.
//
// PROTOCOL.md §5 gives the messages and §5.10 and §10 the server's rules: what it
// answers, its rate limits and bounds, and the STUN subset. The server reads no
// clock: monotonic time is every call's `now`, wall time (for ticket expiry) is
// Config.WallClock anchored to that timeline.
//
// # Amplification
//
// A sender is authenticated once it shows a live session cookie. Every reply to a
// sender without one passes through a single check (commitReply) that refuses to
// send more bytes than the request had; error texts are cut to fit. A
// register-family's cookie proves nothing about its source, so its reply passes the
// same check (88 bytes pay for at most 85). STUN is the
// stated exception: standard clients send bare 20-byte requests, so a STUN reply may
// be up to 24 bytes (stunMaxGrowth) larger than its request (PROTOCOL.md §10).
//
// # Admission
//
// A register from a source whose bucket is empty, or from a source the server has no
// entry for while the server-wide budget of unproven registers is spent, is answered
// with a retry (admission.go, PROTOCOL.md [SRV-15]): a token that is a truncated HMAC
// over the source address and port and a 10 s time slot, under a key derived from
// the seed. The node repeats the register with the token; a valid token is charged to
// the source's proven bucket instead. Challenging costs one HMAC and keeps no state,
// and the retry (26 bytes) is never larger than its register.
//
// # Call contract
//
// See Server. Tickets are minted with MintTicket and checked with VerifyTicket.
package rendezvous
