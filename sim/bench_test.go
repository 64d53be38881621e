package sim

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// blaster sends a fixed payload to one destination every interval.
type blaster struct {
	to       netip.AddrPort
	payload  []byte
	interval time.Duration
	next     proto.Instant
	pending  bool
	received uint64
}

func (m *blaster) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	m.received++
	return nil
}

func (m *blaster) HandleTimeout(now proto.Instant) {
	if m.interval > 0 && now >= m.next {
		m.pending = true
		m.next = m.next.Add(m.interval)
	}
}

func (m *blaster) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	if !m.pending {
		return proto.Transmit{}, false
	}
	m.pending = false
	return proto.Transmit{To: m.to, Payload: buf[:copy(buf, m.payload)]}, true
}

func (m *blaster) Deadline() proto.Instant {
	if m.interval == 0 {
		return proto.Never
	}
	return m.next
}

// deliverWorld is a host behind a port-restricted cone sending 100-byte datagrams
// every microsecond through 15 ms of links to a server on the core: about 15,000
// packets in flight.
func deliverWorld() (*Sim, *blaster) {
	pr := NewPair(PairConfig{Seed: 1, A: MustPreset("port-restricted-cone"), B: MustPreset("open")})
	sink := &blaster{}
	pr.Server.Attach(sink)
	src := &blaster{to: pr.ServerAddr(), payload: make([]byte, 100), interval: time.Microsecond}
	pr.A.Host.Attach(src)
	return pr.Sim, sink
}

// deliver steps s until sink has received n more datagrams.
func deliver(s *Sim, sink *blaster, n uint64) {
	want := sink.received + n
	for sink.received < want {
		if !s.Step() {
			panic("simulation went idle")
		}
	}
}

// BenchmarkSimDeliver measures packet deliveries through one NAT: one op is one
// datagram taken from the sender, translated, carried and handed to the receiver.
func BenchmarkSimDeliver(b *testing.B) {
	s, sink := deliverWorld()
	deliver(s, sink, 100_000) // warm up: fill the event heap and the packet free list
	b.ReportAllocs()
	b.ResetTimer()
	deliver(s, sink, uint64(b.N))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// The steady state allocates nothing per delivery.
func TestDeliverAllocatesNothing(t *testing.T) {
	s, sink := deliverWorld()
	deliver(s, sink, 50_000)
	if n := testing.AllocsPerRun(10_000, func() { deliver(s, sink, 1) }); n != 0 {
		t.Errorf("%v allocations per delivery in steady state, want 0", n)
	}
}
