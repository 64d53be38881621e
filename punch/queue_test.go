package punch

import "testing"

// The queue keeps its bound, counts what it refuses, keeps order, and reuses its
// array whether the owner empties it each time or reads only part of it.
func TestFIFO(t *testing.T) {
	q := newFIFO[int](4)
	for i := range 6 {
		q.push(i)
	}
	if q.len() != 4 || q.drops != 2 {
		t.Fatalf("len %d drops %d after 6 pushes into 4, want 4 and 2", q.len(), q.drops)
	}
	for want := range 4 {
		if v, ok := q.pop(); !ok || v != want {
			t.Fatalf("pop %d, %v; want %d", v, ok, want)
		}
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop from an empty queue")
	}
	// Partial reads: one in, one out, with three always queued. The array stays
	// within twice the bound and nothing allocates once it reached its size.
	for i := range 3 {
		q.push(i)
	}
	next, want := 3, 0
	step := func() {
		q.push(next)
		next++
		if v, _ := q.pop(); v != want {
			t.Fatalf("pop %d, want %d", v, want)
		}
		want++
	}
	for range 100 {
		step()
	}
	if n := testing.AllocsPerRun(100, step); n != 0 {
		t.Errorf("%v allocations per push and pop, want 0", n)
	}
	if cap(q.items) > 2*q.max {
		t.Errorf("array of %d for a bound of %d", cap(q.items), q.max)
	}
	if q.drops != 2 {
		t.Errorf("drops %d, want 2", q.drops)
	}
}
