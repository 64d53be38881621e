package punch

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/proto"
)

// agentSnapshot is what a rejected probe or a spurious timeout must leave alone.
type agentSnapshot struct {
	Started, Searching, Suspected bool
	BeatSent, NextBeat, LastBeat  proto.Instant
	BeatsOut, Active              int
	Outstanding                   []pending
	Targets                       []target
	Paths                         []Path
	SeenLocal, SeenFrom           netip.AddrPort
}

func snapAgent(a *Agent) agentSnapshot {
	return agentSnapshot{a.started, a.searching, a.suspected, a.beatSent, a.nextBeat, a.lastBeat,
		a.beatsOut, a.active, slices.Clone(a.outstanding), slices.Clone(a.targets), slices.Clone(a.paths),
		a.seenLocal, a.seenFrom}
}

// agentSubject is A of a pair whose direct path is confirmed and heartbeated.
func agentSubject(t *testing.T) *machinetest.Subject {
	a, b := newPair(testKey,
		[]proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrB}},
		[]proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrA}})
	n := machinetest.NewNet(t, 0, 20*time.Millisecond)
	n.Add("a", machinetest.Of(a), addrA)
	n.Add("b", machinetest.Of(b), addrB)
	n.RunUntil(proto.Instant(2 * time.Second))
	if _, ok := a.Active(); !ok {
		t.Fatal("no active path to test on")
	}
	n.RunUntil(n.Next() - 1) // between steps: nothing in flight is due
	probe := (&proto.Probe{Pair: a.Pair(), TxID: 7}).Append(nil)
	b.mac.seal(probe)
	forged := (&proto.Probe{Pair: a.Pair(), TxID: 8}).Append(nil)
	NewAgent(AgentConfig{Key: Key{9}}).mac.seal(forged)
	echoed := (&proto.Probe{Pair: a.Pair(), TxID: 9, Flags: proto.ProbeControlling}).Append(nil)
	a.mac.seal(echoed)
	unasked := (&proto.ProbeReply{Pair: a.Pair(), TxID: 10, Observed: addrA}).Append(nil)
	b.mac.seal(unasked)
	return &machinetest.Subject{
		Machine:  machinetest.Of(a),
		Now:      n.Now,
		Local:    addrA,
		From:     addrB,
		Snapshot: func() any { return snapAgent(a) },
		Rejected: [][]byte{nil, probe[:10], forged, echoed, unasked,
			(&proto.Probe{Pair: a.Pair() + 1}).Append(nil)},
		Inputs: [][]byte{probe, unasked},
		Idle:   func(now proto.Instant) proto.Instant { a.Forget(); return now },
		Steady: heartbeats(a, b),
	}
}

// heartbeats returns a steady-state step: the pair's next timer fires and the two
// agents exchange what it sends, on zero latency, through preallocated buffers.
func heartbeats(a, b *Agent) func(proto.Instant) proto.Instant {
	ends := [2]*Agent{a, b}
	var bufs [2][256]byte
	return func(now proto.Instant) proto.Instant {
		now = max(now, proto.Min(a.Deadline(), b.Deadline()))
		for _, ag := range ends {
			if ag.Deadline() <= now {
				ag.HandleTimeout(now)
			}
		}
		for moved := true; moved; {
			moved = false
			for i, from := range ends {
				to := ends[1-i]
				for tx, ok := from.PollTransmit(now, bufs[i][:]); ok; tx, ok = from.PollTransmit(now, bufs[i][:]) {
					_ = to.HandleDatagram(now, tx.To, tx.From, tx.Payload)
					moved = true
				}
				for _, ok := from.PollEvent(); ok; _, ok = from.PollEvent() {
				}
			}
		}
		return now
	}
}

func TestAgentContract(t *testing.T) {
	machinetest.Check(t, machinetest.Spec{New: agentSubject, BufLen: 256, Seed: 41})
}

// classifierSubject is a classifier whose first round of probes is out, unanswered.
func classifierSubject(t *testing.T) *machinetest.Subject {
	c := NewClassifier(ClassifierConfig{Local: addrA, Hosts: []netip.AddrPort{addrA},
		Server: srvPrimary, AltPort: srvAltPort, AltAddr: srvAltAddr, Seed: [32]byte{3}})
	now := proto.Instant(time.Second)
	c.Start(now)
	var buf [128]byte
	var txids []uint64
	for tx, ok := c.PollTransmit(now, buf[:]); ok; tx, ok = c.PollTransmit(now, buf[:]) {
		var m proto.NATProbe
		if err := m.Parse(tx.Payload); err != nil {
			t.Fatal(err)
		}
		txids = append(txids, m.TxID)
	}
	reply := (&proto.NATProbeReply{TxID: txids[0], Observed: addrA}).Append(nil)
	return &machinetest.Subject{
		Machine:  machinetest.Of(c),
		Now:      now,
		Local:    addrA,
		From:     srvPrimary,
		Snapshot: func() any { return [3]any{c.phase, slices.Clone(c.probes), c.rtt} },
		Rejected: [][]byte{nil, reply[:len(reply)-1],
			(&proto.NATProbeReply{TxID: txids[0] + 1, Observed: addrA}).Append(nil), // ErrUnexpected
			(&proto.Probe{Pair: 1}).Append(nil)},                                    // ErrNotProbe
		Inputs: [][]byte{reply},
		// Every probe answered, as for a public host: the measurement ends.
		// The first round was drained unanswered: its retransmits are answered.
		Idle: func(now proto.Instant) proto.Instant {
			now = max(now, c.Deadline())
			c.HandleTimeout(now)
			var extra int
			serveOpen(t, c, now, &extra)
			if !c.Done() {
				t.Fatal("the classifier did not finish")
			}
			return now
		},
	}
}

func TestClassifierContract(t *testing.T) {
	machinetest.Check(t, machinetest.Spec{New: classifierSubject, BufLen: 128, Seed: 42})
}
