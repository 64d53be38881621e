package rudp

import (
	"encoding/binary"
	"flag"
	"fmt"

	"github.com/natpass/natpass/proto"
)

var seedFlag = flag.Uint64("seed", 0, "replay one seeded run")

// makeMsg builds a self-describing message: lane, mode, index, send time and a
// pattern derived from them, so the receiver can check content and order.
func makeMsg(buf []byte, lane int, mode Mode, index uint32, sent proto.Instant, size int) []byte {
	size = max(size, 14)
	b := buf[:0]
	b = append(b, byte(lane), byte(mode))
	b = binary.BigEndian.AppendUint32(b, index)
	b = binary.BigEndian.AppendUint64(b, uint64(sent))
	for i := len(b); i < size; i++ {
		b = append(b, byte(uint32(i)*31+index*7+uint32(lane)))
	}
	return b
}

// parseMsg checks a message made by makeMsg.
func parseMsg(p []byte) (lane int, mode Mode, index uint32, sent proto.Instant, err error) {
	if len(p) < 14 {
		return 0, 0, 0, 0, fmt.Errorf("message of %d bytes too short", len(p))
	}
	lane, mode, index = int(p[0]), Mode(p[1]), binary.BigEndian.Uint32(p[2:])
	sent = proto.Instant(binary.BigEndian.Uint64(p[6:]))
	for i := 14; i < len(p); i++ {
		if p[i] != byte(uint32(i)*31+index*7+uint32(lane)) {
			return 0, 0, 0, 0, fmt.Errorf("lane %d index %d: byte %d corrupt", lane, index, i)
		}
	}
	return lane, mode, index, sent, nil
}

// oracle tracks what was sent and checks what arrives, per lane and mode.
type oracle struct {
	net      *network
	sent     map[[2]int]uint32          // messages sent per (lane, mode)
	got      map[[2]int]map[uint32]bool // delivered indexes
	lastSeq  map[[2]int]int64           // last delivered index (ordered and sequenced)
	expected int                        // reliable messages sent
	arrived  int                        // reliable messages delivered
	latency  []int64                    // delivery latency of reliable messages, ns
}

func newOracle(n *network) *oracle {
	return &oracle{net: n, sent: map[[2]int]uint32{}, got: map[[2]int]map[uint32]bool{}, lastSeq: map[[2]int]int64{}}
}

// send queues one message and records it.
func (o *oracle) send(e *endpoint, now proto.Instant, lane int, mode Mode, size int, buf []byte) error {
	k := [2]int{lane, int(mode)}
	idx := o.sent[k]
	if err := e.c.Send(now, lane, mode, makeMsg(buf, lane, mode, idx, now, size)); err != nil {
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
		o.net.failf("%v", err)
	}
	if lane != ev.Lane || mode != ev.Mode {
		o.net.failf("message for lane %d mode %v delivered on lane %d mode %v", lane, mode, ev.Lane, ev.Mode)
	}
	k := [2]int{lane, int(mode)}
	if idx >= o.sent[k] {
		o.net.failf("lane %d %v: index %d never sent", lane, mode, idx)
	}
	g := o.got[k]
	if g == nil {
		g = map[uint32]bool{}
		o.got[k] = g
	}
	if g[idx] {
		o.net.failf("lane %d %v: index %d delivered twice", lane, mode, idx)
	}
	g[idx] = true
	last, seen := o.lastSeq[k]
	switch mode {
	case ReliableOrdered:
		if int64(idx) != last+1 && !(idx == 0 && !seen) {
			o.net.failf("lane %d ordered: index %d after %d", lane, idx, last)
		}
	case UnreliableSequenced:
		if seen && int64(idx) <= last {
			o.net.failf("lane %d sequenced: index %d after %d", lane, idx, last)
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
