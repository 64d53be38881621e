// Package punch is the client's path agent: it measures the NAT in front of the node
// (Classifier), picks a punching strategy for each pair from both sides' NAT behaviour
// (Choose), and runs the probes that find and confirm a direct path (Agent).
//
// Probes are authenticated: every Probe and ProbeReply ends with an HMAC-SHA256 tag
// (truncated to 16 bytes) under a per-pair probe key the node derives from the
// handshake keys it already trusts. An unauthenticated probe changes no state and
// gets no reply, so a third party can neither confirm a path nor learn that a node
// exists.
//
// Every type here is a pure state machine in the DESIGN §2 shape: Handle* inputs with
// the current proto.Instant, PollTransmit/PollEvent outputs, Deadline. After any
// Handle* or command, drain PollTransmit until false, then PollEvent until false, then
// read Deadline.
package punch
