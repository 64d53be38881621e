package lab

import (
	"testing"
	"time"

	"github.com/natpass/natpass/sim/simtest"
)

// Two members behind sequential NATs in a room of 8: their link with each other
// probes 24 ports on each side, so every later link of theirs opens its mapping
// far past the prediction they registered (and a firewall peer, which the server
// introduces with its host address only, was aimed at no better). Before the node
// counted its own flows and asked for a realigned introduction, about a third of
// these links stayed relayed (`natpass lab --room 8 --runs 50`: 1,284 direct of
// 1,347 predicted; PROTOCOL.md §9.3).
//
// Every room delivers every broadcast. The links are judged over all the seeds run,
// against the pair table (lab.Expected): the sequential members' links with easy
// peers must be direct in at least 99 % (the table's cells are 100 %), their link
// with each other in at least 90 % (the table's symmetric-sequential ×
// symmetric-sequential target). What still misses (NATPASS_LONG=1: a handful of 80
// seeds) is left open in issue 14: a lost keepalive leaves the server's prediction
// one port behind.
func TestRoomTwoSequentialMembersLinkDirect(t *testing.T) {
	var easy, easyDirect, seqSeq, seqSeqDirect int
	simtest.Seeds(t, 1, 4, 20, func(t *testing.T, seed uint64) {
		ps := []string{"port-restricted-cone", "symmetric-sequential", "firewall", "symmetric-sequential",
			"linux", "port-restricted-cone", "cgnat", "firewall"}
		w, err := newRoomWorld(RoomConfig{Size: 8, Seed: seed, Loss: 0.01, Broadcasts: 5, Timeout: 30 * time.Second, Presets: ps})
		if err != nil {
			t.Fatal(err)
		}
		w.run()
		if r := w.res; r.Err != "" || r.BroadcastsDelivered != r.BroadcastsExpected {
			t.Fatalf("%+v", r)
		}
		for _, i := range []int{1, 3} {
			seq := w.members[i]
			for j, m := range w.members {
				if j == i || j == 1 && i == 3 { // the sequential pair once
					continue
				}
				l := seq.link(m.name)
				total, direct := &easy, &easyDirect
				if ps[j] == "symmetric-sequential" {
					total, direct = &seqSeq, &seqSeqDirect
				}
				*total++
				if l.direct {
					*direct++
				} else {
					t.Logf("sequential %s – %s (%s): not direct (gave up: %v)", seq.name, m.name, ps[j], l.gaveUp)
				}
			}
		}
	})
	if easy == 0 || 100*easyDirect < 99*easy {
		t.Errorf("sequential–easy links: %d direct of %d, want at least 99 %%", easyDirect, easy)
	}
	if seqSeq == 0 || 100*seqSeqDirect < 90*seqSeq {
		t.Errorf("sequential–sequential links: %d direct of %d, want at least 90 %%", seqSeqDirect, seqSeq)
	}
	t.Logf("sequential–easy %d/%d direct, sequential–sequential %d/%d", easyDirect, easy, seqSeqDirect, seqSeq)
}
