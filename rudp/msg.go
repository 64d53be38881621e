package rudp

import "github.com/natpass/natpass/proto"

// bitset is a reusable set of small integers (fragment indexes).
type bitset []uint64

func (b *bitset) reset(n int) {
	words := (n + 63) / 64
	if cap(*b) < words {
		*b = make(bitset, words)
	} else {
		*b = (*b)[:words]
		clear(*b)
	}
}
func (b bitset) has(i uint32) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) set(i uint32)      { b[i/64] |= 1 << (i % 64) }

// outMsg is a message on the sending side, from Send until it is acknowledged
// (reliable) or has left (unreliable). Its bytes are copied at Send into data (or
// data is the caller's own slice, SendOwned), whose capacity is reused when the
// struct goes back to the free list (or handed to Config.Buffers).
type outMsg struct {
	gen     uint32 // bumped on release, so stale fragment references are ignored
	lane    uint8
	mode    Mode
	started bool   // the first fragment has left: seq is assigned, expiry is void
	seq     uint64 // per lane and mode, assigned at the first transmission
	data    []byte
	count   uint32 // fragments; 0 = not fragmented (one piece)
	fragLen int    // bytes of every fragment but the last (proto.FragmentLen), if count > 0
	next    uint32 // the next fragment never sent
	acked   bitset // fragments acknowledged (reliable modes)
	nAcked  uint32
	done    bool          // every fragment acknowledged
	queued  proto.Instant // when Send took it, for the queue-delay statistic
	expiry  proto.Instant // proto.Never: none
}

func (m *outMsg) pieces() uint32 { return max(m.count, 1) }

// piece returns fragment i's bytes: proto.FragmentBounds's, from the fragment
// length fragment stored rather than a division per call (several per fragment sent).
func (m *outMsg) piece(i uint32) []byte {
	if m.count == 0 {
		return m.data
	}
	off := int(i) * m.fragLen
	return m.data[off : off+min(m.fragLen, len(m.data)-off)]
}

// unsentCost is the flow-control cost of m's fragments never sent: what the rest of
// its first transmission will charge (PROTOCOL.md §7.6).
func (m *outMsg) unsentCost() uint64 {
	left := uint64(m.pieces() - m.next)
	if left == 0 {
		return 0
	}
	off := uint64(0)
	if m.count > 0 {
		off = uint64(m.next) * uint64(m.fragLen)
	}
	return uint64(len(m.data)) - off + left*uint64(flowCost(0))
}

// appendFrame appends the data frame of fragment i to b and returns it with the
// fragment's length. The frame is built where Append reads it: returned by value it
// was built, then copied, and the copy stalled on the stores just made (issue 18,
// once per fragment sent).
func (m *outMsg) appendFrame(b []byte, i uint32) ([]byte, int) {
	f := proto.RUDPData{Mode: m.mode, Lane: m.lane, Seq: m.seq, Total: uint64(len(m.data)), Data: m.piece(i)}
	if m.count > 0 {
		f.Count, f.Index = uint64(m.count), uint64(i)
	}
	return f.Append(b), len(f.Data)
}

// frameLen is the encoded size of fragment i's data frame.
func (m *outMsg) frameLen(i uint32) int {
	n := len(m.piece(i))
	if m.count == 0 {
		return proto.RUDPDataHeaderLen(m.seq, 0, 0, 0, uint64(n)) + n
	}
	return proto.RUDPDataHeaderLen(m.seq, uint64(len(m.data)), uint64(m.count), uint64(i), uint64(n)) + n
}

// chunkRef names one fragment of one message inside a sent packet. gen guards against
// the message having been released (and its struct reused) since.
type chunkRef struct {
	msg  *outMsg
	gen  uint32
	frag uint32
}

func (r chunkRef) live() bool { return r.msg != nil && r.msg.gen == r.gen && !r.msg.acked.has(r.frag) }

// inMsg is a message on the receiving side: being reassembled, buffered for ordered
// delivery, or waiting in the event queue.
type inMsg struct {
	lane  uint8
	mode  Mode
	seq   uint64
	data  []byte // len = message length
	count uint32 // fragments; 0 = not fragmented
	got   bitset
	nGot  uint32
	cost  int // flow-control cost charged for it (PROTOCOL.md §7.6)
}

