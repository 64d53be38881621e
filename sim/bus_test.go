package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim/simtest"
)

// busGot is one message a clusterFake received, Data copied.
type busGot struct {
	at     proto.Instant
	msg    ClusterMessage
	member string
}

func (g busGot) String() string {
	return fmt.Sprintf("%d %s %s reply=%q data=%q nr=%v", g.at, g.member, g.msg.Subject, g.msg.Reply,
		g.msg.Data, g.msg.NoResponders)
}

// clusterFake is the test ClusterMachine: it publishes and subscribes when told,
// records what it receives, and optionally reacts to each message.
type clusterFake struct {
	name     string
	interest []ClusterInterest
	pubs     []ClusterMessage
	got      []busGot
	log      *[]busGot // shared by every fake of a world, in delivery order
	react    func(now proto.Instant, m ClusterMessage)
	fail     bool
}

func (f *clusterFake) HandleCluster(now proto.Instant, m ClusterMessage) error {
	m.Data = append([]byte(nil), m.Data...)
	g := busGot{at: now, msg: m, member: f.name}
	f.got = append(f.got, g)
	if f.log != nil {
		*f.log = append(*f.log, g)
	}
	if f.react != nil {
		f.react(now, m)
	}
	if f.fail {
		return errors.New("fake refuses")
	}
	return nil
}

func (f *clusterFake) PollCluster() (ClusterMessage, bool) {
	if len(f.pubs) == 0 {
		return ClusterMessage{}, false
	}
	m := f.pubs[0]
	f.pubs = f.pubs[1:]
	return m, true
}

func (f *clusterFake) PollInterest() (ClusterInterest, bool) {
	if len(f.interest) == 0 {
		return ClusterInterest{}, false
	}
	in := f.interest[0]
	f.interest = f.interest[1:]
	return in, true
}

// busWorld is a bus of servers, each a clusterFake on its own machine-less host.
type busWorld struct {
	t     *testing.T
	sim   *Sim
	bus   *Bus
	m     map[string]*BusMember
	fake  map[string]*clusterFake
	log   []busGot
	names []string
}

func newBusWorld(t *testing.T, seed uint64, cfg BusConfig, names ...string) *busWorld {
	s := New(Config{Seed: seed})
	w := &busWorld{t: t, sim: s, bus: s.NewBus(cfg), m: map[string]*BusMember{},
		fake: map[string]*clusterFake{}, names: names}
	for _, n := range names {
		f := &clusterFake{name: n, log: &w.log}
		w.fake[n] = f
		w.m[n] = w.bus.Join(n, s.AddHost(n, s.Core(), LinkConfig{}), f)
	}
	return w
}

func (w *busWorld) subscribe(name string, subjects ...string) {
	for _, sub := range subjects {
		w.fake[name].interest = append(w.fake[name].interest, ClusterInterest{Subject: sub, Subscribe: true})
	}
	w.m[name].Host().Drain()
}

func (w *busWorld) unsubscribe(name, subject string) {
	w.fake[name].interest = append(w.fake[name].interest, ClusterInterest{Subject: subject})
	w.m[name].Host().Drain()
}

func (w *busWorld) publish(name string, msgs ...ClusterMessage) {
	w.fake[name].pubs = append(w.fake[name].pubs, msgs...)
	w.m[name].Host().Drain()
}

func (w *busWorld) runFor(d time.Duration) {
	w.t.Helper()
	if err := w.sim.RunFor(d); err != nil {
		w.t.Fatal(err)
	}
}

// settle lets interest propagate.
func (w *busWorld) settle() { w.runFor(time.Second) }

func (w *busWorld) got(name string) []busGot { return w.fake[name].got }

const busLatency = 5 * time.Millisecond

