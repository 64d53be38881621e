package punch

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// PROTOCOL.md §9.3, re-punching after a NAT reboot: after Rebind, the next Refresh's
// search primes (TTL-limited) and probes every target from the fresh socket, the
// peer's predicted (fresh) address first and its latest direct address besides its
// candidates; a later introduction that names no predicted address keeps the peer's.
func TestRebindSearchesFromFreshSocket(t *testing.T) {
	a, b := newPair(testKey,
		[]proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrB}},
		[]proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrA}})
	w, _, _ := onWire(t, 20*time.Millisecond, a, b)
	w.RunUntil(proto.Instant(2 * time.Second))
	if p, ok := a.Active(); !ok || p.Remote != addrB {
		t.Fatalf("no direct path to rebind from: %+v %v", p, ok)
	}
	now := proto.Instant(3 * time.Second)
	drain(a, now)
	fresh := netip.MustParseAddrPort("192.0.2.1:4999")
	peerFresh := netip.MustParseAddrPort("198.51.100.2:6001")
	peerNow := netip.MustParseAddrPort("198.51.100.2:5002") // the peer's server-reflexive address moved
	if a.Rebound().IsValid() {
		t.Fatalf("Rebound before any Rebind: %v", a.Rebound())
	}
	a.Rebind(fresh)
	if a.Rebound() != fresh { // the owner names its mapping in every later refresh
		t.Fatalf("Rebound after Rebind(%v): %v", fresh, a.Rebound())
	}
	start := now.Add(500 * time.Millisecond)
	a.Refresh(start, natOpen, natOpen, []proto.Candidate{
		{Kind: proto.CandidateServerReflexive, Addr: peerNow}, {Kind: proto.CandidatePredicted, Addr: peerFresh}}, false)
	a.HandleTimeout(start)
	primes := sent(a, start)
	want := []netip.AddrPort{peerFresh, peerNow, addrB}
	if got := targetsOf(primes, fresh, primeTTL); !slices.Equal(got, want) {
		t.Errorf("primed from the fresh socket %v, want %v (all sent: %+v)", got, want, primes)
	}

	// The peer's refresh names no predicted address: its fresh one stays a target.
	later := start.Add(time.Second)
	a.Refresh(later.Add(500*time.Millisecond), natOpen, natOpen, []proto.Candidate{
		{Kind: proto.CandidateServerReflexive, Addr: peerNow}}, false)
	a.HandleTimeout(later.Add(500 * time.Millisecond))
	if got := targetsOf(sent(a, later.Add(500*time.Millisecond)), fresh, primeTTL); !slices.Contains(got, peerFresh) {
		t.Errorf("after an introduction with no predicted address the search primes %v, want %v kept", got, peerFresh)
	}
	a.Forget() // our network changed: the fresh socket went with it
	if a.Rebound().IsValid() {
		t.Errorf("Rebound after Forget: %v", a.Rebound())
	}
}

// sentPacket is one transmit's source, destination and TTL.
type sentPacket struct {
	from, to netip.AddrPort
	ttl      uint8
}

func sent(a *Agent, now proto.Instant) []sentPacket {
	var out []sentPacket
	buf := make([]byte, 1500)
	for {
		tx, ok := a.PollTransmit(now, buf)
		if !ok {
			return out
		}
		out = append(out, sentPacket{tx.From, tx.To, tx.TTL})
	}
}

func drain(a *Agent, now proto.Instant) {
	sent(a, now)
	for _, ok := a.PollEvent(); ok; _, ok = a.PollEvent() {
	}
}

// targetsOf lists where the packets from socket from with TTL ttl went, in order.
func targetsOf(ps []sentPacket, from netip.AddrPort, ttl uint8) []netip.AddrPort {
	var out []netip.AddrPort
	for _, p := range ps {
		if p.from == from && p.ttl == ttl {
			out = append(out, p.to)
		}
	}
	return out
}
