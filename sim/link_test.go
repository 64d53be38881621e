package sim

import (
	"encoding/binary"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim/simtest"
)

// counter numbers the datagrams it sends (8-byte big-endian sequence) and tallies
// what it receives.
type counter struct {
	to       netip.AddrPort
	interval time.Duration
	limit    uint64
	sent     uint64
	next     proto.Instant
	due      bool

	received   uint64
	first      map[uint64]bool // sequence numbers seen
	duplicates uint64
	late       uint64 // first copies that arrived after a higher sequence number
	maxSeen    uint64
	arrivals   []proto.Instant
}

func (c *counter) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	c.received++
	c.arrivals = append(c.arrivals, now)
	seq := binary.BigEndian.Uint64(p)
	if c.first[seq] {
		c.duplicates++
		return nil
	}
	c.first[seq] = true
	if seq < c.maxSeen {
		c.late++
	}
	c.maxSeen = max(c.maxSeen, seq)
	return nil
}

func (c *counter) HandleTimeout(now proto.Instant) {
	if c.sent < c.limit && now >= c.next {
		c.due = true
		c.next = c.next.Add(c.interval)
	}
}

func (c *counter) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	if !c.due {
		return proto.Transmit{}, false
	}
	c.due = false
	c.sent++
	binary.BigEndian.PutUint64(buf, c.sent)
	return proto.Transmit{To: c.to, Payload: buf[:100]}, true
}

func (c *counter) Deadline() proto.Instant {
	if c.sent >= c.limit {
		return proto.Never
	}
	return c.next
}

// linkRun sends n numbered datagrams, one every interval, from a host on a link with
// cfg to a host on an ideal link, and returns the receiver.
func linkRun(t *testing.T, seed uint64, cfg LinkConfig, n uint64, interval time.Duration) (*Sim, *counter) {
	t.Helper()
	s := New(Config{Seed: seed})
	a := s.AddHost("a", s.Core(), cfg)
	b := s.AddHost("b", s.Core(), LinkConfig{})
	a.OpenPort(1)
	rx := &counter{first: map[uint64]bool{}}
	b.Attach(rx)
	tx := &counter{to: b.OpenPort(2), interval: interval, limit: n}
	a.Attach(tx)
	if err := s.Run(proto.Never); err != nil {
		t.Fatal(err)
	}
	return s, rx
}

// within fails unless the measured proportion is within 5 standard deviations of p
// over n trials (a false alarm about once in 3.5 million runs).
func within(t *testing.T, what string, measured, p float64, n uint64) {
	t.Helper()
	sd := math.Sqrt(p * (1 - p) / float64(n))
	if math.Abs(measured-p) > 5*sd {
		t.Errorf("%s: measured %.5f, configured %.5f (±%.5f at 5σ over %d)", what, measured, p, 5*sd, n)
	} else {
		t.Logf("%s: measured %.5f, configured %.5f (±%.5f at 5σ)", what, measured, p, 5*sd)
	}
}

// Over 100k packets, loss, duplication and reordering match the configuration.
func TestLinkImpairmentRates(t *testing.T) {
	simtest.Seeds(t, 1, 2, 5, func(t *testing.T, seed uint64) {
		const n = 100_000
		cfg := LinkConfig{Latency: 20 * time.Millisecond, Jitter: 2 * time.Millisecond,
			Loss: 0.1, Duplicate: 0.05, Reorder: 0.08}
		s, rx := linkRun(t, seed, cfg, n, 10*time.Microsecond)
		unique := uint64(len(rx.first))
		within(t, "loss", 1-float64(unique)/n, cfg.Loss, n)
		within(t, "duplication", float64(rx.duplicates)/float64(unique), cfg.Duplicate, unique)
		// A packet arrives late when its first copy was held back: it was reordered and
		// not rescued by an in-order duplicate.
		pLate := cfg.Reorder * (1 - cfg.Duplicate*(1-cfg.Reorder))
		within(t, "reordering", float64(rx.late)/float64(unique), pLate, unique)
		st := s.Stats()
		if st.Dropped[DropLoss] != n-unique {
			t.Errorf("DropLoss = %d, but %d packets never arrived", st.Dropped[DropLoss], n-unique)
		}
		if st.Duplicated != rx.duplicates {
			t.Errorf("Stats.Duplicated = %d, receiver saw %d", st.Duplicated, rx.duplicates)
		}
	})
}