func TestBusDeliversAfterLatency(t *testing.T) {
	w := newBusWorld(t, simtest.Seed(t, 1), BusConfig{Latency: busLatency}, "a", "b")
	w.subscribe("b", "peer.x")
	w.settle()
	sent := w.sim.Now()
	w.publish("a", ClusterMessage{Subject: "peer.x", Data: []byte("hello")})
	w.runFor(busLatency - 1)
	if len(w.got("b")) != 0 {
		t.Fatalf("b got %v before the latency", w.got("b"))
	}
	w.runFor(1)
	got := w.got("b")
	if len(got) != 1 || got[0].at != sent.Add(busLatency) || string(got[0].msg.Data) != "hello" {
		t.Fatalf("b got %v, want hello at %v", got, sent.Add(busLatency))
	}
	if st := w.bus.Stats(); st.Published != 1 || st.Delivered != 1 || st.TotalDropped() != 0 {
		t.Errorf("stats %+v", st)
	}
}

// The publisher's buffer is its own again after PollCluster: the bus must have copied.
func TestBusCopiesData(t *testing.T) {
	w := newBusWorld(t, simtest.Seed(t, 1), BusConfig{Latency: busLatency}, "a", "b")
	w.subscribe("b", "peer.x")
	w.settle()
	buf := []byte("first")
	w.publish("a", ClusterMessage{Subject: "peer.x", Data: buf})
	copy(buf, "XXXXX")
	w.settle()
	if got := w.got("b"); len(got) != 1 || string(got[0].msg.Data) != "first" {
		t.Fatalf("b got %v", got)
	}
}

func TestBusRoutesByExactSubject(t *testing.T) {
	w := newBusWorld(t, simtest.Seed(t, 1), BusConfig{Latency: busLatency}, "a", "b", "c")
	w.subscribe("a", "srv.a")
	w.subscribe("b", "peer.b")
	w.subscribe("c", "peer.c", "peer.b") // two members on one subject both get it
	w.settle()
	w.publish("a",
		ClusterMessage{Subject: "peer.c", Data: []byte("1")},
		ClusterMessage{Subject: "peer.b", Data: []byte("2")},
		ClusterMessage{Subject: "peer.*", Data: []byte("3")},   // no wildcards
		ClusterMessage{Subject: "peer.b.x", Data: []byte("4")}, // nor prefixes
		ClusterMessage{Subject: "srv.a", Data: []byte("5")},    // echo to the publisher
	)
	w.settle()
	data := func(name string) (out []string) {
		for _, g := range w.got(name) {
			out = append(out, g.msg.Subject+"="+string(g.msg.Data))
		}
		return out
	}
	for name, want := range map[string][]string{
		"a": {"srv.a=5"}, "b": {"peer.b=2"}, "c": {"peer.c=1", "peer.b=2"},
	} {
		if got := data(name); !slices.Equal(got, want) {
			t.Errorf("%s got %v, want %v", name, got, want)
		}
	}
	if st := w.bus.Stats(); st.Dropped[BusDropNoSubscriber] != 2 || st.NoResponders != 0 {
		t.Errorf("stats %+v, want 2 dropped for no subscriber", st)
	}
}

// A subject ending in ".>" covers every subject under it, as NATS's full wildcard.
func TestBusRoutesByFullWildcard(t *testing.T) {
	w := newBusWorld(t, simtest.Seed(t, 1), BusConfig{Latency: busLatency}, "a", "b")
	w.subscribe("a", "srv.a.>")
	w.subscribe("b", "srv.b")
	w.settle()
	w.publish("b",
		ClusterMessage{Subject: "srv.a.r.7", Data: []byte("1")},
		ClusterMessage{Subject: "srv.a", Data: []byte("2")}, // '>' needs a token after it
		ClusterMessage{Subject: "srv.ab.r", Data: []byte("3")},
		ClusterMessage{Subject: "srv.a.relay", Data: []byte("4")},
	)
	w.settle()
	var got []string
	for _, g := range w.got("a") {
		got = append(got, g.msg.Subject+"="+string(g.msg.Data))
	}
	if want := []string{"srv.a.r.7=1", "srv.a.relay=4"}; !slices.Equal(got, want) {
		t.Errorf("a got %v, want %v", got, want)
	}
}