func (m *inMsg) complete() bool { return m.nGot == max(m.count, 1) }

// flowCost is what one data frame of a reliable message charges against the
// flow-control window: its data plus a fixed 32 bytes, so that even empty messages
// are bounded in number (PROTOCOL.md §7.6).
func flowCost(dataLen int) int { return dataLen + 32 }

// pool recycles message structs and their buffers. It is bounded so that a burst
// (a 16 MiB send buffer of 64 KiB messages) does not stay pinned for the life of the
// connection: a buffer larger than poolKeepBytes is never kept, and at most
// poolKeepTotal bytes of buffers (and poolKeepCount structs per side) are. With
// Config.Buffers (bufs) it keeps structs only: every message buffer comes from
// bufs.Get and goes back with bufs.Put.
type pool struct {
	bufs     Buffers
	out      []*outMsg
	in       []*inMsg
	retained int // bytes of buffer capacity held by the free lists
}

const (
	poolKeepBytes = 64 << 10
	poolKeepTotal = 1 << 20
	poolKeepCount = 1024
)

// keep decides whether a released buffer of capacity n stays in the pool.
func (p *pool) keep(n int) bool {
	if n > poolKeepBytes || p.retained+n > poolKeepTotal {
		return false
	}
	p.retained += n
	return true
}

// buffer returns a buffer of length n for a message whose free-list buffer is old:
// bufs.Get's, else old when it is large enough, else a new one.
func (p *pool) buffer(old []byte, n int) []byte {
	if p.bufs != nil {
		b := p.bufs.Get(n)
		if len(b) != n {
			panic("rudp: Buffers.Get returned a slice of the wrong length")
		}
		return b
	}
	if cap(old) < n {
		return make([]byte, n)
	}
	return old[:n]
}

// release gives a buffer the Conn is done with to bufs; it returns what the free
// list keeps of it (nothing with bufs, or when keep says no).
func (p *pool) release(b []byte) []byte {
	switch {
	case p.bufs != nil:
		if b != nil {
			p.bufs.Put(b)
		}
		return nil
	case !p.keep(cap(b)):
		return nil
	}
	return b[:0]
}

// popOut returns a free outMsg struct, with whatever buffer the free list kept.
func (p *pool) popOut() *outMsg {
	k := len(p.out)
	if k == 0 {
		return new(outMsg)
	}
	m := p.out[k-1]
	p.out = p.out[:k-1]
	p.retained -= cap(m.data)
	return m
}

func (p *pool) getOut(n int) *outMsg {
	m := p.popOut()
	m.data = p.buffer(m.data, n)
	return m
}

// getOwned returns an outMsg whose data is msg itself (SendOwned); a buffer the
// free list kept with the struct is dropped: msg takes its place when released.
func (p *pool) getOwned(msg []byte) *outMsg {
	m := p.popOut()
	m.data = msg
	return m
}

func (p *pool) putOut(m *outMsg) {
	*m = outMsg{gen: m.gen + 1, data: m.data, acked: m.acked[:0]}
	if len(p.out) >= poolKeepCount {
		if p.bufs != nil && m.data != nil {
			p.bufs.Put(m.data)
		}
		return
	}
	m.data = p.release(m.data)
	p.out = append(p.out, m)
}

func (p *pool) getIn(n int) *inMsg {
	var m *inMsg
	if k := len(p.in); k > 0 {
		m = p.in[k-1]
		p.in = p.in[:k-1]
		p.retained -= cap(m.data)
	} else {
		m = new(inMsg)
	}
	m.data = p.buffer(m.data, n)
	return m
}

func (p *pool) putIn(m *inMsg) {
	*m = inMsg{data: m.data, got: m.got[:0]}
	if len(p.in) >= poolKeepCount {
		if p.bufs != nil && m.data != nil {
			p.bufs.Put(m.data)
		}
		return
	}
	m.data = p.release(m.data)
	p.in = append(p.in, m)
}
