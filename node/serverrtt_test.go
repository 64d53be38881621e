package node

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

func TestServerRTT(t *testing.T) {
	const fixed = 300 * time.Millisecond
	ms := func(n int) proto.Instant { return proto.Instant(time.Duration(n) * time.Millisecond) }
	var r serverRTT
	if got := r.firstContactRTO(fixed); got != fixed {
		t.Fatalf("unmeasured: %v, want the fixed %v", got, fixed)
	}
	if got := r.measuredRTO(); got != 0 {
		t.Fatalf("unmeasured measuredRTO %v, want 0", got)
	}
	// A register sent twice (the same TxID): its answer is no sample (Karn).
	r.registerSent(ms(0), true)
	r.registerSent(ms(500), false)
	r.registered(ms(540))
	if r.srtt != 0 {
		t.Fatalf("a repeated register sampled %v", r.srtt)
	}
	// A register sent once is a sample.
	r.registerSent(ms(1000), true)
	r.registered(ms(1040))
	if r.srtt != 40*time.Millisecond {
		t.Fatalf("srtt %v, want 40ms", r.srtt)
	}
	if got := r.firstContactRTO(fixed); got != 80*time.Millisecond {
		t.Fatalf("firstContactRTO %v, want 2 round trips (80ms)", got)
	}
	// Only the latest keepalive's ack samples, once; the estimate moves by an eighth.
	r.kaSentAt = ms(2000)
	r.keepaliveAcked(ms(2120), 6, 7)
	if r.srtt != 40*time.Millisecond {
		t.Fatalf("an older keepalive's ack sampled: %v", r.srtt)
	}
	r.keepaliveAcked(ms(2120), 7, 7)
	r.keepaliveAcked(ms(2200), 7, 7)
	if r.srtt != 50*time.Millisecond {
		t.Fatalf("srtt %v, want 40 + (120-40)/8 = 50ms", r.srtt)
	}
	// Bounds: a fast server still waits firstContactMin, a slow one no longer than
	// the fixed delay.
	r.srtt = 5 * time.Millisecond
	if got := r.firstContactRTO(fixed); got != firstContactMin {
		t.Fatalf("fast server: %v, want %v", got, firstContactMin)
	}
	r.srtt = time.Second
	if got := r.firstContactRTO(fixed); got != fixed {
		t.Fatalf("slow server: %v, want %v", got, fixed)
	}
	r.forget()
	if got := r.firstContactRTO(fixed); got != fixed {
		t.Fatalf("after forget: %v, want %v", got, fixed)
	}
}

// measuredNode is a node the fake server admitted rtt after its register (one
// round-trip sample) and whose NAT measurement timed out; it returns the node and
// the time.
func measuredNode(t *testing.T, rtt time.Duration) (*Node, proto.Instant) {
	n := newTestNode()
	now := proto.Instant(rtt)
	reg := (&proto.Registered{TxID: startNode(t, n), Observed: testLocal, Keepalive: 25}).Append(nil)
	if err := n.HandleDatagram(now, testLocal, testServer, reg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200 && !n.srv.classified; i++ {
		drainTx(n, now)
		now = n.Deadline()
		n.HandleTimeout(now)
	}
	if !n.srv.classified {
		t.Fatal("the NAT measurement never ended")
	}
	drainTx(n, now)
	for _, ok := n.PollEvent(); ok; _, ok = n.PollEvent() {
	}
	return n, now
}

// introduceRequests returns the txids of the introduce-requests among txs.
func introduceRequests(txs []proto.Transmit) []uint64 {
	var out []uint64
	for _, tx := range txs {
		var m proto.IntroduceRequest
		if m.Parse(tx.Payload) == nil {
			out = append(out, m.TxID)
		}
	}
	return out
}

// An unanswered introduce-request is repeated after two measured round trips to
// the server (not the fixed 300 ms); a "peer not ready" refusal is asked again at
// once, a second one 25 ms later.
func TestIntroduceRequestRepeatsFromMeasuredRTT(t *testing.T) {
	const rtt = 70 * time.Millisecond
	n, now := measuredNode(t, rtt)
	n.Connect(now, "bob")
	sent := introduceRequests(drainTx(n, now))
	if len(sent) != 1 {
		t.Fatalf("Connect sent %d introduce-requests, want 1", len(sent))
	}
	start := now
	for len(introduceRequests(drainTx(n, now))) == 0 && now < start.Add(time.Second) {
		now = n.Deadline()
		n.HandleTimeout(now)
	}
	if got := now.Sub(start); got != 2*rtt {
		t.Fatalf("repeated after %v, want 2 round trips (%v)", got, 2*rtt)
	}
	notReady := (&proto.Error{TxID: sent[0], Code: proto.CodePeerNotReady}).Append(nil)
	if err := n.HandleDatagram(now, testLocal, testServer, notReady); err != nil {
		t.Fatal(err)
	}
	if got := introduceRequests(drainTx(n, now)); len(got) != 1 || got[0] != sent[0] {
		t.Fatalf("after code 9: requests %v, want the same txid at once", got)
	}
	if err := n.HandleDatagram(now, testLocal, testServer, notReady); err != nil {
		t.Fatal(err)
	}
	if got := introduceRequests(drainTx(n, now)); len(got) != 0 {
		t.Fatalf("a second code 9 was asked again at once: %v", got)
	}
	if got := n.Deadline().Sub(now); got != notReadyRetry {
		t.Fatalf("next request after %v, want %v", got, notReadyRetry)
	}
}
