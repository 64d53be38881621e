package proto

import (
	"testing"
	"time"
)

// Wall time is the anchor plus whole elapsed seconds, floored, never negative.
func TestWallClockUnixAt(t *testing.T) {
	w := WallClock{At: Instant(10 * time.Second), Time: time.Unix(1000, 0)}
	cases := []struct {
		now  Instant
		want uint64
	}{
		{Instant(10 * time.Second), 1000},
		{Instant(10*time.Second + 999*time.Millisecond), 1000},
		{Instant(11 * time.Second), 1001},
		{Instant(9*time.Second + 500*time.Millisecond), 999}, // before the anchor: floor
		{Instant(9 * time.Second), 999},
	}
	for _, c := range cases {
		if got := w.UnixAt(c.now); got != c.want {
			t.Errorf("UnixAt(%v) = %d, want %d", time.Duration(c.now), got, c.want)
		}
		if got := w.InstantAt(c.want); w.UnixAt(got) != c.want {
			t.Errorf("InstantAt(%d) = %v, which reads %d", c.want, got, w.UnixAt(got))
		}
	}
	if got := (WallClock{At: Instant(time.Hour), Time: time.Unix(5, 0)}).UnixAt(0); got != 0 {
		t.Errorf("before the epoch: %d, want 0", got)
	}
	if got := w.InstantAt(1 << 63); got != Never {
		t.Errorf("InstantAt far ahead = %v, want Never", got)
	}
	if got := w.TimeAt(Instant(12 * time.Second)); !got.Equal(time.Unix(1002, 0)) {
		t.Errorf("TimeAt = %v", got)
	}
}
