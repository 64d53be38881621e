package sim

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"pgregory.net/rapid"
)

func newTestWorld(t *testing.T, p Preset) *natWorld {
	t.Helper()
	return newNATWorld(1, p)
}

// A port-restricted NAT keeps one mapping alive with traffic to the server while the
// filter entry for a peer that went quiet expires: RFC 4787 §5 filtering is "has sent
// to", and §4.3's timer applies to what is no longer sent to.
func TestFilterEntryExpiresWhileMappingLives(t *testing.T) {
	w := newTestWorld(t, MustPreset("port-restricted-cone"))
	server, peer := w.dests[0], w.dests[2]
	sendNow(t, w.s, w.site.Host, w.site.Host.Socket(), server, "register", 0)
	e := w.rec(server).last().from
	sendNow(t, w.s, w.site.Host, w.site.Host.Socket(), peer, "punch", 0)
	for range 3 { // keepalives to the server every 90 s
		if err := w.s.RunFor(90 * time.Second); err != nil {
			t.Fatal(err)
		}
		sendNow(t, w.s, w.site.Host, w.site.Host.Socket(), server, "keepalive", 0)
	}
	before := len(w.host.got)
	sendNow(t, w.s, w.remote[server], server, e, "from server", 0)
	if len(w.host.got) != before+1 {
		t.Fatal("the server's reply was refused although the mapping is refreshed")
	}
	sendNow(t, w.s, w.remote[peer], peer, e, "from peer", 0)
	if len(w.host.got) != before+1 {
		t.Fatal("the quiet peer's filter entry outlived the 2 min timeout")
	}
	if got := w.s.Stats().Dropped[DropFiltered]; got != 1 {
		t.Errorf("DropFiltered = %d, want 1", got)
	}
}

// A sequential NAT with the default range continues at its bottom after 65535, and
// proto.StepPort, which every predictor uses, says the same port: RFC 4787 §4.2.1
// REQ-3 keeps ports of sources at or above 1024 out of 0–1023.
func TestPropertySequentialWrapsAsStepPortSays(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		delta := rapid.IntRange(-4, 4).Filter(func(d int) bool { return d != 0 }).Draw(rt, "delta")
		s := New(Config{Seed: 1})
		box := s.AddNAT("nat", s.Core(), NATConfig{Mapping: proto.AddressAndPortDependent,
			Filtering: proto.AddressAndPortDependent, Allocation: proto.AllocationSequential, PortDelta: delta}, LinkConfig{})
		first := rapid.SampledFrom([]int{proto.NATPortMin, proto.NATPortMin + 3, proto.NATPortMax - 5, proto.NATPortMax}).Draw(rt, "last")
		box.lastPort = first
		for k := 1; k <= 8; k++ {
			port, ok := box.allocate(4000, netip.MustParseAddrPort("192.0.2.1:1"))
			want, _ := proto.StepPort(uint16(first), k*delta)
			if !ok || port != want {
				rt.Fatalf("mapping %d after %d (delta %d): NAT gave %d, StepPort says %d", k, first, delta, port, want)
			}
			box.byPort.set(port, &mapping{expires: proto.Never})
		}
	})
}
