// Package rudp is natpass's reliable-UDP connection: lanes with priority and weight,
// four delivery modes, fragmentation, acknowledgement ranges, RACK-TLP loss detection,
// probe timeouts, CUBIC with HyStart++ and pacing, flow control, PMTU probing,
// keepalive, idle timeout and close. It is a pure state machine (DESIGN §2): it never
// reads a clock, touches a socket or starts a goroutine, and the same Conn runs under
// the driver and the simulator.
//
// # Wire
//
// One rudp packet rides in one keyx transport payload (PROTOCOL.md §7):
//
//	+-----------------------+---------+-----+---------+
//	| packet number: varint | frame 1 | ... | frame n |
//	+-----------------------+---------+-----+---------+
//
//	PADDING 0x00 | PING 0x01 | ACK 0x02 | MAX_DATA 0x03 | CLOSE 0x04 | ACK-FREQUENCY 0x05
//	DATA 0x10|mode<<1|fragmented: lane, seq, [total, count, index], length, data
//
// The encoders and parsers live in proto (RUDPHeader, RUDPAck, RUDPData, ...).
//
// # Acknowledgements
//
// The receiver follows RFC 9000 §13.2.1 (every second packet, at once on a gap or a
// PING, else within MaxAckDelay) until the sender's ACK-FREQUENCY frame adjusts it.
// During bulk, with at least 16 packets in flight, the sender asks for an
// acknowledgement about eight times per window (at most every tenth packet), within
// a quarter RTT, and at once on a gap three packets old; it returns to the default
// on loss recovery, a probe timeout or a small window, and adds a PING to the last
// packet of a burst, to probes and to top-priority messages so these are
// acknowledged at once. Congestion control counts acknowledged bytes, not ACKs, and
// RTT samples subtract the reported ack delay, so fewer ACKs change neither. A
// sparse flow carrying unreliable messages (a game's 20 Hz state) with nothing
// reliable outstanding asks for one acknowledgement per up to a second (as long
// as its rate then keeps at most half the window and 32 packets in flight), and
// its probe timeout counts that delay until a smaller request is acknowledged;
// packets carrying reliable data or MAX_DATA, and the one that fills half the
// window, then ask for their acknowledgement at once. Under the default rule a lone
// packet (the end of a burst, MaxAckDelay or more after the previous ack-eliciting
// one: a 20 Hz reliable flow's every message) and a probe carry a PING: their ACK
// would come alone anyway, and a lost one is probed a round trip after it rather
// than MaxAckDelay later.
//
// # Call contract
//
// A Conn is one peer's connection and knows no addresses. Feed it received packets
// with HandleDatagram, call HandleTimeout at Deadline, give it messages with Send and
// the credit of messages taken with Consumed, and after each of these drain it: PollTransmit until false (each result is one packet to
// encrypt and send), then PollEvent until false, then read Deadline. PollTransmit
// writes at buf[Config.Headroom:], so the transport header and relay framing can be
// prepended and the AEAD tag appended in place.
//
// # How it decides what to send
//
// Each PollTransmit builds at most one packet: an ACK if one is due, MAX_DATA if the
// window moved, then data frames: lanes in strict priority order, lanes of equal
// priority by weighted fair queueing, each lane's lost fragments before its new ones.
// The congestion window and the pacer gate ack-eliciting packets (ACK-only packets are
// never held back); lanes below the top priority leave one packet of the window free
// and the top lanes may overshoot a shrunken window by a quarter, so urgent messages
// wait for at most the pacer's next slot. A Redundant lane also repeats its oldest
// unacknowledged small messages in each new packet while the window has room, so a
// lost game input is repaired by the next packet. Flow control gates new reliable
// data: a message under way may send a fragment whenever the peer's limit has room
// for it, but a new message starts while another is part-sent only if the limit has
// room for both to finish (PROTOCOL.md §7.6 [FLOW-5]), so lanes sharing a small
// window never each hold part of a message the receiver cannot hand over (an urgent
// message may then wait for a part-sent one to finish, but only while the peer's
// application, not the path, is what holds the sender back).
//
// # Recovery
//
// CUBIC (RFC 9438) with HyStart++ (RFC 9406) sets the window and a token-bucket pacer
// spreads it over the RTT. A loss reduces the window only when it looks like
// congestion: the path shows a queue (latest RTT a quarter above the minimum) or the
// recent loss rate is above 5 %; random loss on an empty path (wireless, tunnels)
// leaves it alone, where plain CUBIC would fall to the Mathis rate.
//
// Every message fragment fits the base datagram (1200 bytes), which every path
// carries, so a path change that lowers the PMTU is detected as a black hole (RFC
// 8899 §4.3) without stranding a fragment. A probed larger PMTU packs more small
// messages per packet, and a message split after the search has found one gets
// fragments sized so that several fill a packet (two per 1452-byte datagram: 1346
// bytes of data where one base-sized fragment would carry 1118). A packet that data
// fills is padded (PADDING, at most 32 bytes) to the largest such packet so far, so
// a burst's packets are one size and the driver sends them as one GSO run.
//
// Packets are numbered once and never resent; lost fragments go out in new packets.
// A packet is lost when three later packets are acknowledged or it is older than 9/8
// RTT than an acknowledged one (RFC 9002 §6.1, the RACK rule of RFC 8985 §6.2). Once
// a packet declared lost is acknowledged after all, the path reorders: the
// packet-count rule is dropped and the time window grows by a quarter of the minimum
// RTT per spurious loss, up to one RTT (RFC 8985's adaptive reo_wnd). When
// nothing is acknowledged for a probe timeout (RFC 9002 §6.2, floor 2 ms rather than
// RFC 6298's 1 s, doubling per timeout up to Config.PTOMax) two probes carry the
// oldest unacknowledged data again: the tail-loss probe of RFC 8985 §7. The probe
// timeout counts the peer's max ack delay unless the last ack-eliciting packet
// carried a PING, which the peer acknowledges at once.
package rudp
