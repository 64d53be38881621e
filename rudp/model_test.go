package rudp

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"pgregory.net/rapid"
)

// modelSide is one Conn of TestConnModel with the packets in flight towards it.
type modelSide struct {
	c       *Conn
	inbound [][]byte // packets on the way to c, in any order rapid picks
	o       *oracle  // checks what c delivers
	buf     []byte
}

// TestConnModel lets rapid drive two Conns through arbitrary interleavings of sends,
// deliveries in any order, drops, duplicates and time steps, checking every delivery
// against the oracle; then the network heals, and every reliable message must arrive.
// rapid shrinks a failure to a minimal sequence of operations.
func TestConnModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		now := proto.Instant(1_000_000_000)
		cfg := Config{Lanes: []LaneConfig{{Weight: 1}, {Priority: 1, Weight: 2}}}
		sides := [2]*modelSide{}
		for i := range sides {
			sides[i] = &modelSide{c: New(cfg, now), o: newOracle(rt.Fatalf), buf: make([]byte, 2048)}
		}
		drain := func() {
			for i, s := range sides {
				peer := sides[1-i]
				for {
					p, ok := s.c.PollTransmit(now, s.buf)
					if !ok {
						break
					}
					peer.inbound = append(peer.inbound, append([]byte(nil), p...))
				}
				for {
					ev, ok := s.c.PollEvent()
					if !ok {
						break
					}
					switch ev := ev.(type) {
					case *EventMessage:
						s.o.receive(now, ev)
						s.c.Consumed(now, ev.Credit)
					case *EventClosed:
						rt.Fatalf("closed: %v", ev.Reason)
					}
				}
			}
		}
		msg := make([]byte, 5000)
		steps := rapid.IntRange(1, 150).Draw(rt, "steps")
		for range steps {
			i := rapid.IntRange(0, 1).Draw(rt, "side")
			s, peer := sides[i], sides[1-i]
			switch rapid.IntRange(0, 4).Draw(rt, "op") {
			case 0: // send
				mode := Mode(rapid.IntRange(0, 3).Draw(rt, "mode"))
				size := rapid.SampledFrom([]int{14, 200, 1100, 3000, 5000}).Draw(rt, "size")
				if err := peer.o.send(s.c, now, rapid.IntRange(0, 1).Draw(rt, "lane"), mode, size, msg); err != nil {
					rt.Fatalf("send: %v", err)
				}
			case 1, 2: // deliver one packet, any of those in flight
				if len(s.inbound) > 0 {
					k := rapid.IntRange(0, len(s.inbound)-1).Draw(rt, "pkt")
					p := s.inbound[k]
					s.inbound = append(s.inbound[:k], s.inbound[k+1:]...)
					if rapid.IntRange(0, 9).Draw(rt, "dup") == 0 {
						s.inbound = append(s.inbound, p)
					}
					_ = s.c.HandleDatagram(now, p)
				}
			case 3: // drop one
				if len(s.inbound) > 0 {
					k := rapid.IntRange(0, len(s.inbound)-1).Draw(rt, "drop")
					s.inbound = append(s.inbound[:k], s.inbound[k+1:]...)
				}
			case 4: // time passes; due timers fire
				now = now.Add(time.Duration(rapid.IntRange(1, 500).Draw(rt, "ms")) * time.Millisecond)
				for _, x := range sides {
					if x.c.Deadline() <= now {
						x.c.HandleTimeout(now)
					}
				}
			}
			drain()
		}
		// Heal: deliver everything in order and let timers run, for at most a minute.
		limit := now.Add(time.Minute)
		for !(sides[0].o.complete() && sides[1].o.complete()) {
			moved := false
			for _, s := range sides {
				for len(s.inbound) > 0 {
					p := s.inbound[0]
					s.inbound = s.inbound[1:]
					_ = s.c.HandleDatagram(now, p)
					moved = true
				}
			}
			drain()
			if moved {
				continue
			}
			next := min(sides[0].c.Deadline(), sides[1].c.Deadline())
			if next > limit {
				rt.Fatalf("stall after healing: %d/%d and %d/%d delivered", sides[0].o.arrived, sides[0].o.expected,
					sides[1].o.arrived, sides[1].o.expected)
			}
			now = max(now, next)
			for _, x := range sides {
				if x.c.Deadline() <= now {
					x.c.HandleTimeout(now)
				}
			}
			drain()
		}
	})
}
