package sim

import (
	"bytes"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim/simtest"
)

// chattyWorld is a Pair on impaired links where both peers and the server talk: every
// random choice the simulator makes shows up in the trace.
func chattyWorld(seed uint64) (*Sim, *bytes.Buffer) {
	impaired := LinkConfig{Latency: 10 * time.Millisecond, Jitter: 3 * time.Millisecond, Loss: 0.1,
		Duplicate: 0.05, Reorder: 0.1, Bandwidth: 20_000, QueueBytes: 4000}
	pr := NewPair(PairConfig{Seed: seed, A: MustPreset("symmetric-random"), B: MustPreset("cgnat"), Access: impaired})
	s := pr.Sim
	var buf bytes.Buffer
	s.SetTracer(TraceTo(&buf))
	srv := attachRecorder(pr.Server)
	srv.echo = true
	for _, h := range []*Host{pr.A.Host, pr.B.Host} {
		r := attachRecorder(h)
		for i := range 200 {
			r.later = append(r.later, scheduled{
				at: proto.Instant(i) * proto.Instant(5*time.Millisecond),
				tx: proto.Transmit{To: pr.Server.Sockets()[i%3], Payload: make([]byte, 100+i)},
			})
		}
		h.Drain()
	}
	if err := s.RunFor(3 * time.Second); err != nil {
		panic(err)
	}
	return s, &buf
}

// The same seed gives a byte-identical trace; another seed gives another one.
func TestSameSeedSameTrace(t *testing.T) {
	seed := simtest.Seed(t, 7)
	_, a := chattyWorld(seed)
	_, b := chattyWorld(seed)
	if a.Len() == 0 {
		t.Fatal("empty trace")
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("two runs with seed %d differ", seed)
	}
	_, c := chattyWorld(seed + 1)
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatalf("seeds %d and %d gave the same trace", seed, seed+1)
	}
	for _, want := range []string{"send ", "nat ", "recv ", "drop ", "loss", "queue-full", " => "} {
		if !bytes.Contains(a.Bytes(), []byte(want)) {
			t.Errorf("trace never mentions %q", want)
		}
	}
}

// With no tracer, carrying a packet formats nothing and allocates nothing; the
// allocation test of the steady state runs without a tracer, so this checks the
// switch itself: turning tracing on and off again leaves no cost behind.
func TestTraceOffIsFree(t *testing.T) {
	s, sink := deliverWorld()
	calls := 0
	s.SetTracer(func(*TraceRecord) { calls++ })
	deliver(s, sink, 20_000)
	if calls == 0 {
		t.Fatal("tracer never called")
	}
	s.SetTracer(nil)
	if n := testing.AllocsPerRun(5_000, func() { deliver(s, sink, 1) }); n != 0 {
		t.Errorf("%v allocations per delivery with tracing off", n)
	}
}
