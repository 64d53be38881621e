package rendezvous

import (
	"net/netip"
	"testing"

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
