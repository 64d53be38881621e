package rudp

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim/simtest"
)

// ackProbe feeds hand-made packets to one Conn and reports whether it answered with
// an ACK at once.
type ackProbe struct {
	t   *testing.T
	c   *Conn
	now proto.Instant
	buf []byte
	seq uint64 // next reliable-ordered seq on lane 0
}

func newAckProbe(t *testing.T) *ackProbe {
	p := &ackProbe{t: t, now: 1_000_000_000, buf: make([]byte, 2048)}
	p.c = New(Config{}, p.now)
	p.acks() // its first packet carries MAX_DATA, no ACK
	return p
}

// acks drains the Conn and returns how many ACK frames it sent.
func (p *ackProbe) acks() int {
	n := 0
	for {
		pkt, ok := p.c.PollTransmit(p.now, p.buf)
		if !ok {
			return n
		}
		var whole proto.RUDPPacket
		if err := whole.Parse(pkt); err != nil {
			p.t.Fatalf("the Conn sent a packet it would reject: %v", err)
		}
		for _, f := range whole.Frames {
			if proto.RUDPFrameType(f[0]) == proto.RUDPAckType {
				n++
			}
		}
	}
}

// recv delivers packet pn carrying one data message and the extra frames, and
// returns the number of ACKs sent in answer.
func (p *ackProbe) recv(pn uint64, extra ...interface{ Append([]byte) []byte }) int {
	p.t.Helper()
	b := proto.AppendVarint(nil, pn)
	for _, f := range extra {
		b = f.Append(b)
	}
	d := proto.RUDPData{Mode: ReliableOrdered, Seq: p.seq, Total: 1, Data: []byte{byte(pn)}}
	p.seq++
	if err := p.c.HandleDatagram(p.now, d.Append(b)); err != nil {
		p.t.Fatalf("packet %d: %v", pn, err)
	}
	return p.acks()
}

type rawFrame []byte

func (r rawFrame) Append(b []byte) []byte { return append(b, r...) }

// The receiver honours ACK-FREQUENCY: no ACK until more than threshold packets, a
// gap acknowledged once it is reorder-threshold packets old, a late packet that fills
// a reported gap and a PING at once, the rest within the requested delay; an older
// sequence number is ignored and counted.
func TestAckFrequencyReceiverRules(t *testing.T) {
	p := newAckProbe(t)
	bulk := &proto.RUDPAckFrequency{Sequence: 5, Threshold: 9, MaxAckDelayMicros: 5000, ReorderThreshold: 3}
	if n := p.recv(0, bulk); n != 0 {
		t.Fatalf("ACK after the first packet under threshold 9")
	}
	if got, want := p.c.Deadline(), p.now.Add(5*time.Millisecond); got != want || p.c.DeadlineReason() != "ack" {
		t.Fatalf("deadline %v (%s), want the requested 5 ms delay", got, p.c.DeadlineReason())
	}
	for pn := uint64(1); pn <= 8; pn++ {
		if p.recv(pn) != 0 {
			t.Fatalf("ACK after %d packets under threshold 9", pn+1)
		}
	}
	if p.recv(9) != 1 {
		t.Fatalf("no ACK after the tenth packet")
	}
	stale := &proto.RUDPAckFrequency{Sequence: 4, Threshold: 0, MaxAckDelayMicros: 0, ReorderThreshold: 1}
	if p.recv(10, stale) != 0 || p.c.Stats().AckFrequencyStale != 1 {
		t.Fatalf("an older ACK-FREQUENCY was applied (stats %+v)", p.c.Stats())
	}
	// 11 is missing: 12 and 13 are within the reordering threshold, 14 is not.
	for _, pn := range []uint64{12, 13} {
		if p.recv(pn) != 0 {
			t.Fatalf("ACK for packet %d, %d above the gap, threshold 3", pn, pn-11)
		}
	}
	if p.recv(14) != 1 {
		t.Fatalf("no ACK once the gap at 11 was three packets old")
	}
	if p.recv(11) != 1 {
		t.Fatalf("no ACK for the late packet that fills a gap already reported")
	}
	if p.recv(15, rawFrame{byte(proto.RUDPPing)}) != 1 {
		t.Fatalf("no immediate ACK for a PING")
	}
	if p.recv(16) != 0 {
		t.Fatalf("ACK for a lone packet")
	}
	// A shorter delay pulls in the waiting acknowledgement.
	shorter := &proto.RUDPAckFrequency{Sequence: 6, Threshold: 9, MaxAckDelayMicros: 1000, ReorderThreshold: 0}
	if p.recv(17, shorter) != 0 {
		t.Fatalf("ACK at once under threshold 9")
	}
	if got, want := p.c.Deadline(), p.now.Add(time.Millisecond); got != want {
		t.Fatalf("deadline %v, want the new 1 ms delay %v", got, want)
	}
	p.now = p.c.Deadline()
	p.c.HandleTimeout(p.now)
	if p.acks() != 1 {
		t.Fatalf("no ACK when the delay ran out")
	}
	// Reordering threshold 0: a gap alone never forces an ACK.
	for pn := uint64(30); pn < 39; pn += 2 {
		if p.recv(pn) != 0 {
			t.Fatalf("ACK for packet %d out of order with reordering threshold 0", pn)
		}
	}
	if st := p.c.Stats(); st.AckFrequencyReceived != 2 {
		t.Fatalf("%d frames applied, want 2", st.AckFrequencyReceived)
	}
}

