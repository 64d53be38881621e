package rudp

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim/simtest"
	"pgregory.net/rapid"
)

// sizedFeed queues reliable messages of the given sizes, message i on lane
// i mod lanes, two in three ordered and the rest unordered, as fast as the send
// buffer takes them.
type sizedFeed struct {
	c      *Conn
	o      *oracle
	lanes  int
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
		err := f.o.send(f.c, now, f.queued%f.lanes, mode, f.sizes[f.queued], f.buf)
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
// believes (so y accepts everything x may send); y holds at most max(RecvWindow,
// 64 KiB) of reliable data it has not had back from the application; and when x has
// more than one message part-sent, the limit covers all of them [FLOW-5].
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
	if w.x.partlySent > 1 && w.x.reliableSent+w.x.creditOwed > w.x.peerMaxData {
		failf("%d messages part-sent owe %d bytes of credit beyond the limit %d (sent %d)",
			w.x.partlySent, w.x.creditOwed, w.x.peerMaxData, w.x.reliableSent)
	}
	if w.x.partlySent == 0 && w.x.creditOwed != 0 {
		failf("no message part-sent, yet %d bytes of credit owed", w.x.creditOwed)
	}
	w.checkUnsent(failf)
	held := w.y.recvReliable - w.y.recvConsumed
	w.heldPeak = max(w.heldPeak, held)
	if bound := max(uint64(w.y.cfg.RecvWindow), initialMaxData); held > bound {
		failf("receiver holds %d bytes of reliable data, over max(RecvWindow, 64 KiB) = %d", held, bound)
	}
}

// checkUnsent checks the sender's per-lane count of bytes not yet sent once
// (SendQueueBytes) against its queue: the bytes of the pending messages past the
// fragments already sent, and within the bound plus one message.
func (w *windowWatch) checkUnsent(failf func(string, ...any)) {
	for i := range w.x.lanes {
		l := &w.x.lanes[i]
		want := 0
		for j := l.pending.head; j < l.pending.tail; j++ {
			m := *l.pending.at(j)
			want += len(m.data)
			if m.started {
				want -= int(m.next) * m.fragLen
			}
		}
		if l.unsent != want {
			failf("lane %d: %d bytes counted unsent, %d in the queue", i, l.unsent, want)
		}
		if q := w.x.cfg.SendQueueBytes; q > 0 && l.unsent >= q+w.x.cfg.MaxMessageSize {
			failf("lane %d: %d bytes unsent, bound %d + a message of at most %d", i, l.unsent, q, w.x.cfg.MaxMessageSize)
		}
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
				cfg := Config{MaxMessageSize: window / 2, RecvWindow: window, SendBufferBytes: 64 << 10}
				t.Log(runWindow(newNetwork(t, seed), cfg, everySize(window/2), 0.10))
			})
		})
	}
}

// TestWindowSharedByLanes: several lanes send messages of MaxMessageSize (half the
// window) at once, over loss, and all of them arrive. Before a sender started a
// message only when the window had room for all of it and what other part-sent
// messages still owed [FLOW-5], lanes of equal priority each got part of the window
// and none all of it: the receiver, which hands over only whole messages, gave no
// credit back, and the transfer stalled for good, with windows of any size (two
// lanes, 1 MiB window, 512 KiB messages: nothing delivered).
func TestWindowSharedByLanes(t *testing.T) {
	for _, c := range []struct {
		name  string
		lanes []LaneConfig
	}{
		{"two-equal", make([]LaneConfig, 2)},
		{"four-equal", []LaneConfig{{Weight: 1}, {Weight: 3}, {Weight: 1}, {Weight: 2}}},
		{"mixed-priority", []LaneConfig{{Priority: 0}, {Priority: 1}, {Priority: 0}}},
	} {
		for _, window := range []int{4 << 10, 16 << 10, 256 << 10} {
			t.Run(c.name+"/"+byteSize(window), func(t *testing.T) {
				simtest.Seeds(t, 1, 3, 50, func(t *testing.T, seed uint64) {
					cfg := Config{Lanes: c.lanes, MaxMessageSize: window / 2, RecvWindow: window, SendBufferBytes: 8 * window}
					sizes := make([]int, 12*len(c.lanes))
					for i := range sizes {
						sizes[i] = window / 2
						if i%5 == 4 {
							sizes[i] = 14 + i // small ones between
						}
					}
					t.Log(runWindow(newNetwork(t, seed), cfg, sizes, 0.05))
				})
			})
		}
	}
}

