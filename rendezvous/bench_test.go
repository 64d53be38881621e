package rendezvous

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// benchDrain hands every queued datagram to the void, as a driver's send would.
func benchDrain(s *Server, now proto.Instant, buf []byte) {
	for {
		if _, ok := s.PollTransmit(now, buf); !ok {
			return
		}
	}
}

// BenchmarkServerKeepalive: one keepalive in, one keepalive-ack out, for one of n
// registered sessions in turn (the server's steady-state load).
func BenchmarkServerKeepalive(b *testing.B) {
	for _, n := range []int{1, 10000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			h := newHarness(b, func(c *Config) {
				c.MaxPeers = n
				c.SourceRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20}
				c.SessionRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20}
				c.UnauthRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20}
			})
			kas := make([][]byte, n)
			addrs := make([]netip.AddrPort, n)
			for i := range n {
				addrs[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 40000)
				tk := testTicket(fmt.Sprintf("peer-%d", i), byte(i))
				err, out, _ := h.deliver(srvPrimary, addrs[i], registerBytes(uint64(i), MintTicket(testSecret, tk)))
				var r proto.Registered
				if err != nil {
					b.Fatal(err)
				}
				only(b, out, &r)
				kas[i] = keepaliveBytes(r.Session, 1)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(kas[0])))
			i := 0
			for b.Loop() {
				h.now++
				if err := h.s.HandleDatagram(h.now, srvPrimary, addrs[i], kas[i]); err != nil {
					b.Fatal(err)
				}
				benchDrain(h.s, h.now, h.buf)
				if i++; i == n {
					i = 0
				}
			}
		})
	}
}

// BenchmarkServerRegister: a register with a fresh ticket check (HMAC-SHA256) that
// replaces the peer's session each time.
func BenchmarkServerRegister(b *testing.B) {
	h := newHarness(b, func(c *Config) {
		c.SourceRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20}
		c.UnauthRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20}
	})
	reqs := [2][]byte{registerBytes(1, ticketFor("alice", 1), aliceLAN), registerBytes(2, ticketFor("alice", 1), aliceLAN)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.now++
		if err := h.s.HandleDatagram(h.now, srvPrimary, aliceNAT, reqs[i&1]); err != nil {
			b.Fatal(err)
		}
		benchDrain(h.s, h.now, h.buf)
		for {
			if _, ok := h.s.PollEvent(); !ok {
				break
			}
		}
		i++
	}
}

// BenchmarkServerSTUN: one padded Binding request with FINGERPRINT answered.
func BenchmarkServerSTUN(b *testing.B) {
	h := newHarness(b, func(c *Config) {
		c.SourceRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20}
		c.UnauthRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20}
	})
	req := paddedSTUN(1, 64, true)
	b.ReportAllocs()
	for b.Loop() {
		h.now++
		if err := h.s.HandleDatagram(h.now, srvPrimary, strangerA, req); err != nil {
			b.Fatal(err)
		}
		benchDrain(h.s, h.now, h.buf)
	}
}

// BenchmarkServerIntroduce: one introduce-request in, two introductions with relay
// token and PSK out.
func BenchmarkServerIntroduce(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.SessionRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20} })
	alice := h.register("alice", 1, aliceNAT, aliceLAN)
	bob := h.register("bob", 2, bobNAT, bobLAN)
	// Bob has reported his NAT, so the introduction is not held back (code 9).
	if err := h.s.ReportNAT(h.now, bob.Session, proto.NATBehavior{Mapping: proto.EndpointIndependent}); err != nil {
		b.Fatal(err)
	}
	req := introduceBytes(alice.Session, 1, "bob", 0)
	b.ReportAllocs()
	for b.Loop() {
		h.now++
		if err := h.s.HandleDatagram(h.now, srvPrimary, aliceNAT, req); err != nil {
			b.Fatal(err)
		}
		benchDrain(h.s, h.now, h.buf)
		for {
			if _, ok := h.s.PollEvent(); !ok {
				break
			}
		}
	}
}
