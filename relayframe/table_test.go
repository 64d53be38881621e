package relayframe

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"pgregory.net/rapid"
)

var roomyRate = ByteRate{BytesPerSecond: 1 << 30, Burst: 1 << 20}

func newTestTable(t testing.TB, maxChannels, perOwner, owners int) *Table {
	t.Helper()
	tb, err := NewTable(TableConfig{MaxChannels: maxChannels, MaxPerOwner: perOwner, MaxOwners: owners,
		OwnerRate: roomyRate, ServerRate: roomyRate}, rand.NewChaCha8([32]byte{9}))
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// tableModel is the specification of Table as plain maps.
type tableModel struct {
	chans map[pairKey]*modelChan
}

type modelChan struct {
	number   uint16
	tag      uint64
	deadline proto.Instant
	peer     *pairKey // linked channel
}

func (m *tableModel) unlink(k pairKey) {
	if c := m.chans[k]; c != nil && c.peer != nil {
		m.chans[*c.peer].peer = nil
		c.peer = nil
	}
}

func (m *tableModel) remove(k pairKey) {
	m.unlink(k)
	delete(m.chans, k)
}

func (m *tableModel) perOwner(o int32) int {
	n := 0
	for k := range m.chans {
		if k.owner == o {
			n++
		}
	}
	return n
}

// TestTableAgainstModel runs random allocations, refreshes, releases, session ends and expiries
// against the model and checks after every step: the same channels, unique non-zero
// numbers stable across refreshes, symmetric links, routes, quotas and the earliest
// deadline.
func TestTableAgainstModel(t *testing.T) {
	const owners, perOwner, maxChannels = 6, 3, 10
	rapid.Check(t, func(rt *rapid.T) {
		tb := newTestTable(t, maxChannels, perOwner, owners)
		m := tableModel{chans: map[pairKey]*modelChan{}}
		now := proto.Instant(0)
		// Wall time is the instant plus offset (as uint64); Reanchor changes offset.
		offset := int64(1000 * time.Second)
		for step := 0; step < 60; step++ {
			switch rapid.IntRange(0, 10).Draw(rt, "op") {
			case 10:
				shift := int64(rapid.IntRange(-10, 10).Draw(rt, "wall step s")) * int64(time.Second)
				offset += shift
				off := offset
				tb.Reanchor(func(u uint64) proto.Instant { return proto.Instant(int64(u) - off) })
				for _, c := range m.chans {
					c.deadline -= proto.Instant(shift)
				}
			case 0:
				o := rapid.Int32Range(0, owners-1).Draw(rt, "drop")
				n := tb.DropOwner(o)
				want := 0
				for k := range m.chans {
					if k.owner == o {
						m.remove(k)
						want++
					}
				}
				if n != want {
					rt.Fatalf("DropOwner(%d) removed %d, model %d", o, n, want)
				}
			case 9:
				o := rapid.Int32Range(0, owners-1).Draw(rt, "release owner")
				pair := uint64(rapid.IntRange(1, 4).Draw(rt, "release pair"))
				_, want := m.chans[pairKey{pair, o}]
				if got := tb.Release(o, pair); got != want {
					rt.Fatalf("Release(%d, %d) = %v, model holds %v", o, pair, got, want)
				}
				m.remove(pairKey{pair, o})
			case 1:
				now = now.Add(time.Duration(rapid.IntRange(0, 20).Draw(rt, "advance")) * time.Second)
				n := tb.Expire(now)
				want := 0
				for k, c := range m.chans {
					if c.deadline <= now {
						m.remove(k)
						want++
					}
				}
				if n != want {
					rt.Fatalf("Expire(%v) removed %d, model %d", now, n, want)
				}
			default:
				o := rapid.Int32Range(0, owners-1).Draw(rt, "owner")
				p := rapid.Int32Range(0, owners-1).Filter(func(p int32) bool { return p != o }).Draw(rt, "peer")
				pair := uint64(rapid.IntRange(1, 4).Draw(rt, "pair"))
				dl := now.Add(time.Duration(rapid.IntRange(1, 30).Draw(rt, "life")) * time.Second)
				k := pairKey{pair, o}
				a, err := tb.Allocate(o, p, pair, dl, uint64(int64(dl)+offset), uint64(step))
				num, ready := a.Number, a.PeerReady
				c, existed := m.chans[k]
				switch {
				case !existed && m.perOwner(o) >= perOwner:
					if !errors.Is(err, ErrOwnerFull) {
						rt.Fatalf("owner %d over quota: %v", o, err)
					}
					continue
				case !existed && len(m.chans) >= maxChannels:
					if !errors.Is(err, ErrTableFull) {
						rt.Fatalf("table full: %v", err)
					}
					continue
				case err != nil:
					rt.Fatalf("Allocate: %v", err)
				case existed && c.number != num:
					rt.Fatalf("refresh changed channel %d to %d", c.number, num)
				case a.Refreshed != existed:
					rt.Fatalf("Refreshed %v, model existed %v", a.Refreshed, existed)
				}
				if !existed {
					c = &modelChan{number: num}
					m.chans[k] = c
				}
				c.deadline, c.tag = dl, uint64(step)
				pk := pairKey{pair, p}
				newLink := false
				if pc := m.chans[pk]; pc != nil && (c.peer == nil || *c.peer != pk) {
					m.unlink(k)
					m.unlink(pk)
					c.peer, pc.peer = &pk, &k
					newLink = true
				}
				if a.NewLink != newLink || newLink && (a.PeerNumber != m.chans[pk].number || a.PeerTag != m.chans[pk].tag) {
					rt.Fatalf("NewLink %v (peer %d), model %v", a.NewLink, a.PeerNumber, newLink)
				}
				if ready != (c.peer != nil) {
					rt.Fatalf("peerReady %v, model linked %v", ready, c.peer != nil)
				}
			}
			checkTable(rt, tb, &m)
		}
	})
}

func checkTable(rt *rapid.T, tb *Table, m *tableModel) {
	if tb.Len() != len(m.chans) {
		rt.Fatalf("Len %d, model %d", tb.Len(), len(m.chans))
	}
	seen := map[uint16]bool{}
	earliest := proto.Never
	for k, c := range m.chans {
		if c.number == 0 || seen[c.number] {
			rt.Fatalf("channel number %d zero or held twice", c.number)
		}
		seen[c.number] = true
		earliest = proto.Min(earliest, c.deadline)
		r, ok := tb.Lookup(c.number)
		want := Route{Owner: k.owner, Peer: NoOwner}
		if c.peer != nil {
			want = Route{Owner: k.owner, Peer: c.peer.owner, PeerChannel: m.chans[*c.peer].number}
		}
		if !ok || r != want {
			rt.Fatalf("Lookup(%d) = %+v %v, model %+v", c.number, r, ok, want)
		}
	}
	if d := tb.Deadline(); d != earliest {
		rt.Fatalf("Deadline %v, model %v", d, earliest)
	}
	for n := 1; n < 1<<16; n += 251 {
		if _, ok := tb.Lookup(uint16(n)); ok != seen[uint16(n)] {
			rt.Fatalf("Lookup(%d) found %v, model %v", n, ok, seen[uint16(n)])
		}
	}
}

// Charge holds an owner to its budget: over a long run the bytes it gets through are
// burst + rate × time, within one frame, and the server cap binds across owners.
func TestChargeHoldsRates(t *testing.T) {
	owner := ByteRate{BytesPerSecond: 100_000, Burst: 10_000}
	server := ByteRate{BytesPerSecond: 150_000, Burst: 10_000}
	tb, err := NewTable(TableConfig{MaxChannels: 4, MaxPerOwner: 2, MaxOwners: 2, OwnerRate: owner, ServerRate: server},
		rand.NewChaCha8([32]byte{}))
	if err != nil {
		t.Fatal(err)
	}
	const frame = 936 // costs 1000 with the overhead
	got := [2]int{}
	var refusedOwner, refusedServer int
	now := proto.Instant(0)
	for k := 0; k < 100_000; k++ { // 10 s, each owner offering 500 kB/s
		now = now.Add(100 * time.Microsecond)
		o := int32(k & 1)
		switch err := tb.Charge(now, o, frame); err {
		case nil:
			got[o] += frame + FrameCostOverhead
		case ErrOwnerRate:
			refusedOwner++
		case ErrServerRate:
			refusedServer++
		default:
			t.Fatal(err)
		}
	}
	total := got[0] + got[1]
	// The server's budget binds (150 kB/s < 2 × 100 kB/s): 10 kB + 1.5 MB.
	if total > 10_000+1_500_000 || total < 1_500_000 || refusedServer == 0 {
		t.Fatalf("owners got %v (total %d), refused %d by owner, %d by server", got, total, refusedOwner, refusedServer)
	}
	for o, g := range got {
		if g > 10_000+1_000_000 {
			t.Fatalf("owner %d got %d bytes, more than its budget", o, g)
		}
	}
	// Alone, one owner is held by its own budget.
	now = now.Add(time.Hour)
	start, sum := now, 0
	for k := 0; k < 50_000; k++ {
		now = now.Add(100 * time.Microsecond)
		if tb.Charge(now, 0, frame) == nil {
			sum += frame + FrameCostOverhead
		}
	}
	budget := 10_000 + int(100_000*now.Sub(start).Seconds())
	if sum > budget || sum < budget-2*1000 {
		t.Fatalf("alone: %d bytes, budget %d", sum, budget)
	}
}

func TestNewTableRejectsBadConfig(t *testing.T) {
	good := TableConfig{MaxChannels: 4, MaxPerOwner: 1, MaxOwners: 1, OwnerRate: roomyRate, ServerRate: roomyRate}
	for i, mut := range []func(*TableConfig){
		func(c *TableConfig) { c.MaxChannels = 0 },
		func(c *TableConfig) { c.MaxChannels = MaxTableChannels + 1 },
		func(c *TableConfig) { c.MaxPerOwner = 0 },
		func(c *TableConfig) { c.MaxOwners = 0 },
		func(c *TableConfig) { c.OwnerRate.BytesPerSecond = 0 },
		func(c *TableConfig) { c.ServerRate.Burst = MaxFrameLen }, // cannot pass one largest frame
		func(c *TableConfig) { c.OwnerRate.Burst = maxBurst + 1 }, // its window would overflow
	} {
		c := good
		mut(&c)
		if _, err := NewTable(c, rand.NewChaCha8([32]byte{})); !errors.Is(err, ErrTableConfig) {
			t.Errorf("case %d: %v", i, err)
		}
	}
	if _, err := NewTable(good, rand.NewChaCha8([32]byte{})); err != nil {
		t.Fatal(err)
	}
	// The largest burst allowed still charges correctly: a small frame fits.
	huge := good
	huge.OwnerRate, huge.ServerRate = ByteRate{BytesPerSecond: 1 << 40, Burst: maxBurst}, ByteRate{BytesPerSecond: 1 << 40, Burst: maxBurst}
	if _, err := NewTable(huge, rand.NewChaCha8([32]byte{})); err != nil {
		t.Fatalf("largest burst refused: %v", err)
	}
	if w := newRateParams(huge.OwnerRate).window; w <= 0 {
		t.Fatalf("largest burst's window %v, want positive", w)
	}
}

// A full table still finds free numbers: every one of MaxTableChannels channels gets
// a distinct number.
func TestFullTableNumbers(t *testing.T) {
	tb := newTestTable(t, MaxTableChannels, MaxTableChannels+1, 2)
	seen := make(map[uint16]bool, MaxTableChannels)
	for i := 0; i < MaxTableChannels; i++ {
		a, err := tb.Allocate(0, 1, uint64(i), proto.Never, 0, 0)
		n := a.Number
		if err != nil || n == 0 || seen[n] {
			t.Fatalf("channel %d: number %d, %v", i, n, err)
		}
		seen[n] = true
	}
	if _, err := tb.Allocate(0, 1, 1<<40, proto.Never, 0, 0); !errors.Is(err, ErrTableFull) {
		t.Fatalf("beyond the bound: %v", err)
	}
}

func TestTableHotPathDoesNotAllocate(t *testing.T) {
	tb := newTestTable(t, 4, 2, 2)
	al, _ := tb.Allocate(0, 1, 1, proto.Never, 0, 0)
	a := al.Number
	tb.Allocate(1, 0, 1, proto.Never, 0, 0)
	now := proto.Instant(0)
	n := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		r, ok := tb.Lookup(a)
		if !ok || tb.Charge(now, r.Owner, 1200) != nil {
			t.Fatal("lookup or charge failed")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func BenchmarkTableLookupCharge(b *testing.B) {
	tb := newTestTable(b, 1024, 1024, 2)
	var nums []uint16
	for i := range 512 {
		a, _ := tb.Allocate(0, 1, uint64(i), proto.Never, 0, 0)
		tb.Allocate(1, 0, uint64(i), proto.Never, 0, 0)
		nums = append(nums, a.Number)
	}
	b.ReportAllocs()
	now, i := proto.Instant(0), 0
	for b.Loop() {
		now = now.Add(time.Millisecond)
		r, _ := tb.Lookup(nums[i&511])
		if err := tb.Charge(now, r.Owner, 1200); err != nil {
			b.Fatal(fmt.Sprint(err))
		}
		i++
	}
}
