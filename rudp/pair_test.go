package rudp

import (
	"runtime"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// directPair is two Conns wired back to back with no network: each packet goes
// straight across, except those drop() selects. Used for allocation tests and the
// throughput benchmark, where the harness itself must not allocate.
type directPair struct {
	a, b       *Conn
	now        proto.Instant
	bufA, bufB []byte
	msg        []byte
	sent       uint64
	received   uint64
	drop       func(n uint64) bool
	// onMessage, when set, sees every message b delivers, right after PollEvent.
	onMessage func(*EventMessage)
	// onPacket, when set, sees every packet a sends.
	onPacket func([]byte)
	// send, when set, queues step's message instead of a.Send(msg).
	send func(now proto.Instant, mode Mode) error
}

func newDirectPair(cfg Config, msgSize int) *directPair {
	now := proto.Instant(1_000_000_000)
	c := cfg.WithDefaults()
	p := &directPair{a: New(cfg, now), b: New(cfg, now), now: now, msg: make([]byte, msgSize)}
	p.bufA = make([]byte, c.Headroom+c.DatagramSizeMax+c.Tailroom)
	p.bufB = make([]byte, c.Headroom+c.DatagramSizeMax+c.Tailroom)
	return p
}

// step sends one message a→b and moves every packet and event until both are quiet.
func (p *directPair) step(mode Mode, advance time.Duration) {
	p.now = p.now.Add(advance)
	for _, c := range []*Conn{p.a, p.b} {
		if c.Deadline() <= p.now {
			c.HandleTimeout(p.now)
		}
	}
	var err error
	if p.send != nil {
		err = p.send(p.now, mode)
	} else {
		err = p.a.Send(p.now, 0, mode, p.msg)
	}
	if err != nil {
		panic(err)
	}
	for moved := true; moved; {
		moved = false
		for {
			pkt, ok := p.a.PollTransmit(p.now, p.bufA)
			if !ok {
				break
			}
			moved = true
			p.sent++
			if p.onPacket != nil {
				p.onPacket(pkt)
			}
			if p.drop == nil || !p.drop(p.sent) {
				_ = p.b.HandleDatagram(p.now, pkt)
			}
		}
		for {
			ev, ok := p.b.PollEvent()
			if !ok {
				break
			}
			if m, isMsg := ev.(*EventMessage); isMsg {
				p.received++
				if p.onMessage != nil {
					p.onMessage(m)
				}
				p.b.Consumed(p.now, m.Credit)
			}
		}
		for {
			pkt, ok := p.b.PollTransmit(p.now, p.bufB)
			if !ok {
				break
			}
			moved = true
			_ = p.a.HandleDatagram(p.now, pkt)
		}
	}
}

// Steady-state send, receive, acknowledgement and retransmission allocate nothing:
// every record comes from a ring or free list that warmed up.
func TestSteadyStateAllocs(t *testing.T) {
	for _, c := range []struct {
		name string
		mode Mode
		size int
		drop func(uint64) bool
	}{
		{"reliable-ordered", ReliableOrdered, 1000, nil},
		{"reliable-fragmented", ReliableOrdered, 5000, nil},
		{"reliable-with-loss-and-retransmit", ReliableOrdered, 1000, func(n uint64) bool { return n%7 == 0 }},
		{"unreliable-sequenced", UnreliableSequenced, 300, nil},
		{"reliable-unordered-with-loss", ReliableUnordered, 200, func(n uint64) bool { return n%5 == 0 }},
		{"redundant-lane-with-loss", ReliableOrdered, 200, func(n uint64) bool { return n%5 == 0 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Lanes: []LaneConfig{{Weight: 1, Redundant: c.name == "redundant-lane-with-loss"}}}
			p := newDirectPair(cfg, c.size)
			p.drop = c.drop
			for range 20000 {
				p.step(c.mode, 100*time.Microsecond)
			}
			before := p.a.Stats()
			allocs := testing.AllocsPerRun(2000, func() { p.step(c.mode, 100*time.Microsecond) })
			after := p.a.Stats()
			if allocs != 0 {
				t.Errorf("%v allocations per message in steady state, want 0", allocs)
			}
			if after.PacketsAcked == before.PacketsAcked {
				t.Errorf("nothing was acknowledged during the measurement")
			}
			// Losses are repaired by retransmission, or on a Redundant lane by the copies.
			repaired := after.Retransmits + after.RedundantFrames - before.Retransmits - before.RedundantFrames
			if c.drop != nil && repaired == 0 {
				t.Errorf("no retransmission during the measurement")
			}
			if p.received < 20000 && c.mode.Reliable() {
				t.Errorf("only %d messages delivered", p.received)
			}
		})
	}
}

