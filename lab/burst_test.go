package lab

import (
	"fmt"
	"testing"
	"time"

	"github.com/natpass/natpass/sim/simtest"
)

// burstCells are the NAT pairs the burst tests run on: direct open, a clash-prone
// pair that punches, and one that stays on the relay (every message relayed).
var burstCells = [][2]string{
	{"open", "open"},
	{"linux", "port-restricted-cone"},
	{"symmetric-random", "symmetric-random"},
}

// Many small reliable-ordered messages queued at once on a lossy link: when a
// retransmission fills a gap, rudp releases thousands of messages in one datagram.
// Every one of them arrives once and in order (issue 12: the node used to drop every
// event past 1024 of one call), and what the node queues between two drains stays
// within what the flow-control window lets the peer have out.
func TestBurstsArriveWholeAtFivePercentLoss(t *testing.T) {
	for _, cell := range burstCells {
		for _, n := range []int{2000, 5000, 20000} {
			t.Run(fmt.Sprintf("%s-%s/%d", cell[0], cell[1], n), func(t *testing.T) {
				simtest.Seeds(t, 1, 2, 20, func(t *testing.T, seed uint64) {
					w, err := newWorld(RunConfig{A: cell[0], B: cell[1], Seed: seed, Loss: 0.05,
						Messages: n, Timeout: 120 * time.Second})
					if err != nil {
						t.Fatal(err)
					}
					w.connect()
					for _, s := range []*side{w.a, w.b} {
						if s.received != n || s.corrupt != 0 || s.closed != "" {
							t.Fatalf("%s got %d of %d (%d out of order or altered; closed %q)",
								s.name, s.received, n, s.corrupt, s.closed)
						}
						if bound := maxQueuedMessages(); s.maxPending > bound {
							t.Fatalf("%s: the node queued %d events between two drains, over the window's %d",
								s.name, s.maxPending, bound)
						}
					}
				})
			})
		}
	}
}

// maxQueuedMessages is the most messages one peer can have delivered and not taken:
// the default window over the smallest flow-control cost (32 bytes), plus as many
// unreliable ones, plus a few state events.
func maxQueuedMessages() int { return 2*(4<<20)/32 + 64 }

// A receiver that stops taking messages holds the sender to one window: 100,000
// small messages queued at once reach it only as far as its window allows, nothing is
// lost or closed meanwhile, and once it reads again every message arrives in order.
func TestStoppedReaderHoldsSenderToWindow(t *testing.T) {
	simtest.Seeds(t, 1, 2, 10, func(t *testing.T, seed uint64) {
		const n = 100000
		w, err := newWorld(RunConfig{A: "open", B: "port-restricted-cone", Seed: seed, Loss: 0.01, Messages: n})
		if err != nil {
			t.Fatal(err)
		}
		w.b.toSend = 0
		w.b.stalled = true
		w.cfg.Timeout = 20 * time.Second
		w.connect()
		b := w.b
		// Each lab message costs its length plus 32 bytes: at least 47 bytes.
		if window := (4 << 20) / 47; b.received == 0 || b.received > window {
			t.Fatalf("stopped reader got %d messages; want 1..%d (one window)", b.received, window)
		}
		if b.closed != "" || w.a.closed != "" {
			t.Fatalf("closed while the reader was stopped: a %q, b %q", w.a.closed, b.closed)
		}
		st, _ := w.a.node.ConnStats("b")
		if st.SendBuffered == 0 {
			t.Fatal("sender has nothing buffered: the window did not hold it back")
		}
		b.stalled = false
		b.host.Drain()
		if err := w.s.RunUntil(w.s.Now().Add(120*time.Second), func() bool { return b.received == n }); err != nil {
			t.Fatal(err)
		}
		if b.received != n || b.corrupt != 0 {
			t.Fatalf("after the reader resumed: %d of %d (%d corrupt)", b.received, n, b.corrupt)
		}
	})
}
