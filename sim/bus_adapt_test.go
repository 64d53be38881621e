package sim_test

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rendezvous"
	"github.com/natpass/natpass/sim"
	"github.com/natpass/natpass/sim/simtest"
)

// rendezvousShaped has the cluster methods of rendezvous.Server with rendezvous's own
// types, so this file stops compiling if those types stop matching sim's.
type rendezvousShaped struct {
	interest []rendezvous.Interest
	out      []rendezvous.ClusterMessage
	got      []rendezvous.ClusterMessage
}

func (r *rendezvousShaped) HandleCluster(now proto.Instant, m rendezvous.ClusterMessage) error {
	r.got = append(r.got, m)
	return nil
}

func (r *rendezvousShaped) PollCluster() (rendezvous.ClusterMessage, bool) {
	if len(r.out) == 0 {
		return rendezvous.ClusterMessage{}, false
	}
	m := r.out[0]
	r.out = r.out[1:]
	return m, true
}

func (r *rendezvousShaped) PollInterest() (rendezvous.Interest, bool) {
	if len(r.interest) == 0 {
		return rendezvous.Interest{}, false
	}
	in := r.interest[0]
	r.interest = r.interest[1:]
	return in, true
}

func TestAdaptClusterCarriesRendezvousTypes(t *testing.T) {
	s := sim.New(sim.Config{Seed: simtest.Seed(t, 1)})
	bus := s.NewBus(sim.BusConfig{Latency: 5 * time.Millisecond})
	a := &rendezvousShaped{interest: []rendezvous.Interest{{Subject: "srv.a", Subscribe: true}}}
	b := &rendezvousShaped{}
	bus.Join("a", s.AddHost("a", s.Core(), sim.LinkConfig{}), sim.AdaptCluster(a))
	hb := s.AddHost("b", s.Core(), sim.LinkConfig{})
	bus.Join("b", hb, sim.AdaptCluster(b))
	if err := s.RunFor(time.Second); err != nil {
		t.Fatal(err)
	}
	b.out = append(b.out,
		rendezvous.ClusterMessage{Subject: "srv.a", Reply: "srv.b", Data: []byte("hi")},
		rendezvous.ClusterMessage{Subject: "peer.x", Reply: "srv.b"})
	b.interest = append(b.interest, rendezvous.Interest{Subject: "srv.b", Subscribe: true})
	hb.Drain()
	if err := s.RunFor(time.Second); err != nil {
		t.Fatal(err)
	}
	if len(a.got) != 1 || string(a.got[0].Data) != "hi" || a.got[0].Reply != "srv.b" {
		t.Errorf("a got %+v", a.got)
	}
	if len(b.got) != 1 || b.got[0].Subject != "srv.b" || !b.got[0].NoResponders {
		t.Errorf("b got %+v, want a NoResponders notice", b.got)
	}
}
