package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/natpass/natpass/rendezvous"
)

// natpass server's admission limits (PROTOCOL.md [SRV-9], [SRV-15]): each bucket as
// a rate in requests per second and a burst. 0 (the default) keeps
// rendezvous.Default*; setting only one of a pair keeps the other's default.

// limitFlag is one bucket's pair of flags.
type limitFlag struct {
	name, what string
	def        rendezvous.Rate
	field      func(*rendezvous.Config) *rendezvous.Rate
	perSecond  float64
	burst      int
}

// serverLimitFlags are the buckets a flag can set.
func serverLimitFlags() []*limitFlag {
	return []*limitFlag{
		{name: "source", what: "registers without a valid admission token and STUN requests from one source address (IPv4 address or IPv6 /64); a register beyond it gets a retry",
			def: rendezvous.DefaultSourceRate, field: func(c *rendezvous.Config) *rendezvous.Rate { return &c.SourceRate }},
		{name: "source-token", what: "registers with a valid admission token (proven: the sender receives at its address) from one source address: what a busy shared address registers at",
			def: rendezvous.DefaultSourceTokenRate, field: func(c *rendezvous.Config) *rendezvous.Rate { return &c.SourceTokenRate }},
		{name: "open-register", what: "registers without a token from sources new to the server, server-wide; beyond it every new source must prove its address first (the server is under load)",
			def: rendezvous.DefaultOpenRegisterRate, field: func(c *rendezvous.Config) *rendezvous.Rate { return &c.OpenRegisterRate }},
		{name: "unauth-reply", what: "replies to senders without a session (registered, retry, errors, STUN), server-wide",
			def: rendezvous.DefaultUnauthRate, field: func(c *rendezvous.Config) *rendezvous.Rate { return &c.UnauthRate }},
		{name: "no-session", what: "requests with an unknown session cookie (after a restart, every node's next keepalive), answered with error 5 no larger than the request, server-wide",
			def: rendezvous.DefaultNoSessionRate, field: func(c *rendezvous.Config) *rendezvous.Rate { return &c.NoSessionRate }},
	}
}

// registerLimitFlags defines --<bucket>-rate and --<bucket>-burst on fs for every
// bucket of serverLimitFlags, and returns the function that writes the parsed values
// into a rendezvous.Config (the server's driver.ServerConfig.Tune). Call it after
// fs is parsed; a bad value has already failed the parse.
func registerLimitFlags(fs *flag.FlagSet) (apply func(*rendezvous.Config)) {
	limits := serverLimitFlags()
	for _, l := range limits {
		fs.Func(l.name+"-rate", fmt.Sprintf("%s: requests per second (default %g)", l.what, perSecond(l.def)), func(v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1e9 {
				return errors.New("want a number of requests per second, 0 (the default) to 1e9")
			}
			l.perSecond = f
			return nil
		})
		fs.Func(l.name+"-burst", fmt.Sprintf("the most requests of --%s-rate in a row (default %d)", l.name, l.def.Burst), func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return errors.New("want a whole number of requests, 0 for the default")
			}
			l.burst = n
			return nil
		})
	}
	return func(c *rendezvous.Config) {
		for _, l := range limits {
			if l.perSecond == 0 && l.burst == 0 {
				continue
			}
			r := l.def
			if l.perSecond > 0 {
				r.Interval = max(time.Duration(float64(time.Second)/l.perSecond), time.Nanosecond)
			}
			if l.burst > 0 {
				r.Burst = l.burst
			}
			*l.field(c) = r
		}
	}
}

// perSecond is r's rate in requests per second.
func perSecond(r rendezvous.Rate) float64 { return float64(time.Second) / float64(r.Interval) }
