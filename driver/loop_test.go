package driver

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// The loop's timer fires at once for a deadline that is due, never sooner than
// timerGranularity for one that is not, and on time for one further off.
func TestTimerDelay(t *testing.T) {
	now := proto.Instant(5 * time.Second)
	cases := []struct {
		deadline proto.Instant
		want     time.Duration
	}{
		{now - 1, 0},
		{now, 0},
		{now + proto.Instant(time.Microsecond), timerGranularity},
		{now + proto.Instant(timerGranularity-1), timerGranularity},
		{now + proto.Instant(timerGranularity), timerGranularity},
		{now + proto.Instant(25*time.Millisecond), 25 * time.Millisecond},
	}
	for _, c := range cases {
		if got := timerDelay(c.deadline, now); got != c.want {
			t.Errorf("deadline now%+v: timer in %v, want %v", time.Duration(c.deadline-now), got, c.want)
		}
	}
}
