package rudp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/proto"
)

// connMachine adapts a Conn to the contract: it knows no addresses, so local and
// from are dropped, and its packets go to nobody in particular.
func connMachine(c *Conn) machinetest.Machine {
	peer := netip.MustParseAddrPort("192.0.2.1:1")
	return machinetest.Machine{
		HandleDatagram: func(now proto.Instant, _, _ netip.AddrPort, p []byte) error { return c.HandleDatagram(now, p) },
		HandleTimeout:  c.HandleTimeout,
		PollTransmit: func(now proto.Instant, buf []byte) (proto.Transmit, bool) {
			p, ok := c.PollTransmit(now, buf)
			return proto.Transmit{To: peer, Payload: p}, ok
		},
		PollEvent: machinetest.Events(c.PollEvent),
		Deadline:  c.Deadline,
	}
}

// connSubject is the receiving end of a pair that has moved reliable messages both
// ways; its ack, keepalive and idle timers are armed.
func connSubject(t *testing.T) *machinetest.Subject {
	p := newDirectPair(Config{}, 200)
	for range 20 {
		p.step(ReliableOrdered, time.Millisecond)
	}
	// A packet b accepted once: a duplicate now.
	var seen []byte
	if err := p.a.Send(p.now, 0, Unreliable, []byte("once")); err != nil {
		t.Fatal(err)
	}
	pkt, ok := p.a.PollTransmit(p.now, p.bufA)
	if !ok {
		t.Fatal("nothing to send")
	}
	seen = append(seen, pkt...)
	if err := p.b.HandleDatagram(p.now, seen); err != nil {
		t.Fatal(err)
	}
	m := connMachine(p.b)
	machinetest.Drain(t, m, p.now, make([]byte, 2048))
	return &machinetest.Subject{
		Machine: m, Now: p.now,
		// Counters of refused packets move; everything else must not.
		Snapshot: func() any {
			st := p.b.Stats()
			st.InvalidDatagrams, st.DuplicatePackets = 0, 0
			return st
		},
		Rejected: [][]byte{nil, {0xff}, {0x00, 0x00, 0x00}, seen},
		Inputs:   [][]byte{seen},
		Idle: func(now proto.Instant) proto.Instant {
			if err := p.b.Close(now, 0, "done"); err != nil {
				t.Fatal(err)
			}
			for !p.b.Closed() {
				now = p.b.Deadline()
				p.b.HandleTimeout(now)
			}
			return now
		},
		Steady: func(now proto.Instant) proto.Instant {
			p.now = now
			p.step(ReliableOrdered, time.Millisecond)
			return p.now
		},
	}
}

func TestConnContract(t *testing.T) {
	machinetest.Check(t, machinetest.Spec{New: connSubject, Seed: 11})
}
