package rendezvous

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Touch only reads: a server that touches every datagram before handling it sends
// the same datagrams, returns the same errors and counts the same as its twin that
// does not, for relay frames in both directions, to a channel that does not exist,
// from a source that does not own the channel, cut short, and for datagrams that are
// not relay frames at all.
func TestTouchChangesNothing(t *testing.T) {
	plain, touched := newRelayPair(t, nil), newRelayPair(t, nil)
	type frame struct {
		from netip.AddrPort
		p    []byte
	}
	frames := func(rp *relayPair) []frame {
		chA, chB := rp.both(t)
		return []frame{
			{aliceNAT, sendFrame(chA, []byte("to bob"))},
			{bobNAT, sendFrame(chB, []byte("to alice"))},
			{aliceNAT, sendFrame(chA^0x5a5a, []byte("no such channel"))},
			{bobNAT, sendFrame(chA, []byte("not bob's channel"))},
			{aliceNAT, sendFrame(chA, nil)[:3]},
			{aliceNAT, []byte{0xE1}},
			{aliceNAT, nil},
			{aliceNAT, keepaliveBytes(rp.alice.Session, 1)},
		}
	}
	fp, ft := frames(plain), frames(touched)
	for round := range 3 {
		for i := range fp {
			errP, outP, evP := plain.h.deliver(srvPrimary, fp[i].from, fp[i].p)
			touched.h.s.Touch(ft[i].p)
			errT, outT, evT := touched.h.deliver(srvPrimary, ft[i].from, ft[i].p)
			where := fmt.Sprintf("round %d, datagram %d (%x)", round, i, fp[i].p[:min(len(fp[i].p), 4)])
			if fmt.Sprint(errP) != fmt.Sprint(errT) || len(outP) != len(outT) || len(evP) != len(evT) {
				t.Fatalf("%s: untouched %v, %d out, %d events; touched %v, %d out, %d events", where, errP, len(outP), len(evP), errT, len(outT), len(evT))
			}
		}
	}
	if diff := cmp.Diff(plain.h.s.Stats(), touched.h.s.Stats()); diff != "" {
		t.Errorf("counters differ (-untouched +touched):\n%s", diff)
	}
	if plain.h.s.Stats().Relay.Forwarded == 0 {
		t.Error("nothing was forwarded: the comparison saw no relay")
	}
}
