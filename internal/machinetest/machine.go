// Package machinetest is the contract kit of natpass's state machines (DESIGN §2)
// and the one virtual-time network their tests share.
//
// Check runs the same named sub-tests against every machine: time going backwards
// panics, a spurious HandleTimeout changes nothing, draining ends, Deadline is
// proto.Never when idle, rejected input changes nothing, steady state allocates
// nothing. Net steps any number of machines on virtual time, delivering their
// datagrams with a fixed latency and applying the drain rule after every input.
//
// Like the machines it drives, the package is deterministic: it reads no clock,
// starts no goroutine and draws randomness only from seeds its callers give.
package machinetest

import (
	"net/netip"

	"github.com/natpass/natpass/proto"
)

// DrainBound bounds each poll loop of a drain: a machine whose PollTransmit or
// PollEvent still returns true after this many calls is broken (an unbounded queue
// or an output that never leaves), and the drain fails the test instead of hanging.
const DrainBound = 1 << 20

// Machine is the DESIGN §2 contract as functions, so that machines with different
// event types, or with no datagram input or no transmit output of their own, fit
// one kit. Deadline and HandleTimeout are required; a nil HandleDatagram means the
// machine takes no datagrams, a nil PollTransmit that it sends none, a nil
// PollEvent that it has no events.
type Machine struct {
	HandleDatagram func(now proto.Instant, local, from netip.AddrPort, p []byte) error
	HandleTimeout  func(now proto.Instant)
	PollTransmit   func(now proto.Instant, buf []byte) (proto.Transmit, bool)
	PollEvent      func() (any, bool)
	Deadline       func() proto.Instant
}

// machine is the method set a natpass machine with event type E has.
type machine[E any] interface {
	HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error
	HandleTimeout(now proto.Instant)
	PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool)
	PollEvent() (E, bool)
	Deadline() proto.Instant
}

// Of adapts a machine that has the whole contract as methods; E (its sealed event
// interface) is inferred from PollEvent.
func Of[E any](m machine[E]) Machine {
	return Machine{
		HandleDatagram: m.HandleDatagram,
		HandleTimeout:  m.HandleTimeout,
		PollTransmit:   m.PollTransmit,
		PollEvent:      Events(m.PollEvent),
		Deadline:       m.Deadline,
	}
}

// Events adapts a typed PollEvent. When E is an interface type (every natpass event
// sum is) the conversion to any does not allocate.
func Events[E any](poll func() (E, bool)) func() (any, bool) {
	return func() (any, bool) {
		e, ok := poll()
		if !ok {
			return nil, false
		}
		return e, true
	}
}

// TB is the part of testing.TB the kit uses; *testing.T, *testing.B and *rapid.T
// all have it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Drain applies the drain rule to m at now: PollTransmit until false, then PollEvent
// until false. Payloads are copied out of buf, so the results outlive the next call.
// It fails t when a loop exceeds DrainBound.
func Drain(t TB, m Machine, now proto.Instant, buf []byte) (txs []proto.Transmit, evs []any) {
	t.Helper()
	pollTransmits(t, m, now, buf, func(tx proto.Transmit) {
		tx.Payload = append([]byte(nil), tx.Payload...)
		txs = append(txs, tx)
	})
	pollEvents(t, m, func(e any) { evs = append(evs, e) })
	return txs, evs
}

// Discard drains m at now like Drain but keeps nothing and allocates nothing, for
// steady-state steps measured by testing.AllocsPerRun. It returns the counts.
func Discard(m Machine, now proto.Instant, buf []byte) (transmits, events int) {
	if m.PollTransmit != nil {
		for transmits < DrainBound {
			if _, ok := m.PollTransmit(now, buf); !ok {
				break
			}
			transmits++
		}
	}
	if m.PollEvent != nil {
		for events < DrainBound {
			if _, ok := m.PollEvent(); !ok {
				break
			}
			events++
		}
	}
	return transmits, events
}

func pollTransmits(t TB, m Machine, now proto.Instant, buf []byte, each func(proto.Transmit)) {
	t.Helper()
	if m.PollTransmit == nil {
		return
	}
	for range DrainBound {
		tx, ok := m.PollTransmit(now, buf)
		if !ok {
			return
		}
		each(tx)
	}
	t.Fatalf("machinetest: PollTransmit still true after %d calls", DrainBound)
}

func pollEvents(t TB, m Machine, each func(any)) {
	t.Helper()
	if m.PollEvent == nil {
		return
	}
	for range DrainBound {
		e, ok := m.PollEvent()
		if !ok {
			return
		}
		each(e)
	}
	t.Fatalf("machinetest: PollEvent still true after %d calls", DrainBound)
}
