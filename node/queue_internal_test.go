package node

import "testing"

// The queue hands items out in order, holds no reference to them afterwards, reuses
// a small array, and lets a burst's large array go once drained.
func TestQueueReusesAndReleases(t *testing.T) {
	var q queue[*int]
	for round := range 3 {
		for i := range 10 {
			v := i
			q.push(&v)
		}
		for i := range 10 {
			v, ok := q.pop()
			if !ok || *v != i {
				t.Fatalf("round %d: pop %d gave %v, %v", round, i, v, ok)
			}
		}
		if _, ok := q.pop(); ok || q.len() != 0 {
			t.Fatal("a drained queue popped")
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		q.push(nil)
		q.pop()
		q.pop()
	}); n != 0 {
		t.Fatalf("%v allocations per push and pop of a warm queue", n)
	}
	for range queueKeep * 4 {
		q.push(nil)
	}
	for _, ok := q.pop(); ok; _, ok = q.pop() {
	}
	if cap(q.items) != 0 {
		t.Fatalf("a drained queue keeps %d entries of a burst", cap(q.items))
	}
}
