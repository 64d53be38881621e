package lab

import (
	"testing"

	"github.com/natpass/natpass/node"
)

// With a cluster the two nodes register on different servers, and the pair is
// introduced, punched or relayed across them: the servers' own counters show the
// cross-server introduction and, for a pair that cannot go direct, relay frames
// crossing the bus both ways.
func TestClusterRunCrossesServers(t *testing.T) {
	for _, tc := range []struct {
		a, b   string
		direct bool
	}{
		{"port-restricted-cone", "linux", true},
		{"symmetric-random", "symmetric-random", false},
	} {
		for seed := uint64(1); seed <= 3; seed++ {
			w, err := newWorld(RunConfig{A: tc.a, B: tc.b, Seed: seed, Loss: 0.01, Servers: 3, Relay: node.RelayAuto})
			if err != nil {
				t.Fatalf("%s/%s seed %d: %v", tc.a, tc.b, seed, err)
			}
			ia, ib := w.serverOf(seed)
			if ia == ib {
				t.Fatalf("seed %d: both nodes on server %d", seed, ia)
			}
			w.connect()
			r := w.res
			if !r.Delivered || r.Direct != tc.direct {
				t.Fatalf("%s/%s seed %d: %+v", tc.a, tc.b, seed, r)
			}
			sa, sb := w.srvs[ia].Stats().Cluster, w.srvs[ib].Stats().Cluster
			if sa.IntroAsks+sb.IntroAsks == 0 || sa.IntroAsksServed+sb.IntroAsksServed == 0 {
				t.Errorf("seed %d: no cross-server introduction (%+v / %+v)", seed, sa, sb)
			}
			if !tc.direct && (sa.RelayFramesOut == 0 || sb.RelayFramesOut == 0 || sa.RelayFramesIn == 0 || sb.RelayFramesIn == 0) {
				t.Errorf("seed %d: relay frames did not cross both ways: %+v / %+v", seed, sa, sb)
			}
		}
	}
}
