package sim

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// ErrStepLimit is returned by Run and RunUntil when the simulation took more steps
// than Config.MaxSteps allows: a livelock (two machines answering each other at the
// same instant forever, a machine whose deadline never moves) rather than a slow test.
var ErrStepLimit = errors.New("sim: step limit reached")

// ErrInFlightLimit is returned by Run and RunUntil when more packets are in flight than
// Config.MaxInFlight allows: a packet storm (machines echoing each other over
// duplicating links) fails cleanly instead of eating the machine's memory.
var ErrInFlightLimit = errors.New("sim: in-flight packet limit reached")

// Config configures a Sim.
type Config struct {
	// Seed derives every random choice of the run: link impairments, NAT port
	// allocation, and the sub-seeds handed out by Sim.NewSeed. The same seed and the
	// same calls give the same run, byte for byte.
	Seed uint64
	// Start is the virtual time the simulation starts at. Zero is a fine origin; a
	// large one catches machines that assume time starts at zero.
	Start proto.Instant
	// MaxSteps bounds Step calls made by Run and RunUntil over the whole life of the
	// Sim (0 = 50 million). A run that hits it returns ErrStepLimit.
	MaxSteps uint64
	// MaxInFlight bounds the packets in flight at once (0 = 1 million, about 1.5 GB of
	// buffers). A run that exceeds it returns ErrInFlightLimit.
	MaxInFlight int
}

const (
	defaultMaxSteps    = 50_000_000
	defaultMaxInFlight = 1_000_000
)

// Sim is a deterministic, single-threaded discrete-event network. It owns virtual
// time, a queue of pending packet arrivals, the networks, links, NAT boxes and hosts,
// and the machines attached to hosts.
//
// Time only moves inside Step (and Run/RunUntil, which call it): each step jumps to
// the earliest of the next queued packet arrival and the earliest machine deadline,
// and handles exactly that one thing. Ties are broken deterministically: queued
// arrivals before deadlines, arrivals in the order they were queued, deadlines in the
// order hosts were added.
//
// A Sim is not safe for concurrent use; nothing in it needs to be.
type Sim struct {
	now         proto.Instant
	seed        uint64
	rng         *rand.Rand // derives sub-seeds only; links and boxes own their own streams
	steps       uint64
	maxSteps    uint64
	inFlight    int // packets taken from the free list and not yet returned
	maxInFlight int

	queue eventQueue
	free  []*packet // packet free list: steady state allocates nothing

	core      *Network
	spareNext netip.Addr // next address to try in the large public spare range
	// next6Host and next6Box are the next public IPv6 addresses to try; boxes6 counts
	// the IPv6 boxes, which number their inside prefixes.
	next6Host, next6Box netip.Addr
	boxes6              int
	networks            []*Network
	hosts               []*Host
	boxes               []*Box
	links               []*Link

	partitions []partition
	tracer     func(*TraceRecord)
	rec        TraceRecord // reused for every trace record, so tracing costs one call
	stats      Stats
	txBuf      []byte // handed to PollTransmit
}

// MaxDatagram is the largest payload the simulator carries (and the size of the buffer
// handed to PollTransmit). A longer Transmit is truncated to it and counted.
const MaxDatagram = 65507

// New returns an empty simulation with only the public core network.
func New(cfg Config) *Sim {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:8], cfg.Seed)
	// A constant tag in the rest of the key keeps sim's stream distinct from a
	// machine's stream seeded with the same number.
	copy(key[8:], "natpass/sim seed expansion v1")
	s := &Sim{
		now:      cfg.Start,
		seed:     cfg.Seed,
		rng:      rand.New(rand.NewChaCha8(key)),
		maxSteps: cfg.MaxSteps,
		txBuf:    make([]byte, MaxDatagram),
	}
	if s.maxSteps == 0 {
		s.maxSteps = defaultMaxSteps
	}
	s.maxInFlight = cfg.MaxInFlight
	if s.maxInFlight == 0 {
		s.maxInFlight = defaultMaxInFlight
	}
	s.core = s.newNetwork("core", nil)
	return s
}

// Seed returns the seed the simulation was created with.
func (s *Sim) Seed() uint64 { return s.seed }

// Now returns the current virtual time.
func (s *Sim) Now() proto.Instant { return s.now }

// Core returns the public internet: hosts added here have public addresses, and the
// core routes between everything attached to it. The core is one router hop.
func (s *Sim) Core() *Network { return s.core }

// Steps returns how many steps have been taken.
func (s *Sim) Steps() uint64 { return s.steps }

// NewSeed draws a 64-bit sub-seed from the simulation's seed, for a machine's config.
func (s *Sim) NewSeed() uint64 { return s.rng.Uint64() }

// NewSeed32 draws a 32-byte sub-seed (a ChaCha8 key) from the simulation's seed.
func (s *Sim) NewSeed32() [32]byte {
	var k [32]byte
	for i := 0; i < 32; i += 8 {
		binary.LittleEndian.PutUint64(k[i:], s.rng.Uint64())
	}
	return k
}

// Reader returns a deterministic byte stream derived from the simulation's seed, to be
// injected where a machine wants key material (crypto/rand in production).
func (s *Sim) Reader() *rand.ChaCha8 { return rand.NewChaCha8(s.NewSeed32()) }

// newRand gives a link or box its own stream, so adding a box does not shift the
// draws of every link created before it.
func (s *Sim) newRand() *rand.Rand { return rand.New(rand.NewChaCha8(s.NewSeed32())) }

// Stats returns counters over the whole run.
func (s *Sim) Stats() Stats { return s.stats }

