package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// Bounds of one scenario run, so that a scenario cannot run away.
const (
	connectTimeout = 30 * time.Second
	// sendPhaseMax bounds the time from connecting to the last message handed to
	// Send: senders blocked longer than this count as stuck.
	sendPhaseMax  = 10 * time.Minute
	maxViolations = 20
	// spinSteps: this many simulator steps without time moving is a machine whose
	// deadline stays in the past (DESIGN §2), not work.
	spinSteps = 100_000
)

// streamState is one stream's sender and receiver bookkeeping.
type streamState struct {
	Stream
	salt             byte
	sender, receiver *side
	nextSend         int           // index of the next message to hand to Send
	nextAt           proto.Instant // when the sender tries next
	// Receiver: next expected (ordered), indexes seen (unordered, unreliable), the
	// latest delivered (sequenced), messages delivered.
	next int
	seen []bool
	last int
	got  int
}

type scenarioRun struct {
	w       *world
	sc      Scenario
	res     *ScenarioResult
	streams []*streamState
	base    proto.Instant // both sides connected
	buf     []byte
	// spinAt and spinFrom: the instant the simulator last stood at and its step
	// count then (spinning).
	spinAt   proto.Instant
	spinFrom uint64
	spun     bool
}

// spinning reports whether the simulator has taken spinSteps steps without time
// moving; it records the first such finding as a violation naming the deadlines.
func (r *scenarioRun) spinning() bool {
	s := r.w.s
	if now := s.Now(); now != r.spinAt || r.spinFrom == 0 {
		r.spinAt, r.spinFrom = now, s.Steps()
		return false
	}
	if s.Steps()-r.spinFrom < spinSteps {
		return false
	}
	if !r.spun {
		r.spun = true
		r.violate("livelock at %v: %d steps without time moving (a: %q at %v, b: %q at %v)", time.Duration(r.spinAt), spinSteps,
			r.w.a.node.DeadlineReason(), time.Duration(r.w.a.node.Deadline()), r.w.b.node.DeadlineReason(), time.Duration(r.w.b.node.Deadline()))
	}
	return true
}

func newScenarioRun(w *world, sc Scenario, res *ScenarioResult) *scenarioRun {
	r := &scenarioRun{w: w, sc: sc, res: res}
	byKey := map[[3]int]*streamState{}
	for i, st := range sc.Streams {
		s := &streamState{Stream: st, salt: byte(i*37 + 11), last: -1, sender: w.a, receiver: w.b}
		if st.FromB {
			s.sender, s.receiver = w.b, w.a
		}
		if st.Mode != rudp.ReliableOrdered {
			// Unordered and unreliable messages name themselves: their first four bytes
			// are the index.
			s.MinSize = max(s.MinSize, 4)
			s.MaxSize = max(s.MaxSize, s.MinSize)
			s.seen = make([]bool, st.Count)
		}
		key := streamKey(st.FromB, st.Lane, st.Mode)
		if byKey[key] != nil {
			r.violate("stream %d repeats direction, lane and mode of another", i)
			continue
		}
		byKey[key] = s
		r.streams = append(r.streams, s)
	}
	for _, sd := range []*side{w.a, w.b} {
		sd.onMessage = func(now proto.Instant, e node.EventMessage) {
			s := byKey[streamKey(sd == w.a, e.Lane, e.Mode)]
			if s == nil {
				r.violate("%s got a message on lane %d %v that nobody sent", sd.name, e.Lane, e.Mode)
				return
			}
			r.receive(s, e.Data)
		}
	}
	return r
}

func streamKey(fromB bool, lane int, mode rudp.Mode) [3]int {
	k := [3]int{0, lane, int(mode)}
	if fromB {
		k[0] = 1
	}
	return k
}

func (r *scenarioRun) violate(format string, args ...any) {
	if len(r.res.Violations) < maxViolations {
		r.res.Violations = append(r.res.Violations, fmt.Sprintf(format, args...))
	}
}

// size is message i's size: drawn from [MinSize, MaxSize] by a hash of i, so that
// the receiver computes the same.
func (s *streamState) size(i int) int {
	if s.MaxSize <= s.MinSize {
		return s.MinSize
	}
	x := uint64(i)*0x9e3779b97f4a7c15 ^ uint64(s.salt)<<56
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	return s.MinSize + int(x%uint64(s.MaxSize-s.MinSize+1))
}

