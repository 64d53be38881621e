package rendezvous

import (
	"net/netip"
	"testing"

	"github.com/natpass/natpass/proto"
)

// Suite sets of the tests: alice accepts AES-GCM too; bob sends ChaChaPoly plus a
// bit no suite has yet, which the server passes on untouched ([SUITE-2], [REG-3]).
var (
	aliceSuites = proto.SuitesOf(proto.SuiteChaChaPoly, proto.SuiteAESGCM)
	bobSuites   = proto.SuitesOf(proto.SuiteChaChaPoly) | 0x80
)

// registerWithSuites registers id on h from addr with the given txid and suites and
// returns the reply.
func (h *harness) registerWithSuites(id string, key byte, from netip.AddrPort, txid uint64, suites proto.SuiteSet) proto.Registered {
	h.t.Helper()
	m := proto.Register{TxID: txid, Ticket: ticketFor(id, key), Suites: suites}
	err, out, _ := h.deliver(srvPrimary, from, m.Append(nil))
	if err != nil {
		h.t.Fatalf("register %s: %v", id, err)
	}
	var r proto.Registered
	only(h.t, out, &r)
	return r
}

// introductionsTo returns every introduction in out addressed to to.
func introductionsTo(out []sent, to netip.AddrPort) []proto.Introduction {
	var got []proto.Introduction
	for _, d := range out {
		var m proto.Introduction
		if d.To == to && m.Parse(d.Payload) == nil {
			got = append(got, m)
		}
	}
	return got
}

// checkPeerSuites fails unless intros holds at least one introduction and each
// carries want.
func checkPeerSuites(t *testing.T, who string, intros []proto.Introduction, want proto.SuiteSet) {
	t.Helper()
	if len(intros) == 0 {
		t.Fatalf("%s got no introduction", who)
	}
	for k, m := range intros {
		if m.PeerSuites != want {
			t.Fatalf("%s's copy %d carries peer suites %#x, want %#x", who, k, m.PeerSuites, want)
		}
	}
}

// PROTOCOL.md [INTRO-3] on one server: each side's introduction carries the suites
// the other registered with, in the first copy and in every repeat.
func TestIntroductionCarriesPeerSuites(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.registerWithSuites("alice", 1, aliceNAT, 0x101, aliceSuites)
	bob := h.registerWithSuites("bob", 2, bobNAT, 0x201, bobSuites)
	for _, c := range []proto.Session{alice.Session, bob.Session} {
		if err := h.s.ReportNAT(h.now, c, aliceBehavior); err != nil {
			t.Fatal(err)
		}
	}
	err, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 7, "bob", 0))
	if err != nil || len(out) != 2 {
		t.Fatalf("introduce: %v, %d datagrams", err, len(out))
	}
	checkPeerSuites(t, "alice", introductionsTo(out, aliceNAT), bobSuites)
	checkPeerSuites(t, "bob", introductionsTo(out, bobNAT), aliceSuites)

	// Nobody acknowledges: the repeats carry the suites too.
	before := h.s.Stats().IntroRepeats
	var repeats []sent
	for range 3 {
		h.now += proto.Instant(introRepeatRTO)
		h.s.HandleTimeout(h.now)
		o, _ := h.drain()
		repeats = append(repeats, o...)
	}
	if h.s.Stats().IntroRepeats == before {
		t.Fatal("no introduction was repeated")
	}
	checkPeerSuites(t, "alice (repeats)", introductionsTo(repeats, aliceNAT), bobSuites)
	checkPeerSuites(t, "bob (repeats)", introductionsTo(repeats, bobNAT), aliceSuites)
}

// PROTOCOL.md §5.10 [SRV-3]: a re-registration replaces the stored suites (bob moved
// to a CPU without AES hardware, or back), and the next introduction says so.
func TestReRegistrationReplacesSuites(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.registerWithSuites("alice", 1, aliceNAT, 0x101, aliceSuites)
	h.registerWithSuites("bob", 2, bobNAT, 0x201, aliceSuites)
	bob := h.registerWithSuites("bob", 2, bobNAT, 0x202, 0) // same key: the same node again
	for _, c := range []proto.Session{alice.Session, bob.Session} {
		if err := h.s.ReportNAT(h.now, c, aliceBehavior); err != nil {
			t.Fatal(err)
		}
	}
	_, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 7, "bob", 0))
	checkPeerSuites(t, "alice", introductionsTo(out, aliceNAT), 0)
	checkPeerSuites(t, "bob", introductionsTo(out, bobNAT), aliceSuites)

	alice = h.registerWithSuites("alice", 1, aliceNAT, 0x102, proto.SuitesOf(proto.SuiteChaChaPoly))
	if err := h.s.ReportNAT(h.now, alice.Session, aliceBehavior); err != nil {
		t.Fatal(err)
	}
	_, out, _ = h.deliver(srvPrimary, bobNAT, introduceBytes(bob.Session, 8, "alice", 0))
	checkPeerSuites(t, "bob", introductionsTo(out, bobNAT), proto.SuitesOf(proto.SuiteChaChaPoly))
	checkPeerSuites(t, "alice", introductionsTo(out, aliceNAT), 0)
}

// joinWithSuites registers id on server k with suites and reports its NAT.
func (c *testCluster) joinWithSuites(k int, id string, key byte, addr netip.AddrPort, suites proto.SuiteSet) proto.Session {
	c.t.Helper()
	m := proto.Register{TxID: uint64(key)<<8 | 1, Ticket: ticketFor(id, key), Suites: suites}
	var r proto.Registered
	only(c.t, c.send(k, addr, m.Append(nil))[k], &r)
	c.send(k, addr, (&proto.Keepalive{Session: r.Session, Seq: 1, NAT: measured}).Append(nil))
	return r.Session
}

// PROTOCOL.md §12.4 with [INTRO-3]: across servers each side learns the other's
// suites, whichever side asks (the requester's record carries the requester's
// suites, the answer the target's), in first copies and in repeats.
func TestClusterIntroductionCarriesPeerSuites(t *testing.T) {
	for _, aliceAsks := range []bool{true, false} {
		c := newTestCluster(t, 2)
		alice := c.joinWithSuites(0, "alice", 1, aliceNAT, aliceSuites)
		bob := c.joinWithSuites(1, "bob", 2, bobNAT, bobSuites)
		var out [][]sent
		if aliceAsks {
			out = c.send(0, aliceNAT, introduceBytes(alice, 42, "bob", 0))
		} else {
			out = c.send(1, bobNAT, introduceBytes(bob, 43, "alice", 0))
		}
		checkPeerSuites(t, "alice", introductionsTo(out[0], aliceNAT), bobSuites)
		checkPeerSuites(t, "bob", introductionsTo(out[1], bobNAT), aliceSuites)

		// Each server repeats its own side's copy from what the other told it.
		c.wait(3 * introRepeatRTO)
		out = c.take()
		checkPeerSuites(t, "alice (repeats)", introductionsTo(out[0], aliceNAT), bobSuites)
		checkPeerSuites(t, "bob (repeats)", introductionsTo(out[1], bobNAT), aliceSuites)
	}
}
