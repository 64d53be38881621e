package rudp

import (
	"errors"
	"testing"

	"github.com/natpass/natpass/proto"
)

// Bad datagrams return a sentinel error, are counted, and change nothing else: the
// next good packet is processed as if they had never come.
func TestBadDatagramsChangeNothing(t *testing.T) {
	pkt := func(pn uint64, frames ...[]byte) []byte {
		b := proto.AppendVarint(nil, pn)
		for _, f := range frames {
			b = append(b, f...)
		}
		return b
	}
	data := func(lane uint8, mode Mode, seq uint64, payload []byte) []byte {
		f := proto.RUDPData{Mode: mode, Lane: lane, Seq: seq, Total: uint64(len(payload)), Data: payload}
		return f.Append(nil)
	}
	ack := func(largest uint64) []byte {
		f := proto.RUDPAck{Ranges: []proto.RUDPAckRange{{Smallest: 0, Largest: largest}}}
		return f.Append(nil)
	}
	for _, c := range []struct {
		name string
		p    []byte
		want error
	}{
		{"empty datagram", nil, proto.ErrShort},
		{"no frames", pkt(0), ErrEmpty},
		{"non-minimal packet number", []byte{0x40, 0x00, 0x01}, proto.ErrMalformed},
		{"unknown frame type", pkt(0, []byte{0x06}), proto.ErrMalformed},
		{"padding then a frame", pkt(0, []byte{0x00, 0x01}), proto.ErrMalformed},
		{"ACK of a packet never sent", pkt(0, ack(5)), ErrProtocol},
		{"lane not configured", pkt(0, data(3, ReliableOrdered, 0, []byte("x"))), ErrProtocol},
		{"seq beyond the window", pkt(0, data(0, ReliableOrdered, messageWindow, []byte("x"))), ErrProtocol},
		{"two frames within the initial limit", pkt(0, data(0, ReliableOrdered, 0, make([]byte, 1100)),
			data(0, ReliableOrdered, 1, make([]byte, 1100))), nil}, // accepted
		{"bad frame after a good one", pkt(1, data(0, Unreliable, 0, []byte("ok")), []byte{0x18}), proto.ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := New(Config{}, 0)
			before, deadline := conn.Stats(), conn.Deadline()
			err := conn.HandleDatagram(1, c.p)
			if c.want == nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			after := conn.Stats()
			if after.InvalidDatagrams != before.InvalidDatagrams+1 || after.PacketsReceived != 0 || conn.Deadline() != deadline {
				t.Fatalf("state changed: %+v", after)
			}
			if _, ok := conn.PollEvent(); ok {
				t.Fatal("an event came out of a rejected packet")
			}
			// Packet number 0 is still free: a good packet with it is taken.
			if err := conn.HandleDatagram(2, pkt(0, data(0, Unreliable, 0, []byte("hi")))); err != nil {
				t.Fatalf("good packet after the bad one: %v", err)
			}
			ev, ok := conn.PollEvent()
			if m, isMsg := ev.(*EventMessage); !ok || !isMsg || string(m.Data) != "hi" {
				t.Fatalf("good packet not delivered: %v", ev)
			}
		})
	}
	// Flow control: a peer that sends past the 64 KiB initial limit is refused.
	conn := New(Config{}, 0)
	var frames [][]byte
	for seq := range uint64(60) {
		frames = append(frames, data(0, ReliableUnordered, seq, make([]byte, 1100)))
	}
	for i, f := range frames {
		err := conn.HandleDatagram(1, pkt(uint64(i), f))
		if i < 56 && err != nil { // 56 × (1100 + 32) = 63,392 ≤ 65,536
			t.Fatalf("frame %d refused: %v", i, err)
		}
		if i >= 58 && !errors.Is(err, ErrProtocol) {
			t.Fatalf("frame %d past the flow-control limit accepted: %v", i, err)
		}
	}
	// A duplicate is reported as such and counted.
	if err := conn.HandleDatagram(2, pkt(0, frames[0])); !errors.Is(err, ErrDuplicate) || conn.Stats().DuplicatePackets != 1 {
		t.Fatalf("duplicate: %v, %+v", err, conn.Stats())
	}
}
