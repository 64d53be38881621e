package rudp

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim/simtest"
)

// Scenarios in the spirit of quic-interop-runner's transfer tests, run on the seeded
// in-memory network. Each names its seed; a failure prints the replay command.

// bulk keeps e's send buffer fed with messages of msgSize until total bytes are
// queued, checking each against o.
type bulk struct {
	c       *Conn
	o       *oracle
	lane    int
	total   int
	msgSize int
	queued  int
	buf     []byte
}

func (bk *bulk) feed(now proto.Instant) bool {
	for bk.queued < bk.total {
		size := min(bk.msgSize, bk.total-bk.queued)
		if err := bk.o.send(bk.c, now, bk.lane, ReliableOrdered, size, bk.buf); err == ErrSendBufferFull {
			return true
		} else if err != nil {
			bk.o.failf("send: %v", err)
		}
		bk.queued += size
	}
	return false
}

// transfer moves total bytes a→b over the links and returns the virtual time it took.
func transfer(t *testing.T, seed uint64, cfg Config, ab, ba linkConfig, total int, limit time.Duration) (time.Duration, *network, *endpoint, *endpoint) {
	n := newNetwork(t, seed)
	a, b := n.pair(cfg, &link{cfg: ab}, &link{cfg: ba})
	o := newOracle(n.failf)
	b.onMsg = o.receive
	bk := &bulk{c: a.c, o: o, total: total, msgSize: 64 << 10, buf: make([]byte, 64<<10)}
	start := n.now
	n.every(start, time.Millisecond, bk.feed)
	if !n.run(start.Add(limit), func() bool { return bk.queued == total && o.complete() }) {
		n.failf("transfer of %d bytes incomplete after %v: %d/%d messages\na: %+v\nb: %+v",
			total, limit, o.arrived, o.expected, a.c.Stats(), b.c.Stats())
	}
	return n.now.Sub(start), n, a, b
}

func TestTransfer2MBAt2PercentLoss(t *testing.T) {
	l := linkConfig{delay: 20 * time.Millisecond, loss: 0.02, rateBps: 10_000_000, queuePackets: 100}
	d, _, a, _ := transfer(t, 2, Config{}, l, l, 2<<20, 60*time.Second)
	t.Logf("2 MB at 2%% loss, 40 ms RTT, 10 Mbit/s: %v (%.2f Mbit/s), %+v", d, 8*float64(2<<20)/d.Seconds()/1e6, a.c.Stats())
}

func TestTransferAt30PercentLoss(t *testing.T) {
	l := linkConfig{delay: 20 * time.Millisecond, loss: 0.30, rateBps: 10_000_000, queuePackets: 100}
	d, _, a, _ := transfer(t, 3, Config{}, l, l, 1<<20, 300*time.Second)
	t.Logf("1 MiB at 30%% loss each way: %v, %+v", d, a.c.Stats())
}

// quic-network-simulator's blackhole scenario: the link works for 5 s, then drops
// everything for 2 s, repeatedly.
func TestTransfer10MBThroughBlackhole(t *testing.T) {
	var origin proto.Instant = 1_000_000_000
	hole := func(t proto.Instant) bool {
		return (t-origin)%proto.Instant(7*time.Second) >= proto.Instant(5*time.Second)
	}
	l := linkConfig{delay: 15 * time.Millisecond, rateBps: 10_000_000, queuePackets: 100, blackhole: hole}
	d, _, a, b := transfer(t, 4, Config{}, l, l, 10<<20, 120*time.Second)
	t.Logf("10 MB through 5 s on / 2 s off: %v, %+v", d, a.c.Stats())
	// The free lists keep at most poolKeepTotal bytes after the burst.
	for _, e := range []*endpoint{a, b} {
		if e.c.pool.retained > poolKeepTotal || len(e.c.pool.out) > poolKeepCount || len(e.c.pool.in) > poolKeepCount {
			t.Errorf("%s pool holds %d bytes in %d+%d structs after the transfer", e.name, e.c.pool.retained, len(e.c.pool.out), len(e.c.pool.in))
		}
	}
}

func TestTransferAt750msRTT(t *testing.T) {
	l := linkConfig{delay: 375 * time.Millisecond, rateBps: 10_000_000, queuePackets: 1000}
	d, _, a, _ := transfer(t, 5, Config{}, l, l, 4<<20, 120*time.Second)
	t.Logf("4 MB at 750 ms RTT: %v, %+v", d, a.c.Stats())
	if a.c.Stats().MinRTT < 750*time.Millisecond {
		t.Fatalf("min RTT %v below the path's 750 ms", a.c.Stats().MinRTT)
	}
}

// percentile returns the p-th percentile (0..100) of xs.
func percentile(xs []int64, p float64) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return time.Duration(s[max(i, 0)])
}

// The game case: 50 ms RTT, 5 % loss each way, 20 Hz × 200-byte reliable-ordered
// messages. p99 delivery latency must stay within 150 ms: a loss is repaired within
// about one RTT (an immediate ACK on the gap, RACK, or the PTO probe) rather than
// after a second-long RTO. With LaneConfig.Redundant the next packet repairs it, and
// p99 stays within 100 ms: one inter-send period plus the one-way delay.
func TestGameLatency(t *testing.T) {
	for _, c := range []struct {
		name      string
		redundant bool
		p99Max    time.Duration
	}{
		{"default", false, 150 * time.Millisecond},
		{"redundant", true, 100 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			seed := uint64(6)
			if fixed, ok := simtest.Fixed(); ok {
				seed = fixed
			}
			n := newNetwork(t, seed)
			l := linkConfig{delay: 25 * time.Millisecond, loss: 0.05}
			cfg := Config{Lanes: []LaneConfig{{Weight: 1, Redundant: c.redundant}}}
			a, b := n.pair(cfg, &link{cfg: l}, &link{cfg: l})
			o := newOracle(n.failf)
			b.onMsg = o.receive
			buf := make([]byte, 256)
			const count = 20 * 600 // ten minutes at 20 Hz
			sent := 0
			n.every(n.now, 50*time.Millisecond, func(now proto.Instant) bool {
				if err := o.send(a.c, now, 0, ReliableOrdered, 200, buf); err != nil {
					n.failf("send: %v", err)
				}
				sent++
				return sent < count
			})
			if !n.run(n.now.Add(700*time.Second), func() bool { return sent == count && o.complete() }) {
				n.failf("game: %d of %d delivered", o.arrived, o.expected)
			}
			p50, p99, worst := percentile(o.latency, 50), percentile(o.latency, 99), percentile(o.latency, 100)
			st := a.c.Stats()
			t.Logf("game (%s): %d messages, p50 %v p99 %v max %v; %d bytes sent for %d of messages, %d repeated frames",
				c.name, count, p50, p99, worst, st.BytesSent, count*200, st.RedundantFrames)
			if p99 > c.p99Max {
				n.failf("p99 latency %v over %v (p50 %v, max %v)", p99, c.p99Max, p50, worst)
			}
			// Without redundancy the losses show in the lane's counters; with it a lost
			// packet's message is usually acknowledged through its copy first.
			if ls := a.c.LaneStats(0); a.out.dropped == 0 || (!c.redundant && ls.FragmentsLost == 0) {
				n.failf("5 %% loss but %d drops, lane stats %+v", a.out.dropped, ls)
			}
			if c.redundant != (st.RedundantFrames > 0) {
				n.failf("redundant %v but %d repeated frames", c.redundant, st.RedundantFrames)
			}
		})
	}
}
