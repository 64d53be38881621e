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
	return poll(&e.out, buf)
}

// poll hands out the first queued datagram with its payload copied into buf, as a
// PollTransmit must (the payload aliases buf).
func poll(out *[]proto.Transmit, buf []byte) (proto.Transmit, bool) {
	if len(*out) == 0 {
		return proto.Transmit{}, false
	}
	t := (*out)[0]
	*out = (*out)[1:]
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

// counterpart is a stand-in for a node: it records "events" for its owner to drain and
// sends what its owner's commands ask for.
type counterpart struct {
	events []string
	peer   netip.AddrPort // where the last datagram came from
	out    []proto.Transmit
}

func (c *counterpart) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	c.events = append(c.events, fmt.Sprintf("%v: %q from %v", time.Duration(now), p, from))
	c.peer = from
	return nil
}
func (c *counterpart) HandleTimeout(now proto.Instant) {}
func (c *counterpart) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	return poll(&c.out, buf)
}
func (c *counterpart) Deadline() proto.Instant { return proto.Never }

// Send is a command: it queues a datagram for the next PollTransmit.
func (c *counterpart) Send(from, to netip.AddrPort, p string) {
	c.out = append(c.out, proto.Transmit{From: from, To: to, Payload: []byte(p)})
}

// The owner of a machine drains its events in AfterStep and may answer with commands;
// the sim drains what those commands transmit. A command from outside a step is
// followed by Drain. Extra sockets (for a birthday attack) are opened on the host.
func Example_afterStep() {
	pr := sim.NewPair(sim.PairConfig{Seed: 1, A: sim.MustPreset("full-cone"), B: sim.MustPreset("open")})
	srv, a := &counterpart{}, &counterpart{}
	pr.Server.Attach(srv)
	pr.A.Host.Attach(a)
	pr.Server.AfterStep = func(now proto.Instant) {
		for _, ev := range srv.events {
			fmt.Println("server:", ev)
		}
		if len(srv.events) > 0 {
			// From the other port: only a full cone lets this in.
			srv.Send(pr.Server.Sockets()[1], srv.peer, "welcome")
		}
		srv.events = srv.events[:0]
	}
	pr.A.Host.AfterStep = func(now proto.Instant) {
		for _, ev := range a.events {
			fmt.Println("a:", ev)
		}
		a.events = a.events[:0]
	}
	extra := pr.A.Host.OpenSockets(2)
	a.Send(extra[1], pr.ServerAddr(), "hello")
	pr.A.Host.Drain()
	if err := pr.Sim.Run(proto.Never); err != nil {
		fmt.Println(err)
	}
	// Output:
	// server: 15ms: "hello" from 198.51.100.1:49153
	// a: 30ms: "welcome" from 203.0.113.10:3479
}
