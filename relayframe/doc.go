// Package relayframe is the relay layer of natpass (PROTOCOL.md §8): the relay
// tokens the rendezvous server issues with every introduction, the copy-free helpers
// for the relay's data frames, and the server-side forwarding table with its quotas.
//
// # Relay tokens
//
// A relay token is the server's signed statement "I introduced the holders of these
// two public keys to each other as pair P, until time T". The server mints one per
// introduction and sends the same bytes to both peers; later, when a peer asks the
// relay for a channel, the relay verifies the token instead of keeping a table of
// every introduction it ever made. The layout is given beside TokenLen.
//
// A TokenSigner holds one reusable HMAC-SHA256 state: minting and verifying allocate
// nothing. Wall time (seconds since the Unix epoch) is always an argument; the package
// reads no clock.
//
// # Data frames (what a node uses)
//
// After a relay-allocate (proto.RelayAllocate, answered by proto.RelayAllocated with
// the node's channel number), every relayed packet costs four bytes:
//
//	relay-send    (node → server)  E1 22 ‖ channel (u16, the sender's)   ‖ packet
//	relay-deliver (server → node)  E1 23 ‖ channel (u16, the receiver's) ‖ packet
//
// The packet is a whole keyx datagram (handshake message or transport data), opaque
// to the relay. To send, a node seals its packet at buf[DataHeaderLen:] and calls
// PutSendHeader(buf, channel): the datagram is buf[:DataHeaderLen+n], no copy
// (AppendSendHeader is the appending form). To receive, ParseDeliver(p) checks a
// datagram from the server and returns the node's channel (which names the peer) and
// the packet, aliasing p, ready for keyx. Frames are at most MaxFrameLen (1472)
// bytes; the server drops larger ones, which rudp's PMTU search sees as loss.
//
// Client keeps one peer's channel for a node: it says when a relay-allocate is due
// (at once, repeated with backoff from 250 ms or SetRetry's measured delay,
// refreshed at half the lifetime with the renewed token), takes the answers (by txid; the server repeats its answer with "peer
// ready" when the peer links) and errors, and reports Ready and Channel. A node sends on the relay only when Ready:
// frames sent before the peer's end exists are dropped by the server.
//
// # Forwarding table (what the server uses)
//
// Table maps channel numbers to their holder and to the pair's other channel,
// expires channels at their token's expiry (a heap; Deadline and Expire), drops a
// session's channels when it ends (DropOwner), and charges every forwarded frame to
// its holder's byte bucket and to a server-wide one (Charge). Lookup and Charge are
// the per-frame path: an array index and two divisions, no map, no allocation.
package relayframe
