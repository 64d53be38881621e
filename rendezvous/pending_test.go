package rendezvous

import (
	"math/rand/v2"
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
	tb.used()[9].live, tb.used()[3].live = false, false
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

// scanDeadline is deadline without its cache: the earliest repeat due of every
// live entry.
func scanDeadline(t *pendingTable) proto.Instant {
	d := proto.Never
	for i := range t.entries {
		e := &t.entries[i]
		for k := range e.sides {
			if s := &e.sides[k]; e.live && !s.acked && s.sent > 0 && s.sent < introRepeats {
				d = proto.Min(d, s.next)
			}
		}
	}
	return d
}

// The cached deadline agrees with a full scan after any sequence of changes made
// the way the server makes them (through add, find and used), and reading it
// twice in a row does not scan twice.
func TestPendingDeadlineCacheAgreesWithScan(t *testing.T) {
	const seed = 20261206
	rng := rand.New(rand.NewPCG(seed, 1))
	var tb pendingTable
	now := proto.Instant(0)
	for step := range 20000 {
		now = now.Add(time.Duration(rng.IntN(20)) * time.Millisecond)
		switch rng.IntN(5) {
		case 0:
			e := tb.add(now, uint64(rng.IntN(400)))
			e.sides[0] = pendingSide{sent: 1, next: now.Add(time.Duration(rng.IntN(300)) * time.Millisecond)}
		case 1:
			if e := tb.find(now, uint64(rng.IntN(400))); e != nil {
				e.sides[rng.IntN(2)].acked = true
			}
		case 2:
			for k := range tb.used() {
				if sd := &tb.entries[k].sides[0]; tb.entries[k].live && sd.sent > 0 && now >= sd.next {
					sd.sent++
					sd.next = now.Add(50 * time.Millisecond)
				}
			}
		}
		if got, want := tb.deadline(), scanDeadline(&tb); got != want {
			t.Fatalf("seed %d, step %d: deadline %v, a full scan says %v", seed, step, got, want)
		}
		tb.hi = maxPendingIntros // a second read must not scan: it would lower hi again
		if tb.deadline(); tb.hi != maxPendingIntros {
			t.Fatalf("seed %d, step %d: a second deadline with nothing changed scanned the table", seed, step)
		}
		tb.fresh = false
		tb.deadline()
	}
}