// content writes message i into buf: its index (little-endian, as far as the size
// allows), then bytes that depend on the stream, the index and the position, so a
// message altered, cut or swapped with another does not match.
func (s *streamState) content(buf []byte, i int) []byte {
	n := s.size(i)
	buf = slices.Grow(buf[:0], n)[:n]
	var idx [4]byte
	binary.LittleEndian.PutUint32(idx[:], uint32(i))
	for j := range buf {
		if j < 4 {
			buf[j] = idx[j]
		} else {
			buf[j] = s.salt + byte(i*7) + byte(j*13)
		}
	}
	return buf
}

// receive checks one delivered message against its stream's promise.
func (r *scenarioRun) receive(s *streamState, data []byte) {
	i := s.next
	if s.Mode != rudp.ReliableOrdered {
		if len(data) < 4 {
			r.violate("lane %d %v: a %d-byte message, every one sent had at least 4", s.Lane, s.Mode, len(data))
			return
		}
		i = int(binary.LittleEndian.Uint32(data))
	}
	switch {
	case i >= s.Count || i >= s.nextSend:
		r.violate("lane %d %v: message %d delivered, only %d sent", s.Lane, s.Mode, i, s.nextSend)
		return
	case s.seen != nil && s.seen[i]:
		r.violate("lane %d %v: message %d delivered twice", s.Lane, s.Mode, i)
		return
	case s.Mode == rudp.UnreliableSequenced && i <= s.last:
		r.violate("lane %d %v: message %d delivered after %d", s.Lane, s.Mode, i, s.last)
		return
	}
	r.buf = s.content(r.buf, i)
	if s.Mode == rudp.ReliableOrdered && string(r.buf) != string(data) && r.skipped(s, data) {
		return
	}
	if string(r.buf) != string(data) {
		r.violate("lane %d %v: message %d altered or out of order (%d bytes, want %d)", s.Lane, s.Mode, i, len(data), len(r.buf))
		if s.Mode == rudp.ReliableOrdered {
			s.next++ // count it, so one bad message is not reported for every later one
		}
		return
	}
	if s.seen != nil {
		s.seen[i] = true
	}
	s.last = max(s.last, i)
	s.next++
	s.got++
}

// skipped recognises an ordered message that came after a gap: it names a later
// index and is intact, so the ones between were lost, not altered. It reports the
// gap once and carries on from there.
func (r *scenarioRun) skipped(s *streamState, data []byte) bool {
	if len(data) < 4 {
		return false
	}
	j := int(binary.LittleEndian.Uint32(data))
	if j <= s.next || j >= s.nextSend {
		return false
	}
	r.buf = s.content(r.buf, j)
	if string(r.buf) != string(data) {
		return false
	}
	r.violate("lane %d %v: messages %d to %d lost (%d arrived next)", s.Lane, s.Mode, s.next, j-1, j)
	s.next, s.got = j+1, s.got+1
	return true
}

// run connects the nodes, sends the traffic while the faults happen, then lets the
// run settle.
func (r *scenarioRun) run() error {
	w := r.w
	start := w.s.Now()
	w.a.node.Connect(start, "b")
	w.a.host.Drain()
	if err := w.s.RunUntil(start.Add(connectTimeout), func() bool { return w.a.connected && w.b.connected || r.spinning() }); err != nil {
		return err
	}
	if r.spun {
		return nil
	}
	if !w.a.connected || !w.b.connected {
		r.violate("not connected %v after Connect (a %v, b %v; closed %q %q)", connectTimeout, w.a.connected, w.b.connected, w.a.closed, w.b.closed)
		return nil
	}
	r.base = w.s.Now()
	acts := w.schedule(r.sc.Faults, r.base, r.sc.Seed)
	slices.SortStableFunc(acts, func(x, y action) int { return int(x.at - y.at) })
	for _, s := range r.streams {
		s.nextAt = r.base.Add(s.Start)
	}
	faultsEnd := r.base
	for _, f := range r.sc.Faults {
		faultsEnd = max(faultsEnd, r.base.Add(f.end()))
	}
	for {
		if w.a.closed != "" || w.b.closed != "" {
			r.violate("connection ended: a %q, b %q", w.a.closed, w.b.closed)
			return nil
		}
		now := w.s.Now()
		for len(acts) > 0 && acts[0].at <= now {
			if err := acts[0].do(); err != nil {
				return err
			}
			acts = acts[1:]
		}
		next := r.sendDue(now)
		if len(acts) > 0 {
			next = min(next, acts[0].at)
		}
		if next == proto.Never {
			break
		}
		if next.Sub(r.base) > sendPhaseMax {
			r.violate("senders still blocked %v after connecting", sendPhaseMax)
			return nil
		}
		if err := w.s.RunUntil(max(next, now), r.spinning); err != nil {
			return err
		}
		if r.spun {
			return nil
		}
	}
	r.res.End = w.s.Now().Sub(r.base)
	return r.settle(max(faultsEnd, w.s.Now()))
}