// A request nobody subscribes to comes back to its Reply subject as a NoResponders
// notice, one hop later, to the requester only.
func TestBusNoRespondersToRequester(t *testing.T) {
	w := newBusWorld(t, simtest.Seed(t, 1), BusConfig{Latency: busLatency}, "a", "b")
	w.subscribe("a", "srv.a")
	w.subscribe("b", "srv.b")
	w.settle()
	sent := w.sim.Now()
	w.publish("a", ClusterMessage{Subject: "peer.nobody", Reply: "srv.a", Data: []byte("ask")})
	w.settle()
	got := w.got("a")
	want := ClusterMessage{Subject: "srv.a", NoResponders: true}
	if len(got) != 1 || got[0].at != sent.Add(busLatency) || got[0].msg.Subject != want.Subject ||
		!got[0].msg.NoResponders || len(got[0].msg.Data) != 0 || got[0].msg.Reply != "" {
		t.Fatalf("a got %v, want %+v at %v", got, want, sent.Add(busLatency))
	}
	if len(w.got("b")) != 0 {
		t.Errorf("b got %v", w.got("b"))
	}
	if st := w.bus.Stats(); st.NoResponders != 1 {
		t.Errorf("stats %+v, want one NoResponders", st)
	}
	// A request someone takes gets no notice.
	w.subscribe("b", "peer.b")
	w.settle()
	w.publish("a", ClusterMessage{Subject: "peer.b", Reply: "srv.a"})
	w.settle()
	if len(w.got("a")) != 1 || len(w.got("b")) != 1 || w.got("b")[0].msg.Reply != "srv.a" {
		t.Errorf("a got %v, b got %v", w.got("a"), w.got("b"))
	}
}

// Interest reaches the others after Latency; the member's own view changes at once.
func TestBusInterestPropagationDelay(t *testing.T) {
	w := newBusWorld(t, simtest.Seed(t, 1), BusConfig{Latency: busLatency}, "a", "b")
	w.subscribe("a", "srv.a")
	w.settle()
	w.subscribe("b", "peer.b")
	w.publish("b", ClusterMessage{Subject: "peer.b", Data: []byte("echo")})
	w.runFor(busLatency - 1)
	w.publish("a", ClusterMessage{Subject: "peer.b", Reply: "srv.a", Data: []byte("early")})
	w.runFor(1)
	w.publish("a", ClusterMessage{Subject: "peer.b", Reply: "srv.a", Data: []byte("on time")})
	w.settle()
	if got := w.got("a"); len(got) != 1 || !got[0].msg.NoResponders {
		t.Errorf("a got %v, want one NoResponders for the early request", got)
	}
	if got := w.got("b"); len(got) != 2 || string(got[0].msg.Data) != "echo" || string(got[1].msg.Data) != "on time" {
		t.Errorf("b got %v, want its echo and the request sent on time", got)
	}
	// Unsubscribing: b stops taking messages at once; a routes to it for one more
	// Latency, and those die at b.
	w.unsubscribe("b", "peer.b")
	w.publish("a", ClusterMessage{Subject: "peer.b", Reply: "srv.a", Data: []byte("late")})
	w.settle()
	w.publish("a", ClusterMessage{Subject: "peer.b", Reply: "srv.a", Data: []byte("after")})
	w.settle()
	st := w.bus.Stats()
	if len(w.got("b")) != 2 || st.Dropped[BusDropUnsubscribed] != 1 || st.NoResponders != 2 {
		t.Errorf("b got %v; stats %+v", w.got("b"), st)
	}
	if w.m["b"].Subscribed("peer.b") || !w.m["a"].Subscribed("srv.a") {
		t.Error("Subscribed is wrong")
	}
}

// lossyRun sends n messages a→b over a lossy, jittery bus and returns b's log and the
// bus's stats.
func lossyRun(t *testing.T, seed uint64, n int) ([]busGot, BusStats) {
	w := newBusWorld(t, seed, BusConfig{Latency: busLatency, Jitter: 3 * time.Millisecond, Loss: 0.2}, "a", "b")
	w.subscribe("b", "peer.b")
	w.settle()
	for i := range n {
		w.publish("a", ClusterMessage{Subject: "peer.b", Data: fmt.Appendf(nil, "%d", i)})
		w.runFor(time.Millisecond)
	}
	w.settle()
	return w.got("b"), w.bus.Stats()
}

