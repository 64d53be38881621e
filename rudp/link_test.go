package rudp

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// This file is a small deterministic network for rudp's own tests: virtual time,
// seeded impairments set per direction, and endpoints that follow the drain rule. It
// runs a scenario in microseconds, which the 10,000-seed soak needs. The acceptance
// scenarios also run on the project's simulator (sim_test.go). Every run is replayed
// by its seed.

// linkConfig impairs one direction of a path.
type linkConfig struct {
	delay        time.Duration // one-way propagation
	jitter       time.Duration // extra delay, uniform in [0, jitter); reorders packets
	loss         float64       // probability a datagram is dropped
	dup          float64       // probability a datagram is delivered twice
	reorder      float64       // probability a datagram is held back by reorderDelay
	reorderDelay time.Duration
	rateBps      int64 // bottleneck rate in bits per second; 0 = unlimited
	queuePackets int   // drop-tail buffer in front of the bottleneck (with rateBps)
	mtu          int   // largest datagram carried; 0 = unlimited
	// blackhole, when set, drops everything sent while it returns true.
	blackhole func(t proto.Instant) bool
	// impairUntil, when non-zero, is when loss, dup, reorder and jitter stop.
	impairUntil proto.Instant
}

// link is one direction of a path, possibly shared by several flows.
type link struct {
	cfg       linkConfig
	busyUntil proto.Instant   // the bottleneck serialises packets back to back
	departs   []proto.Instant // departure times of packets still in the buffer
	sent      int
	dropped   int
	bytes     int64 // datagram bytes that crossed the link
}

type packetEvent struct {
	at   proto.Instant
	seq  uint64
	dst  *endpoint
	data []byte
}

