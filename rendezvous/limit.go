package rendezvous

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// gcra is a token bucket kept as one number, the theoretical arrival time of the next
// request (the Generic Cell Rate Algorithm, ITU-T I.371): a request is allowed when
// tat is at most (Burst-1)·Interval ahead of now, and each allowed request pushes tat
// one Interval further. An idle bucket needs no timer: its tat simply lies in the past.
type gcra struct{ tat proto.Instant }

func (g *gcra) allow(now proto.Instant, r Rate) bool {
	tat := max(g.tat, now)
	if tat.Sub(now) > time.Duration(r.Burst-1)*r.Interval {
		return false
	}
	g.tat = tat.Add(r.Interval)
	return true
}

// noticeInterval spaces the error-6 notices a rate-limited sender gets: one per
// second per session, the rest of its refused requests are dropped silently, so rate
// limiting never turns into a reply stream.
const noticeInterval = time.Second

// limiter is one bucket plus the time its next rate-limit notice may be sent.
type limiter struct {
	bucket   gcra
	noticeAt proto.Instant
}

// refuse records a refused request and reports whether it earns a notice.
func (l *limiter) refuse(now proto.Instant) bool {
	if now < l.noticeAt {
		return false
	}
	l.noticeAt = now.Add(noticeInterval)
	return true
}

// sourceKey is what per-source limits key on: the IPv4 address, or the IPv6 /64 (one
// subscriber usually owns a whole /64, so per-address limits would be free to dodge).
func sourceKey(a netip.AddrPort) netip.Addr {
	ip := a.Addr().Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// sourceEntry is one source's buckets. It keeps no notice time: what a source's
// buckets refuse is answered with retry (a register) or dropped silently (STUN).
type sourceEntry struct {
	key    netip.Addr
	bucket gcra // registers without a valid token, STUN Binding
	proven gcra // registers with a valid admission token ([SRV-15])
}

// sourceTable holds a limiter per recent source, at most len(entries) of them. A
// new source in a full table evicts the least recently seen one. Evicting a busy
// source hands it a fresh bucket, which is why the server-wide UnauthRate exists:
// a flood from more sources than the table holds is capped there.
type sourceTable struct {
	entries []sourceEntry
	links   []link
	index   map[netip.Addr]int32
	lru     lruList
	max     int
}

func newSourceTable(max int) sourceTable {
	return sourceTable{
		entries: make([]sourceEntry, 0, max),
		links:   make([]link, max),
		index:   make(map[netip.Addr]int32, max),
		lru:     newLRU(),
		max:     max,
	}
}

// find returns the entry of from's source, or nil when the table has none; it
// creates nothing, so an unknown source costs no state.
func (t *sourceTable) find(from netip.AddrPort) *sourceEntry {
	i, ok := t.index[sourceKey(from)]
	if !ok {
		return nil
	}
	t.lru.touch(t.links, i)
	return &t.entries[i]
}

// get returns the entry of from's source, creating (and if needed evicting) one.
// evicted reports an eviction, for Stats.
func (t *sourceTable) get(from netip.AddrPort) (e *sourceEntry, evicted bool) {
	key := sourceKey(from)
	if i, ok := t.index[key]; ok {
		t.lru.touch(t.links, i)
		return &t.entries[i], false
	}
	var i int32
	if len(t.entries) < t.max {
		i = int32(len(t.entries))
		t.entries = append(t.entries, sourceEntry{})
	} else {
		i = t.lru.head
		t.lru.remove(t.links, i)
		delete(t.index, t.entries[i].key)
		evicted = true
	}
	t.entries[i] = sourceEntry{key: key}
	t.index[key] = i
	t.lru.pushBack(t.links, i)
	return &t.entries[i], evicted
}