func TestBusLossRate(t *testing.T) {
	seed := simtest.Seed(t, 1)
	const n, loss = 10_000, 0.2
	got, st := lossyRun(t, seed, n)
	lost := st.Dropped[BusDropLoss]
	sigma := math.Sqrt(n * loss * (1 - loss))
	if math.Abs(float64(lost)-n*loss) > 5*sigma {
		t.Errorf("lost %d of %d, want %v ± %.0f", lost, n, n*loss, 5*sigma)
	}
	if uint64(len(got))+lost != n || st.Delivered != uint64(len(got)) {
		t.Errorf("delivered %d + lost %d != %d; stats %+v", len(got), lost, n, st)
	}
	// Jitter never reorders one publisher's messages to one subscriber.
	prev := -1
	for _, g := range got {
		var i int
		fmt.Sscan(string(g.msg.Data), &i)
		if i <= prev {
			t.Fatalf("message %d arrived after %d", i, prev)
		}
		prev = i
	}
	again, st2 := lossyRun(t, seed, n)
	if st2 != st || !slices.Equal(stringsOf(got), stringsOf(again)) {
		t.Errorf("two runs with seed %d differ", seed)
	}
}

func stringsOf(gs []busGot) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.String()
	}
	return out
}

func TestBusPartitionAndHeal(t *testing.T) {
	w := newBusWorld(t, simtest.Seed(t, 1), BusConfig{Latency: busLatency}, "a", "b", "c")
	w.subscribe("a", "srv.a")
	w.subscribe("b", "peer.b")
	w.subscribe("c", "peer.b")
	w.settle()
	// In flight when the cut comes: dropped on arrival at b, delivered to c.
	w.publish("a", ClusterMessage{Subject: "peer.b", Data: []byte("in flight")})
	w.bus.Partition(w.m["a"], w.m["b"])
	w.settle()
	// b's interest is invisible to a; c still takes it.
	w.publish("a", ClusterMessage{Subject: "peer.b", Reply: "srv.a", Data: []byte("cut")})
	w.settle()
	if len(w.got("b")) != 0 || len(w.got("c")) != 2 || len(w.got("a")) != 0 {
		t.Fatalf("a got %v, b got %v, c got %v", w.got("a"), w.got("b"), w.got("c"))
	}
	if st := w.bus.Stats(); st.Dropped[BusDropPartition] != 2 {
		t.Errorf("stats %+v, want 2 partition drops", st)
	}
	// With c gone too, the request finds nobody a can see: NoResponders.
	w.unsubscribe("c", "peer.b")
	w.settle()
	w.publish("a", ClusterMessage{Subject: "peer.b", Reply: "srv.a"})
	w.settle()
	if got := w.got("a"); len(got) != 1 || !got[0].msg.NoResponders {
		t.Fatalf("a got %v, want NoResponders across the partition", got)
	}
	w.bus.Heal(w.m["b"], w.m["a"])
	w.publish("a", ClusterMessage{Subject: "peer.b", Reply: "srv.a", Data: []byte("healed")})
	w.settle()
	if got := w.got("b"); len(got) != 1 || string(got[0].msg.Data) != "healed" {
		t.Fatalf("after Heal b got %v", got)
	}
}

// A killed server's interest vanishes after Latency, so requests for its peers get
// NoResponders; it sends and receives nothing; a new server may join on its host.
func TestBusKillRemovesInterest(t *testing.T) {
	w := newBusWorld(t, simtest.Seed(t, 1), BusConfig{Latency: busLatency}, "a", "b")
	w.subscribe("a", "srv.a")
	w.subscribe("b", "peer.b", "srv.b")
	w.settle()
	w.bus.Kill(w.m["b"])
	w.publish("a", ClusterMessage{Subject: "peer.b", Reply: "srv.a", Data: []byte("too soon")})
	w.publish("b", ClusterMessage{Subject: "srv.a", Data: []byte("from the dead")})
	w.subscribe("b", "peer.zombie")
	w.settle()
	w.publish("a", ClusterMessage{Subject: "peer.b", Reply: "srv.a", Data: []byte("after")})
	w.settle()
	st := w.bus.Stats()
	if len(w.got("b")) != 0 || st.Dropped[BusDropKilled] != 2 {
		t.Errorf("b got %v; stats %+v", w.got("b"), st)
	}
	if got := w.got("a"); len(got) != 1 || !got[0].msg.NoResponders {
		t.Fatalf("a got %v, want one NoResponders once b's interest is gone", got)
	}
	if !w.m["b"].Killed() || w.m["b"].Subscribed("peer.b") {
		t.Error("b still alive or subscribed")
	}
	// The server restarts on the same host.
	f := &clusterFake{name: "b2", interest: []ClusterInterest{{Subject: "peer.b", Subscribe: true}}}
	w.bus.Join("b2", w.m["b"].Host(), f)
	w.settle()
	w.publish("a", ClusterMessage{Subject: "peer.b", Reply: "srv.a", Data: []byte("again")})
	w.settle()
	if len(f.got) != 1 || len(w.got("a")) != 1 {
		t.Errorf("b2 got %v, a got %v", f.got, w.got("a"))
	}
}

