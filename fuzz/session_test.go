package fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// FuzzSessionPayload: see the package doc.
func FuzzSessionPayload(f *testing.F) {
	for _, s := range sessionSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p := fixture(t)
		defer func() {
			if t.Failed() {
				t.Logf("replay: plaintext %x", in)
			}
		}()
		closed := p.injectPlaintext(t, in)
		if closed {
			return
		}
		p.checkStillWorks(t, in)
	})
}

// injectPlaintext seals in with the stand-in's session, hands it to the node, and
// checks what the node made of it: the packet is counted exactly once (accepted by
// rudp, refused as bad, or a duplicate), and a refused one changes nothing the
// application sees. It reports whether the connection closed (with its event).
func (p *pair) injectPlaintext(t *testing.T, in []byte) (closed bool) {
	var h proto.RUDPHeader
	if _, err := h.Decode(in); err == nil {
		p.forged, p.haveForged = h.PacketNumber, true
	}
	sess := p.peerKeyx.Current(p.nodePub)
	sealed, err := sess.Seal(p.now, nil, in)
	if err != nil {
		t.Fatal(err)
	}
	st0, cs0 := p.node.Stats(), p.connStats(t)
	if err := p.node.HandleDatagram(p.now, addrNode, addrPeer, sealed); err != nil {
		t.Fatalf("node refused a genuine transport packet: %v", err)
	}
	q := p.drainNode()
	st1, cs1 := p.node.Stats(), p.connStats(t)
	accepted := cs1.PacketsReceived - cs0.PacketsReceived
	invalid := cs1.InvalidDatagrams - cs0.InvalidDatagrams
	dup := cs1.DuplicatePackets - cs0.DuplicatePackets
	bad, dupNode := st1.BadTransport-st0.BadTransport, st1.Duplicates-st0.Duplicates
	switch {
	case len(in) == 0: // keyx's keepalive: rudp never sees it
		if accepted+invalid+dup+uint64(bad+dupNode) != 0 || len(p.events) != 0 {
			t.Fatalf("an empty payload reached rudp: %+v", cs1)
		}
	case accepted == 1 && invalid+dup == 0 && bad+dupNode == 0:
	case invalid == 1 && accepted+dup == 0 && bad == 1 && dupNode == 0,
		dup == 1 && accepted+invalid == 0 && dupNode == 1 && bad == 0:
		// Refused: rudp's state, and so everything the application sees, unchanged.
		cs1.InvalidDatagrams, cs1.DuplicatePackets = cs0.InvalidDatagrams, cs0.DuplicatePackets
		if cs1 != cs0 || len(p.events) != 0 {
			t.Fatalf("refused packet changed the connection or made events %v:\n before %+v\n after  %+v", p.events, cs0, cs1)
		}
	default:
		t.Fatalf("packet counted %d accepted, %d invalid, %d duplicate by rudp; node %d bad, %d duplicates",
			accepted, invalid, dup, bad, dupNode)
	}
	for _, d := range q {
		p.toPeer(d.payload)
	}
	return p.closedWithEvent(t)
}

// connStats returns the node's connection statistics for the stand-in.
func (p *pair) connStats(t *testing.T) rudp.Stats {
	cs, ok := p.node.ConnStats("bob")
	if !ok {
		t.Fatal("node forgot its peer")
	}
	return cs
}

// closedWithEvent reports whether the node told the application that the
// connection ended, and fails the test if Send disagrees.
func (p *pair) closedWithEvent(t *testing.T) bool {
	told := false
	for _, e := range p.events {
		if _, ok := e.(node.EventPeerClosed); ok {
			told = true
		}
	}
	if told {
		err := p.node.Send(p.now, "bob", 0, rudp.ReliableOrdered, []byte("after"))
		if !errors.Is(err, node.ErrPeerClosed) && !errors.Is(err, rudp.ErrClosed) {
			t.Fatalf("EventPeerClosed seen, but Send still takes messages (%v)", err)
		}
	}
	return told
}

// checkStillWorks has both ends send reliable messages after the fuzzer's packet and
// runs until they arrive: the node to the stand-in on lane 0, the stand-in to the node
// on a lane and mode the packet carried no data for (data it forged for a message
// number the stand-in uses next would stand in for the stand-in's own, which is the
// forger's right, not the node's fault). The connection may end meanwhile only with
// EventPeerClosed.
func (p *pair) checkStillWorks(t *testing.T, in []byte) {
	lane, mode, free := untouchedLane(in)
	if err := p.node.Send(p.now, "bob", 0, rudp.ReliableOrdered, []byte("after")); err != nil {
		t.Fatalf("Send after the packet, with no EventPeerClosed: %v", err)
	}
	const probes = 3
	if free {
		for i := range probes {
			if err := p.peerConn.Send(p.now, lane, mode, fmt.Appendf(nil, "probe %d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := func() (after bool, n int) {
		after = slicesContain(p.peerMsgs, []byte("after"))
		for _, e := range p.events {
			if m, ok := e.(node.EventMessage); ok && m.Lane == lane && m.Mode == mode && bytes.HasPrefix(m.Data, []byte("probe ")) {
				n++
			}
		}
		return after, n
	}
	done := func() bool {
		after, n := got()
		return after && (!free || n == probes)
	}
	p.run(60*time.Second, func() bool { return done() || p.closedWithEvent(t) })
	if !done() && !p.closedWithEvent(t) {
		after, n := got()
		t.Fatalf("60 s after the packet: stand-in got the node's message %v, node got %d of %d on lane %d %v; node %+v, conn %+v",
			after, n, probes, lane, mode, p.node.Stats(), p.connStats(t))
	}
}

// untouchedLane returns a reliable lane and mode for which in carries no data frame,
// and false if it carries data for every one.
func untouchedLane(in []byte) (int, rudp.Mode, bool) {
	_, frames, _ := splitPacket(in)
	for lane := range fixtureLanes {
		for _, mode := range []rudp.Mode{rudp.ReliableOrdered, rudp.ReliableUnordered} {
			touched := false
			for _, f := range frames {
				touched = touched || f.data != nil && int(f.data.Lane) == lane && f.data.Mode == mode
			}
			if !touched {
				return lane, mode, true
			}
		}
	}
	return 0, 0, false
}

func slicesContain(list [][]byte, b []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}