// TestWindowProperty: rapid picks the window (4 KiB to 128 KiB), MaxMessageSize (up to
// half of it), up to four lanes with their priorities and weights, the messages and
// the loss; every message arrives and the invariants of windowWatch hold throughout.
func TestWindowProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		window := rapid.OneOf(rapid.IntRange(minRecvWindow, 128<<10),
			rapid.SampledFrom([]int{4 << 10, 16 << 10, 63 << 10, 64 << 10, 128 << 10})).Draw(rt, "window")
		maxMsg := rapid.OneOf(rapid.IntRange(14, window/2), rapid.Just(window/2)).Draw(rt, "maxMessage")
		lanes := make([]LaneConfig, rapid.IntRange(1, 4).Draw(rt, "lanes"))
		for i := range lanes {
			lanes[i] = LaneConfig{Priority: uint8(rapid.IntRange(0, 1).Draw(rt, "priority")),
				Weight: uint16(rapid.IntRange(1, 4).Draw(rt, "weight"))}
		}
		// Large messages matter most: they are the ones a window can fail to hold.
		size := rapid.OneOf(rapid.IntRange(14, min(maxMsg, 300)), rapid.IntRange(maxMsg/2, maxMsg), rapid.Just(maxMsg))
		sizes := rapid.SliceOfN(size, 10, 60).Draw(rt, "sizes")
		loss := rapid.Float64Range(0, 0.1).Draw(rt, "loss")
		seed := rapid.Uint64().Draw(rt, "seed")
		cfg := Config{Lanes: lanes, MaxMessageSize: maxMsg, RecvWindow: window, SendBufferBytes: 2 * window,
			SendQueueBytes: rapid.SampledFrom([]int{0, 1, maxMsg / 2, window}).Draw(rt, "sendQueue")}
		n := newNetwork(t, seed)
		n.fatalf = rt.Fatalf // rapid shrinks a failure and prints how to replay it
		runWindow(n, cfg, sizes, loss)
	})
}

// runWindow sends sizes from a to b over links with up to maxLoss loss (and some
// duplication, jitter and reordering) both ways and checks that every message
// arrives, that b refused no packet, and windowWatch's invariants after every step.
func runWindow(n *network, cfg Config, sizes []int, maxLoss float64) string {
	r := n.rng
	mk := func() *link {
		return &link{cfg: linkConfig{
			delay:        time.Duration(1+r.IntN(40)) * time.Millisecond,
			jitter:       time.Duration(r.IntN(10)) * time.Millisecond,
			loss:         r.Float64() * maxLoss,
			dup:          r.Float64() * 0.03,
			reorder:      r.Float64() * 0.05,
			reorderDelay: time.Duration(5+r.IntN(30)) * time.Millisecond,
		}}
	}
	a, b := n.pair(cfg, mk(), mk())
	o := newOracle(n.failf)
	b.onMsg = o.receive
	f := &sizedFeed{c: a.c, o: o, lanes: len(a.c.lanes), sizes: sizes, buf: make([]byte, cfg.MaxMessageSize)}
	w := &windowWatch{x: a.c, y: b.c}
	n.afterStep = func() { w.check(n.failf) }
	start := n.now
	n.every(start, time.Millisecond, f.feed)
	limit := n.now.Add(60*time.Second + time.Duration(len(sizes))*200*time.Millisecond)
	if !n.run(limit, func() bool { return f.queued == len(sizes) && o.complete() }) {
		n.failf("window %d: %d of %d messages (%d queued) arrived by %v\na %+v\nb %+v",
			cfg.RecvWindow, o.arrived, len(sizes), f.queued, limit, a.c.Stats(), b.c.Stats())
	}
	if o.arrived != len(sizes) {
		n.failf("window %d: %d messages arrived, %d sent", cfg.RecvWindow, o.arrived, len(sizes))
	}
	if bad := b.c.Stats().InvalidDatagrams; bad != 0 {
		n.failf("window %d: the receiver refused %d packets", cfg.RecvWindow, bad)
	}
	return fmt.Sprintf("window %d: %d messages in %v virtual; receiver held at most %d bytes; %d retransmits",
		cfg.RecvWindow, o.arrived, n.now.Sub(start), w.heldPeak, a.c.Stats().Retransmits)
}

// byteSize names a window in KiB for subtest names.
func byteSize(n int) string {
	return strconv.Itoa(n>>10) + "KiB"
}
