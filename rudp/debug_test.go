package rudp

import "testing"

func TestDebugSeed(t *testing.T) {
	if *seedFlag == 0 {
		t.Skip()
	}
	defer func() {}()
	runImpairedSeed(t, *seedFlag)
}

func dumpConn(t testing.TB, name string, c *Conn) {
	t.Logf("%s: state=%d nextPN=%d sent=[%d,%d) peerMaxData=%d reliableSent=%d ptoCount=%d probes=%d timers=%v pending:", name, c.state, c.nextPN, c.sent.head, c.sent.tail, c.peerMaxData, c.reliableSent, c.ptoCount, c.ptoProbes, c.timers)
	for i := range c.lanes {
		l := &c.lanes[i]
		t.Logf("  lane %d pending=%d retx=%d unacked=%d/%d nextSeq=%v ready=%v", i, l.pending.len(), l.retx.len(), l.unacked[0].len(), l.unacked[1].len(), l.nextSeq, c.laneReady(l, c.now, true))
		if l.unacked[0].len() > 0 {
			m := *l.unacked[0].front()
			t.Logf("   front ordered seq=%d pieces=%d acked=%d next=%d", m.seq, m.pieces(), m.nAcked, m.next)
		}
		t.Logf("  recv ordered base=%d unordered base=%d", l.recvRel[0].base, l.recvRel[1].base)
	}
}
