package proto

import "time"

// WallClock anchors wall time to a machine's timeline: at instant At the wall clock
// read Time. Machines read no clock (DESIGN §2); wall time enters only this way,
// where the protocol needs it (handshake timestamps, ticket and relay-token expiry),
// and the owner re-anchors it when the wall clock jumps.
type WallClock struct {
	At   Instant
	Time time.Time
}

// TimeAt is the wall time at now.
func (w WallClock) TimeAt(now Instant) time.Time { return w.Time.Add(now.Sub(w.At)) }

// UnixAt is the wall time at now in whole seconds since the Unix epoch, floored,
// never negative.
func (w WallClock) UnixAt(now Instant) uint64 {
	d := int64(now-w.At) / int64(time.Second)
	if now < w.At && int64(now-w.At)%int64(time.Second) != 0 {
		d-- // floor, not truncation toward zero
	}
	u := w.Time.Unix() + d
	if u < 0 {
		return 0
	}
	return uint64(u)
}

// InstantAt is the instant at which the wall clock reads unix seconds, the inverse of
// UnixAt (to the anchor's whole second); Never for anything more than 285 years
// ahead (which also keeps the arithmetic from overflowing).
func (w WallClock) InstantAt(unix uint64) Instant {
	const maxS = 9_000_000_000
	d := int64(min(unix, 1<<62)) - w.Time.Unix()
	if d > maxS {
		return Never
	}
	return w.At.Add(time.Duration(max(d, -maxS)) * time.Second) // Add saturates at Never
}