// ackRun is one bulk transfer's outcome.
type ackRun struct {
	took       time.Duration
	data, acks uint64 // sender's ack-eliciting packets; receiver's ACK-only packets
	sender     Stats
	receiver   Stats
}

func (r ackRun) perData() float64 { return float64(r.acks) / float64(r.data) }

func runAckTransfer(t *testing.T, seed uint64, fixed bool, ab, ba linkConfig, total int, watch func(b *Conn)) ackRun {
	cfg := Config{FixedAckFrequency: fixed}
	n := newNetwork(t, seed)
	a, b := n.pair(cfg, &link{cfg: ab}, &link{cfg: ba})
	o := newOracle(n.failf)
	b.onMsg = o.receive
	bk := &bulk{c: a.c, o: o, total: total, msgSize: 64 << 10, buf: make([]byte, 64<<10)}
	start := n.now
	n.every(start, time.Millisecond, bk.feed)
	if watch != nil {
		n.afterStep = func() { watch(b.c) }
	}
	if !n.run(start.Add(120*time.Second), func() bool { return bk.queued == total && o.complete() }) {
		n.failf("transfer incomplete: %d/%d messages", o.arrived, o.expected)
	}
	sa, sb := a.c.Stats(), b.c.Stats()
	return ackRun{took: n.now.Sub(start), data: sa.PacketsSent - sa.AckOnlyPackets, acks: sb.AckOnlyPackets, sender: sa, receiver: sb}
}

func seedOr(def uint64) uint64 {
	if s, ok := simtest.Fixed(); ok {
		return s
	}
	return def
}

// During bulk the receiver sends a fifth of the ACKs or fewer, and the transfer takes
// no longer in virtual time than with an ACK every second packet.
func TestAckFrequencyCutsAcksInBulk(t *testing.T) {
	seed := seedOr(31)
	l := linkConfig{delay: 10 * time.Millisecond, rateBps: 100_000_000, queuePackets: 500}
	back := linkConfig{delay: 10 * time.Millisecond}
	fixed := runAckTransfer(t, seed, true, l, back, 16<<20, nil)
	freq := runAckTransfer(t, seed, false, l, back, 16<<20, nil)
	t.Logf("16 MiB, 100 Mbit/s, 20 ms: every other packet %.3f ACKs per data packet in %v; ACK-FREQUENCY %.3f in %v (%d frames, %d PINGs)",
		fixed.perData(), fixed.took, freq.perData(), freq.took, freq.sender.AckFrequencySent, freq.sender.ImmediateAckPings)
	if fixed.perData() < 0.4 {
		t.Fatalf("seed %d: fixed acknowledgement sent %.3f ACKs per data packet, want about 0.5", seed, fixed.perData())
	}
	if freq.perData() > 0.2 || freq.receiver.AckFrequencyReceived == 0 {
		t.Fatalf("seed %d: %.3f ACKs per data packet with ACK-FREQUENCY (%d frames applied), want ≤ 0.2",
			seed, freq.perData(), freq.receiver.AckFrequencyReceived)
	}
	if freq.took > fixed.took+fixed.took/20 {
		t.Fatalf("seed %d: %v with ACK-FREQUENCY, %v without: more than 5 %% slower", seed, freq.took, fixed.took)
	}
}