// Stats counts what happened to packets over a run.
type Stats struct {
	Sent       uint64                  // datagrams taken from machines
	Delivered  uint64                  // datagrams handed to machines
	Duplicated uint64                  // extra copies made by links
	Reordered  uint64                  // packets a link held back so later ones overtake
	Dropped    [dropReasonCount]uint64 // by DropReason
	// MachineErrors counts HandleDatagram calls that returned an error (the driver's
	// "count and drop").
	MachineErrors uint64
	Truncated     uint64 // Transmits longer than MaxDatagram
}

// TotalDropped sums Dropped over every reason.
func (st Stats) TotalDropped() uint64 {
	var n uint64
	for _, d := range st.Dropped {
		n += d
	}
	return n
}

// Step handles the single earliest pending thing: a packet arrival or a machine
// deadline. It reports false when nothing is pending (no packet in flight and every
// machine idle), in which case time does not move.
func (s *Sim) Step() bool {
	h := s.nextDeadlineHost()
	if s.queue.len() > 0 && (h == nil || s.queue.top().at <= h.deadline) {
		ev := s.queue.pop()
		if ev.at > s.now {
			s.now = ev.at
		}
		s.steps++
		s.arrive(ev)
		return true
	}
	if h == nil {
		return false
	}
	if h.deadline > s.now {
		s.now = h.deadline
	}
	s.steps++
	h.machine.HandleTimeout(s.now)
	h.afterCall()
	return true
}

// Next returns the time of the earliest pending thing, or proto.Never.
func (s *Sim) Next() proto.Instant {
	t := proto.Never
	if h := s.nextDeadlineHost(); h != nil {
		t = h.deadline
	}
	if s.queue.len() > 0 && s.queue.top().at < t {
		t = s.queue.top().at
	}
	if t < s.now {
		t = s.now
	}
	return t
}

// nextDeadlineHost returns the host whose machine has the earliest deadline (the first
// added on a tie), or nil when every machine is idle. Deadlines are cached after each
// call into a machine, so this is a scan over a slice, not over interfaces.
func (s *Sim) nextDeadlineHost() *Host {
	var best *Host
	for _, h := range s.hosts {
		if h.machine != nil && h.deadline != proto.Never && (best == nil || h.deadline < best.deadline) {
			best = h
		}
	}
	return best
}

// Run steps until the next pending thing is later than until, then sets the clock to
// until (unless until is proto.Never). It returns ErrStepLimit if the step bound is hit.
func (s *Sim) Run(until proto.Instant) error {
	return s.RunUntil(until, nil)
}

// RunFor is Run(Now()+d).
func (s *Sim) RunFor(d time.Duration) error { return s.Run(s.now.Add(d)) }

// RunUntil is Run that also stops as soon as done (checked after every step) returns
// true; then the clock stays at the time of that step.
func (s *Sim) RunUntil(until proto.Instant, done func() bool) error {
	for {
		if done != nil && done() {
			return nil
		}
		if s.Next() > until {
			break
		}
		if s.steps >= s.maxSteps {
			return ErrStepLimit
		}
		if s.inFlight > s.maxInFlight {
			return ErrInFlightLimit
		}
		if !s.Step() {
			break
		}
	}
	if until != proto.Never && until > s.now {
		s.now = until
	}
	return nil
}

// event is one packet arrival: pkt has crossed the link of att, upward (arriving at
// att's network) or downward (arriving at att itself).
//
// A cluster bus event instead has bus set (and no packet): a message or interest
// change reaching a bus member, in the same queue so that one order covers both.
type event struct {
	at   proto.Instant
	seq  uint64
	pkt  *packet
	att  *attachment
	down bool
	bus  *busEvent
}

// eventQueue is a binary min-heap of events keyed on (at, seq). The sequence number
// makes the order total, so equal times pop in the order they were pushed. Its size is
// bounded by the packets in flight, which links bound with their queues.
type eventQueue struct {
	items []event
	seq   uint64
}

func (q *eventQueue) len() int    { return len(q.items) }
func (q *eventQueue) top() *event { return &q.items[0] }

func (q *eventQueue) push(ev event) {
	q.seq++
	ev.seq = q.seq
	q.items = append(q.items, ev)
	// Sift up.
	i := len(q.items) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q.items[i], q.items[p] = q.items[p], q.items[i]
		i = p
	}
}

func (q *eventQueue) pop() event {
	ev := q.items[0]
	n := len(q.items) - 1
	q.items[0] = q.items[n]
	q.items[n] = event{} // drop pointers so the free list owns the packet alone
	q.items = q.items[:n]
	// Sift down.
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q.items[i], q.items[m] = q.items[m], q.items[i]
		i = m
	}
	return ev
}

func (q *eventQueue) less(i, j int) bool {
	a, b := &q.items[i], &q.items[j]
	return a.at < b.at || a.at == b.at && a.seq < b.seq
}

// packet is one datagram in flight. Packets come from a free list and their buffers
// keep their capacity, so a steady flow allocates nothing.
type packet struct {
	src, dst netip.AddrPort
	ttl      uint8
	origin   *attachment // the sending host's interface it left by, for partitions
	data     []byte
}

func (s *Sim) newPacket() *packet {
	s.inFlight++
	if n := len(s.free); n > 0 {
		p := s.free[n-1]
		s.free = s.free[:n-1]
		return p
	}
	return &packet{data: make([]byte, 0, 1500)}
}

func (s *Sim) release(p *packet) {
	s.inFlight--
	p.origin = nil
	p.data = p.data[:0]
	s.free = append(s.free, p)
}

func (s *Sim) clone(p *packet) *packet {
	c := s.newPacket()
	c.src, c.dst, c.ttl, c.origin = p.src, p.dst, p.ttl, p.origin
	c.data = append(c.data, p.data...)
	return c
}
