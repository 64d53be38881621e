package keyx

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// Per-source limits under load, wireguard-go's values (ratelimiter.go): a token bucket
// per source IP (IPv6 by /64, which one host usually owns whole) refilled at 20
// initiations per second with a burst of 5.
const (
	ratePerSecond = 20
	rateBurst     = 5
	rateCost      = int64(time.Second / ratePerSecond)
	rateMax       = rateBurst * rateCost
	// rateIdle: an entry untouched this long has a full bucket again, so it can be
	// forgotten without changing any answer.
	rateIdle = time.Second
	// DefaultRateTableSize bounds the number of sources the limiter tracks.
	DefaultRateTableSize = 4096
)

type rateEntry struct {
	tokens int64 // nanoseconds of budget, at most rateMax
	last   proto.Instant
}

// rateLimiter is a bounded table of token buckets. It never grows past its size: when
// full it first forgets idle entries (at most once per rateIdle, so a flood cannot make
// every packet pay for a sweep), and a new source that still finds no room is refused.
//
// The table is made on first use and grows with the sources it holds: only an
// endpoint under load (a server, or a node being flooded) uses it at all, and an
// embedding client holding one Endpoint per node must not pay for a server's table
// up front (preallocated at 4096 it was ≈ 384 KB per Endpoint).
type rateLimiter struct {
	size      int
	table     map[netip.Addr]rateEntry
	lastSweep proto.Instant
	swept     bool
}

func newRateLimiter(size int) rateLimiter {
	return rateLimiter{size: size}
}

// rateKey is the address a bucket belongs to: the IPv4 address, or the /64 of an IPv6
// address.
func rateKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is4() {
		return a
	}
	p, _ := a.Prefix(64)
	return p.Addr()
}

// allow spends one initiation of src's budget and reports whether there was one.
func (r *rateLimiter) allow(now proto.Instant, src netip.Addr) bool {
	key := rateKey(src)
	if r.table == nil {
		r.table = make(map[netip.Addr]rateEntry)
	}
	e, ok := r.table[key]
	if !ok {
		if len(r.table) >= r.size && !r.sweep(now) {
			return false
		}
		e = rateEntry{tokens: rateMax, last: now}
	}
	e.tokens = min(rateMax, e.tokens+int64(now.Sub(e.last)))
	e.last = now
	allowed := e.tokens >= rateCost
	if allowed {
		e.tokens -= rateCost
	}
	r.table[key] = e
	return allowed
}

// sweep forgets idle entries and reports whether that made room.
func (r *rateLimiter) sweep(now proto.Instant) bool {
	if r.swept && now.Before(r.lastSweep.Add(rateIdle)) {
		return false
	}
	r.lastSweep, r.swept = now, true
	for k, e := range r.table { // order does not matter: only deletions
		if !now.Before(e.last.Add(rateIdle)) {
			delete(r.table, k)
		}
	}
	return len(r.table) < r.size
}
