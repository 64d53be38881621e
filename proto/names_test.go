package proto

import "testing"

// The strategy names are printed by `natpass lab` and carried in its JSON, so they are
// pinned here, and ParseStrategy must invert String.
func TestStrategyNames(t *testing.T) {
	want := map[Strategy]string{
		StrategyNone:             "none",
		StrategySimultaneousOpen: "simultaneous-open",
		StrategyPortPrediction:   "port-prediction",
		StrategyBirthday:         "birthday",
	}
	for s, name := range want {
		if s.String() != name {
			t.Errorf("Strategy(%d).String() = %q, want %q", s, s.String(), name)
		}
		if got, err := ParseStrategy(name); err != nil || got != s {
			t.Errorf("ParseStrategy(%q) = %v, %v; want %v", name, got, err, s)
		}
	}
	if got := Strategy(len(want)).String(); got != "invalid" {
		t.Errorf("an unknown strategy prints %q, want invalid", got)
	}
	for _, name := range []string{"", "invalid", "prediction", "Birthday"} {
		if _, err := ParseStrategy(name); err == nil {
			t.Errorf("ParseStrategy(%q) accepted a name String never gives", name)
		}
	}
}

func TestPathKindNames(t *testing.T) {
	for k, name := range map[PathKind]string{PathNone: "none", PathDirect: "direct", PathRelay: "relay", 3: "invalid"} {
		if k.String() != name {
			t.Errorf("PathKind(%d).String() = %q, want %q", k, k.String(), name)
		}
	}
}

func TestCloseReasonString(t *testing.T) {
	for _, tt := range []struct {
		r    CloseReason
		want string
	}{
		{CloseReason{Code: 0xff01, Local: true, Text: "idle timeout"}, `local close, code 0xff01: "idle timeout"`},
		{CloseReason{Code: 42, Text: "game over"}, `peer close, code 0x2a: "game over"`},
	} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.r, got, tt.want)
		}
	}
}
