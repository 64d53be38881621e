package machinetest

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/natpass/natpass/proto"
)

// Subject is one machine under test, set up by a Spec, with what the checks need
// to know about it.
type Subject struct {
	Machine
	// Now is the instant the setup left the machine at; the checks start there and
	// never call the machine with an earlier instant (except to test that it panics).
	Now proto.Instant
	// Local and From are the socket datagrams arrive on and their source.
	Local, From netip.AddrPort
	// Snapshot returns the observable state that a rejected datagram and a spurious
	// HandleTimeout must not change. It is compared with go-cmp, unexported fields
	// included; nil compares outputs and Deadline only.
	Snapshot func() any
	// Rejected are datagrams HandleDatagram must refuse with an error, in this state.
	Rejected [][]byte
	// Inputs are datagrams the machine accepts in some state; the drain check feeds
	// them and random mutations of them.
	Inputs [][]byte
	// Idle brings the machine to idle (it closes, finishes or forgets its work),
	// starting at now, and returns the instant it ended at. nil: the machine as set up
	// is idle.
	Idle func(now proto.Instant) proto.Instant
	// Steady runs one round of steady-state work (traffic on an established path, a
	// keepalive, a refresh) at or after now, draining by the rule into preallocated
	// buffers, and returns the instant it ended at. nil skips the allocation check.
	Steady func(now proto.Instant) proto.Instant
}

// Spec describes the machine Check runs against.
type Spec struct {
	// New sets up a fresh subject; every check gets its own.
	New func(t *testing.T) *Subject
	// BufLen is the PollTransmit buffer's length; 0 means 2048.
	BufLen int
	// Seed drives the drain check's random inputs.
	Seed uint64
	// Diverges names checks the machine is known to fail, by check name (the
	// constants below), each with what the divergence from DESIGN §2 is. Such a check
	// is skipped with that text until the lead settles it: a known divergence does
	// not hide the other checks.
	Diverges map[string]string
}

// Names of the checks, as sub-tests and as keys of Spec.Diverges.
const (
	TimeBackwardsPanics         = "TimeBackwardsPanics"
	SpuriousTimeoutIsNoop       = "SpuriousTimeoutIsNoop"
	DrainEnds                   = "DrainEnds"
	IdleDeadlineNever           = "IdleDeadlineNever"
	RejectedInputChangesNothing = "RejectedInputChangesNothing"
	SteadyStateAllocatesNothing = "SteadyStateAllocatesNothing"
)

// Check runs the contract's checks against spec's machine, each a named sub-test.
func Check(t *testing.T, spec Spec) {
	if spec.BufLen == 0 {
		spec.BufLen = 2048
	}
	for name := range spec.Diverges {
		if _, ok := checks[name]; !ok {
			t.Fatalf("Spec.Diverges names no check: %q", name)
		}
	}
	for _, c := range checkOrder {
		t.Run(c, func(t *testing.T) {
			if why, ok := spec.Diverges[c]; ok {
				t.Skip("known divergence: " + why)
			}
			checks[c](t, spec)
		})
	}
}

// checks maps each check's name to its body; checkOrder is the order they run in
// (a map's order must not reach the output).
var (
	checks = map[string]func(*testing.T, Spec){
		TimeBackwardsPanics:         checkBackwards,
		SpuriousTimeoutIsNoop:       checkSpurious,
		DrainEnds:                   checkDrainEnds,
		IdleDeadlineNever:           checkIdle,
		RejectedInputChangesNothing: checkRejected,
		SteadyStateAllocatesNothing: checkAllocs,
	}
	checkOrder = []string{TimeBackwardsPanics, SpuriousTimeoutIsNoop, DrainEnds, IdleDeadlineNever,
		RejectedInputChangesNothing, SteadyStateAllocatesNothing}
)

// fresh sets up a subject and drains what the setup left queued, so that the checks
// see only the outputs of their own inputs.
func fresh(t *testing.T, spec Spec) (*Subject, []byte) {
	t.Helper()
	s := spec.New(t)
	buf := make([]byte, spec.BufLen)
	Drain(t, s.Machine, s.Now, buf)
	return s, buf
}

// DESIGN §2: "now never decreases; a machine panics on caller misuse".
func checkBackwards(t *testing.T, spec Spec) {
	s, buf := fresh(t, spec)
	s.HandleTimeout(s.Now)
	Drain(t, s.Machine, s.Now, buf)
	defer func() {
		if recover() == nil {
			t.Fatalf("HandleTimeout(%d) after HandleTimeout(%d) did not panic", s.Now-1, s.Now)
		}
	}()
	s.HandleTimeout(s.Now - 1)
}

// DESIGN §2: "HandleTimeout(now) — spurious calls are no-ops". Tried at the setup
// instant and just before the deadline (or an hour on when there is none).
func checkSpurious(t *testing.T, spec Spec) {
	s, buf := fresh(t, spec)
	d := s.Deadline()
	var at []proto.Instant
	if s.Now < d {
		at = append(at, s.Now)
	}
	if d == proto.Never {
		at = append(at, s.Now.Add(time.Hour))
	} else if d-1 > s.Now {
		at = append(at, d-1)
	}
	if len(at) == 0 {
		t.Fatalf("the setup left the deadline %d at or before now %d: nothing can be spurious", d, s.Now)
	}
	for _, now := range at {
		before := snapshot(s)
		s.HandleTimeout(now)
		unchanged(t, s, buf, now, d, before, "HandleTimeout before the deadline")
	}
}

// unchanged fails t if the machine has output to drain at now, a deadline other than
// d, or a snapshot other than before.
func unchanged(t *testing.T, s *Subject, buf []byte, now, d proto.Instant, before any, what string) {
	t.Helper()
	if txs, evs := Drain(t, s.Machine, now, buf); len(txs) != 0 || len(evs) != 0 {
		t.Fatalf("%s at %d: %d transmits, events %#v", what, now, len(txs), evs)
	}
	if got := s.Deadline(); got != d {
		t.Fatalf("%s at %d moved the deadline from %d to %d", what, now, d, got)
	}
	if diff := cmp.Diff(before, snapshot(s), exportAll); diff != "" {
		t.Fatalf("%s at %d changed the state (-before +after):\n%s", what, now, diff)
	}
}

// exportAll lets go-cmp read unexported fields: snapshots are the test's own values
// of the package under test.
var exportAll = cmp.Exporter(func(reflect.Type) bool { return true })

func snapshot(s *Subject) any {
	if s.Snapshot == nil {
		return nil
	}
	return s.Snapshot()
}