// Loss, duplication, reordering and jitter together: every message arrives once and
// in order (the oracle), fewer ACKs are sent, the transfer is no more than 10 %
// slower, and the receiver is sent back to an ACK every second packet during loss
// recovery (its threshold goes above 1 and back).
func TestAckFrequencyImpairedTransfer(t *testing.T) {
	seed := seedOr(32)
	l := linkConfig{delay: 15 * time.Millisecond, jitter: time.Millisecond, loss: 0.01, dup: 0.01,
		reorder: 0.05, reorderDelay: 4 * time.Millisecond, rateBps: 50_000_000, queuePackets: 300}
	back := linkConfig{delay: 15 * time.Millisecond, loss: 0.01, dup: 0.01, reorder: 0.05, reorderDelay: 4 * time.Millisecond}
	fixed := runAckTransfer(t, seed, true, l, back, 8<<20, nil)
	wentBulk, returned := false, false
	freq := runAckTransfer(t, seed, false, l, back, 8<<20, func(b *Conn) {
		th := b.afIn.params.threshold
		wentBulk = wentBulk || th > 1
		returned = returned || (wentBulk && th == 1)
	})
	t.Logf("8 MiB, 50 Mbit/s, 30 ms, 1 %% loss, 1 %% dup, 5 %% reordered: fixed %.3f ACKs/packet in %v (%d lost); ACK-FREQUENCY %.3f in %v (%d lost, %d frames, %d spurious)",
		fixed.perData(), fixed.took, fixed.sender.PacketsLost, freq.perData(), freq.took, freq.sender.PacketsLost,
		freq.sender.AckFrequencySent, freq.sender.SpuriousLosses)
	if !wentBulk || !returned {
		t.Fatalf("seed %d: receiver threshold went above 1: %v, came back to 1: %v", seed, wentBulk, returned)
	}
	if freq.perData() >= fixed.perData() {
		t.Fatalf("seed %d: %.3f ACKs per packet with ACK-FREQUENCY, %.3f without", seed, freq.perData(), fixed.perData())
	}
	if freq.took > fixed.took+fixed.took/10 {
		t.Fatalf("seed %d: %v with ACK-FREQUENCY, %v without: more than 10 %% slower", seed, freq.took, fixed.took)
	}
}

// 100,000 small reliable messages in bursts on two lanes (ordered and unordered)
// over a path that loses, duplicates and reorders: every one arrives exactly once
// (ordered ones in order), with fewer ACKs than packets would get by default.
func TestAckFrequencyHundredThousandMessages(t *testing.T) {
	seed := seedOr(33)
	n := newNetwork(t, seed)
	imp := linkConfig{delay: 10 * time.Millisecond, loss: 0.01, dup: 0.01, reorder: 0.03,
		reorderDelay: 3 * time.Millisecond, rateBps: 50_000_000, queuePackets: 300}
	a, b := n.pair(Config{}, &link{cfg: imp}, &link{cfg: linkConfig{delay: 10 * time.Millisecond, loss: 0.01, dup: 0.01}})
	o := newOracle(n.failf)
	b.onMsg = o.receive
	buf := make([]byte, 256)
	const total, burst = 100_000, 5000
	sent := 0
	n.every(n.now, 20*time.Millisecond, func(now proto.Instant) bool {
		for i := 0; i < burst && sent < total; i++ {
			mode := ReliableOrdered
			if sent%3 == 0 {
				mode = ReliableUnordered
			}
			if err := o.send(a.c, now, 0, mode, 40+sent%160, buf); err != nil {
				n.failf("send %d: %v", sent, err)
			}
			sent++
		}
		return sent < total
	})
	if !n.run(n.now.Add(120*time.Second), func() bool { return sent == total && o.complete() }) {
		n.failf("%d of %d messages arrived", o.arrived, o.expected)
	}
	sa, sb := a.c.Stats(), b.c.Stats()
	data := sa.PacketsSent - sa.AckOnlyPackets
	t.Logf("100,000 messages: %d data packets, %d ACK-only packets back (%.3f), %d lost, %d duplicates dropped, %d frames",
		data, sb.AckOnlyPackets, float64(sb.AckOnlyPackets)/float64(data), sa.PacketsLost, sb.DuplicatePackets, sa.AckFrequencySent)
	if o.arrived != total || o.expected != total {
		n.failf("%d arrived, %d expected, want %d", o.arrived, o.expected, total)
	}
	if sb.AckOnlyPackets*10 > data*4 || sb.DuplicatePackets == 0 || sa.PacketsLost == 0 {
		n.failf("ACK-only packets %d for %d data packets, %d duplicates, %d lost", sb.AckOnlyPackets, data, sb.DuplicatePackets, sa.PacketsLost)
	}
}

