package punch

import (
	"math"

	"github.com/natpass/natpass/proto"
)

// clock is the latest instant a machine was given. DESIGN §2: now never decreases,
// and a decrease is caller misuse, which panics. Without the check a machine handed
// an earlier instant would run its timers in the past and arm deadlines that are
// already due, and the error would surface far from the caller that made it.
type clock struct{ now proto.Instant }

// newClock accepts any first instant: the timeline's origin is the driver's choice.
func newClock() clock { return clock{now: math.MinInt64} }

// advance records now, or panics if it is earlier than an instant already given.
// Every entry point that takes now calls it first, before it changes anything.
func (c *clock) advance(now proto.Instant) {
	if now < c.now {
		panic("punch: time went backwards")
	}
	c.now = now
}
