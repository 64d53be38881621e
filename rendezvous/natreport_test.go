package rendezvous

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// PROTOCOL.md §5.3 and §5.10: the keepalive carries the node's NAT report and its
// predicted next address; the server passes both to peers, the prediction only when
// it names the node's own public IP.
func TestKeepaliveNATReportReachesPeers(t *testing.T) {
	for _, tt := range []struct {
		name      string
		predicted netip.AddrPort
		passed    bool
	}{
		{"own address", netip.AddrPortFrom(bobNAT.Addr(), 50008), true},
		{"third party", netip.MustParseAddrPort("198.51.100.77:53"), false},
		{"none", netip.AddrPort{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			alice := h.register("alice", 1, aliceNAT, aliceLAN)
			bob := h.register("bob", 2, bobNAT, bobLAN)
			reportNAT(t, h, alice.Session, aliceBehavior)
			ka := (&proto.Keepalive{Session: bob.Session, Seq: 1, NAT: bobBehavior, Predicted: tt.predicted}).Append(nil)
			if err, _, _ := h.deliver(srvPrimary, bobNAT, ka); err != nil {
				t.Fatal(err)
			}
			_, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 5, "bob", 0))
			var intro proto.Introduction
			if len(out) == 0 || intro.Parse(out[0].Payload) != nil {
				t.Fatalf("no introduction for alice: %+v", out)
			}
			if intro.NAT != bobBehavior {
				t.Errorf("alice learns NAT %+v, want bob's report %+v", intro.NAT, bobBehavior)
			}
			var got netip.AddrPort
			for _, c := range intro.Candidates {
				if c.Kind == proto.CandidatePredicted {
					got = c.Addr
				}
			}
			if tt.passed && got != tt.predicted || !tt.passed && got.IsValid() {
				t.Errorf("predicted candidate %v (passed=%v), sent %v", got, tt.passed, tt.predicted)
			}
		})
	}
}

// PROTOCOL.md §5.9 code 9: an introduction waits for the target's NAT report, so
// both peers choose their strategy from both reports and start together; a target
// that never reports is introduced anyway once notReadyWindow has passed.
func TestIntroduceWaitsForTargetNAT(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.register("alice", 1, aliceNAT, aliceLAN)
	bob := h.register("bob", 2, bobNAT, bobLAN)
	reportNAT(t, h, alice.Session, aliceBehavior)
	err, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 5, "bob", 0))
	if !errors.Is(err, ErrPeerNotReady) || len(out) != 1 || out[0].To != aliceNAT || errorCode(t, out) != proto.CodePeerNotReady {
		t.Fatalf("before bob's report: err %v, %d datagrams", err, len(out))
	}
	if h.s.Stats().PeerNotReady != 1 {
		t.Errorf("PeerNotReady = %d", h.s.Stats().PeerNotReady)
	}
	ka := (&proto.Keepalive{Session: bob.Session, Seq: 1, NAT: bobBehavior}).Append(nil)
	if err, _, _ := h.deliver(srvPrimary, bobNAT, ka); err != nil {
		t.Fatal(err)
	}
	if err, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 6, "bob", 0)); err != nil || len(out) != 2 {
		t.Fatalf("after bob's report: err %v, %d datagrams, want both introductions", err, len(out))
	}

	// A target that never reports: introduced as unknown after the window.
	h2 := newHarness(t, nil)
	alice2 := h2.register("alice", 1, aliceNAT, aliceLAN)
	h2.register("carol", 3, bobNAT, bobLAN)
	h2.wait(notReadyWindow)
	ka2 := (&proto.Keepalive{Session: alice2.Session, Seq: 1}).Append(nil)
	h2.deliver(srvPrimary, aliceNAT, ka2) // keep alice's own session fresh
	err, out, _ = h2.deliver(srvPrimary, aliceNAT, introduceBytes(alice2.Session, 7, "carol", 0))
	var intro proto.Introduction
	if err != nil || len(out) != 2 || intro.Parse(out[0].Payload) != nil || intro.NAT != (proto.NATBehavior{}) {
		t.Fatalf("after the window: err %v, %d datagrams", err, len(out))
	}
}

