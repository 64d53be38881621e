package rudp

// lane is one lane's sending and receiving state.
type lane struct {
	cfg LaneConfig

	// pending holds messages whose fragments have not all left once, FIFO. Bounded by
	// Config.SendBufferBytes and SendQueueBytes (and one outMsg per message).
	pending ring[*outMsg]
	// unsent is the bytes of pending's messages not yet sent once (SendQueueBytes).
	unsent int
	// retx holds fragments declared lost (or picked for a PTO probe), to resend before
	// any new data of this lane. Bounded by the fragments in flight.
	retx ring[chunkRef]
	// unacked holds started reliable messages in sequence order, per reliable mode,
	// until acknowledged; its front bounds the sequence window (§7.6).
	unacked [2]ring[*outMsg]
	nextSeq [4]uint64
	// vtime is the weighted-fair-queueing clock: bytes sent / weight. Among lanes of
	// equal priority the one with the smallest vtime sends next.
	vtime uint64

	recvRel  [2]recvReliable // ReliableOrdered, ReliableUnordered
	recvSeqd recvSequenced
	recvUnr  recvUnreliable

	stats LaneStats
}

// idle reports whether the lane has nothing to send.
func (l *lane) idle() bool { return l.pending.len() == 0 && l.retx.len() == 0 }

// charge advances the lane's fair-queueing clock for n bytes sent.
func (l *lane) charge(n int) { l.vtime += uint64(n) * 1000 / uint64(l.cfg.Weight) }

// recvSlot is one sequence number's place in a reliable receive window.
type recvSlot struct {
	msg       *inMsg // being reassembled or waiting for its turn (ordered)
	delivered bool   // unordered: already delivered
}

// recvReliable is the receive window of one reliable mode of one lane: every
// sequence number below base has been delivered; slots hold [base, base+len(slots)).
// It grows by doubling up to messageWindow slots, which the sender's window rule
// guarantees is enough (PROTOCOL.md §7.6).
type recvReliable struct {
	base  uint64
	slots []recvSlot
}

func (r *recvReliable) slot(seq uint64) *recvSlot {
	if need := seq - r.base + 1; need > uint64(len(r.slots)) {
		n := max(16, len(r.slots))
		for uint64(n) < need {
			n *= 2
		}
		slots := make([]recvSlot, n)
		for s := r.base; s < r.base+uint64(len(r.slots)); s++ {
			slots[s&uint64(n-1)] = r.slots[s&uint64(len(r.slots)-1)]
		}
		r.slots = slots
	}
	return &r.slots[seq&uint64(len(r.slots)-1)]
}

// peek returns the slot for seq if the window already holds it, else nil.
func (r *recvReliable) peek(seq uint64) *recvSlot {
	if seq < r.base || seq-r.base >= uint64(len(r.slots)) {
		return nil
	}
	return &r.slots[seq&uint64(len(r.slots)-1)]
}

// recvSequenced keeps the newest delivered sequence number of an unreliable-
// sequenced lane and at most one message being reassembled.
type recvSequenced struct {
	last    uint64
	any     bool
	partial *inMsg
}

// unreliablePartials bounds the unreliable messages reassembled at once per lane;
// when a new one arrives the oldest is dropped.
const unreliablePartials = 4

type recvUnreliable struct {
	partials [unreliablePartials]*inMsg
}
