package node

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// A crowd of nodes whose server went away at one instant repeats its registers
// spread over half a backoff step, each within rto ± 25 %: a restarted server's
// admission budgets see a stream, not the same storm at every step.
func TestRegisterRepetitionsSpreadACrowd(t *testing.T) {
	const crowd = 200
	var first [crowd]proto.Instant
	for i := range crowd {
		n := New(Config{ID: []byte("alice"), Ticket: []byte("ticket"), PrivateKey: [32]byte{1},
			Local: testLocal, Server: testServer, Seed: [32]byte{byte(i), byte(i >> 8), 7}, RegisterTimeout: time.Minute,
			Rand: rand.NewChaCha8([32]byte{8})})
		n.Start(0)
		drainTx(n, 0)
		rto := registerRTO
		at := proto.Instant(0)
		for step := range 5 {
			next := n.Deadline()
			if d := time.Duration(next - at); d < rto*3/4 || d > rto*5/4 {
				t.Fatalf("node %d, repetition %d: %v after the last, want %v ± 25 %%", i, step, d, rto)
			}
			if step == 0 {
				first[i] = next
			}
			n.HandleTimeout(next)
			if len(registers(drainTx(n, next), testServer)) != 1 {
				t.Fatalf("node %d, repetition %d: no register", i, step)
			}
			at, rto = next, min(2*rto, registerRTOMax)
		}
	}
	// In 10 ms bins over the 250 ms window no bin may hold more than a fifth of the crowd.
	bins := map[proto.Instant]int{}
	for _, f := range first {
		bins[f/proto.Instant(10*time.Millisecond)]++
	}
	for b, c := range bins {
		if c > crowd/5 {
			t.Fatalf("%d of %d first repetitions in the 10 ms from %v", c, crowd, time.Duration(b)*10*time.Millisecond)
		}
	}
	if len(bins) < 15 {
		t.Fatalf("first repetitions fell in %d bins of 10 ms, want them spread over ≈ 25", len(bins))
	}
}