// Latency and jitter bound the one-way delay, and jitter alone never reorders.
func TestLinkLatencyJitterKeepOrder(t *testing.T) {
	seed := simtest.Seed(t, 3)
	cfg := LinkConfig{Latency: 30 * time.Millisecond, Jitter: 5 * time.Millisecond}
	_, rx := linkRun(t, seed, cfg, 10_000, 100*time.Microsecond)
	if rx.late != 0 || rx.duplicates != 0 || len(rx.first) != 10_000 {
		t.Fatalf("late %d, duplicates %d, unique %d", rx.late, rx.duplicates, len(rx.first))
	}
	var maxExtra time.Duration
	for i, at := range rx.arrivals {
		sent := proto.Instant(i) * proto.Instant(100*time.Microsecond)
		d := at.Sub(sent)
		if d < cfg.Latency || d >= cfg.Latency+cfg.Jitter+100*time.Microsecond {
			t.Fatalf("packet %d took %v with latency %v and jitter %v", i, d, cfg.Latency, cfg.Jitter)
		}
		maxExtra = max(maxExtra, d-cfg.Latency)
	}
	if maxExtra < cfg.Jitter/2 {
		t.Errorf("jitter never exceeded %v of %v", maxExtra, cfg.Jitter)
	}
}

// Bandwidth spaces packets by their serialisation time and the bounded queue drops
// what does not fit.
func TestLinkBandwidthQueue(t *testing.T) {
	// 100-byte datagrams every 50 µs (2 MB/s) into a 1 MB/s link with a 10 kB queue.
	cfg := LinkConfig{Bandwidth: 1_000_000, QueueBytes: 10_000}
	s, rx := linkRun(t, 1, cfg, 10_000, 50*time.Microsecond)
	st := s.Stats()
	if st.Dropped[DropQueue] == 0 {
		t.Fatal("no queue drops at twice the link rate")
	}
	// Delivered: one second of sending at half the offered rate, plus the queue.
	if got := uint64(len(rx.first)); got < 5000 || got > 5000+100+1 {
		t.Errorf("delivered %d of 10000 at half the rate", got)
	}
	for i := 1; i < len(rx.arrivals); i++ {
		if gap := rx.arrivals[i].Sub(rx.arrivals[i-1]); gap < 100*time.Microsecond {
			t.Fatalf("arrivals %d and %d only %v apart on a 1 MB/s link", i-1, i, gap)
		}
	}
}

// Outages and partitions drop everything inside their window and nothing outside.
func TestLinkOutageAndPartition(t *testing.T) {
	ms := func(n int) proto.Instant { return proto.Instant(n) * proto.Instant(time.Millisecond) }
	cfg := LinkConfig{Outages: []Window{{ms(100), ms(200)}}}
	s, rx := linkRun(t, 1, cfg, 1000, time.Millisecond)
	if got := s.Stats().Dropped[DropBlackhole]; got != 100 || len(rx.first) != 900 {
		t.Errorf("outage of 100 ms at 1 packet/ms: %d blackholed, %d delivered", got, len(rx.first))
	}

	s = New(Config{Seed: 1})
	a := s.AddHost("a", s.Core(), LinkConfig{})
	b := s.AddHost("b", s.Core(), LinkConfig{})
	a.OpenPort(1)
	rx = &counter{first: map[uint64]bool{}}
	b.Attach(rx)
	a.Attach(&counter{to: b.OpenPort(2), interval: time.Millisecond, limit: 1000})
	s.Partition(a, b, Window{ms(300), ms(350)})
	if err := s.Run(proto.Never); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Dropped[DropPartition]; got != 50 || len(rx.first) != 950 {
		t.Errorf("partition of 50 ms: %d dropped, %d delivered", got, len(rx.first))
	}
}

