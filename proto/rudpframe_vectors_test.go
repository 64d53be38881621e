package proto

import "testing"

// rudpPacketVectorCases are whole rudp packets (rudp-packet.json).
var rudpPacketVectorCases []vectorCase

func TestRUDPPacketVectors(t *testing.T) {
	checkOpenEndedVectors(t, "rudp-packet", "RUDPPacket", rudpPacketVectorCases, 1)
}

// Golden vectors for the rudp frames (PROTOCOL.md §7). rudp frames travel inside the
// encrypted transport payload and have no common header, so they live in their own
// files, rudp-*.json. Each vector is one frame (or the packet-number header) alone.
func init() {
	add := func(file, name string, m message, fresh func() message) {
		vectorCases = append(vectorCases, vectorCase{File: file, Name: name, Msg: m, New: fresh})
	}
	newHeader := func() message { return new(RUDPHeader) }
	add("rudp-header", "pn-0-one-byte", &RUDPHeader{PacketNumber: 0}, newHeader)
	add("rudp-header", "pn-300-two-bytes", &RUDPHeader{PacketNumber: 300}, newHeader)
	add("rudp-header", "pn-70000-four-bytes", &RUDPHeader{PacketNumber: 70000}, newHeader)
	add("rudp-header", "pn-2^40-eight-bytes", &RUDPHeader{PacketNumber: 1 << 40}, newHeader)

	newAck := func() message { return new(RUDPAck) }
	add("rudp-ack", "ack-one-range", &RUDPAck{DelayMicros: 1000,
		Ranges: []RUDPAckRange{{Smallest: 0, Largest: 9}}}, newAck)
	add("rudp-ack", "ack-three-ranges", &RUDPAck{DelayMicros: 0,
		Ranges: []RUDPAckRange{{Smallest: 95, Largest: 100}, {Smallest: 90, Largest: 93}, {Smallest: 2, Largest: 2}}}, newAck)

	add("rudp-max-data", "max-data", &RUDPMaxData{Limit: 4 << 20}, func() message { return new(RUDPMaxData) })

	newClose := func() message { return new(RUDPClose) }
	add("rudp-close", "close-normal", &RUDPClose{Code: 0}, newClose)
	add("rudp-close", "close-with-text", &RUDPClose{Code: 0x0101, Text: []byte("idle timeout")}, newClose)
	// 0xff01 reads 0x01ff in the other byte order, so a port that swaps bytes fails here.
	add("rudp-close", "close-idle-timeout", &RUDPClose{Code: 0xff01}, newClose)

	newAckFreq := func() message { return new(RUDPAckFrequency) }
	// The RFC 9000 default (every second packet, 10 ms, any reordering) and a bulk
	// request: every tenth packet, 2.5 ms, three packets of reordering.
	add("rudp-ack-frequency", "default", &RUDPAckFrequency{Sequence: 0, Threshold: 1, MaxAckDelayMicros: 10000, ReorderThreshold: 1}, newAckFreq)
	add("rudp-ack-frequency", "bulk", &RUDPAckFrequency{Sequence: 300, Threshold: 9, MaxAckDelayMicros: 2500, ReorderThreshold: 3}, newAckFreq)
	add("rudp-ack-frequency", "bounds", &RUDPAckFrequency{Sequence: MaxVarint, Threshold: RUDPMaxAckThreshold,
		MaxAckDelayMicros: RUDPMaxAckDelayMicros, ReorderThreshold: RUDPMaxReorderThreshold}, newAckFreq)
	add("rudp-ack-frequency", "ignore-order", &RUDPAckFrequency{Sequence: 1, Threshold: 0, MaxAckDelayMicros: 0, ReorderThreshold: 0}, newAckFreq)

	newData := func() message { return new(RUDPData) }
	add("rudp-data", "reliable-ordered-whole", &RUDPData{Mode: RUDPReliableOrdered, Lane: 0, Seq: 7,
		Total: 5, Data: []byte("hello")}, newData)
	add("rudp-data", "reliable-unordered-empty", &RUDPData{Mode: RUDPReliableUnordered, Lane: 15, Seq: 0}, newData)
	add("rudp-data", "unreliable-sequenced-whole", &RUDPData{Mode: RUDPUnreliableSequenced, Lane: 2, Seq: 1000,
		Total: 3, Data: []byte{1, 2, 3}}, newData)
	// 10 bytes in 3 fragments of ceil(10/3) = 4 bytes: 4 + 4 + 2; this is the last.
	add("rudp-data", "unreliable-fragment-last", &RUDPData{Mode: RUDPUnreliable, Lane: 1, Seq: 3,
		Total: 10, Count: 3, Index: 2, Data: []byte{9, 10}}, newData)
	add("rudp-data", "reliable-ordered-fragment-first", &RUDPData{Mode: RUDPReliableOrdered, Lane: 0, Seq: 64,
		Total: 10, Count: 3, Index: 0, Data: []byte{1, 2, 3, 4}}, newData)

	// Whole packets (PROTOCOL.md §7.2): a PING alone, a PMTU probe (PING then PADDING),
	// and one packet of every other frame type in a row, CLOSE last.
	// A packet's frames run to its end, so these are open-ended vectors: a prefix or an
	// extension of a packet can be another valid packet.
	newPacket := func() message { return new(RUDPPacket) }
	addPacket := func(file, name string, m message, fresh func() message) {
		rudpPacketVectorCases = append(rudpPacketVectorCases, vectorCase{File: file, Name: name, Msg: m, New: fresh})
	}
	frame := func(m message) []byte { return m.Append(nil) }
	addPacket("rudp-packet", "ping", &RUDPPacket{PacketNumber: 0, Frames: [][]byte{{byte(RUDPPing)}}}, newPacket)
	addPacket("rudp-packet", "pmtu-probe-ping-padding", &RUDPPacket{PacketNumber: 17,
		Frames: [][]byte{{byte(RUDPPing)}, make([]byte, 24)}}, newPacket)
	addPacket("rudp-packet", "ack-data-maxdata-close", &RUDPPacket{PacketNumber: 300, Frames: [][]byte{
		frame(&RUDPAck{DelayMicros: 25, Ranges: []RUDPAckRange{{Smallest: 40, Largest: 42}, {Smallest: 7, Largest: 30}}}),
		frame(&RUDPData{Mode: RUDPReliableOrdered, Lane: 3, Seq: 9, Total: 2, Data: []byte("hi")}),
		frame(&RUDPData{Mode: RUDPUnreliable, Lane: 0, Seq: 1, Total: 5, Count: 2, Index: 1, Data: []byte{4, 5}}),
		frame(&RUDPMaxData{Limit: 1 << 20}),
		frame(&RUDPClose{Code: 0xff01, Text: []byte("bye")}),
	}}, newPacket)
	addPacket("rudp-packet", "data-ack-frequency-ping", &RUDPPacket{PacketNumber: 5000, Frames: [][]byte{
		frame(&RUDPData{Mode: RUDPReliableOrdered, Lane: 0, Seq: 77, Total: 4, Data: []byte("bulk")}),
		frame(&RUDPAckFrequency{Sequence: 2, Threshold: 9, MaxAckDelayMicros: 2500, ReorderThreshold: 3}),
		{byte(RUDPPing)},
	}}, newPacket)
}
