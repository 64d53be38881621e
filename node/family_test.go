package node

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

var (
	testLocal6  = netip.MustParseAddrPort("[2001:db8:1::2]:40000")
	testServer6 = netip.MustParseAddrPort("[2001:db8::1]:3478")
)

func newDualNode() *Node {
	return New(Config{ID: []byte("alice"), Ticket: []byte("ticket"), PrivateKey: [32]byte{1},
		Local: testLocal, Server: testServer, OtherLocal: testLocal6, OtherServers: []netip.AddrPort{testServer6},
		Seed: [32]byte{7}, RegisterTimeout: 10 * time.Second, Rand: rand.NewChaCha8([32]byte{8})})
}

// familyHarness plays the server by hand: it registers the node and collects what
// the node sends from its other-family socket.
type familyHarness struct {
	t   *testing.T
	n   *Node
	now proto.Instant
	// regFam are the register-family requests, kas the keepalives from OtherLocal,
	// probes the nat-probes from OtherLocal, in order.
	regFam []proto.RegisterFamily
	kas    []proto.Keepalive
	probes []proto.NATProbe
	// mainProbes are the nat-probes from Local to the server.
	mainProbes []proto.NATProbe
}

func newFamilyHarness(t *testing.T) *familyHarness {
	h := &familyHarness{t: t, n: newDualNode()}
	txid := startNode(t, h.n)
	reg := (&proto.Registered{TxID: txid, Observed: netip.MustParseAddrPort("198.51.100.7:5000"), Keepalive: 25}).Append(nil)
	if err := h.n.HandleDatagram(1, testLocal, testServer, reg); err != nil {
		t.Fatal(err)
	}
	h.now = 1
	h.collect()
	return h
}

// collect sorts the node's transmits; anything from OtherLocal must go to the
// other-family server.
func (h *familyHarness) collect() {
	for _, tx := range drainTx(h.n, h.now) {
		var mp proto.NATProbe
		if tx.From == testLocal && tx.To == testServer && mp.Parse(tx.Payload) == nil {
			h.mainProbes = append(h.mainProbes, mp)
		}
		if tx.From != testLocal6 {
			continue
		}
		if tx.To != testServer6 {
			h.t.Fatalf("other-family datagram to %v", tx.To)
		}
		var rf proto.RegisterFamily
		var ka proto.Keepalive
		var np proto.NATProbe
		switch {
		case rf.Parse(tx.Payload) == nil:
			h.regFam = append(h.regFam, rf)
		case ka.Parse(tx.Payload) == nil:
			h.kas = append(h.kas, ka)
		case np.Parse(tx.Payload) == nil:
			h.probes = append(h.probes, np)
		default:
			h.t.Fatalf("unexpected other-family datagram % x", tx.Payload)
		}
	}
}

// runTo runs the node's timers until end.
func (h *familyHarness) runTo(end proto.Instant) {
	for d := h.n.Deadline(); d <= end; d = h.n.Deadline() {
		h.now = d
		h.n.HandleTimeout(d)
		h.collect()
	}
	h.now = end
}

// natReport returns the latest EventNATReport the node emitted since the last call.
func (h *familyHarness) natReport() *EventNATReport {
	var report *EventNATReport
	for e, ok := h.n.PollEvent(); ok; e, ok = h.n.PollEvent() {
		if r, is := e.(EventNATReport); is {
			report = &r
		}
	}
	return report
}

func (h *familyHarness) deliver(m interface{ Append([]byte) []byte }) error {
	err := h.n.HandleDatagram(h.now, testLocal6, testServer6, m.Append(nil))
	h.collect()
	return err
}

// A server that never answers register-family gets it familyTries times at a
// doubling interval, then nothing until the next registration; the give-up is
// counted and the session over Local's family carries on.
func TestRegisterFamilyRetriesThenGivesUp(t *testing.T) {
	h := newFamilyHarness(t)
	h.runTo(proto.Instant(20 * time.Second))
	if len(h.regFam) != familyTries {
		t.Fatalf("%d register-family sent, want %d", len(h.regFam), familyTries)
	}
	for _, rf := range h.regFam {
		if rf.Session != h.n.srv.session || rf.TxID != h.regFam[0].TxID {
			t.Errorf("register-family %+v: session or txid differ", rf)
		}
	}
	if st := h.n.Stats(); st.FamilyGaveUp != 1 {
		t.Errorf("FamilyGaveUp %d, want 1", st.FamilyGaveUp)
	}
	if !h.n.Registered() {
		t.Error("the other family's silence cost the registration")
	}
}