// While the receiver is in bulk mode, each packet carrying a top-priority message
// asks for its ACK at once (a PING), so the lane's loss detection does not wait for
// the bulk threshold.
func TestAckFrequencyPriorityLaneAckedAtOnce(t *testing.T) {
	n := newNetwork(t, seedOr(34))
	cfg := Config{Lanes: []LaneConfig{{Priority: 0, Weight: 1}, {Priority: 1, Weight: 1}}, SendBufferBytes: 32 << 20}
	l := linkConfig{delay: 10 * time.Millisecond, rateBps: 100_000_000, queuePackets: 500}
	a, b := n.pair(cfg, &link{cfg: l}, &link{cfg: linkConfig{delay: 10 * time.Millisecond}})
	o := newOracle(n.failf)
	b.onMsg = o.receive
	bk := &bulk{c: a.c, o: o, lane: 0, total: 16 << 20, msgSize: 64 << 10, buf: make([]byte, 64<<10)}
	start := n.now
	n.every(start, time.Millisecond, bk.feed)
	urgent, duringBulk := 0, 0
	buf := make([]byte, 256)
	n.every(start.Add(5*time.Millisecond), 7*time.Millisecond, func(now proto.Instant) bool {
		if err := o.send(a.c, now, 1, ReliableOrdered, 200, buf); err != nil {
			n.failf("send: %v", err)
		}
		urgent++
		if a.c.peerDelaysAcks() {
			duringBulk++
		}
		return b.c.LaneStats(0).BytesDelivered < uint64(bk.total)
	})
	if !n.run(start.Add(60*time.Second), func() bool { return b.c.LaneStats(0).BytesDelivered == uint64(bk.total) && o.complete() }) {
		n.failf("bulk incomplete: %d/%d", o.arrived, o.expected)
	}
	st := a.c.Stats()
	t.Logf("%d urgent messages, %d while the peer delayed ACKs; %d PINGs asking for an immediate ACK", urgent, duringBulk, st.ImmediateAckPings)
	if duringBulk < 10 || st.ImmediateAckPings < uint64(duringBulk) {
		n.failf("%d urgent messages during bulk but %d immediate-ACK PINGs", duringBulk, st.ImmediateAckPings)
	}
}

// BenchmarkLinkBulk: 8 MiB one way over the in-memory network (1 Gbit/s, 2 ms RTT,
// 1000-packet buffer), with the default acknowledgement (fixed) and with
// ACK-FREQUENCY. Reports ACK-only packets per data packet, the virtual-time rate,
// and real CPU per data packet for both Conns and the harness.
func BenchmarkLinkBulk(b *testing.B) {
	for _, fixed := range []bool{true, false} {
		name := "ackfreq"
		if fixed {
			name = "fixed"
		}
		b.Run(name, func(b *testing.B) {
			l := linkConfig{delay: time.Millisecond, rateBps: 1_000_000_000, queuePackets: 1000}
			var acks, data uint64
			var virt time.Duration
			for range b.N {
				r := runAckTransferB(b, fixed, l, 8<<20)
				acks, data, virt = acks+r.acks, data+r.data, virt+r.took
			}
			b.ReportMetric(float64(acks)/float64(data), "acks/packet")
			b.ReportMetric(float64(b.N)*8*float64(8<<20)/virt.Seconds()/1e6, "virt-Mbit/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(data), "ns/data-packet")
		})
	}
}

func runAckTransferB(b *testing.B, fixed bool, l linkConfig, total int) ackRun {
	n := newNetwork(b, 1)
	x, y := n.pair(Config{FixedAckFrequency: fixed}, &link{cfg: l}, &link{cfg: linkConfig{delay: l.delay}})
	got := 0
	y.onMsg = func(_ proto.Instant, ev *EventMessage) { got += len(ev.Data) }
	msg := make([]byte, 64<<10)
	queued := 0
	start := n.now
	n.every(start, 100*time.Microsecond, func(now proto.Instant) bool {
		for queued < total && x.c.Send(now, 0, ReliableOrdered, msg) == nil {
			queued += len(msg)
		}
		return queued < total
	})
	if !n.run(start.Add(60*time.Second), func() bool { return got == total }) {
		n.failf("bulk incomplete: %d of %d bytes", got, total)
	}
	sx, sy := x.c.Stats(), y.c.Stats()
	return ackRun{took: n.now.Sub(start), data: sx.PacketsSent - sx.AckOnlyPackets, acks: sy.AckOnlyPackets}
}
