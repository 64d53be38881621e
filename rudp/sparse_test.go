package rudp

import (
	"sort"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// gameRun is the outcome of a game-rate flow: 20 Hz of 200-byte unreliable messages
// one way, with a reliable message every reliableEvery (0: none).
type gameRun struct {
	sent, delivered  int // unreliable messages
	reliable         int // reliable messages sent (the oracle saw each arrive once)
	acks             uint64
	sender, receiver Stats
	p99              time.Duration // reliable delivery latency
	boundSeen        time.Duration // the largest delay bound the sender used
}

func (r gameRun) acksPerMessage() float64 { return float64(r.acks) / float64(r.sent) }

func runGame(t testing.TB, seed uint64, fixed bool, l linkConfig, dur, reliableEvery time.Duration) gameRun {
	n := newNetwork(t, seed)
	a, b := n.pair(Config{FixedAckFrequency: fixed}, &link{cfg: l}, &link{cfg: l})
	o := newOracle(n.failf)
	var r gameRun
	b.onMsg = func(now proto.Instant, ev *EventMessage) {
		o.receive(now, ev)
		if !ev.Mode.Reliable() {
			r.delivered++
		}
	}
	buf := make([]byte, 256)
	start := n.now
	nextReliable := start.Add(reliableEvery)
	n.every(start, 50*time.Millisecond, func(now proto.Instant) bool {
		if err := o.send(a.c, now, 0, Unreliable, 200, buf); err != nil {
			n.failf("send: %v", err)
		}
		r.sent++
		if reliableEvery > 0 && now >= nextReliable {
			if err := o.send(a.c, now, 0, ReliableOrdered, 100, buf); err != nil {
				n.failf("send: %v", err)
			}
			r.reliable++
			nextReliable = now.Add(reliableEvery)
		}
		return now.Sub(start) < dur
	})
	n.afterStep = func() {
		// The sender's probe timeout never counts less delay than the receiver applies.
		bound := a.c.peerAckDelayMax()
		if applied := b.c.afIn.params.delay; bound < applied {
			n.failf("the sender counts a peer ack delay of %v, the receiver applies %v", bound, applied)
		}
		r.boundSeen = max(r.boundSeen, bound)
	}
	n.run(start.Add(dur+5*time.Second), nil)
	if !o.complete() {
		n.failf("%d of %d reliable messages arrived", o.arrived, o.expected)
	}
	if o.expected != r.reliable {
		n.failf("oracle expected %d reliable messages, %d sent", o.expected, r.reliable)
	}
	r.sender, r.receiver = a.c.Stats(), b.c.Stats()
	r.acks = r.receiver.AckOnlyPackets
	if len(o.latency) > 0 {
		sort.Slice(o.latency, func(i, j int) bool { return o.latency[i] < o.latency[j] })
		r.p99 = time.Duration(o.latency[len(o.latency)*99/100])
	}
	return r
}

// A 20 Hz flow of unreliable messages on a clean path: with the default rule each
// packet draws an ACK-only packet; with the sparse request about one per
// ackSparseDelay. Every message arrives, no probe timeout fires, the sender's
// RTT estimate stays the path's, and its probe timeout counts the longer delay.
func TestAckFrequencySparseUnreliable(t *testing.T) {
	seed := seedOr(41)
	l := linkConfig{delay: 10 * time.Millisecond}
	fixed := runGame(t, seed, true, l, 60*time.Second, 0)
	sparse := runGame(t, seed, false, l, 60*time.Second, 0)
	t.Logf("60 s at 20 Hz, 20 ms RTT: default %.3f ACK-only packets per message (%d PTOs); sparse %.3f (%d PTOs, %d frames, srtt %v, bound %v)",
		fixed.acksPerMessage(), fixed.sender.PTOs, sparse.acksPerMessage(), sparse.sender.PTOs,
		sparse.sender.AckFrequencySent, sparse.sender.SRTT, sparse.boundSeen)
	if fixed.acksPerMessage() < 0.9 {
		t.Fatalf("seed %d: the default rule sent %.3f ACK-only packets per message, want about 1", seed, fixed.acksPerMessage())
	}
	if sparse.acksPerMessage() > 0.07 {
		t.Fatalf("seed %d: %.3f ACK-only packets per message with the sparse request, want ≤ 0.07", seed, sparse.acksPerMessage())
	}
	for _, r := range []gameRun{fixed, sparse} {
		if r.delivered != r.sent || r.sender.PTOs != 0 {
			t.Fatalf("seed %d: %d of %d messages delivered, %d PTOs on a clean path", seed, r.delivered, r.sent, r.sender.PTOs)
		}
	}
	if sparse.sender.SRTT < 19*time.Millisecond || sparse.sender.SRTT > 21*time.Millisecond {
		t.Fatalf("seed %d: smoothed RTT %v on a 20 ms path: the ack delay was not subtracted", seed, sparse.sender.SRTT)
	}
	if sparse.boundSeen != ackSparseDelay {
		t.Fatalf("seed %d: the probe timeout counted a peer delay of at most %v, want %v", seed, sparse.boundSeen, ackSparseDelay)
	}
}

// The same flow over a path that loses, duplicates and reorders in both directions,
// with a reliable message every 700 ms in it: every reliable message arrives once and
// in order (the oracle), no unreliable one twice, the ACKs stay thinned, the
// sender's probe timeout never counts less ack delay than the receiver applies, and the
// reliable messages arrive no later at p99 than under the default rule plus one
// packet interval (their packets ask for an immediate acknowledgement, and the
// sparse request is left while one is outstanding).
func TestAckFrequencySparseImpaired(t *testing.T) {
	seed := seedOr(42)
	l := linkConfig{delay: 15 * time.Millisecond, jitter: 2 * time.Millisecond, loss: 0.03, dup: 0.02,
		reorder: 0.05, reorderDelay: 8 * time.Millisecond}
	fixed := runGame(t, seed, true, l, 60*time.Second, 700*time.Millisecond)
	sparse := runGame(t, seed, false, l, 60*time.Second, 700*time.Millisecond)
	t.Logf("60 s at 20 Hz, 30 ms RTT, 3 %% loss, 2 %% dup, 5 %% reordered, reliable every 700 ms: default %.3f ACK-only/message, %d of %d delivered, reliable p99 %v, %d PTOs; sparse %.3f, %d of %d, p99 %v (%d frames, %d PINGs, %d PTOs)",
		fixed.acksPerMessage(), fixed.delivered, fixed.sent, fixed.p99, fixed.sender.PTOs, sparse.acksPerMessage(), sparse.delivered, sparse.sent,
		sparse.p99, sparse.sender.AckFrequencySent, sparse.sender.ImmediateAckPings, sparse.sender.PTOs)
	if sparse.reliable < 80 {
		t.Fatalf("seed %d: only %d reliable messages", seed, sparse.reliable)
	}
	for _, r := range []gameRun{fixed, sparse} {
		if r.delivered > r.sent || r.delivered < r.sent*9/10 {
			t.Fatalf("seed %d: %d of %d unreliable messages delivered at 3 %% loss", seed, r.delivered, r.sent)
		}
	}
	if sparse.acksPerMessage() > 0.5*fixed.acksPerMessage() {
		t.Fatalf("seed %d: %.3f ACK-only packets per message with the sparse request, %.3f without", seed, sparse.acksPerMessage(), fixed.acksPerMessage())
	}
	if sparse.p99 > fixed.p99+50*time.Millisecond {
		t.Fatalf("seed %d: reliable p99 %v with the sparse request, %v without", seed, sparse.p99, fixed.p99)
	}
}

// An unreliable flow that changes pace: 20 Hz, then 2000 messages a second of 1000
// bytes (16 Mbit/s, far past what a delayed acknowledgement lets the window carry),
// then 2 Hz. The sender leaves the sparse request while the flow is fast (the peer
// applies a delay within MaxAckDelay) and returns to it after; at 2 Hz, slower than
// one message per rate window, it does not flap (few ACK-FREQUENCY frames). Every
// message arrives on the clean path, and none waits long to be sent: when the flow
// speeds up, the packet that fills half the window asks for an acknowledgement at
// once, so the window never waits out the sparse delay.
func TestAckFrequencySparseRateChange(t *testing.T) {
	seed := seedOr(43)
	n := newNetwork(t, seed)
	l := linkConfig{delay: 10 * time.Millisecond, rateBps: 100_000_000, queuePackets: 1000}
	a, b := n.pair(Config{}, &link{cfg: l}, &link{cfg: l})
	o := newOracle(n.failf)
	delivered := 0
	b.onMsg = func(now proto.Instant, ev *EventMessage) { o.receive(now, ev); delivered++ }
	buf := make([]byte, 1024)
	start := n.now
	sent := 0
	phase := func(now proto.Instant) int { return int(now.Sub(start) / (10 * time.Second)) }
	n.every(start, 500*time.Microsecond, func(now proto.Instant) bool {
		k := int(now.Sub(start) / (500 * time.Microsecond))
		size, due := 200, k%100 == 0 // 20 Hz
		switch phase(now) {
		case 1:
			size, due = 1000, true // 2000 Hz
		case 2:
			due = k%1000 == 0 // 2 Hz
		}
		if due {
			if err := o.send(a.c, now, 0, Unreliable, size, buf); err != nil {
				n.failf("send: %v", err)
			}
			sent++
		}
		return phase(now) < 3
	})
	var fastDelayMax time.Duration
	var framesAt [4]uint64
	n.afterStep = func() {
		p := phase(n.now)
		if p == 1 && n.now.Sub(start) > 11*time.Second {
			fastDelayMax = max(fastDelayMax, b.c.afIn.params.delay)
		}
		framesAt[min(p, 3)] = a.c.Stats().AckFrequencySent
	}
	n.run(start.Add(32*time.Second), nil)
	st := a.c.Stats()
	slowFrames := framesAt[2] - framesAt[1]
	queued := a.c.LaneStats(0).QueueDelayMax
	t.Logf("%d messages sent, %d delivered; delay applied during the fast phase at most %v; ACK-FREQUENCY frames by phase end %v; ACK-only packets %d, PTOs %d; longest wait to be sent %v",
		sent, delivered, fastDelayMax, framesAt, b.c.Stats().AckOnlyPackets, st.PTOs, queued)
	if delivered != sent {
		n.failf("%d of %d unreliable messages arrived on a clean path", delivered, sent)
	}
	if fastDelayMax > defaultMaxAckDelay || fastDelayMax == 0 {
		n.failf("the receiver applied a delay up to %v during the fast phase, want within %v", fastDelayMax, defaultMaxAckDelay)
	}
	if b.c.afIn.params.delay <= defaultMaxAckDelay {
		n.failf("the slow phase did not return to the sparse request (delay %v)", b.c.afIn.params.delay)
	}
	if queued > 50*time.Millisecond {
		n.failf("a message waited %v to be sent: the window stalled on delayed acknowledgements", queued)
	}
	if slowFrames > 3 {
		n.failf("%d ACK-FREQUENCY frames during 10 s at 2 Hz: the request flaps", slowFrames)
	}
}

// BenchmarkGameAcks: 60 s (virtual) of a 20 Hz flow of 200-byte unreliable messages
// over a 20 ms path, with the default acknowledgement rule (fixed) and with
// ACK-FREQUENCY's sparse request. Reports ACK-only packets per message, what a relay
// forwards per game message beyond the message itself.
func BenchmarkGameAcks(b *testing.B) {
	for _, fixed := range []bool{true, false} {
		name := "sparse"
		if fixed {
			name = "fixed"
		}
		b.Run(name, func(b *testing.B) {
			var acks, sent uint64
			for range b.N {
				r := runGame(b, 1, fixed, linkConfig{delay: 10 * time.Millisecond}, 60*time.Second, 0)
				acks, sent = acks+r.acks, sent+uint64(r.sent)
			}
			b.ReportMetric(float64(acks)/float64(sent), "acks/message")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(sent), "ns/message")
		})
	}
}
