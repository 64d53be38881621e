package lab

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim"
)

// FaultKind is one kind of trouble a scenario schedules.
type FaultKind uint8

const (
	// FaultPartitionPeers cuts the path between the two nodes (the relay still
	// works): traffic must move to the relay and back.
	FaultPartitionPeers FaultKind = iota
	// FaultPartitionServer cuts Side's node off from the server (direct paths still
	// work; relayed traffic of that node stops).
	FaultPartitionServer
	// FaultNATReboot power-cycles every NAT box in front of Side's node at At
	// (For is unused): every mapping is gone and nobody is told.
	FaultNATReboot
	// FaultServerRestart takes the server away for For and brings back a fresh one
	// with no sessions.
	FaultServerRestart
	// FaultFlipBytes flips one random byte in a Rate share of the datagrams that
	// reach Side's node during the window (corruption in flight).
	FaultFlipBytes
	// FaultStopReading has Side's application read no event during the window.
	FaultStopReading
	// FaultStopTaking has Side's application read its events but take no message
	// during the window: the messages' credit goes back only when it ends.
	FaultStopTaking
	// FaultServerKill (a cluster only) kills the server Side's node is registered on,
	// for good, at At (For is unused): the node moves down its list; relayed traffic
	// moves with it.
	FaultServerKill
	// FaultPartitionServers (a cluster only) cuts the bus between A's and B's
	// servers for the window: introductions and relaying across them stop, and
	// resume when it heals.
	FaultPartitionServers
	faultKinds
)

var faultNames = [...]string{"partition-peers", "partition-server", "nat-reboot", "server-restart", "flip-bytes",
	"stop-reading", "stop-taking", "server-kill", "partition-servers"}

func (k FaultKind) String() string {
	if k < faultKinds {
		return faultNames[k]
	}
	return fmt.Sprintf("fault(%d)", k)
}

// Fault is one scheduled fault. At and For are measured from the moment both
// sides are connected.
type Fault struct {
	Kind    FaultKind
	Side    int // 0: A, 1: B
	At, For time.Duration
	Rate    float64 // FaultFlipBytes only
}

func (f Fault) window(base proto.Instant) sim.Window {
	return sim.Window{From: base.Add(f.At), Until: base.Add(f.At + f.For)}
}

// end is when the fault is over (a reboot or a kill is over at once).
func (f Fault) end() time.Duration {
	if f.Kind == FaultNATReboot || f.Kind == FaultServerKill {
		return f.At
	}
	return f.At + f.For
}

// flipper sits between a host and its node and flips a byte in some of the
// datagrams the node receives, as a bad link would: the machines above must drop
// what they cannot authenticate or parse and carry on.
type flipper struct {
	sim.Machine
	rng     *rand.Rand
	windows []sim.Window
	rates   []float64
	buf     []byte
	Flipped int
}

func (f *flipper) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	for i, w := range f.windows {
		if w.Contains(now) && len(p) > 0 && f.rng.Float64() < f.rates[i] {
			f.buf = append(f.buf[:0], p...)
			f.buf[f.rng.IntN(len(p))] ^= byte(1 + f.rng.IntN(255))
			f.Flipped++
			return f.Machine.HandleDatagram(now, local, from, f.buf)
		}
	}
	return f.Machine.HandleDatagram(now, local, from, p)
}

// action is something a fault does at an instant.
type action struct {
	at proto.Instant
	do func() error
}

// schedule puts the faults that act through the simulator's own means in place
// (partitions, flipping windows, stopped readers) and returns what the others do at
// an instant (reboots, restarts, a reader that stops and starts taking messages),
// for the run to do as time reaches it.
func (w *world) schedule(faults []Fault, base proto.Instant, seed uint64) []action {
	sides := [2]*side{w.a, w.b}
	var flips [2]*flipper
	var acts []action
	for _, f := range faults {
		sd, win := sides[f.Side&1], f.window(base)
		switch f.Kind {
		case FaultPartitionPeers:
			w.s.Partition(w.pr.A.Host, w.pr.B.Host, win)
		case FaultPartitionServer:
			w.s.Partition(w.pr.Server, sd.host, win)
		case FaultServerRestart:
			// Away for the window (the partition), back with no memory at its end.
			w.s.Partition(w.pr.Server, w.pr.A.Host, win)
			w.s.Partition(w.pr.Server, w.pr.B.Host, win)
			acts = append(acts, action{win.Until, w.startServer})
		case FaultNATReboot:
			site := w.pr.A
			if f.Side&1 == 1 {
				site = w.pr.B
			}
			acts = append(acts, action{win.From, func() error {
				for _, b := range site.Boxes {
					b.Reboot()
				}
				return nil
			}})
		case FaultFlipBytes:
			fl := flips[f.Side&1]
			if fl == nil {
				fl = &flipper{Machine: sd.node, rng: rand.New(rand.NewPCG(seed, uint64(f.Side)+0xf1))}
				flips[f.Side&1] = fl
				sd.host.Attach(fl)
			}
			fl.windows, fl.rates = append(fl.windows, win), append(fl.rates, f.Rate)
		case FaultStopReading:
			prev := sd.reading
			sd.reading = func(now proto.Instant) bool { return !win.Contains(now) && (prev == nil || prev(now)) }
		case FaultServerKill, FaultPartitionServers:
			acts = append(acts, w.clusterFault(f, sd, win)...)
		case FaultStopTaking:
			// Overlapping windows nest: the reader takes again when the last one ends.
			acts = append(acts, action{win.From, func() error { sd.stalledBy++; sd.stalled = true; return nil }},
				action{win.Until, func() error {
					sd.stalledBy--
					sd.stalled = sd.stalledBy > 0
					sd.host.Drain() // the application takes what it held
					return nil
				}})
		}
	}
	return acts
}

// clusterFault is what a cluster fault does: kill the server sd is registered on at
// the window's start, or cut the bus between the two nodes' servers for the window.
// Without a cluster it does nothing.
func (w *world) clusterFault(f Fault, sd *side, win sim.Window) []action {
	if w.bus == nil {
		return nil
	}
	ia, ib := w.serverOf(w.cfg.Seed)
	if f.Kind == FaultPartitionServers {
		return []action{{win.From, func() error { w.bus.Partition(w.members[ia], w.members[ib]); return nil }},
			{win.Until, func() error { w.bus.Heal(w.members[ia], w.members[ib]); return nil }}}
	}
	return []action{{win.From, func() error {
		for k, h := range w.hosts {
			if h.Sockets()[0] == sd.node.Server() && !w.members[k].Killed() {
				w.killServer(k)
			}
		}
		return nil
	}}}
}

// killServer makes server k die for good: cut off from both nodes, gone from the bus.
func (w *world) killServer(k int) {
	forever := sim.Window{From: w.s.Now(), Until: proto.Never}
	w.s.Partition(w.hosts[k], w.pr.A.Host, forever)
	w.s.Partition(w.hosts[k], w.pr.B.Host, forever)
	w.bus.Kill(w.members[k])
}