// chattyBus is a cluster of four where every member asks random subjects, answers what
// it receives, and the bus jitters and loses: every draw the bus makes shows up in the
// delivery log.
func chattyBus(t *testing.T, seed uint64) []string {
	names := []string{"s0", "s1", "s2", "s3"}
	w := newBusWorld(t, seed, BusConfig{Latency: busLatency, Jitter: 4 * time.Millisecond, Loss: 0.1}, names...)
	for _, n := range names {
		f := w.fake[n]
		f.react = func(now proto.Instant, m ClusterMessage) {
			if m.Reply != "" {
				f.pubs = append(f.pubs, ClusterMessage{Subject: m.Reply, Data: append([]byte("re:"), m.Data...)})
			}
		}
		w.subscribe(n, "srv."+n, "peer."+n)
	}
	traffic := rand.New(rand.NewPCG(seed, 0)) // the test's own choices, apart from the bus's
	for i := range 500 {
		from := names[traffic.IntN(len(names))]
		to := "peer.s" + fmt.Sprint(traffic.IntN(len(names)+1)) // s4 does not exist
		w.publish(from, ClusterMessage{Subject: to, Reply: "srv." + from, Data: fmt.Appendf(nil, "%d", i)})
		if i == 200 {
			w.bus.Partition(w.m["s0"], w.m["s1"])
		}
		if i == 300 {
			w.bus.Kill(w.m["s3"])
		}
		w.runFor(time.Duration(traffic.IntN(3)) * time.Millisecond)
	}
	w.settle()
	return append(stringsOf(w.log), fmt.Sprintf("%+v", w.bus.Stats()))
}

func TestBusSameSeedSameDeliveries(t *testing.T) {
	seed := simtest.Seed(t, 7)
	a, b := chattyBus(t, seed), chattyBus(t, seed)
	if len(a) < 500 {
		t.Fatalf("only %d deliveries", len(a))
	}
	if !slices.Equal(a, b) {
		t.Fatalf("two runs with seed %d differ", seed)
	}
	if slices.Equal(a, chattyBus(t, seed+1)) {
		t.Fatalf("seeds %d and %d gave the same deliveries", seed, seed+1)
	}
}

func TestBusBounds(t *testing.T) {
	w := newBusWorld(t, simtest.Seed(t, 1), BusConfig{Latency: busLatency, MaxInFlight: 10, MaxPayload: 4}, "a", "b")
	w.subscribe("b", "peer.b")
	w.settle()
	for range 15 {
		w.publish("a", ClusterMessage{Subject: "peer.b", Data: []byte("ok")})
	}
	w.publish("a", ClusterMessage{Subject: "peer.b", Data: []byte("too big")})
	w.settle()
	st := w.bus.Stats()
	if len(w.got("b")) != 10 || st.Dropped[BusDropInFlight] != 5 || st.Dropped[BusDropTooLarge] != 1 {
		t.Errorf("b got %d; stats %+v", len(w.got("b")), st)
	}
	if w.bus.inFlight != 0 {
		t.Errorf("%d still counted in flight", w.bus.inFlight)
	}
}

// clusterNode is a server-like machine: datagrams and cluster messages on one host.
type clusterNode struct {
	recorder
	clusterFake
}

