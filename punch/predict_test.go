package punch

import "testing"

// PredictionCovers is the easy side's window as the hard side sees it: the 24 ports
// from the prediction, stepping by delta and wrapping from 65535 to 1024 as
// buildTargets does; none for delta 0.
func TestPredictionCovers(t *testing.T) {
	cases := []struct {
		predicted, port uint16
		delta           int
		want            bool
	}{
		{40000, 40000, 1, true},
		{40000, 40023, 1, true},
		{40000, 40024, 1, false},
		{40000, 39999, 1, false},
		{40000, 40046, 2, true},
		{40000, 40047, 2, false},
		{65530, 1024, 1, true}, // wraps: 65535 is followed by 1024
		{65530, 1041, 1, true},
		{65530, 1042, 1, false},
		{40000, 40000, 0, false},
	}
	for _, c := range cases {
		if got := PredictionCovers(c.predicted, c.port, c.delta); got != c.want {
			t.Errorf("PredictionCovers(%d, %d, %d) = %v, want %v", c.predicted, c.port, c.delta, got, c.want)
		}
	}
}
