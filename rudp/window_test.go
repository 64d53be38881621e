package rudp

import (
	"strconv"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim/simtest"
)

// sizedFeed queues reliable messages of the given sizes on one lane, alternating
// ordered and unordered, as fast as the send buffer takes them.
type sizedFeed struct {
	c      *Conn
	o      *oracle
	lane   int
	sizes  []int
	queued int // messages of sizes already queued
	buf    []byte
}

func (f *sizedFeed) feed(now proto.Instant) bool {
	for f.queued < len(f.sizes) {
		mode := ReliableOrdered
		if f.queued%3 == 2 {
			mode = ReliableUnordered
		}
		err := f.o.send(f.c, now, f.lane, mode, f.sizes[f.queued], f.buf)
		if err == ErrSendBufferFull {
			return true
		} else if err != nil {
			f.o.failf("send: %v", err)
		}
		f.queued++
	}
	return false
}

// everySize lists message sizes from the smallest the oracle makes (14 bytes) to
// largest: every size up to 2 KiB, then steps that still end on largest exactly.
func everySize(largest int) []int {
	var s []int
	for n := 14; n <= min(largest, 2048); n++ {
		s = append(s, n)
	}
	for n := 2048 + 997; n < largest; n += 997 + len(s)%61 {
		s = append(s, n)
	}
	if largest > 2048 {
		s = append(s, largest)
	}
	return s
}

// windowWatch checks, after every step of a run, the flow-control invariants between
// sender x and receiver y: y's advertised limit never falls, never below what x
// believes (so y accepts everything x may send), and y holds at most
// max(RecvWindow, 64 KiB) of reliable data it has not had back from the application.
type windowWatch struct {
	x, y       *Conn
	advertised uint64
	heldPeak   uint64
}

func (w *windowWatch) check(failf func(string, ...any)) {
	adv := w.y.advertisedMaxData
	if adv < w.advertised {
		failf("receiver lowered its limit from %d to %d", w.advertised, adv)
	}
	w.advertised = adv
	if w.x.peerMaxData > adv {
		failf("sender may send up to %d, receiver accepts up to %d", w.x.peerMaxData, adv)
	}
	held := w.y.recvReliable - w.y.recvConsumed
	w.heldPeak = max(w.heldPeak, held)
	if bound := max(uint64(w.y.cfg.RecvWindow), initialMaxData); held > bound {
		failf("receiver holds %d bytes of reliable data, over max(RecvWindow, 64 KiB) = %d", held, bound)
	}
}

// TestSmallRecvWindows: with RecvWindow below the 64 KiB every sender assumes before
// its first MAX_DATA (4, 16 and 63 KiB, MaxMessageSize half of it), a transfer of
// reliable messages of every size up to MaxMessageSize, over loss, duplication and
// reordering both ways, arrives whole and counted, the receiver never refuses a packet
// as over its limit, and its limit never moves backwards. Before the receiver kept
// its limit monotonic, its first MAX_DATA fell below 64 KiB, it refused data the
// sender had every right to send, and the transfer stalled for good.
func TestSmallRecvWindows(t *testing.T) {
	for _, window := range []int{4 << 10, 16 << 10, 63 << 10} {
		t.Run(byteSize(window), func(t *testing.T) {
			simtest.Seeds(t, 1, 6, 50, func(t *testing.T, seed uint64) {
				runSmallWindow(t, seed, window, everySize(window/2))
			})
		})
	}
}

func runSmallWindow(t *testing.T, seed uint64, window int, sizes []int) {
	n := newNetwork(t, seed)
	r := n.rng
	mk := func() *link {
		return &link{cfg: linkConfig{
			delay:        time.Duration(1+r.IntN(40)) * time.Millisecond,
			jitter:       time.Duration(r.IntN(10)) * time.Millisecond,
			loss:         0.02 + r.Float64()*0.10,
			dup:          r.Float64() * 0.03,
			reorder:      0.02 + r.Float64()*0.05,
			reorderDelay: time.Duration(5+r.IntN(30)) * time.Millisecond,
		}}
	}
	cfg := Config{MaxMessageSize: window / 2, RecvWindow: window, SendBufferBytes: 64 << 10}
	a, b := n.pair(cfg, mk(), mk())
	o := newOracle(n.failf)
	b.onMsg = o.receive
	f := &sizedFeed{c: a.c, o: o, sizes: sizes, buf: make([]byte, window)}
	w := &windowWatch{x: a.c, y: b.c}
	n.afterStep = func() { w.check(n.failf) }
	start := n.now
	n.every(start, time.Millisecond, f.feed)
	limit := n.now.Add(time.Duration(len(sizes)) * 200 * time.Millisecond)
	if !n.run(limit, func() bool { return f.queued == len(sizes) && o.complete() }) {
		n.failf("window %d: %d of %d messages (%d queued) arrived by %v\na %+v\nb %+v",
			window, o.arrived, len(sizes), f.queued, limit, a.c.Stats(), b.c.Stats())
	}
	if o.arrived != len(sizes) {
		n.failf("window %d: %d messages arrived, %d sent", window, o.arrived, len(sizes))
	}
	if bad := b.c.Stats().InvalidDatagrams; bad != 0 {
		n.failf("window %d: the receiver refused %d packets", window, bad)
	}
	t.Logf("window %d: %d messages (%d bytes) in %v virtual; receiver held at most %d bytes; %d retransmits, %d packets lost",
		window, o.arrived, b.c.LaneStats(0).BytesDelivered, n.now.Sub(start), w.heldPeak, a.c.Stats().Retransmits, a.c.Stats().PacketsLost)
	if w.heldPeak == 0 || a.c.Stats().Retransmits == 0 {
		n.failf("the run exercised nothing: held peak %d, retransmits %d", w.heldPeak, a.c.Stats().Retransmits)
	}
}

// byteSize names a window in KiB for subtest names.
func byteSize(n int) string {
	return strconv.Itoa(n>>10) + "KiB"
}
