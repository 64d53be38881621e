package rudp

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// A 1 MB bulk transfer on a low-priority lane delays a message on a high-priority
// lane by at most one packet's serialization time: the message leaves in the next
// packet the pacer releases (strict priority), and the window always keeps one packet
// free for the top lane, so it never waits for an acknowledgement behind bulk data.
// The serialization time is that of a full packet at the sender's pacing rate when the
// message was queued, which is the rate at which it puts packets on the path.
func TestPriorityLaneNotDelayedByBulk(t *testing.T) {
	n := newNetwork(t, 9)
	cfg := Config{Lanes: []LaneConfig{{Priority: 0, Weight: 1}, {Priority: 1, Weight: 1}}}
	a, b := n.pair(cfg, &link{cfg: bottleneck()}, &link{cfg: linkConfig{delay: 20 * time.Millisecond}})
	o := newOracle(n.failf)
	b.onMsg = o.receive
	bk := &bulk{c: a.c, o: o, lane: 0, total: 1 << 20, msgSize: 64 << 10, buf: make([]byte, 64<<10)}
	start := n.now
	n.every(start, time.Millisecond, bk.feed)

	type waiting struct {
		sent  proto.Instant
		limit time.Duration
	}
	var queue []waiting
	var worst, worstLimit time.Duration
	worstRatio := -1.0
	urgent := 0
	buf := make([]byte, 256)
	n.every(start.Add(5*time.Millisecond), 7*time.Millisecond, func(now proto.Instant) bool {
		st := a.c.Stats()
		packetBytes := st.DatagramSize - defaultHeadroom - defaultTailroom
		limit := time.Duration(float64(packetBytes) / float64(st.PacingRate) * float64(time.Second))
		if err := o.send(a.c, now, 1, ReliableOrdered, 200, buf); err != nil {
			n.failf("send: %v", err)
		}
		queue = append(queue, waiting{sent: now, limit: limit + time.Microsecond})
		urgent++
		return b.c.LaneStats(0).BytesDelivered < uint64(bk.total)
	})
	left := uint64(0)
	n.afterStep = func() {
		for sent := a.c.LaneStats(1).MessagesSent; left < sent; left++ {
			w := queue[0]
			queue = queue[1:]
			d := n.now.Sub(w.sent)
			if r := float64(d) / float64(w.limit); r > worstRatio {
				worst, worstLimit, worstRatio = d, w.limit, r
			}
			if d > w.limit {
				n.failf("high-priority message waited %v behind bulk, more than one packet time %v", d, w.limit)
			}
		}
	}
	if !n.run(start.Add(60*time.Second), func() bool { return b.c.LaneStats(0).BytesDelivered == uint64(bk.total) && o.complete() }) {
		n.failf("bulk incomplete: %d/%d", o.arrived, o.expected)
	}
	ls := a.c.LaneStats(1)
	t.Logf("%d high-priority messages during a 1 MB bulk transfer; worst wait %v (its one-packet bound %v); lane stats %+v",
		urgent, worst, worstLimit, ls)
	if urgent < 50 || left != uint64(urgent) {
		n.failf("only %d urgent messages sent (%d left)", urgent, left)
	}
}