// A TTL-limited probe opens its own NAT's mapping but dies at the next router: the
// remedy DESIGN §9 uses against the port clash. Every forwarding device decrements
// the TTL and drops a packet that arrives with 1 (RFC 1812 §5.3.1), before any NAT
// state is made (Linux drops the unconfirmed conntrack entry with the packet).
func TestTTLLimitedProbe(t *testing.T) {
	pr := NewPair(PairConfig{Seed: 1, A: MustPreset("linux"), B: MustPreset("linux")})
	s := pr.Sim
	b := attachRecorder(pr.B.Host)
	attachRecorder(pr.A.Host)
	bExt := netip.AddrPortFrom(pr.B.Outer().Addr(), DefaultHostPort)
	probe := func(ttl uint8) {
		sendNow(t, s, pr.A.Host, pr.A.Host.Socket(), bExt, "probe", ttl)
		if err := s.RunFor(time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		ttl                  uint8
		mapped               bool   // A's NAT has a mapping toward B
		ttlDrops, atBsFilter uint64 // cumulative
	}{
		{1, false, 1, 0}, // dies at A's NAT
		{2, true, 2, 0},  // opens A's mapping, dies at the core router
		{3, true, 3, 0},  // dies at B's NAT, which is a router too
		{4, true, 3, 1},  // reaches B's NAT, which has no mapping for it
	} {
		probe(c.ttl)
		_, mapped := pr.A.Inner().Lookup(pr.A.Host.Socket(), bExt)
		st := s.Stats()
		if mapped != c.mapped || st.Dropped[DropTTL] != c.ttlDrops || st.Dropped[DropNoMapping] != c.atBsFilter {
			t.Fatalf("ttl %d: mapped %v, ttl drops %d, no-mapping drops at B %d; want %v, %d, %d",
				c.ttl, mapped, st.Dropped[DropTTL], st.Dropped[DropNoMapping], c.mapped, c.ttlDrops, c.atBsFilter)
		}
	}
	if len(b.got) != 0 {
		t.Fatal("a probe reached B")
	}
	// A router on A's access link adds a hop: TTL 4 now dies at B's NAT.
	pr.A.Outer().Link().Set(LinkConfig{Latency: 10 * time.Millisecond, Routers: 1})
	probe(4)
	if st := s.Stats(); st.Dropped[DropTTL] != 4 || st.Dropped[DropNoMapping] != 1 {
		t.Fatalf("ttl 4 across an extra router: ttl drops %d, no-mapping %d", st.Dropped[DropTTL], st.Dropped[DropNoMapping])
	}
}

// A datagram longer than a link's MTU is dropped there (DropMTU); one that fits passes.
func TestLinkMTU(t *testing.T) {
	s := New(Config{Seed: 1})
	a := s.AddHost("a", s.Core(), LinkConfig{MTU: 1200})
	b := s.AddHost("b", s.Core(), LinkConfig{})
	attachRecorder(a)
	rb := attachRecorder(b)
	from, to := a.OpenPort(1), b.OpenPort(2)
	sendNow(t, s, a, from, to, string(make([]byte, 1200)), 0)
	sendNow(t, s, a, from, to, string(make([]byte, 1201)), 0)
	if len(rb.got) != 1 || len(rb.got[0].data) != 1200 || s.Stats().Dropped[DropMTU] != 1 {
		t.Fatalf("delivered %d, MTU drops %d", len(rb.got), s.Stats().Dropped[DropMTU])
	}
}
