package keyx

import (
	"net/netip"
	"runtime"
	"testing"
)

// An Endpoint that was never under load holds no rate-limit table: an embedding
// client with one Endpoint per node (a load generator, a test holding thousands)
// pays a few KB each, not a server's table (it was ≈ 384 KB preallocated).
func TestEndpointFootprintWithoutLoad(t *testing.T) {
	const n = 200
	keep := make([]*Endpoint, n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = New(Config{Rand: seeded(uint64(i))}, t0)
	}
	runtime.ReadMemStats(&after)
	perEndpoint := (after.TotalAlloc - before.TotalAlloc) / n
	if perEndpoint > 16<<10 {
		t.Fatalf("New allocates %d bytes per Endpoint, want ≤ 16 KiB", perEndpoint)
	}
	if keep[0].limiter.table != nil {
		t.Fatal("the rate-limit table exists before any initiation under load")
	}
}

// The lazily made table still holds at most its size: past it, a new source is
// refused until idle entries can be forgotten.
func TestRateLimiterBoundWhenMadeLazily(t *testing.T) {
	l := newRateLimiter(3)
	for i := range 3 {
		if !l.allow(t0, netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})) {
			t.Fatalf("source %d refused with room in the table", i)
		}
	}
	if l.allow(t0, netip.MustParseAddr("192.0.2.99")) {
		t.Fatal("a fourth source admitted into a table of 3 with no idle entry")
	}
	if len(l.table) != 3 {
		t.Fatalf("table holds %d entries, want 3", len(l.table))
	}
	if !l.allow(t0.Add(rateIdle), netip.MustParseAddr("192.0.2.99")) {
		t.Fatal("a new source refused after the others went idle")
	}
}
