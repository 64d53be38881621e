package machinetest

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// Net is a deterministic virtual-time network between machines, in the manner of
// quinn-proto's tests/util.rs Pair.step and str0m's netem: no clock, no sleeps, no
// goroutines. Datagrams reach the node that owns their destination Latency after
// they were sent; ties (same instant) go in the order they were sent, then nodes in
// the order they were added.
//
// Use: Add the nodes, give the machines their commands, call Drain (the drain rule
// after a command), then Step or RunUntil. The test reads Now, each node's Events and
// the Unrouted datagrams; it may set Drop and Latency between steps.
type Net struct {
	// Now is the virtual time. Step only moves it forward; a test may move it forward
	// itself between steps.
	Now proto.Instant
	// Latency is the one-way delay of every datagram, applied when it is sent.
	Latency time.Duration
	// Drop, when set, is asked about every datagram as it is sent; true loses it.
	Drop func(tx proto.Transmit) bool
	// Sent counts the datagrams the machines sent, dropped ones included.
	Sent int
	// Unrouted are the datagrams sent to an address no node owns, in order.
	Unrouted []proto.Transmit
	// StepBound bounds the steps of one RunUntil (NewNet sets 1<<20): a machine whose
	// deadline does not advance after HandleTimeout would otherwise spin forever.
	StepBound int

	t       TB
	nodes   []*Node
	flights []flight
	seq     uint64
	buf     []byte
}

// Node is one machine on a Net.
type Node struct {
	Name string
	M    Machine
	// Addrs are the addresses the node receives on; the first is its main socket.
	Addrs []netip.AddrPort
	// Events are the node's events in the order it emitted them.
	Events []any
}

type flight struct {
	at  proto.Instant
	seq uint64 // tie-break: the send order
	tx  proto.Transmit
}

// NewNet returns an empty network at start. t receives the failures of the drain
// bound and the step bound.
func NewNet(t TB, start proto.Instant, latency time.Duration) *Net {
	return &Net{t: t, Now: start, Latency: latency, StepBound: 1 << 20, buf: make([]byte, 64<<10)}
}

// Add puts m on the network, receiving datagrams addressed to any of addrs.
func (n *Net) Add(name string, m Machine, addrs ...netip.AddrPort) *Node {
	nd := &Node{Name: name, M: m, Addrs: addrs}
	n.nodes = append(n.nodes, nd)
	return nd
}

// TakeEvents returns the node's events so far and forgets them.
func (nd *Node) TakeEvents() []any {
	evs := nd.Events
	nd.Events = nil
	return evs
}

// Drain applies the drain rule to every node at Now, in the order they were added:
// call it after giving a machine a command.
func (n *Net) Drain() {
	n.t.Helper()
	for _, nd := range n.nodes {
		n.drain(nd)
	}
}

// drain moves nd's datagrams into flight and its events into nd.Events.
func (n *Net) drain(nd *Node) {
	n.t.Helper()
	pollTransmits(n.t, nd.M, n.Now, n.buf, func(tx proto.Transmit) {
		n.Sent++
		if n.Drop != nil && n.Drop(tx) {
			return
		}
		tx.Payload = append([]byte(nil), tx.Payload...)
		n.seq++
		n.flights = append(n.flights, flight{at: n.Now.Add(n.Latency), seq: n.seq, tx: tx})
	})
	pollEvents(n.t, nd.M, func(e any) { nd.Events = append(nd.Events, e) })
}

// Next is the instant of the earliest arrival or deadline, or proto.Never.
func (n *Net) Next() proto.Instant {
	next := proto.Never
	for _, f := range n.flights {
		next = proto.Min(next, f.at)
	}
	for _, nd := range n.nodes {
		next = proto.Min(next, nd.M.Deadline())
	}
	return next
}

// Step moves Now to Next (never backwards), delivers every datagram due by then in
// send order, draining its receiver after each, then runs HandleTimeout on every node
// whose deadline has come and drains it. It reports false when nothing is pending.
func (n *Net) Step() bool {
	n.t.Helper()
	next := n.Next()
	if next == proto.Never {
		return false
	}
	n.Now = max(n.Now, next)
	// Bounded: with zero latency two machines could answer each other forever
	// within one instant.
	for delivered := 0; ; delivered++ {
		i := n.earliestDue()
		if i < 0 {
			break
		}
		if delivered == DrainBound {
			n.t.Fatalf("machinetest: %d datagrams delivered at %d; the machines never fall silent", delivered, n.Now)
		}
		f := n.flights[i]
		n.flights = append(n.flights[:i], n.flights[i+1:]...)
		n.deliver(f.tx)
	}
	for _, nd := range n.nodes {
		if nd.M.Deadline() <= n.Now {
			nd.M.HandleTimeout(n.Now)
			n.drain(nd)
		}
	}
	return true
}

// earliestDue returns the index of the first-sent flight due by Now, or -1. A
// datagram sent during this step with zero latency is due too, after those before it.
func (n *Net) earliestDue() int {
	best := -1
	for i, f := range n.flights {
		if f.at <= n.Now && (best < 0 || f.seq < n.flights[best].seq) {
			best = i
		}
	}
	return best
}

func (n *Net) deliver(tx proto.Transmit) {
	n.t.Helper()
	nd := n.owner(tx.To)
	if nd == nil {
		n.Unrouted = append(n.Unrouted, tx)
		return
	}
	// The receiver's error is its own business (it counts and drops); the contract
	// check covers what a rejected datagram may do.
	_ = nd.M.HandleDatagram(n.Now, tx.To, tx.From, tx.Payload)
	n.drain(nd)
}

func (n *Net) owner(to netip.AddrPort) *Node {
	for _, nd := range n.nodes {
		for _, a := range nd.Addrs {
			if a == to {
				return nd
			}
		}
	}
	return nil
}

// Deliver hands p to nd at Now, as if it arrived on local from from, drains nd, and
// returns HandleDatagram's error: for a test that plays a peer by hand.
func (n *Net) Deliver(nd *Node, local, from netip.AddrPort, p []byte) error {
	n.t.Helper()
	err := nd.M.HandleDatagram(n.Now, local, from, p)
	n.drain(nd)
	return err
}

// RunUntil steps while the next arrival or deadline is at or before until, then
// moves Now to until (if it is not past it already).
func (n *Net) RunUntil(until proto.Instant) {
	n.t.Helper()
	for range n.StepBound {
		if n.Next() > until {
			n.Now = max(n.Now, until)
			return
		}
		n.Step()
	}
	n.t.Fatalf("machinetest: %d steps before %d; a deadline does not advance (next %d)", n.StepBound, until, n.Next())
}
