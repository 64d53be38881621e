package rendezvous

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// The pending table's scans stop at hi: every live entry stays below it however
// entries come and go, and with none pending the deadline scan reads nothing.
func TestPendingTableKeepsLiveEntriesBelowHi(t *testing.T) {
	var tb pendingTable
	check := func(when string) {
		t.Helper()
		for i := range tb.entries {
			if tb.entries[i].live && i >= tb.hi {
				t.Fatalf("%s: entry %d live at or above hi %d", when, i, tb.hi)
			}
		}
	}
	now := proto.Instant(0)
	for k := range 10 {
		e := tb.add(now, uint64(k))
		e.sides[0] = pendingSide{sent: 1, next: now.Add(time.Duration(k+1) * time.Millisecond)}
	}
	check("after 10 adds")
	if tb.hi != 10 || tb.deadline() != now.Add(time.Millisecond) {
		t.Fatalf("hi %d, deadline %v; want 10 and entry 0's repeat", tb.hi, tb.deadline())
	}
	tb.entries[9].live, tb.entries[3].live = false, false
	tb.deadline()
	check("after two ended")
	if tb.hi != 9 {
		t.Fatalf("hi %d after the top entry ended, want 9", tb.hi)
	}
	if e := tb.add(now, 99); e != &tb.entries[3] || tb.find(now, 99) != e {
		t.Fatal("a new entry did not take the lowest free slot, or find missed it")
	}
	// Every entry forgotten (introMemory): find clears them, the deadline is
	// Never and the next scan reads nothing.
	later := now.Add(introMemory)
	if tb.find(later, 12345) != nil {
		t.Fatal("found a pair never added")
	}
	if d := tb.deadline(); d != proto.Never || tb.hi != 0 {
		t.Fatalf("deadline %v, hi %d with nothing live; want Never and 0", d, tb.hi)
	}
	// A full table reuses the oldest entry and keeps the bound.
	for k := range maxPendingIntros + 5 {
		tb.add(later.Add(time.Duration(k)), uint64(k))
	}
	check("after a full table")
	if tb.hi != maxPendingIntros || tb.find(later, 0) != nil || tb.find(later, maxPendingIntros+4) == nil {
		t.Fatalf("full table: hi %d, oldest kept or newest lost", tb.hi)
	}
}
