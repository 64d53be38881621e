package punch

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/proto"
)

// DESIGN §11: a full queue drops with a counter. An owner that never polls transmits
// while probes keep coming fills the agent's out queue: it holds agentOutMax, counts
// the rest, awaits no probe it did not queue, and works on once drained.
func TestAgentOutQueueBound(t *testing.T) {
	a, b := newPair(testKey, []proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrB}}, nil)
	var buf [256]byte
	a.HandleTimeout(0)
	machinetest.Discard(machinetest.Of(a), 0, buf[:])

	// Each probe queues a reply and a triggered check back (no path is active yet).
	const probes = agentOutMax/2 + 100
	now := proto.Instant(time.Millisecond)
	for i := range probes {
		p := (&proto.Probe{Pair: a.Pair(), TxID: uint64(i + 1)}).Append(nil)
		b.mac.seal(p)
		if err := a.HandleDatagram(now, addrA, addrB, p); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := a.Stats().TransmitDrops, 2*probes-agentOutMax; got != want {
		t.Errorf("TransmitDrops %d, want %d", got, want)
	}
	sent := map[uint64]bool{}
	for tx, ok := a.PollTransmit(now, buf[:]); ok; tx, ok = a.PollTransmit(now, buf[:]) {
		var m proto.Probe
		if m.Parse(tx.Payload) == nil {
			sent[m.TxID] = true
		}
	}
	if n := len(sent); n != agentOutMax/2 {
		t.Errorf("%d probes left, want %d (half the queue, replies the other half)", n, agentOutMax/2)
	}
	for _, o := range a.outstanding {
		if !sent[o.txid] {
			t.Fatalf("probe %x awaited but never sent", o.txid)
		}
	}
	if a.Stats().EventDrops != 0 {
		t.Errorf("EventDrops %d", a.Stats().EventDrops)
	}

	// Drained, the agent works on: an answer to a probe that left confirms the path.
	reply := (&proto.ProbeReply{Pair: a.Pair(), TxID: a.outstanding[0].txid, Observed: addrA}).Append(nil)
	b.mac.seal(reply)
	if err := a.HandleDatagram(now, addrA, addrB, reply); err != nil {
		t.Fatal(err)
	}
	if e, ok := a.PollEvent(); !ok {
		t.Fatal("no event after the answer")
	} else if _, up := e.(EventPathUp); !up {
		t.Fatalf("event %#v, want EventPathUp", e)
	}
}

// An owner that drains transmits but never events fills the event queue: it holds the
// first agentEventsMax in order, counts the rest, and the agent's state is intact.
func TestAgentEventQueueBound(t *testing.T) {
	a, b := newPair(testKey,
		[]proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrB}},
		[]proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrA}})
	w, _, _ := onWire(t, 20*time.Millisecond, a, b)
	w.RunUntil(proto.Instant(2 * time.Second))
	path, ok := a.Active()
	if !ok {
		t.Fatal("no path")
	}
	// The peer goes quiet until the path is suspect, then one packet restores it:
	// two events a cycle, never polled.
	const cycles = agentEventsMax/2 + 3
	var buf [256]byte
	now := w.Now
	for range cycles {
		for !a.Suspected() {
			now = a.Deadline()
			a.HandleTimeout(now)
			for _, ok := a.PollTransmit(now, buf[:]); ok; _, ok = a.PollTransmit(now, buf[:]) {
			}
		}
		a.NoteTraffic(now, path.Local, path.Remote)
	}
	if got, want := a.Stats().EventDrops, 2*cycles-agentEventsMax; got != want {
		t.Errorf("EventDrops %d, want %d", got, want)
	}
	for i := range agentEventsMax {
		e, ok := a.PollEvent()
		_, suspect := e.(EventPathSuspect)
		_, restored := e.(EventPathRestored)
		if !ok || i%2 == 0 && !suspect || i%2 == 1 && !restored {
			t.Fatalf("event %d: %#v, want suspect and restored in turn", i, e)
		}
	}
	if e, ok := a.PollEvent(); ok {
		t.Fatalf("event beyond the bound: %#v", e)
	}
	if p, ok := a.Active(); !ok || p.Remote != path.Remote || a.Suspected() || a.Stats().TransmitDrops != 0 {
		t.Errorf("after the drops: active %v %v, suspected %v, TransmitDrops %d",
			p, ok, a.Suspected(), a.Stats().TransmitDrops)
	}
}

// The classifier's bounds hold by construction: an owner that never polls events
// until the end finds both of the measurement's events and nothing dropped, and a
// driver that opens more sockets than asked does not grow the probe table.
func TestClassifierBounds(t *testing.T) {
	c := NewClassifier(ClassifierConfig{Local: addrA, Hosts: []netip.AddrPort{addrA},
		Server: srvPrimary, AltPort: srvAltPort, AltAddr: srvAltAddr})
	c.Start(0)
	answerAll(t, c, 0)
	var socks []netip.AddrPort
	for i := range 3 * defaultExtraSockets {
		socks = append(socks, netip.AddrPortFrom(addrA.Addr(), uint16(6000+i)))
	}
	c.HandleSockets(0, socks)
	answerAll(t, c, 0)
	if !c.Done() {
		t.Fatal("not done after every probe was answered")
	}
	if len(c.extras) != defaultExtraSockets || len(c.probes) > defaultExtraSockets+6 {
		t.Errorf("%d extra sockets and %d probes; want %d and at most %d",
			len(c.extras), len(c.probes), defaultExtraSockets, defaultExtraSockets+6)
	}
	e1, _ := c.PollEvent()
	e2, _ := c.PollEvent()
	_, need := e1.(EventNeedSockets)
	_, done := e2.(EventClassified)
	if !need || !done || c.events.drops != 0 {
		t.Errorf("events %#v, %#v with %d dropped; want EventNeedSockets, EventClassified, none",
			e1, e2, c.events.drops)
	}
	if e, ok := c.PollEvent(); ok {
		t.Errorf("a third event %#v", e)
	}
}

// answerAll sends the classifier's due probes and answers each as the server does for
// a public host; it polls no events.
func answerAll(t *testing.T, c *Classifier, now proto.Instant) {
	t.Helper()
	var buf [128]byte
	for tx, ok := c.PollTransmit(now, buf[:]); ok; tx, ok = c.PollTransmit(now, buf[:]) {
		var m proto.NATProbe
		if err := m.Parse(tx.Payload); err != nil {
			t.Fatal(err)
		}
		reply := (&proto.NATProbeReply{TxID: m.TxID, Observed: tx.From}).Append(nil)
		_ = c.HandleDatagram(now, tx.From, tx.To, reply) // what it measures is not this test's concern
	}
}