// The bus drains a member after every call the sim makes into its host's machine,
// after the owner's AfterStep; what HandleCluster transmits leaves the host.
func TestBusDrainsAfterEveryHostStep(t *testing.T) {
	seed := simtest.Seed(t, 1)
	s := New(Config{Seed: seed})
	bus := s.NewBus(BusConfig{Latency: busLatency})
	ha, hb := s.AddHost("a", s.Core(), LinkConfig{}), s.AddHost("b", s.Core(), LinkConfig{})
	a, b := &clusterNode{}, &clusterNode{}
	ha.Attach(a)
	hb.Attach(b)
	ha.OpenPort(1)
	hb.OpenPort(1)
	steps := 0
	ha.AfterStep = func(now proto.Instant) {
		steps++
		// A datagram to a becomes a cluster message to b.
		for ; len(a.recorder.got) > 0; a.recorder.got = a.recorder.got[1:] {
			a.clusterFake.pubs = append(a.clusterFake.pubs, ClusterMessage{Subject: "srv.b", Data: []byte(a.recorder.got[0].data)})
		}
	}
	// A cluster message to b becomes a datagram from b.
	b.clusterFake.react = func(now proto.Instant, m ClusterMessage) {
		b.recorder.out = append(b.recorder.out, proto.Transmit{To: netip.AddrPortFrom(ha.Addr(), 1), Payload: m.Data})
	}
	b.clusterFake.interest = []ClusterInterest{{Subject: "srv.b", Subscribe: true}}
	bus.Join("a", ha, &a.clusterFake)
	bus.Join("b", hb, &b.clusterFake)
	if err := s.RunFor(time.Second); err != nil {
		t.Fatal(err)
	}
	b.recorder.out = append(b.recorder.out, proto.Transmit{To: netip.AddrPortFrom(ha.Addr(), 1), Payload: []byte("ping")})
	hb.Drain()
	if err := s.RunFor(time.Second); err != nil {
		t.Fatal(err)
	}
	// ping → a (datagram) → b (cluster) → a (datagram) → b (cluster) → ...: with ideal
	// links and a 5 ms bus each round takes 5 ms.
	if got := len(b.clusterFake.got); got < 150 || steps == 0 {
		t.Fatalf("b got %d cluster messages, a's AfterStep ran %d times", got, steps)
	}
	if st := bus.Stats(); st.Delivered != uint64(len(b.clusterFake.got)) {
		t.Errorf("stats %+v", st)
	}
}

func TestBusCountsMachineErrors(t *testing.T) {
	w := newBusWorld(t, simtest.Seed(t, 1), BusConfig{}, "a", "b")
	w.fake["b"].fail = true
	w.subscribe("b", "peer.b")
	w.settle() // even with no latency, interest lands in a later step
	w.publish("a", ClusterMessage{Subject: "peer.b"})
	w.settle()
	if st := w.bus.Stats(); st.Delivered != 1 || st.MachineErrors != 1 {
		t.Errorf("stats %+v", st)
	}
}

// Echoes and NoResponders notices never leave the publisher's server: Loss spares them.
func TestBusLossSparesEchoAndNotices(t *testing.T) {
	w := newBusWorld(t, simtest.Seed(t, 1), BusConfig{Latency: busLatency, Loss: 1}, "a", "b")
	w.subscribe("a", "srv.a")
	w.subscribe("b", "peer.b")
	w.settle()
	w.publish("a",
		ClusterMessage{Subject: "peer.b", Data: []byte("lost")},
		ClusterMessage{Subject: "srv.a", Data: []byte("echo")},
		ClusterMessage{Subject: "peer.nobody", Reply: "srv.a"})
	w.settle()
	if got := w.got("a"); len(got) != 2 || string(got[0].msg.Data) != "echo" || !got[1].msg.NoResponders {
		t.Errorf("a got %v, want its echo and a NoResponders notice", got)
	}
	if st := w.bus.Stats(); len(w.got("b")) != 0 || st.Dropped[BusDropLoss] != 1 {
		t.Errorf("b got %v; stats %+v", w.got("b"), st)
	}
}