// PROTOCOL.md §5.8: a copy that is not acknowledged is repeated, naming the same
// start instant; an acknowledged side gets no more copies.
func TestIntroductionRepeatedUntilAcked(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.register("alice", 1, aliceNAT, aliceLAN)
	bob := h.register("bob", 2, bobNAT, bobLAN)
	reportNAT(t, h, bob.Session, bobBehavior)
	reportNAT(t, h, alice.Session, aliceBehavior)
	start := h.now
	_, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 5, "bob", 0))
	if len(out) != 2 {
		t.Fatalf("%d copies", len(out))
	}
	// Alice acknowledges; bob's copy is "lost" and never acknowledged.
	ack := (&proto.IntroductionAck{Session: alice.Session, PeerID: []byte("bob")}).Append(nil)
	if err, out, _ := h.deliver(srvPrimary, aliceNAT, ack); err != nil || len(out) != 0 {
		t.Fatalf("ack: err %v, %d replies", err, len(out))
	}
	var toBob []proto.Introduction
	var at []proto.Instant
	for h.s.Deadline() < start.Add(5*time.Second) {
		h.now = h.s.Deadline()
		h.s.HandleTimeout(h.now)
		sent, _ := h.drain()
		for _, d := range sent {
			var m proto.Introduction
			if d.To == aliceNAT {
				t.Fatal("acknowledged side got another copy")
			}
			if d.To == bobNAT && m.Parse(d.Payload) == nil {
				toBob = append(toBob, m)
				at = append(at, h.now)
			}
		}
	}
	if len(toBob) != introRepeats-1 {
		t.Fatalf("bob got %d repeats, want %d", len(toBob), introRepeats-1)
	}
	for i, m := range toBob {
		// Every copy names one start instant: firstSent + the start delay (to the ms).
		// A copy sent after that instant says "now" (0).
		startAt := at[i].Add(time.Duration(m.StartDelayMs) * time.Millisecond)
		want := start.Add(DefaultStartDelay)
		late := at[i] >= want
		if late && m.StartDelayMs != 0 || !late && (startAt > want || want.Sub(startAt) > time.Millisecond) {
			t.Errorf("copy %d at %v names start %v, want %v", i, at[i], startAt, want)
		}
	}
	if h.s.Stats().IntroRepeats != uint64(len(toBob)) || h.s.Stats().IntroAcks != 1 {
		t.Errorf("stats %+v", h.s.Stats())
	}
}

func reportNAT(t *testing.T, h *harness, cookie proto.Session, nat proto.NATBehavior) {
	t.Helper()
	if err := h.s.ReportNAT(h.now, cookie, nat); err != nil {
		t.Fatal(err)
	}
}

// The requester's own report is waited for too: if its report was lost, the target
// would learn "unknown" and choose another strategy than the requester.
func TestIntroduceWaitsForRequesterNAT(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.register("alice", 1, aliceNAT, aliceLAN)
	bob := h.register("bob", 2, bobNAT, bobLAN)
	reportNAT(t, h, bob.Session, bobBehavior)
	err, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 5, "bob", 0))
	if !errors.Is(err, ErrPeerNotReady) || len(out) != 1 || errorCode(t, out) != proto.CodePeerNotReady {
		t.Fatalf("before alice's own report: err %v, %d datagrams", err, len(out))
	}
	reportNAT(t, h, alice.Session, aliceBehavior)
	if err, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 6, "bob", 0)); err != nil || len(out) != 2 {
		t.Fatalf("after both reports: err %v, %d datagrams", err, len(out))
	}
}

// predictedIn returns the predicted candidate of intro (zero without one).
func predictedIn(intro proto.Introduction) netip.AddrPort {
	for _, c := range intro.Candidates {
		if c.Kind == proto.CandidatePredicted {
			return c.Addr
		}
	}
	return netip.AddrPort{}
}

