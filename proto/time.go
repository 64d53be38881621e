package proto

import (
	"math"
	"net/netip"
	"time"
)

// Instant is a point on an arbitrary monotonic timeline, in nanoseconds. The caller
// (driver or simulator) owns the timeline; state machines only compare and add.
type Instant int64

// Never is the Instant a machine reports as its deadline when no timer is armed.
const Never Instant = math.MaxInt64

// Add returns t+d, saturating at Never so that "now + a long timeout" cannot wrap
// around into the past.
func (t Instant) Add(d time.Duration) Instant {
	if t == Never {
		return Never
	}
	if d > 0 && int64(t) > math.MaxInt64-int64(d) {
		return Never
	}
	return t + Instant(d)
}

// Sub returns the duration t-u.
func (t Instant) Sub(u Instant) time.Duration { return time.Duration(t - u) }

// Before reports whether t is strictly earlier than u.
func (t Instant) Before(u Instant) bool { return t < u }

// Min returns the earlier of t and u; machines fold their timer tables with it.
func Min(t, u Instant) Instant {
	if u < t {
		return u
	}
	return t
}

// Transmit is one datagram a machine wants sent.
//
// From names the local socket it must leave from: hole punching depends on the source
// port, and a node may own extra sockets for birthday probing. TTL is the IP TTL (hop
// limit) to send with; 0 means the socket's default. Payload aliases the buffer passed
// to PollTransmit and is valid until the next call on the machine.
type Transmit struct {
	From, To netip.AddrPort
	TTL      uint8
	Payload  []byte
}
