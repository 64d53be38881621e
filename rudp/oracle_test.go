package rudp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"

	"github.com/natpass/natpass/proto"
)

// makeMsg builds a self-describing message: lane, mode, index, send time and a
// pattern derived from them, so the receiver can check content and order.
func makeMsg(buf []byte, lane int, mode Mode, index uint32, sent proto.Instant, size int) []byte {
	size = max(size, 14)
	b := buf[:0]
	b = append(b, byte(lane), byte(mode))
	b = binary.BigEndian.AppendUint32(b, index)
	b = binary.BigEndian.AppendUint64(b, uint64(sent))
	phase := patternPhase(lane, index)
	return append(b, patternBytes[phase:phase+size-14]...)
}

// patternBytes repeats a period-251 sequence; a message's filler starts at a phase
// taken from its lane and index, so fragments mixed up between messages show.
var patternBytes = func() []byte {
	b := make([]byte, 251+(1<<21))
	for i := range b {
		b[i] = byte((i % 251) * 97)
	}
	return b
}()

func patternPhase(lane int, index uint32) int { return int((index*13 + uint32(lane)*101) % 251) }

// parseMsg checks a message made by makeMsg.
func parseMsg(p []byte) (lane int, mode Mode, index uint32, sent proto.Instant, err error) {
	if len(p) < 14 {
		return 0, 0, 0, 0, fmt.Errorf("message of %d bytes too short", len(p))
	}
	lane, mode, index = int(p[0]), Mode(p[1]), binary.BigEndian.Uint32(p[2:])
	sent = proto.Instant(binary.BigEndian.Uint64(p[6:]))
	phase := patternPhase(lane, index)
	if len(p) > 14+(1<<21) || !bytes.Equal(p[14:], patternBytes[phase:phase+len(p)-14]) {
		return 0, 0, 0, 0, fmt.Errorf("lane %d index %d: content corrupt", lane, index)
	}
	return lane, mode, index, sent, nil
}

// oracle tracks what was sent and checks what arrives, per lane and mode.
type oracle struct {
	failf    func(format string, args ...any)
	sent     map[[2]int]uint32          // messages sent per (lane, mode)
	got      map[[2]int]map[uint32]bool // delivered indexes
	lastSeq  map[[2]int]int64           // last delivered index (ordered and sequenced)
	expected int                        // reliable messages sent
	arrived  int                        // reliable messages delivered
	latency  []int64                    // delivery latency of reliable messages, ns
}

func newOracle(failf func(format string, args ...any)) *oracle {
	return &oracle{failf: failf, sent: map[[2]int]uint32{}, got: map[[2]int]map[uint32]bool{}, lastSeq: map[[2]int]int64{}}
}

// send queues one message and records it.
func (o *oracle) send(c *Conn, now proto.Instant, lane int, mode Mode, size int, buf []byte) error {
	k := [2]int{lane, int(mode)}
	idx := o.sent[k]
	if err := c.Send(now, lane, mode, makeMsg(buf, lane, mode, idx, now, size)); err != nil {
		return err
	}
	o.sent[k] = idx + 1
	if mode.Reliable() {
		o.expected++
	}
	return nil
}

// receive checks one delivered message against the delivery guarantees.
func (o *oracle) receive(now proto.Instant, ev *EventMessage) {
	lane, mode, idx, sent, err := parseMsg(ev.Data)
	if err != nil {
		o.failf("%v", err)
	}
	if lane != ev.Lane || mode != ev.Mode {
		o.failf("message for lane %d mode %v delivered on lane %d mode %v", lane, mode, ev.Lane, ev.Mode)
	}
	k := [2]int{lane, int(mode)}
	if idx >= o.sent[k] {
		o.failf("lane %d %v: index %d never sent", lane, mode, idx)
	}
	g := o.got[k]
	if g == nil {
		g = map[uint32]bool{}
		o.got[k] = g
	}
	if g[idx] {
		o.failf("lane %d %v: index %d delivered twice", lane, mode, idx)
	}
	g[idx] = true
	last, seen := o.lastSeq[k]
	switch mode {
	case ReliableOrdered:
		if int64(idx) != last+1 && !(idx == 0 && !seen) {
			o.failf("lane %d ordered: index %d after %d", lane, idx, last)
		}
	case UnreliableSequenced:
		if seen && int64(idx) <= last {
			o.failf("lane %d sequenced: index %d after %d", lane, idx, last)
		}
	}
	if mode == ReliableOrdered || mode == UnreliableSequenced {
		o.lastSeq[k] = int64(idx)
	}
	if mode.Reliable() {
		o.arrived++
		o.latency = append(o.latency, int64(now-sent))
	}
}

// complete reports whether every reliable message arrived.
func (o *oracle) complete() bool { return o.arrived == o.expected }

// sendRandom sends one message of a random mode and lane; one in eight is large enough
// to be fragmented.
func (o *oracle) sendRandom(r *rand.Rand, c *Conn, now proto.Instant, lanes int, buf []byte) error {
	mode := Mode(r.IntN(4))
	size := 14 + r.IntN(300)
	if r.IntN(8) == 0 {
		size = 1000 + r.IntN(4000)
	}
	return o.send(c, now, r.IntN(lanes), mode, size, buf)
}

// pollEvents drains c's events: messages to onMsg (their credit given back with
// Consumed), the close reason to *closed. It reports whether it gave credit back, after
// which the host must drain c's transmits again.
func pollEvents(c *Conn, now proto.Instant, onMsg func(proto.Instant, *EventMessage), closed **proto.CloseReason) bool {
	consumed := false
	for {
		ev, ok := c.PollEvent()
		if !ok {
			return consumed
		}
		switch ev := ev.(type) {
		case *EventMessage:
			if onMsg != nil {
				onMsg(now, ev)
			}
			c.Consumed(now, ev.Credit)
			consumed = true
		case *EventClosed:
			r := ev.Reason
			*closed = &r
		}
	}
}