// Answered, the binding is measured from OtherLocal, reported in EventNATReport's
// Other fields, and kept by keepalives from OtherLocal carrying that report; an
// interval without an answer drops the binding, counted, and binds again.
func TestRegisterFamilyMeasuresAndKeepsAlive(t *testing.T) {
	h := newFamilyHarness(t)
	if len(h.regFam) != 1 {
		t.Fatalf("%d register-family after registering, want 1", len(h.regFam))
	}
	for range h.n.events.len() {
		h.n.PollEvent()
	}
	if err := h.deliver(&proto.Registered{TxID: h.regFam[0].TxID + 1, Session: h.n.srv.session, Observed: testLocal6, Keepalive: 25}); err == nil {
		t.Fatal("a registered with another txid was taken")
	}
	if err := h.deliver(&proto.Registered{TxID: h.regFam[0].TxID, Session: h.n.srv.session, Observed: testLocal6, Keepalive: 25}); err != nil {
		t.Fatal(err)
	}
	if len(h.probes) != 1 {
		t.Fatalf("%d nat-probes from OtherLocal, want 1 (no alternates)", len(h.probes))
	}
	if err := h.deliver(&proto.NATProbeReply{TxID: h.probes[0].TxID, Observed: testLocal6}); err != nil {
		t.Fatal(err)
	}
	if report := h.natReport(); report != nil {
		t.Fatalf("report %+v before Local's family was measured", report)
	}
	if len(h.kas) != 1 || !h.kas[0].NAT.NoTranslation {
		t.Fatalf("keepalives from OtherLocal %+v, want one carrying the report", h.kas)
	}
	// Local's measurement ends (its hairpin probe unanswered): its report carries
	// the other family's.
	if err := h.n.HandleDatagram(h.now, testLocal, testServer,
		(&proto.NATProbeReply{TxID: h.mainProbes[0].TxID, Observed: netip.MustParseAddrPort("198.51.100.7:5000")}).Append(nil)); err != nil {
		t.Fatal(err)
	}
	for e, ok := h.n.PollEvent(); ok; e, ok = h.n.PollEvent() {
		if o, is := e.(EventOpenSockets); is {
			h.n.HandleSockets(h.now, o.Tag, nil)
		}
	}
	h.collect()
	h.runTo(h.now.Add(5 * time.Second))
	report := h.natReport()
	if report == nil || !report.OtherBehavior.NoTranslation || report.OtherObserved != testLocal6 {
		t.Fatalf("NAT report %+v, want the other family measured: no translation at %v", report, testLocal6)
	}
	if err := h.deliver(&proto.KeepaliveAck{Seq: h.kas[len(h.kas)-1].Seq, Observed: testLocal6}); err != nil {
		t.Fatal(err)
	}
	// Acknowledged, the next keepalive comes an interval later, not sooner.
	sent := len(h.kas)
	h.runTo(h.now.Add(24 * time.Second))
	if len(h.kas) != sent {
		t.Fatalf("%d keepalives within the interval after an ack (%+v, stats %+v, regfam %d)", len(h.kas)-sent, h.kas, h.n.Stats(), len(h.regFam))
	}
	h.runTo(h.now.Add(2 * time.Second))
	if len(h.kas) != sent+1 || h.n.Stats().FamilyLost != 0 {
		t.Fatalf("%d keepalives, lost %d after one interval", len(h.kas), h.n.Stats().FamilyLost)
	}
	h.runTo(h.now.Add(26 * time.Second))
	if h.n.Stats().FamilyLost != 1 || len(h.regFam) < 2 {
		t.Fatalf("unanswered: lost %d, %d register-family; want 1 and a new one", h.n.Stats().FamilyLost, len(h.regFam))
	}
}
