package sim_test

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim"
)

// echo answers every datagram from the socket it arrived on, unless quiet.
type echo struct {
	quiet bool
	out   []proto.Transmit
}

func (e *echo) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	if !e.quiet {
		e.out = append(e.out, proto.Transmit{From: local, To: from, Payload: append([]byte(nil), p...)})
	}
	return nil
}
func (e *echo) HandleTimeout(now proto.Instant) {}
func (e *echo) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	if len(e.out) == 0 {
		return proto.Transmit{}, false
	}
	t := e.out[0]
	e.out = e.out[1:]
	t.Payload = buf[:copy(buf, t.Payload)]
	return t, true
}
func (e *echo) Deadline() proto.Instant { return proto.Never }

// A peer behind a carrier-grade NAT pings the server of a Pair; the trace shows both
// NATs translating on the way out and back in.
func ExampleNewPair() {
	pr := sim.NewPair(sim.PairConfig{Seed: 1, A: sim.MustPreset("cgnat"), B: sim.MustPreset("open")})
	pr.Sim.SetTracer(sim.TraceTo(os.Stdout))
	pr.Server.Attach(&echo{})
	a := &echo{quiet: true, out: []proto.Transmit{{To: pr.ServerAddr(), Payload: []byte("ping")}}}
	pr.A.Host.Attach(a) // Attach drains the machine: the ping leaves now
	if err := pr.Sim.RunFor(100 * time.Millisecond); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 0.000000 send a         10.2.0.2:4000 > 203.0.113.10:3478 len=4 ttl=64
	//        0.000000 nat  a-nat     10.2.0.2:4000 > 203.0.113.10:3478 => 100.64.0.2:4000 > 203.0.113.10:3478 len=4 ttl=63
	//        1.000000 nat  a-nat2    100.64.0.2:4000 > 203.0.113.10:3478 => 198.51.100.1:51571 > 203.0.113.10:3478 len=4 ttl=62
	//       16.000000 recv server    198.51.100.1:51571 > 203.0.113.10:3478 len=4 ttl=61
	//       16.000000 send server    203.0.113.10:3478 > 198.51.100.1:51571 len=4 ttl=64
	//       31.000000 nat  a-nat2    203.0.113.10:3478 > 198.51.100.1:51571 => 203.0.113.10:3478 > 100.64.0.2:4000 len=4 ttl=62
	//       32.000000 nat  a-nat     203.0.113.10:3478 > 100.64.0.2:4000 => 203.0.113.10:3478 > 10.2.0.2:4000 len=4 ttl=61
	//       32.000000 recv a         203.0.113.10:3478 > 10.2.0.2:4000 len=4 ttl=61
}