// PROTOCOL.md [INTRO-4], §9.3: bob's sequential NAT prediction moves as soon as he
// counts his search toward alice, and his keepalive says so; alice's copy was
// lost. Her repeated copy and her repeated request must carry the prediction of
// the first copy: with the moved one her 24-port window starts past bob's mapping
// toward her, which lies at the first one (regression: seeds 1000116 and 1000202
// of firewall × symmetric-sequential stayed relayed).
func TestRepeatedIntroductionKeepsFirstPrediction(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.register("alice", 1, aliceNAT, aliceLAN)
	bob := h.register("bob", 2, bobNAT, bobLAN)
	reportNAT(t, h, alice.Session, aliceBehavior)
	first, moved := netip.AddrPortFrom(bobNAT.Addr(), 50008), netip.AddrPortFrom(bobNAT.Addr(), 50009)
	keepalive := func(seq uint32, predicted netip.AddrPort) {
		t.Helper()
		ka := (&proto.Keepalive{Session: bob.Session, Seq: seq, NAT: bobBehavior, Predicted: predicted}).Append(nil)
		if err, _, _ := h.deliver(srvPrimary, bobNAT, ka); err != nil {
			t.Fatal(err)
		}
	}
	keepalive(1, first)
	_, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 5, "bob", 0))
	intros := introductionsTo(out, aliceNAT)
	if len(intros) != 1 || predictedIn(intros[0]) != first {
		t.Fatalf("first copy to alice: %+v", intros)
	}
	keepalive(2, moved) // alice's copy is lost; bob's search toward her counts

	h.now += proto.Instant(introRepeatRTO)
	h.s.HandleTimeout(h.now)
	repeats, _ := h.drain()
	_, again, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 5, "bob", 0))
	copies := append(introductionsTo(repeats, aliceNAT), introductionsTo(again, aliceNAT)...)
	if len(copies) != 2 {
		t.Fatalf("want a repeated copy and an answer to the repeated request, got %d copies", len(copies))
	}
	for k, m := range copies {
		if got := predictedIn(m); got != first {
			t.Errorf("copy %d to alice predicts %v, want the first copy's %v", k, got, first)
		}
	}

	// A new introduction of the pair (a refresh) is not a repeat: it carries the
	// prediction bob holds now.
	h.now += proto.Instant(2 * time.Second)
	_, out, _ = h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 6, "bob", proto.IntroRefresh))
	if intros := introductionsTo(out, aliceNAT); len(intros) != 1 || predictedIn(intros[0]) != moved {
		t.Errorf("refreshed introduction to alice: %+v, want prediction %v", intros, moved)
	}
}

// PROTOCOL.md §5.7 [INTRQ-2], §5.8.1, §5.10 [SRV-6], §9.3 (re-punching after a NAT
// reboot): a rebound request right after the peer's refresh joins that introduction
// and restarts its start instant, and the target gets a new copy carrying the rebound
// address as the requester's predicted candidate (the requester's copy as usual); a
// rebound address of another IP is not passed on (the request is a plain refresh).
func TestReboundIntroductionNamesFreshMapping(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.register("alice", 1, aliceNAT, aliceLAN)
	bob := h.register("bob", 2, bobNAT, bobLAN)
	reportNAT(t, h, alice.Session, aliceBehavior)
	reportNAT(t, h, bob.Session, bobBehavior)
	if _, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 5, "bob", 0)); len(introductionsTo(out, bobNAT)) != 1 {
		t.Fatal("no first introduction")
	}
	h.now += proto.Instant(3 * time.Second)
	// Bob noticed the loss first: a plain refresh.
	if _, out, _ := h.deliver(srvPrimary, bobNAT, introduceBytes(bob.Session, 7, "alice", proto.IntroRefresh)); len(introductionsTo(out, aliceNAT)) != 1 {
		t.Fatal("bob's refresh made no introduction")
	}
	before := h.s.Stats().Introductions
	h.now += proto.Instant(100 * time.Millisecond) // within the 2 s merge window
	fresh := netip.AddrPortFrom(aliceNAT.Addr(), 61000)
	rebound := func(txid uint64, addr netip.AddrPort) []sent {
		t.Helper()
		m := proto.IntroduceRequest{Session: alice.Session, TxID: txid, PeerID: []byte("bob"),
			Flags: proto.IntroRefresh | proto.IntroRebound, Rebound: addr}
		err, out, _ := h.deliver(srvPrimary, aliceNAT, m.Append(nil))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := rebound(8, fresh)
	toBob, toAlice := introductionsTo(out, bobNAT), introductionsTo(out, aliceNAT)
	if len(toBob) != 1 || len(toAlice) != 1 || h.s.Stats().Introductions != before {
		t.Fatalf("rebound within the merge window: %d copies to bob, %d to alice, %d new introductions; want it joined to bob's",
			len(toBob), len(toAlice), h.s.Stats().Introductions-before)
	}
	// Joined, the introduction starts afresh: both copies name the full start delay.
	if toBob[0].StartDelayMs != toAlice[0].StartDelayMs || toBob[0].StartDelayMs < 400 {
		t.Errorf("start delays after the rebound joined: bob %d ms, alice %d ms; want both restarted",
			toBob[0].StartDelayMs, toAlice[0].StartDelayMs)
	}
	if got := predictedIn(toBob[0]); got != fresh {
		t.Errorf("bob's copy predicts %v, want the rebound address %v", got, fresh)
	}
	if got := predictedIn(toAlice[0]); got.IsValid() {
		t.Errorf("alice's own copy predicts %v, want none", got)
	}
	if toBob[0].Flags&proto.IntroRebound != 0 || toBob[0].Flags&proto.IntroRefresh == 0 {
		t.Errorf("bob's copy flags %#x: want refresh, never rebound", toBob[0].Flags)
	}
	// Her repeated request (same txid) is a repeat: bob, not acknowledged yet, gets
	// the same rebound address again.
	if again := introductionsTo(rebound(8, fresh), bobNAT); len(again) != 1 || predictedIn(again[0]) != fresh {
		t.Errorf("repeated rebound request: bob's copies %+v, want one predicting %v", again, fresh)
	}
	if h.s.Stats().Rebounds != 1 {
		t.Errorf("Stats.Rebounds = %d, want 1", h.s.Stats().Rebounds)
	}
	// Another IP is not passed on: bob must not be made to probe a third party.
	h.now += proto.Instant(100 * time.Millisecond)
	third := netip.MustParseAddrPort("192.0.2.99:61001")
	for _, m := range introductionsTo(rebound(9, third), bobNAT) {
		if got := predictedIn(m); got == third {
			t.Errorf("rebound naming another IP: bob's copy predicts %v", got)
		}
	}
	if h.s.Stats().Rebounds != 1 {
		t.Errorf("Stats.Rebounds = %d after a foreign address, want 1", h.s.Stats().Rebounds)
	}
}

