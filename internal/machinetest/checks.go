package machinetest

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// drainOps is how many random inputs the drain check feeds one subject.
const drainOps = 400

// After arbitrary inputs — the subject's datagrams, mutated copies, random bytes and
// timeouts — every drain ends within DrainBound calls, and after HandleTimeout(now)
// and a drain the deadline lies after now (otherwise a driver would spin). A panic on
// any of these datagrams fails the test too: DESIGN §2 allows panics only on caller
// misuse, never on peer input.
func checkDrainEnds(t *testing.T, spec Spec) {
	s, buf := fresh(t, spec)
	rng := rand.New(rand.NewChaCha8(seedBytes(spec.Seed)))
	now := s.Now
	for op := range drainOps {
		if rng.IntN(3) == 0 || s.HandleDatagram == nil {
			now = later(rng, now, s.Deadline())
			s.HandleTimeout(now)
			Drain(t, s.Machine, now, buf)
			if d := s.Deadline(); d <= now {
				t.Fatalf("op %d: after HandleTimeout(%d) and a drain the deadline is %d", op, now, d)
			}
			continue
		}
		_ = s.HandleDatagram(now, s.Local, s.From, mutate(rng, s.Inputs))
		Drain(t, s.Machine, now, buf)
	}
}

// later returns the next instant for a timeout: the deadline when one is armed (half
// the time), else a random step of up to two seconds.
func later(rng *rand.Rand, now, deadline proto.Instant) proto.Instant {
	if deadline != proto.Never && deadline > now && rng.IntN(2) == 0 {
		return deadline
	}
	return now.Add(time.Duration(rng.IntN(2000)+1) * time.Millisecond)
}

// mutate returns one of inputs as is, with bytes flipped, truncated, or random bytes.
func mutate(rng *rand.Rand, inputs [][]byte) []byte {
	if len(inputs) == 0 || rng.IntN(8) == 0 {
		p := make([]byte, rng.IntN(200))
		for i := range p {
			p[i] = byte(rng.Uint64())
		}
		return p
	}
	p := append([]byte(nil), inputs[rng.IntN(len(inputs))]...)
	switch rng.IntN(4) {
	case 0: // as is: a valid datagram, perhaps a duplicate
	case 1:
		if len(p) > 0 {
			p = p[:rng.IntN(len(p))]
		}
	default:
		for range rng.IntN(4) + 1 {
			if len(p) > 0 {
				p[rng.IntN(len(p))] ^= byte(rng.IntN(255) + 1)
			}
		}
	}
	return p
}

func seedBytes(seed uint64) (b [32]byte) {
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
	return b
}

// DESIGN §2: "Deadline() — Never when idle".
func checkIdle(t *testing.T, spec Spec) {
	s, buf := fresh(t, spec)
	now := s.Now
	if s.Idle != nil {
		now = s.Idle(now)
		Drain(t, s.Machine, now, buf)
	}
	if d := s.Deadline(); d != proto.Never {
		t.Fatalf("idle at %d, the deadline is %d, want proto.Never", now, d)
	}
}

// DESIGN §2: per-datagram problems "return wrapped sentinel errors … and leave state
// unchanged".
func checkRejected(t *testing.T, spec Spec) {
	s, buf := fresh(t, spec)
	if len(s.Rejected) == 0 {
		t.Fatal("the subject names no datagram to reject")
	}
	for i, p := range s.Rejected {
		d, before := s.Deadline(), snapshot(s)
		if err := s.HandleDatagram(s.Now, s.Local, s.From, p); err == nil {
			t.Fatalf("rejected datagram %d (%x) was accepted", i, p)
		}
		unchanged(t, s, buf, s.Now, d, before, "a rejected datagram")
	}
}

// DESIGN §2: "no allocation per packet in steady state (a test asserts
// testing.AllocsPerRun == 0)".
func checkAllocs(t *testing.T, spec Spec) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	s, _ := fresh(t, spec)
	if s.Steady == nil {
		t.Skip("the subject has no steady-state step")
	}
	now := s.Now
	// Warm up: queues and scratch buffers reach their working size.
	for range 10 {
		now = s.Steady(now)
	}
	if n := testing.AllocsPerRun(100, func() { now = s.Steady(now) }); n != 0 {
		t.Fatalf("%v allocations per steady-state round, want 0", n)
	}
}