type eventHeap []packetEvent

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(packetEvent)) }
func (h *eventHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// endpoint is one Conn on the network.
type endpoint struct {
	name  string
	c     *Conn
	out   *link
	peer  *endpoint
	buf   []byte
	onMsg func(now proto.Instant, ev *EventMessage)
	// closed holds the EventClosed reason once seen.
	closed *proto.CloseReason
}

// network runs endpoints over links in virtual time.
type network struct {
	t      testing.TB
	seed   uint64
	rng    *rand.Rand
	now    proto.Instant
	events eventHeap
	seq    uint64
	eps    []*endpoint
	ticks  []*ticker
	// afterStep, when set, runs after every step of virtual time (all inputs at that
	// instant handled and drained).
	afterStep func()
	// fatalf, when set, takes failures instead of t.Fatalf (a rapid property's).
	fatalf func(format string, args ...any)
}

// ticker calls fn every period from start until it returns false.
type ticker struct {
	next   proto.Instant
	period time.Duration
	fn     func(now proto.Instant) bool
}

func newNetwork(t testing.TB, seed uint64) *network {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	return &network{t: t, seed: seed, rng: rand.New(rand.NewChaCha8(key)), now: 1_000_000_000}
}

// pair makes two connected endpoints with links ab (a→b) and ba.
func (n *network) pair(cfg Config, ab, ba *link) (*endpoint, *endpoint) {
	a := &endpoint{name: "a", c: New(cfg, n.now), out: ab}
	b := &endpoint{name: "b", c: New(cfg, n.now), out: ba}
	a.peer, b.peer = b, a
	for _, e := range []*endpoint{a, b} {
		e.buf = make([]byte, cfg.WithDefaults().Headroom+cfg.WithDefaults().DatagramSizeMax+64)
	}
	n.eps = append(n.eps, a, b)
	return a, b
}

func (n *network) every(start proto.Instant, period time.Duration, fn func(now proto.Instant) bool) {
	n.ticks = append(n.ticks, &ticker{next: start, period: period, fn: fn})
}

// failf reports a failure with the seed and the command that replays it.
func (n *network) failf(format string, args ...any) {
	n.t.Helper()
	if n.fatalf != nil {
		n.fatalf("%s\nnetwork seed %d", fmt.Sprintf(format, args...), n.seed)
	}
	n.t.Fatalf("%s\nseed %d; replay: go test ./rudp -run '%s' -seed %d",
		fmt.Sprintf(format, args...), n.seed, n.t.Name(), n.seed)
}

// transmit sends a datagram from e over its link.
func (n *network) transmit(e *endpoint, pkt []byte) {
	l := e.out
	cfg := l.cfg
	c := e.c.cfg
	size := len(pkt) + c.Headroom + c.Tailroom // what keyx and relay framing add
	l.sent++
	impaired := cfg.impairUntil == 0 || n.now < cfg.impairUntil
	if cfg.mtu > 0 && size > cfg.mtu {
		l.dropped++
		return
	}
	if cfg.blackhole != nil && cfg.blackhole(n.now) {
		l.dropped++
		return
	}
	if impaired && cfg.loss > 0 && n.rng.Float64() < cfg.loss {
		l.dropped++
		return
	}
	depart := n.now
	if cfg.rateBps > 0 {
		// Drop-tail buffer in front of a serialising bottleneck.
		k := 0
		for _, d := range l.departs {
			if d > n.now {
				l.departs[k] = d
				k++
			}
		}
		l.departs = l.departs[:k]
		if len(l.departs) >= cfg.queuePackets {
			l.dropped++
			return
		}
		depart = max(n.now, l.busyUntil) + proto.Instant(int64(size)*8*int64(time.Second)/cfg.rateBps)
		l.busyUntil = depart
		l.departs = append(l.departs, depart)
	}
	l.bytes += int64(size)
	copies := 1
	if impaired && cfg.dup > 0 && n.rng.Float64() < cfg.dup {
		copies = 2
	}
	for range copies {
		at := depart.Add(cfg.delay)
		if impaired && cfg.jitter > 0 {
			at = at.Add(time.Duration(n.rng.Int64N(int64(cfg.jitter))))
		}
		if impaired && cfg.reorder > 0 && n.rng.Float64() < cfg.reorder {
			at = at.Add(cfg.reorderDelay)
		}
		n.seq++
		heap.Push(&n.events, packetEvent{at: at, seq: n.seq, dst: e.peer, data: append([]byte(nil), pkt...)})
	}
}

// drain follows the drain rule for e: PollTransmit until false, then PollEvent until
// false, and again while the events gave credit back. Consumed is a command, so what it
// makes due (a MAX_DATA reopening the peer's window) must be polled before the host
// waits: a sender that has nothing in flight sends nothing that would poll it later.
func (n *network) drain(e *endpoint) {
	for i := 0; ; i++ {
		if i > 100000 {
			n.failf("%s: PollTransmit never returned false", e.name)
		}
		pkt, ok := e.c.PollTransmit(n.now, e.buf)
		if !ok {
			if !pollEvents(e.c, n.now, e.onMsg, &e.closed) {
				return
			}
			continue
		}
		if &pkt[0] != &e.buf[e.c.cfg.Headroom] {
			n.failf("packet not written at headroom")
		}
		n.transmit(e, pkt)
	}
}

// run advances virtual time until stop returns true or until is reached; it reports
// whether stop was satisfied.
func (n *network) run(until proto.Instant, stop func() bool) bool {
	for _, e := range n.eps {
		n.drain(e)
	}
	for {
		if stop != nil && stop() {
			return true
		}
		next := proto.Never
		if len(n.events) > 0 {
			next = n.events[0].at
		}
		for _, e := range n.eps {
			next = min(next, e.c.Deadline())
		}
		for _, t := range n.ticks {
			if t.fn != nil {
				next = min(next, t.next)
			}
		}
		if next == proto.Never || next > until {
			n.now = max(n.now, min(until, next))
			return stop != nil && stop()
		}
		if next < n.now {
			next = n.now
		}
		n.now = next
		for len(n.events) > 0 && n.events[0].at <= n.now {
			ev := heap.Pop(&n.events).(packetEvent)
			_ = ev.dst.c.HandleDatagram(n.now, ev.data)
			n.drain(ev.dst)
		}
		for _, e := range n.eps {
			if e.c.Deadline() <= n.now {
				e.c.HandleTimeout(n.now)
				n.drain(e)
			}
		}
		for _, t := range n.ticks {
			if t.fn != nil && t.next <= n.now {
				if !t.fn(n.now) {
					t.fn = nil
				}
				t.next = t.next.Add(t.period)
				for _, e := range n.eps {
					n.drain(e)
				}
			}
		}
		if n.afterStep != nil {
			n.afterStep()
		}
	}
}
