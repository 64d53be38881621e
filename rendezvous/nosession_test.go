package rendezvous

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// After a restart, 10,000 nodes behind one address (each its own port) send their
// next keepalive with a cookie the server no longer knows. Every one hears error 5
// within the keepalive's size ([AMP-1]), so every node registers again at once; none
// is charged to the address's bucket, which still admits a register right after.
// Past the server-wide no-session budget the rest are dropped and counted.
func TestRestartBehindOneAddressAllHearNoSession(t *testing.T) {
	const n = 10000
	h := newHarness(t, func(c *Config) { c.NoSessionRate = Rate{Interval: time.Millisecond, Burst: n} })
	for i := range n {
		from := netip.AddrPortFrom(aliceNAT.Addr(), uint16(1024+i))
		req := keepaliveBytes(proto.Session{byte(i), byte(i >> 8), 0xDE, 0xAD}, uint32(i))
		err, out, _ := h.deliver(srvPrimary, from, req)
		if !errors.Is(err, ErrNoSession) || errorCode(t, out) != proto.CodeNoSession ||
			out[0].To != from || len(out[0].Payload) > len(req) {
			t.Fatalf("keepalive %d: %v, %+v", i, err, out)
		}
	}
	st := h.s.Stats()
	if st.NoSession != n || st.Sources != 0 || st.DropRateLimited != 0 {
		t.Fatalf("no-session answers %d (want %d), source entries %d (want 0), rate-limited %d",
			st.NoSession, n, st.Sources, st.DropRateLimited)
	}
	err, out, _ := h.deliver(srvPrimary, aliceNAT, keepaliveBytes(proto.Session{1}, 1))
	if !errors.Is(err, ErrBusy) || len(out) != 0 || h.s.Stats().DropNoSessionBusy != 1 {
		t.Fatalf("past the budget: %v, %d replies, %d counted", err, len(out), h.s.Stats().DropNoSessionBusy)
	}
	h.wait(time.Millisecond)
	if err, out, _ := h.deliver(srvPrimary, aliceNAT, keepaliveBytes(proto.Session{1}, 2)); !errors.Is(err, ErrNoSession) || len(out) != 1 {
		t.Fatalf("after one interval: %v, %d replies", err, len(out))
	}
	if err, _, _ := h.deliver(srvPrimary, aliceNAT, registerBytes(7, ticketFor("alice", 1))); err != nil {
		t.Fatalf("register from the address after its nodes' dead cookies: %v", err)
	}
}

// A flood of requests with forged cookies from spoofed sources costs a map lookup
// and an answer no larger than the request: no per-source entry, no MAC, no
// allocation, and nothing of the budget registers' retries are charged to.
func TestSpoofedUnknownCookieFloodCostsNoState(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.NoSessionRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20} })
	spoofed := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 4000)
	}
	for i := range 5000 {
		req := probeBytes(proto.Session{byte(i), byte(i >> 8), 0xF0}, uint64(i), 0)
		if i%2 == 0 {
			req = keepaliveBytes(proto.Session{byte(i), byte(i >> 8), 0xF0}, uint32(i))
		}
		err, out, _ := h.deliver(srvPrimary, spoofed(i), req)
		if !errors.Is(err, ErrNoSession) || len(out) != 1 || len(out[0].Payload) > len(req) {
			t.Fatalf("forged cookie %d: %v, %d replies", i, err, len(out))
		}
	}
	st := h.s.Stats()
	if st.Sources != 0 || st.SourceEvictions != 0 || st.Admission.Retries != 0 {
		t.Fatalf("the flood left %d source entries, %d evictions, %d retries", st.Sources, st.SourceEvictions, st.Admission.Retries)
	}
	// The server-wide reply budget of registers is untouched: a register from a
	// new source still goes straight to its ticket check.
	if err, _, _ := h.deliver(srvPrimary, bobNAT, registerBytes(2, ticketFor("bob", 2))); err != nil {
		t.Fatalf("register after the flood: %v", err)
	}
	req := keepaliveBytes(proto.Session{0xAB}, 1)
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		i++
		_ = h.s.HandleDatagram(h.now, srvPrimary, spoofed(i), req)
		for {
			if _, ok := h.s.PollTransmit(h.now, h.buf); !ok {
				break
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("an unknown cookie allocates %.1f times", allocs)
	}
}
