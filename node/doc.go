// Package node is the client as one state machine: one device's session with the
// rendezvous server, its NAT measurement, and its peers, each with a punch agent (and,
// as the layers land, a keyx session and an rudp connection).
//
// # Call contract
//
// Inputs: HandleDatagram(now, local, from, p) for every datagram any of the node's
// sockets receives; HandleTimeout(now) when Deadline passes; HandleSockets(now, tag,
// addrs) after an EventOpenSockets. Commands: Start, Connect. Outputs: PollTransmit,
// PollEvent, Deadline. After any input or command, call PollTransmit until false, then
// PollEvent until false, then read Deadline. now never decreases.
//
// The node drains its children (classifier, agents) inside each call and reacts to
// what they report; only what an application needs surfaces as a node Event.
//
// Datagrams are demultiplexed by their first byte and message type, never by source
// address, except that signaling is accepted only from the server's sockets.
package node
