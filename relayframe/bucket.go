package relayframe

import (
	"time"

	"github.com/natpass/natpass/proto"
)

// ByteRate is a token bucket on bytes: on average BytesPerSecond, at most Burst
// bytes in a row after a quiet period.
type ByteRate struct {
	BytesPerSecond int64
	Burst          int64
}

// FrameCostOverhead is added to every frame's length when it is charged to a
// bucket, so that a stream of tiny frames is held to a packet rate too.
const FrameCostOverhead = 64

// byteBucket is a GCRA (ITU-T I.371) on bytes, kept as one instant: the theoretical
// arrival time of the next byte. A frame of cost c fits when, after pushing tat by
// c/rate, tat is at most the burst window ahead of now. An idle bucket needs no timer.
type byteBucket struct{ tat proto.Instant }

// rateParams is a ByteRate turned into nanoseconds once, so charging costs one
// division per bucket.
type rateParams struct {
	bytesPerSecond int64
	window         time.Duration // Burst bytes at the rate
}

func newRateParams(r ByteRate) rateParams {
	return rateParams{bytesPerSecond: r.BytesPerSecond, window: time.Duration(r.Burst * int64(time.Second) / r.BytesPerSecond)}
}

// cost is the time c bytes take at the rate.
func (r rateParams) cost(c int) time.Duration {
	return time.Duration(int64(c) * int64(time.Second) / r.bytesPerSecond)
}

// fits reports whether a frame costing d fits now; take charges it.
func (b *byteBucket) fits(now proto.Instant, d, window time.Duration) bool {
	return max(b.tat, now).Add(d).Sub(now) <= window
}

func (b *byteBucket) take(now proto.Instant, d time.Duration) { b.tat = max(b.tat, now).Add(d) }
