package main

import (
	"io"
	"testing"
	"time"

	"github.com/natpass/natpass/rendezvous"
)

// The limit flags reach the config: a rate alone keeps the default burst and the
// reverse; unset buckets stay zero (NewServer fills the defaults); bad values fail
// the parse.
func TestLimitFlags(t *testing.T) {
	fs := newFlagSet("server", io.Discard)
	apply := registerLimitFlags(fs)
	if err := parseFlags(fs, []string{"--source-rate", "50", "--source-token-burst", "12000", "--open-register-rate", "0.5", "--open-register-burst", "7"}); err != nil {
		t.Fatal(err)
	}
	var c rendezvous.Config
	apply(&c)
	want := rendezvous.Config{
		SourceRate:       rendezvous.Rate{Interval: 20 * time.Millisecond, Burst: rendezvous.DefaultSourceRate.Burst},
		SourceTokenRate:  rendezvous.Rate{Interval: rendezvous.DefaultSourceTokenRate.Interval, Burst: 12000},
		OpenRegisterRate: rendezvous.Rate{Interval: 2 * time.Second, Burst: 7},
	}
	if c.SourceRate != want.SourceRate || c.SourceTokenRate != want.SourceTokenRate || c.OpenRegisterRate != want.OpenRegisterRate || c.UnauthRate != (rendezvous.Rate{}) {
		t.Fatalf("got %+v %+v %+v %+v", c.SourceRate, c.SourceTokenRate, c.OpenRegisterRate, c.UnauthRate)
	}
	for _, bad := range [][]string{{"--source-rate", "-1"}, {"--unauth-reply-burst", "x"}, {"--source-token-rate", "fast"}} {
		fs := newFlagSet("server", io.Discard)
		registerLimitFlags(fs)
		if err := parseFlags(fs, bad); err == nil {
			t.Errorf("%v parsed", bad)
		}
	}
}

// The environment carries them too (NATPASS_SOURCE_BURST for --source-burst).
func TestLimitFlagsFromEnvironment(t *testing.T) {
	t.Setenv("NATPASS_SOURCE_BURST", "400")
	fs := newFlagSet("server", io.Discard)
	apply := registerLimitFlags(fs)
	if err := parseFlags(fs, nil); err != nil {
		t.Fatal(err)
	}
	var c rendezvous.Config
	apply(&c)
	if c.SourceRate != (rendezvous.Rate{Interval: rendezvous.DefaultSourceRate.Interval, Burst: 400}) {
		t.Fatalf("got %+v", c.SourceRate)
	}
}
