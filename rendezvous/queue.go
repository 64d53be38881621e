package rendezvous

import (
	"net/netip"

	"github.com/natpass/natpass/relayframe"
)

// MaxDatagramLen is the largest datagram the server sends: a relayed frame (1472
// bytes; a full introduction is 600). PollTransmit's buf must hold at least this many
// bytes.
const MaxDatagramLen = relayframe.MaxFrameLen

// txQueueLen bounds the transmit queue. One input produces at most two datagrams
// (an introduction goes to both peers) and the caller drains after every input, so
// the queue only fills when the drain rule is broken; then inputs are refused with
// ErrQueueFull rather than growing memory.
const txQueueLen = 8

type txSlot struct {
	from, to netip.AddrPort
	n        int
	buf      [MaxDatagramLen]byte
}

// txQueue is a ring of pre-sized slots: a reply is encoded in place, so queueing
// allocates nothing.
type txQueue struct {
	slots      [txQueueLen]txSlot
	head, size int
}

func (q *txQueue) free() int { return txQueueLen - q.size }

// begin returns the empty buffer of the next slot; the caller appends a message to
// it and calls commit. With no free slot it returns nil.
func (q *txQueue) begin() []byte {
	if q.size == txQueueLen {
		return nil
	}
	return q.slots[(q.head+q.size)%txQueueLen].buf[:0]
}

// commit queues b, which must be the buffer begin returned, grown in place.
func (q *txQueue) commit(from, to netip.AddrPort, b []byte) {
	s := &q.slots[(q.head+q.size)%txQueueLen]
	if len(b) > len(s.buf) || len(b) > 0 && &b[0] != &s.buf[0] {
		panic("rendezvous: reply outgrew its transmit slot") // a bug, not peer input
	}
	s.from, s.to, s.n = from, to, len(b)
	q.size++
}

func (q *txQueue) pop() *txSlot {
	if q.size == 0 {
		return nil
	}
	s := &q.slots[q.head]
	q.head = (q.head + 1) % txQueueLen
	q.size--
	return s
}

// eventQueueLen bounds the event queue. Events are rare (registrations, expiries,
// rebinds, introductions); when the caller does not drain, the newest are dropped
// and counted in Stats.EventsDropped.
const eventQueueLen = 256

type eventQueue struct {
	events     [eventQueueLen]Event
	head, size int
}

func (q *eventQueue) push(e Event) bool {
	if q.size == eventQueueLen {
		return false
	}
	q.events[(q.head+q.size)%eventQueueLen] = e
	q.size++
	return true
}

func (q *eventQueue) pop() (Event, bool) {
	if q.size == 0 {
		return nil, false
	}
	e := q.events[q.head]
	q.events[q.head] = nil
	q.head = (q.head + 1) % eventQueueLen
	q.size--
	return e, true
}
