package rudp

import (
	"testing"
	"time"
)

// On a path that reorders (10 % of packets 15 ms late, far more than three packets
// at 10 Mbit/s), the first spurious losses show the reordering (RFC 8985 §6.2); from
// then on the packet-count rule is off and the window covers the delay, so almost
// nothing is retransmitted in vain.
func TestReorderingAdaptsLossDetection(t *testing.T) {
	l := linkConfig{delay: 20 * time.Millisecond, reorder: 0.10, reorderDelay: 15 * time.Millisecond,
		rateBps: 10_000_000, queuePackets: 100}
	_, _, a, _ := transfer(t, 21, Config{}, l, linkConfig{delay: 20 * time.Millisecond}, 8<<20, 60*time.Second)
	s := a.c.Stats()
	rate := float64(s.Retransmits) / float64(s.PacketsSent)
	t.Logf("8 MB with 10 %% reordering: %d spurious losses seen, %d retransmissions of %d packets (%.2f %%), reordering window ×%d",
		s.SpuriousLosses, s.Retransmits, s.PacketsSent, 100*rate, a.c.reorder.mult)
	if s.SpuriousLosses == 0 || !a.c.reorder.seen {
		t.Fatalf("reordering never detected")
	}
	// Every reordered packet would be retransmitted with the three-packet rule alone.
	if rate > 0.02 {
		t.Fatalf("%.2f %% of packets retransmitted on a path that loses nothing", 100*rate)
	}
}
