package proto

import "testing"

// RFC 4787 §4.2.1 REQ-3: a source port at or above 1024 is not mapped below 1024, so
// a sequential NAT at the top of its range continues at 1024 and the prediction must
// wrap there (a predictor that let 65535+1 overflow to 0 aimed at ports 0–7).
func TestStepPort(t *testing.T) {
	cases := []struct {
		port  uint16
		delta int
		want  uint16
		ok    bool
	}{
		{40000, 1, 40001, true},
		{40000, -3, 39997, true},
		{65535, 1, 1024, true},
		{65534, 4, 1026, true},
		{65535, 8 * 64, 1024 + 511, true},
		{1024, -1, 65535, true},
		{1025, -4, 65533, true},
		{500, 8, 508, true},     // some other range: no wrap guessed
		{65535, 0, 65535, true}, // the port itself
		{3, -3, 0, false},
	}
	for _, c := range cases {
		got, ok := StepPort(c.port, c.delta)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("StepPort(%d, %d) = %d, %v; want %d, %v", c.port, c.delta, got, ok, c.want, c.ok)
		}
	}
}
