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
// 1,347 predicted); every sequential–easy link is direct now (PROTOCOL.md §9.3).
func TestRoomTwoSequentialMembersLinkDirect(t *testing.T) {
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
				if l := seq.link(m.name); j != i && !l.direct {
					t.Errorf("sequential %s – %s (%s): not direct (gave up: %v)", seq.name, m.name, ps[j], l.gaveUp)
				}
			}
		}
	})
}
