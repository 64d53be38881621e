package punch

import (
	"net/netip"
	"testing"

	"github.com/natpass/natpass/proto"
)

// DESIGN §2: "now never decreases; a machine panics on caller misuse". The kit checks
// HandleTimeout only; every entry point that takes now is checked here.
func TestTimeBackwardsPanicsEverywhere(t *testing.T) {
	const at = proto.Instant(5_000_000_000)
	var buf [256]byte
	probe := func(a *Agent) []byte { return (&proto.Probe{Pair: a.Pair()}).Append(nil) }
	agentCalls := []struct {
		name string
		call func(a *Agent, now proto.Instant)
	}{
		{"HandleTimeout", func(a *Agent, now proto.Instant) { a.HandleTimeout(now) }},
		{"HandleDatagram", func(a *Agent, now proto.Instant) { _ = a.HandleDatagram(now, addrA, addrB, probe(a)) }},
		{"HandleSockets", func(a *Agent, now proto.Instant) { a.HandleSockets(now, nil) }},
		{"CheckPath", func(a *Agent, now proto.Instant) { a.CheckPath(now) }},
		{"NoteTraffic", func(a *Agent, now proto.Instant) { a.NoteTraffic(now, addrA, addrB) }},
		{"PollTransmit", func(a *Agent, now proto.Instant) { a.PollTransmit(now, buf[:]) }},
	}
	for _, tc := range agentCalls {
		name, call := tc.name, tc.call
		a, _ := newPair(testKey, []proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrB}}, nil)
		a.HandleTimeout(at)
		mustPanic(t, "Agent."+name, func() { call(a, at-1) })
		call(a, at) // the same instant again is fine
	}

	reply := (&proto.NATProbeReply{TxID: 1, Observed: addrA}).Append(nil)
	classifierCalls := []struct {
		name string
		call func(c *Classifier, now proto.Instant)
	}{
		{"HandleTimeout", func(c *Classifier, now proto.Instant) { c.HandleTimeout(now) }},
		{"HandleDatagram", func(c *Classifier, now proto.Instant) { _ = c.HandleDatagram(now, addrA, srvPrimary, reply) }},
		{"HandleSockets", func(c *Classifier, now proto.Instant) { c.HandleSockets(now, []netip.AddrPort{addrA}) }},
		{"PollTransmit", func(c *Classifier, now proto.Instant) { c.PollTransmit(now, buf[:]) }},
	}
	for _, tc := range classifierCalls {
		name, call := tc.name, tc.call
		c := NewClassifier(ClassifierConfig{Local: addrA, Server: srvPrimary})
		c.Start(at)
		mustPanic(t, "Classifier."+name, func() { call(c, at-1) })
		call(c, at)
	}
	c := NewClassifier(ClassifierConfig{Local: addrA, Server: srvPrimary})
	c.PollTransmit(at, buf[:])
	mustPanic(t, "Classifier.Start", func() { c.Start(at - 1) })
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != "punch: time went backwards" {
			t.Errorf("%s with an earlier instant: recovered %v, want the clock's panic", what, r)
		}
	}()
	f()
}
