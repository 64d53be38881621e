// Package fuzz holds natpass's cross-layer fuzz harnesses; the per-package FuzzX
// targets live beside their parsers. Each harness builds its machines afresh for
// every input from fixed seeds, so an input replays exactly: `go test ./fuzz
// -run 'FuzzName/<corpus file>'`. The committed corpora are in
// testdata/fuzz/<FuzzName>/ and `go test ./fuzz` replays them.
//
// # FuzzAnyDatagram(route uint8, p []byte)
//
// Any bytes, as one datagram, to every machine that reads the socket:
//
//   - the parsers the first byte leads to (proto.ParseHeader, then every message
//     type's Parse): what one accepts re-encodes to exactly p (Append(Parse(p)) == p),
//     no other type accepts it, and its header names that type: the first two bytes
//     alone decide what a datagram is. A relay frame's packet is checked one level
//     down the same way;
//   - a node.Node with an established session (fixture: registered, introduced,
//     handshake done, a message each way), from the server, the peer, a stranger or
//     the peer from a new address (route bits 0–1): it never panics, and a datagram
//     it refuses (an error) moves exactly one Stats counter by one and changes nothing
//     else the owner can see: no transmit, no event, the same Deadline;
//   - a rendezvous.Server with two registered nodes, introduced and holding relay
//     channels, from either node, an IPv4 or an IPv6 stranger (bits 2–3), on any of
//     its sockets or an unknown one (bits 4–5): it never panics; to a datagram without
//     a live session cookie it sends no more bytes in total than it received
//     (PROTOCOL.md §5.10), to STUN at most 24 more (§10); a refused datagram adds no
//     event, no session, leaves the deadline, answers at most with error messages and
//     moves one drop counter (a rate-limit refusal also counts its notice).
//
// # FuzzSessionPayload(plaintext []byte)
//
// The bytes are sealed, as a transport-data packet, by the peer of an established
// session, so they reach the node's rudp connection as an authenticated plaintext.
// The peer is a stand-in built from the exported parts a node composes (a
// keyx.Endpoint and an rudp.Conn): a second node would not let the test seal chosen
// plaintext with its session. The node must accept the keyx packet and count the
// rudp packet exactly once: accepted (rudp PacketsReceived), refused (node
// BadTransport with rudp InvalidDatagrams) or a duplicate (node Duplicates with rudp
// DuplicatePackets); a refused one changes no connection statistic and emits no
// event. Afterwards the pair still works: a reliable message from the node reaches
// the stand-in and three from the stand-in reach the node (on a lane and mode the
// fuzzed packet carried no data for: forged data for a message number the stand-in
// uses next legitimately replaces its message), unless the connection ended, which
// the node must have reported with EventPeerClosed (and Send must then refuse).
//
// # FuzzWorld(seed uint64, plan []byte)
//
// A VOPR-style run of the lab world (lab.RunScenario): the seed and the plan bytes
// pick the NAT presets, the link, one server or a cluster of three (A and B on
// different servers), the traffic (streams in both directions on several lanes,
// every delivery mode, 1 to 100,000 messages of 0 bytes to the largest message, sent
// at once or paced) and a fault schedule (partitions, NAT reboots, server restarts,
// bytes flipped in flight, a receiver that stops reading its events or stops taking
// its messages, so their credit stays out; in a cluster also a server killed for
// good and the bus between the two servers cut for a while). Checks:
// reliable-ordered streams deliver every message once, in order, intact;
// reliable-unordered ones every message once, intact; unreliable ones never a
// duplicate, a corrupted message, or (sequenced) an older message after a newer;
// the node's pending events stay within a bound derived from the flow-control
// window; and when the simulator's oracle says a direct path is possible and the
// run ends with a fault-free stretch long enough to find it, both sides end on a
// direct path. A failure prints the seed and plan that replay it, and the
// scenario as a lab.Scenario to paste into a test. Inputs that fail on a known bug
// someone is fixing live in knownBugs (TestWorldKnownBugs skips while they fail),
// and checkWorld skips that bug's signature so the fuzzer keeps looking elsewhere.
package fuzz