// TestRefreshAfterAMoveIsNotMerged: a refresh within refreshMerge of the pair's
// last one is normally merged into it (both sides noticed the same loss), but not
// when a side's session moved since: the last introduction named its old address
// (a node back on UDP from its TCP fallback), and its peer must learn the new one.
func TestRefreshAfterAMoveIsNotMerged(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.register("alice", 1, aliceNAT, aliceLAN)
	bob := h.register("bob", 2, bobNAT, bobLAN)
	reportNAT(t, h, alice.Session, aliceBehavior)
	reportNAT(t, h, bob.Session, bobBehavior)
	_, out, _ := h.deliver(srvPrimary, aliceNAT, introduceBytes(alice.Session, 5, "bob", proto.IntroRefresh))
	if len(introductionsTo(out, bobNAT)) != 1 {
		t.Fatalf("first refresh: %d copies to bob, want 1", len(introductionsTo(out, bobNAT)))
	}
	h.now += proto.Instant(300 * time.Millisecond)
	_, out, _ = h.deliver(srvPrimary, bobNAT, introduceBytes(bob.Session, 7, "alice", proto.IntroRefresh))
	// Merged: any copy alice gets is the last introduction's, toward the same
	// start instant (200 ms away now), not a new one (500 ms).
	for _, m := range introductionsTo(out, aliceNAT) {
		if m.StartDelayMs > 200 {
			t.Fatalf("a refresh 300 ms after the last, nobody moved: a new introduction (start delay %d ms), want it merged", m.StartDelayMs)
		}
	}
	moved := netip.AddrPortFrom(bobNAT.Addr(), bobNAT.Port()+100)
	ka := (&proto.Keepalive{Session: bob.Session, Seq: 1, NAT: bobBehavior}).Append(nil)
	if err, _, _ := h.deliver(srvPrimary, moved, ka); err != nil {
		t.Fatal(err)
	}
	h.now += proto.Instant(300 * time.Millisecond)
	_, out, _ = h.deliver(srvPrimary, moved, introduceBytes(bob.Session, 8, "alice", proto.IntroRefresh))
	copies := introductionsTo(out, aliceNAT)
	if len(copies) != 1 || copies[0].StartDelayMs != 500 {
		t.Fatalf("a refresh after bob moved: %+v to alice, want a new introduction (start delay 500 ms)", copies)
	}
	if !slices.ContainsFunc(copies[0].Candidates, func(c proto.Candidate) bool { return c.Addr == moved }) {
		t.Errorf("alice's new copy names %+v, want bob's new address %v", copies[0].Candidates, moved)
	}
}
