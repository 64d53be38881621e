package lab

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim/simtest"
)

// Issue 14: a room of 8 members behind presets drawn per run: every broadcast
// reaches every other member once and in order, every link connects, and every link
// the pair table says goes direct (target 100 %) is direct — except links between
// two symmetric-sequential members (the pair table's 90 %), which are counted and
// logged. Links with one sequential side are direct since the node's prediction
// counts its own flows (PROTOCOL §9.3; TestRoomTwoSequentialMembersLinkDirect).
func TestRoomOfEight(t *testing.T) {
	simtest.Seeds(t, 1, 3, 10, func(t *testing.T, seed uint64) {
		w, err := newRoomWorld(RoomConfig{Size: 8, Seed: seed, Loss: 0.01, Broadcasts: 20, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		w.run()
		r := w.res
		if r.Err != "" || r.BroadcastsDelivered != r.BroadcastsExpected || r.Corrupt != 0 {
			t.Fatalf("%+v", r)
		}
		if r.Links != 28 || r.LinksDirect+r.LinksRelay != r.Links {
			t.Fatalf("links %d: %d direct, %d relay; want all 28 connected (presets %v)", r.Links, r.LinksDirect, r.LinksRelay, r.Presets)
		}
		seqMissed := 0
		for i, a := range w.members {
			for j := i + 1; j < len(w.members); j++ {
				if Expected(w.presets[i], w.presets[j]) < 1 {
					continue
				}
				if k, _ := a.node.Peer(w.members[j].name); k != proto.PathDirect {
					if w.presets[i] == "symmetric-sequential" && w.presets[j] == "symmetric-sequential" {
						seqMissed++
						continue
					}
					t.Errorf("%s (%s) – %s (%s): %v, want direct", a.name, w.presets[i], w.members[j].name, w.presets[j], k)
				}
			}
		}
		t.Logf("mesh %v, %d direct + %d relay (%d predicted direct links with a sequential NAT relayed), presets %v",
			r.Mesh, r.LinksDirect, r.LinksRelay, seqMissed, r.Presets)
	})
}

// A member's first handshake with another is not started again when a path appears
// while one is in flight: seed 2 has a link whose relayed initiation was answered,
// then replaced by a second initiation on the direct path that came up meanwhile
// (the answer no longer matched, and the responder refused the second within 20 ms),
// which cost a 2.4 s retry: the mesh took 2.96 s; now 0.9 s.
func TestRoomHandshakeNotRestartedOnNewPath(t *testing.T) {
	r := RunRoom(RoomConfig{Size: 8, Seed: 2, Loss: 0.01})
	if r.Err != "" || r.Mesh > 1500*time.Millisecond {
		t.Fatalf("mesh %v (want ≤ 1.5 s): %+v", r.Mesh, r)
	}
}

// Issue 14, churn: a room of 16 where six members join, leave and join again at
// random while ten stay throughout (one server; the cluster part of the issue is
// open). Every broadcast between members present throughout arrives once and in
// order per sender, whatever the others do.
func TestRoomChurnKeepsStableMembersWhole(t *testing.T) {
	simtest.Seeds(t, 1, 2, 6, func(t *testing.T, seed uint64) {
		w, err := newRoomWorld(RoomConfig{Size: 16, Seed: seed, Loss: 0.01, Broadcasts: 50})
		if err != nil {
			t.Fatal(err)
		}
		stable, churn := w.members[:10], w.members[10:]
		rng := rand.New(rand.NewPCG(seed, 0xc4))
		type action struct {
			at   proto.Instant
			m    *member
			join bool
		}
		start := w.s.Now()
		var plan []action
		for i, m := range stable {
			plan = append(plan, action{start.Add(time.Duration(i) * roomJoinGap), m, true})
		}
		for _, m := range churn {
			at := start.Add(time.Duration(rng.IntN(4000)) * time.Millisecond)
			for range 2 { // join, leave, join, leave
				stay := time.Duration(500+rng.IntN(3000)) * time.Millisecond
				plan = append(plan, action{at, m, true}, action{at.Add(stay), m, false})
				at = at.Add(stay + time.Duration(rng.IntN(2000))*time.Millisecond)
			}
		}
		slices.SortStableFunc(plan, func(a, b action) int { return cmp.Compare(a.at, b.at) })
		for _, a := range plan {
			if err := w.s.Run(a.at); err != nil {
				t.Fatal(err)
			}
			if a.join {
				if err := a.m.node.JoinRoom(w.s.Now(), roomName); err != nil {
					t.Fatalf("%s: %v", a.m.name, err)
				}
			} else {
				a.m.node.LeaveRoom(w.s.Now(), roomName)
			}
			a.m.host.Drain()
		}
		want := len(stable) * (len(stable) - 1) * 50
		got := func() (n int) {
			for _, a := range stable {
				for _, b := range stable {
					if a != b {
						n += a.link(b.name).received
					}
				}
			}
			return n
		}
		if err := w.s.RunUntil(w.s.Now().Add(60*time.Second), func() bool { return got() == want }); err != nil {
			t.Fatal(err)
		}
		churnLinks := 0
		for _, m := range churn {
			for _, o := range m.others {
				if m.link(o).connected {
					churnLinks++
				}
			}
		}
		if churnLinks < len(churn)*len(stable)/2 {
			t.Errorf("the churning members made only %d links: the test did not churn", churnLinks)
		}
		for _, a := range stable {
			for _, b := range stable {
				if l := a.link(b.name); a != b && (l.received != 50 || l.corrupt != 0) {
					t.Errorf("%s got %d of %s's 50 broadcasts, %d out of order or repeated", a.name, l.received, b.name, l.corrupt)
				}
			}
			if a.closed != "" {
				t.Errorf("%s: %s", a.name, a.closed)
			}
		}
	})
}

// A member behind a sequential NAT in a room of 8 punches seven peers at once, each
// new destination taking its NAT's next port: with a prediction window of 8 ports
// the later peers aimed behind it and 60 of 140 links stayed relayed (seeds 1–20);
// every link is direct now.
func TestRoomSequentialMemberLinksDirect(t *testing.T) {
	simtest.Seeds(t, 1, 4, 20, func(t *testing.T, seed uint64) {
		ps := []string{"symmetric-sequential"}
		for range 7 {
			ps = append(ps, "port-restricted-cone")
		}
		w, err := newRoomWorld(RoomConfig{Size: 8, Seed: seed, Loss: 0.01, Broadcasts: 5, Timeout: 30 * time.Second, Presets: ps})
		if err != nil {
			t.Fatal(err)
		}
		w.run()
		for _, m := range w.members[1:] {
			if l := w.members[0].link(m.name); !l.direct {
				t.Errorf("sequential member – %s: not direct (gave up: %v)", m.name, l.gaveUp)
			}
		}
	})
}
