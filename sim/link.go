package sim

import (
	"math/rand/v2"
	"time"

	"github.com/natpass/natpass/proto"
)

// LinkConfig describes the impairments of one link. Each direction is impaired
// independently with the same parameters; the zero value is an ideal link (no delay,
// no loss, unlimited rate).
type LinkConfig struct {
	// Latency is the one-way propagation delay.
	Latency time.Duration
	// Jitter adds a uniform delay in [0, Jitter) per packet. Jitter alone never
	// reorders: a packet is never delivered before one sent earlier in the same
	// direction (it waits for it), as on a real queue. Reordering is Reorder's job.
	Jitter time.Duration
	// Loss is the probability that a packet is lost on this link.
	Loss float64
	// Duplicate is the probability that a packet is delivered twice.
	Duplicate float64
	// Reorder is the probability that a packet is held back by ReorderDelay, letting
	// the packets sent after it overtake it.
	Reorder float64
	// ReorderDelay is the extra delay of a reordered packet (0 = 2 ms + Latency).
	ReorderDelay time.Duration
	// Bandwidth is the rate in bytes per second (0 = unlimited). Packets queue behind
	// each other at this rate in a drop-tail queue of QueueBytes.
	Bandwidth int64
	// QueueBytes bounds the bandwidth queue (0 = 64 KiB); a packet that does not fit
	// is dropped (DropQueue).
	QueueBytes int
	// MTU drops packets whose payload is longer (0 = no limit): a stand-in for a path
	// that neither fragments nor carries jumbo datagrams, for PMTU probing.
	MTU int
	// Routers is the number of routers on the link, each decrementing the TTL. The core
	// network itself counts as one more.
	Routers int
	// Outages are windows during which the link drops everything in both directions
	// (a blackhole; DropBlackhole).
	Outages []Window
}

const (
	defaultQueueBytes   = 64 << 10
	defaultReorderExtra = 2 * time.Millisecond
)

// Link is the link between a host or box and its network.
type Link struct {
	cfg LinkConfig
	rng *rand.Rand
	dir [2]linkDirection // 0 = up, 1 = down
}

type linkDirection struct {
	busyUntil   proto.Instant // when the bandwidth queue drains
	lastArrival proto.Instant // FIFO floor for non-reordered packets
	// inFlight holds the in-order packets on the wire, in arrival order. Only its head
	// is in the Sim's event queue, so the queue holds one event per busy link direction
	// plus the reordered and duplicated packets, not every packet in flight. Its bound
	// is the link's bandwidth-delay product (or what the senders send within Latency
	// on an unlimited link).
	inFlight ring
}

// ring is a growable FIFO of in-flight packets.
type ring struct {
	buf  []flight // len is a power of two
	head int
	n    int
}

type flight struct {
	at  proto.Instant
	pkt *packet
}

func (r *ring) push(f flight) {
	if r.n == len(r.buf) {
		size := 2 * len(r.buf)
		if size == 0 {
			size = 16
		}
		buf := make([]flight, size)
		for i := range r.n {
			buf[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
		}
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = f
	r.n++
}

func (r *ring) front() *flight { return &r.buf[r.head] }

func (r *ring) pop() flight {
	f := r.buf[r.head]
	r.buf[r.head] = flight{}
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return f
}

// Config returns the link's configuration.
func (l *Link) Config() LinkConfig { return l.cfg }

// Set replaces the link's configuration from now on; packets already in flight keep
// their schedule.
func (l *Link) Set(cfg LinkConfig) { l.cfg = cfg }

func (s *Sim) newLink(cfg LinkConfig) *Link {
	l := &Link{cfg: cfg, rng: s.newRand()}
	s.links = append(s.links, l)
	return l
}

// crossLink decides the fate of p on att's link and returns its arrival time at the
// far end and whether it keeps its place in line (not reordered). On false, p has been
// dropped (and freed).
//
// The checks follow a packet's life: a link in an outage takes nothing; an oversized
// packet never leaves; the routers on the link see the TTL before anything is queued
// (a probe that dies at the first router costs the link nothing); the bandwidth queue
// is at the sending end; loss happens on the wire after the queue, so a lost packet
// still used its share of the rate.
func (s *Sim) crossLink(att *attachment, down bool, p *packet) (at proto.Instant, inOrder, ok bool) {
	l := att.link
	c := &l.cfg
	where := att.name
	for _, w := range c.Outages {
		if w.Contains(s.now) {
			s.drop(p, where, DropBlackhole)
			return 0, false, false
		}
	}
	if c.MTU > 0 && len(p.data) > c.MTU {
		s.drop(p, where, DropMTU)
		return 0, false, false
	}
	for range c.Routers {
		if !s.hop(p, where) {
			return 0, false, false
		}
	}
	d := l.direction(down)
	depart := s.now
	if c.Bandwidth > 0 {
		limit := c.QueueBytes
		if limit == 0 {
			limit = defaultQueueBytes
		}
		if d.busyUntil < s.now {
			d.busyUntil = s.now
		}
		// The queue is not a list: what is still waiting is the time until the link
		// drains times the rate, which is all a drop-tail decision needs.
		backlog := int64(d.busyUntil-s.now) * c.Bandwidth / int64(time.Second)
		if backlog+int64(len(p.data)) > int64(limit) {
			s.drop(p, where, DropQueue)
			return 0, false, false
		}
		d.busyUntil += proto.Instant(int64(len(p.data)) * int64(time.Second) / c.Bandwidth)
		depart = d.busyUntil
	}
	if c.Loss > 0 && l.rng.Float64() < c.Loss {
		s.drop(p, where, DropLoss)
		return 0, false, false
	}
	at, inOrder = s.arrivalTime(l, d, depart)
	return at, inOrder, true
}

// duplicate decides whether the link delivers p twice and returns the copy's arrival.
// The caller queues the copy after the original, so that an in-order copy keeps its
// place in line. The copy takes no queue space or rate: duplication in real networks
// happens past the bottleneck (a retransmitting wireless hop, a routing flap).
func (s *Sim) duplicate(l *Link, down bool, p *packet) (dup *packet, at proto.Instant, inOrder bool) {
	if l.cfg.Duplicate == 0 || l.rng.Float64() >= l.cfg.Duplicate {
		return nil, 0, false
	}
	s.stats.Duplicated++
	at, inOrder = s.arrivalTime(l, l.direction(down), s.now)
	return s.clone(p), at, inOrder
}

func (l *Link) direction(down bool) *linkDirection {
	if down {
		return &l.dir[1]
	}
	return &l.dir[0]
}

// arrivalTime draws latency, jitter and reordering for one packet leaving at depart.
func (s *Sim) arrivalTime(l *Link, d *linkDirection, depart proto.Instant) (at proto.Instant, inOrder bool) {
	c := &l.cfg
	at = depart + proto.Instant(c.Latency)
	if c.Jitter > 0 {
		at += proto.Instant(l.rng.Int64N(int64(c.Jitter)))
	}
	if c.Reorder > 0 && l.rng.Float64() < c.Reorder {
		s.stats.Reordered++
		extra := c.ReorderDelay
		if extra == 0 {
			extra = defaultReorderExtra + c.Latency
		}
		// A held-back packet does not raise the FIFO floor: the ones behind it pass.
		return at + proto.Instant(extra), false
	}
	if at < d.lastArrival {
		at = d.lastArrival
	}
	d.lastArrival = at
	return at, true
}
