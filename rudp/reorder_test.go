package rudp

import (
	"testing"
	"time"
)

// On a path that reorders (10 % of packets 15 ms late, far more than three packets
// at 10 Mbit/s), the first spurious losses show the reordering (RFC 8985 §6.2); from
// then on the packet-count rule is off and the window covers the delay, so almost
// nothing is declared lost in vain. (The path's only real losses are its drop-tail
// buffer's, when slow start or CUBIC fills it; those are not counted against it.)
func TestReorderingAdaptsLossDetection(t *testing.T) {
	l := linkConfig{delay: 20 * time.Millisecond, reorder: 0.10, reorderDelay: 15 * time.Millisecond,
		rateBps: 10_000_000, queuePackets: 100}
	d, _, a, _ := transfer(t, 21, Config{}, l, linkConfig{delay: 20 * time.Millisecond}, 8<<20, 60*time.Second)
	s := a.c.Stats()
	vain := s.PacketsLost - uint64(a.out.dropped)
	rate := float64(vain) / float64(s.PacketsSent)
	t.Logf("8 MB with 10 %% reordering in %v: %d spurious losses seen, %d of %d packets declared lost (%d dropped by the buffer, %.2f %% in vain), %d retransmissions, reordering window ×%d, %d congestion events",
		d, s.SpuriousLosses, s.PacketsLost, s.PacketsSent, a.out.dropped, 100*rate, s.Retransmits, a.c.reorder.mult, s.CongestionEvents)
	if s.SpuriousLosses == 0 || !a.c.reorder.seen {
		t.Fatalf("reordering never detected")
	}
	// Every reordered packet would be declared lost with the three-packet rule alone.
	if rate > 0.02 {
		t.Fatalf("%.2f %% of packets declared lost in vain", 100*rate)
	}
}