// sendDue hands every message that is due to Send and returns when the senders
// next want to run (proto.Never when every message is sent).
func (r *scenarioRun) sendDue(now proto.Instant) proto.Instant {
	next := proto.Never
	for _, s := range r.streams {
		for s.nextSend < s.Count && s.nextAt <= now {
			r.buf = s.content(r.buf, s.nextSend)
			err := s.sender.node.Send(now, s.sender.peer, s.Lane, s.Mode, r.buf)
			if errors.Is(err, rudp.ErrSendBufferFull) {
				s.nextAt = now.Add(sendRetry) // the sender blocks; the window opens later
				break
			}
			if err != nil {
				r.violate("%s: Send of message %d on lane %d %v: %v", s.sender.name, s.nextSend, s.Lane, s.Mode, err)
				s.Count = s.nextSend
				break
			}
			s.nextSend++
			if s.Interval > 0 {
				s.nextAt = now.Add(s.Interval)
			}
		}
		s.sender.host.Drain()
		if s.nextSend < s.Count {
			next = min(next, s.nextAt)
		}
	}
	return next
}

// settle runs on after the last fault and the last Send until every reliable message
// arrived and, where the oracle says one exists, both sides are on a direct path
// (or Settle passed).
func (r *scenarioRun) settle(quietFrom proto.Instant) error {
	w := r.w
	settle := r.sc.Settle
	if settle == 0 {
		settle = defaultSettle
	}
	wantDirect := r.directExpected(settle)
	done := func() bool {
		if w.a.closed != "" || w.b.closed != "" || r.spinning() {
			return true
		}
		for _, s := range r.streams {
			if s.Mode.Reliable() && s.got < s.Count {
				return false
			}
		}
		return !wantDirect || r.bothDirect() && w.s.Now().Sub(quietFrom) >= 0
	}
	if err := w.s.RunUntil(quietFrom.Add(settle), done); err != nil || r.spun {
		return err
	}
	if w.a.closed != "" || w.b.closed != "" {
		r.violate("connection ended: a %q, b %q", w.a.closed, w.b.closed)
	}
	if wantDirect && !r.bothDirect() {
		a, _ := w.a.node.Peer("b")
		b, _ := w.b.node.Peer("a")
		r.violate("the oracle says %s gives %s × %s a direct path; %v after the last fault a is on %v, b on %v",
			r.res.Oracle, r.sc.A, r.sc.B, settle, a, b)
	}
	return nil
}

// directExpected reports whether the run must end on a direct path: the oracle
// says one exists, the relay policy allows one, no cell whose success is only
// probable (sequential × sequential prediction, ≥ 90 %), and a settle long enough to
// retry after a fallback.
func (r *scenarioRun) directExpected(settle time.Duration) bool {
	sc := r.sc
	return r.res.Oracle != proto.StrategyNone && sc.Relay != node.RelayForce && settle >= minDirectSettle &&
		!(sc.A == "symmetric-sequential" && sc.B == "symmetric-sequential")
}

func (r *scenarioRun) bothDirect() bool {
	a, _ := r.w.a.node.Peer("b")
	b, _ := r.w.b.node.Peer("a")
	return a == proto.PathDirect && b == proto.PathDirect
}

// finish checks what must hold at the end and fills the result.
func (r *scenarioRun) finish() {
	w := r.w
	for _, s := range r.streams {
		r.res.Sent = append(r.res.Sent, s.nextSend)
		r.res.Received = append(r.res.Received, s.got)
		if s.Mode.Reliable() && s.got != s.Count && r.res.Err == "" {
			r.violate("%s→ lane %d %v: %d of %d messages delivered (sent %d)", s.sender.name, s.Lane, s.Mode, s.got, s.Count, s.nextSend)
		}
	}
	r.res.Direct = r.bothDirect()
	r.res.MaxPending = max(w.a.maxPending, w.b.maxPending)
	window := w.cfg.RUDP.RecvWindow
	if window == 0 {
		window = 4 << 20 // rudp's default
	}
	if bound := window/reliableCost + pendingSlack; r.res.MaxPending > bound {
		r.violate("%d node events waiting at once, over the bound %d (flow-control window %d / %d + %d)",
			r.res.MaxPending, bound, window, reliableCost, pendingSlack)
	}
}
