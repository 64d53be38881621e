// Package node is the client as one state machine: one device's session with the
// rendezvous server, its NAT measurement, and its peers, each with a punch agent, a
// keyx session, an rudp connection and a relay channel.
//
// # Shape
//
// Node is a router over child machines: serverSession (registration, keepalive, NAT
// classification, introductions), the keyx.Endpoint (every peer's handshakes), and
// one peerConn per peer (its punch.Agent, rudp.Conn, relayframe.Client and timer
// table). Node demultiplexes each datagram to one child and, after every call,
// drains the children in a fixed order — server session, keyx endpoint, peers in
// introduction order — acting on what they report. Children speak to the router
// only through their outputs (transmits, events, deadline).
//
// # Call contract
//
// Inputs: HandleDatagram(now, local, from, p) for every datagram any of the node's
// sockets receives; HandleTimeout(now) when Deadline passes; HandleSockets(now, tag,
// addrs) after an EventOpenSockets. Commands: Start, Connect, Send, ClosePeer,
// Consumed, NetworkChanged, JoinRoom, LeaveRoom. Outputs: PollTransmit, PollEvent,
// Deadline (and DeadlineReason, for debugging). After any input or command, call
// PollTransmit until false, then PollEvent until false, then read Deadline. now
// never decreases (a decrease panics).
//
// # Flow control
//
// An EventMessage holds flow-control credit until the application has taken the
// message and gives it back with Consumed: a reader that stops reading stops the
// sender after one window, and nothing is lost (DESIGN §11).
//
// # Many servers
//
// With Config.Servers the node registers with the first server and moves to the
// next, round robin, when its server is lost (keepalives or a relay-stall check
// unanswered, a register unanswered for 3 s) or says it is moving (code 11):
// EventServerChanged, then EventRegistered naming the new server. Direct paths
// carry on; relayed peers allocate their channels again on the new server with the
// tokens they hold. Code 10 (another node registered our ID) ends the node with
// EventClosed{Code: proto.CodeReplaced} (PROTOCOL.md §5.11).
//
// # Rooms
//
// JoinRoom and LeaveRoom (PROTOCOL.md §13): the server session joins a named room,
// refreshes it every 10 s and after every registration, and reports each newer
// state as EventRoomState plus the member joined, left and owner changed events it
// derives; when its own join is answered the node connects to every member it has
// no peer for. A refused join is EventRoomError (code 12: room full).
//
// Datagrams are demultiplexed by their first byte and message type, never by source
// address, except that signaling is accepted only from the current server's sockets.
package node
