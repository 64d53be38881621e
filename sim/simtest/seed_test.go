package simtest

import "testing"

func TestReplayLine(t *testing.T) {
	got := ReplayLine("TestX/seed=5/sub", 5)
	want := "seed=5, replay: go test ./sim/simtest -run '^TestX$' -seed 5"
	if got != want {
		t.Fatalf("ReplayLine = %q, want %q", got, want)
	}
}

func TestSeedsRunsEachSeed(t *testing.T) {
	var seen []uint64
	Seeds(t, 10, 3, 1, func(t *testing.T, seed uint64) { seen = append(seen, seed) })
	if fixed, ok := Fixed(); ok { // -seed given: only that one runs
		if len(seen) != 1 || seen[0] != fixed {
			t.Fatalf("with -seed %d, Seeds ran %v", fixed, seen)
		}
		return
	}
	if len(seen) < 3 || seen[0] != 10 || seen[2] != 12 {
		t.Fatalf("Seeds ran %v, want 10, 11, 12", seen)
	}
}