// BenchmarkPairThroughput: a sender and a receiver in memory on one core, 1200-byte
// datagrams (1166-byte rudp packets after 34 bytes of keyx and relay overhead), one
// full-packet reliable-ordered message per packet, every packet acknowledged through
// the real ACK path. Reports packets per second.
func BenchmarkPairThroughput(b *testing.B) {
	cfg := Config{DatagramSizeBase: 1200, DatagramSizeMax: 1200}
	c := cfg.WithDefaults()
	// The largest message that still travels unfragmented in one packet.
	msgSize := c.DatagramSizeBase - c.Headroom - c.Tailroom - pnReserve - ackReserve - wholeDataHeader
	p := newDirectPair(cfg, msgSize)
	for range 10000 {
		p.step(ReliableOrdered, time.Microsecond)
	}
	sent0 := p.sent
	b.ReportAllocs()
	b.SetBytes(int64(msgSize))
	b.ResetTimer()
	for range b.N {
		p.step(ReliableOrdered, time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(p.sent-sent0)/b.Elapsed().Seconds(), "packets/s")
	pkt, _ := p.a.PollTransmit(p.now, p.bufA)
	_ = pkt
}

// BenchmarkIdleConnMemory: heap per idle connection, measured over 10,000 connections
// that each exchanged one message both ways and then went quiet.
func BenchmarkIdleConnMemory(b *testing.B) {
	const conns = 10000
	for range b.N {
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		pairs := make([]*Conn, 0, conns)
		buf := make([]byte, 2048)
		now := proto.Instant(1_000_000_000)
		msg := make([]byte, 100)
		for i := 0; i < conns; i += 2 {
			x, y := New(Config{}, now), New(Config{}, now)
			_ = x.Send(now, 0, ReliableOrdered, msg)
			_ = y.Send(now, 0, ReliableOrdered, msg)
			for range 4 {
				for {
					pkt, ok := x.PollTransmit(now, buf)
					if !ok {
						break
					}
					_ = y.HandleDatagram(now, pkt)
				}
				for {
					pkt, ok := y.PollTransmit(now, buf)
					if !ok {
						break
					}
					_ = x.HandleDatagram(now, pkt)
				}
				for _, c := range []*Conn{x, y} {
					for {
						if _, ok := c.PollEvent(); !ok {
							break
						}
					}
				}
			}
			pairs = append(pairs, x, y)
		}
		runtime.GC()
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(ms1.HeapAlloc-ms0.HeapAlloc)/conns, "bytes/conn")
		runtime.KeepAlive(pairs)
	}
}

// During bulk at a PMTU above the base, the packets that data fills come out one
// size (padFull), so that the driver can send a burst as one GSO run: of 800
// messages of 64 KiB, in the second 400 at least 95 % of the packets above the base
// size (all but the last of each message, which is not full) have the same length.
// (The size a packet is padded to is the largest full one seen, which grows in a few
// steps early on: an ACK frame, a longer packet number.) Every message arrives.
func TestFullPacketsOneSize(t *testing.T) {
	const messages = 800
	p := newDirectPair(Config{}, 64<<10)
	sizes := map[int]int{}
	large := 0
	p.onPacket = func(pkt []byte) {
		if p.received >= messages/2 && len(pkt) > p.a.baseBudget() {
			sizes[len(pkt)]++
			large++
		}
	}
	for range messages {
		p.step(ReliableOrdered, time.Millisecond)
	}
	most, size := 0, 0
	for s, n := range sizes {
		if n > most {
			most, size = n, s
		}
	}
	t.Logf("%d packets above the base size, %d of them %d bytes; %d sizes in all", large, most, size, len(sizes))
	if p.received != messages || large < messages/2*40 {
		t.Fatalf("%d of %d messages arrived, %d packets above the base size", p.received, messages, large)
	}
	if most*100 < large*95 {
		t.Fatalf("only %d of %d full-size packets are %d bytes long (sizes %v)", most, large, size, sizes)
	}
}
