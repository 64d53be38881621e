package driver

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// The loop's timer fires at once for a deadline that was due at the machine's
// last now, never sooner than timerGranularity for one that was not (even when
// the clock has passed it since: a pacer's next packet), and on time for one
// further off.
func TestTimerDelay(t *testing.T) {
	last := proto.Instant(5 * time.Second)
	clock := last + proto.Instant(20*time.Microsecond)
	cases := []struct {
		deadline proto.Instant
		want     time.Duration
	}{
		{last - 1, 0},
		{last, 0},
		{last + proto.Instant(time.Microsecond), timerGranularity},
		{clock + proto.Instant(timerGranularity-1), timerGranularity},
		{clock + proto.Instant(timerGranularity), timerGranularity},
		{clock + proto.Instant(25*time.Millisecond), 25 * time.Millisecond},
	}
	for _, c := range cases {
		if got := timerDelay(c.deadline, last, clock); got != c.want {
			t.Errorf("deadline last%+v: timer in %v, want %v", time.Duration(c.deadline-last), got, c.want)
		}
	}
}
