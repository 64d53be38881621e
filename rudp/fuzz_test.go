package rudp

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// fuzzSeeds are real packets from a short exchange, so the fuzzer starts from
// well-formed traffic: data of every mode, fragments, ACKs, MAX_DATA, PINGs, CLOSE.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	p := newDirectPair(Config{Lanes: []LaneConfig{{Weight: 1}, {Priority: 1, Weight: 2}}}, 3000)
	capture := func(c *Conn, buf []byte) {
		for {
			pkt, ok := c.PollTransmit(p.now, buf)
			if !ok {
				return
			}
			seeds = append(seeds, append([]byte(nil), pkt...))
		}
	}
	for mode := ReliableOrdered; mode <= Unreliable; mode++ {
		_ = p.a.Send(p.now, int(mode)%2, mode, []byte("short message"))
		_ = p.a.Send(p.now, 0, mode, make([]byte, 3000))
	}
	capture(p.a, p.bufA)
	for _, s := range seeds {
		_ = p.b.HandleDatagram(p.now, s)
	}
	n := len(seeds)
	capture(p.b, p.bufB)
	_ = p.b.Close(p.now, 7, "bye")
	capture(p.b, p.bufB)
	_ = n
	return seeds
}

// FuzzConnDatagram feeds arbitrary datagrams to a connection that has traffic in
// flight. Properties: no panic; a rejected datagram changes nothing visible (stats
// aside); whatever is accepted, the connection still obeys the drain rule and its
// deadline is sane.
func FuzzConnDatagram(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Add([]byte{0x00})
	f.Add([]byte{0x05, 0x02, 0x05, 0x00, 0x00, 0x00})
	// ACK-FREQUENCY: a bulk request, one asking for an ACK per packet and ignoring
	// order, and one with a threshold over its bound.
	f.Add([]byte{0x06, 0x05, 0x00, 0x09, 0x49, 0xc4, 0x03})
	f.Add([]byte{0x06, 0x05, 0x01, 0x00, 0x00, 0x00, 0x01})
	f.Add([]byte{0x06, 0x05, 0x02, 0x41, 0x00, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		now := proto.Instant(1_000_000_000)
		c := New(Config{Lanes: []LaneConfig{{Weight: 1}, {Priority: 1, Weight: 2}}}, now)
		buf := make([]byte, 4096)
		for i := range 4 {
			_ = c.Send(now, i%2, Mode(i), make([]byte, 700*i))
		}
		for {
			if _, ok := c.PollTransmit(now, buf); !ok {
				break
			}
		}
		before := c.Stats()
		deadline := c.Deadline()
		// Split the input into datagrams at 0xFF 0xFF markers, so one input can hold
		// a sequence.
		for _, p := range splitDatagrams(data) {
			now = now.Add(time.Millisecond)
			err := c.HandleDatagram(now, p)
			if err != nil {
				after := c.Stats()
				if after.PacketsReceived != before.PacketsReceived || after.BytesInFlight != before.BytesInFlight ||
					c.Deadline() != deadline {
					t.Fatalf("rejected datagram %x (%v) changed state", p, err)
				}
			}
			for i := 0; ; i++ {
				if i > 10000 {
					t.Fatal("PollTransmit does not stop")
				}
				if _, ok := c.PollTransmit(now, buf); !ok {
					break
				}
			}
			for i := 0; ; i++ {
				if i > 100000 {
					t.Fatal("PollEvent does not stop")
				}
				ev, ok := c.PollEvent()
				if !ok {
					break
				}
				if m, isMsg := ev.(*EventMessage); isMsg {
					c.Consumed(now, m.Credit)
				}
			}
			if d := c.Deadline(); d < now && d != proto.Never {
				c.HandleTimeout(now)
			}
			before, deadline = c.Stats(), c.Deadline()
		}
	})
}

func splitDatagrams(data []byte) [][]byte {
	var out [][]byte
	start := 0
	for i := 0; i+1 < len(data); i++ {
		if data[i] == 0xff && data[i+1] == 0xff {
			out = append(out, data[start:i])
			start = i + 2
			i++
		}
	}
	return append(out, data[start:])
}
