package rudp

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// freeList is a Buffers for tests: a LIFO free list that counts what it lends and
// takes back, and remembers the first byte of every buffer it was given by Put.
type freeList struct {
	free       [][]byte
	gets, puts int
	fresh      int // Get calls the free list could not serve
	lastPut    *byte
}

func (f *freeList) Get(n int) []byte {
	f.gets++
	if k := len(f.free); k > 0 && cap(f.free[k-1]) >= n {
		b := f.free[k-1]
		f.free = f.free[:k-1]
		return b[:n]
	}
	f.fresh++
	return make([]byte, n)
}

func (f *freeList) Put(b []byte) {
	f.puts++
	if cap(b) > 0 {
		f.lastPut = &b[:1][0]
	}
	f.free = append(f.free, b[:0])
}

// With Buffers on both ends, a bulk flow of 64 KiB messages sent with SendOwned
// (each filled in a buffer from the sender's free list) and taken with TakeData
// (each given back to the receiver's) allocates nothing per message in steady
// state, loss and retransmission included, and every message arrives in order
// with its own bytes: the Conn read the owned buffer until it was acknowledged and
// wrote every byte of the receive buffer, whose old contents were another message's.
func TestBuffersBulkAllocatesNothing(t *testing.T) {
	var sendBufs, recvBufs freeList
	const size = 64 << 10
	p := newDirectPair(Config{}, size)
	p.a = New(Config{Buffers: &sendBufs}, p.now)
	p.b = New(Config{Buffers: &recvBufs}, p.now)
	p.drop = func(n uint64) bool { return n%53 == 0 }
	var sent, got uint64
	bad := 0
	p.send = func(now proto.Instant, mode Mode) error {
		b := sendBufs.Get(size)
		for i := 0; i < size; i += 8 {
			binary.LittleEndian.PutUint64(b[i:], sent*size+uint64(i))
		}
		sent++
		return p.a.SendOwned(now, proto.Never, 0, mode, b)
	}
	p.onMessage = func(*EventMessage) {
		d := p.b.TakeData()
		if len(d) != size || binary.LittleEndian.Uint64(d) != got*size ||
			binary.LittleEndian.Uint64(d[size-8:]) != got*size+size-8 {
			bad++
		}
		got++
		recvBufs.Put(d)
	}
	for range 300 {
		p.step(ReliableOrdered, time.Millisecond)
	}
	before := p.a.Stats()
	allocs := testing.AllocsPerRun(200, func() { p.step(ReliableOrdered, time.Millisecond) })
	after := p.a.Stats()
	if allocs != 0 {
		t.Errorf("%v allocations per 64 KiB message in steady state, want 0", allocs)
	}
	if after.Retransmits == before.Retransmits {
		t.Errorf("no retransmission during the measurement")
	}
	if bad != 0 || got < sent-64 || got < 400 {
		t.Fatalf("%d of %d messages delivered, %d with the wrong bytes", got, sent, bad)
	}
	// Every owned buffer not still queued or in flight came back to the sender's list.
	if inConn := sendBufs.gets - sendBufs.puts; inConn > 64 || sendBufs.fresh > 80 || recvBufs.fresh > 80 {
		t.Errorf("sender: %d lent, %d back, %d fresh; receiver: %d fresh", sendBufs.gets, sendBufs.puts, sendBufs.fresh, recvBufs.fresh)
	}
	t.Logf("sender: %d fresh buffers for %d messages; receiver: %d fresh", sendBufs.fresh, sent, recvBufs.fresh)
}

// SendOwned takes the caller's slice itself: the buffer that comes back to Put once
// the message is acknowledged is the one given, not a copy. On an error nothing is
// taken. Without Buffers the Conn keeps the buffer in its own free list.
func TestSendOwnedTakesTheBuffer(t *testing.T) {
	var bufs freeList
	p := newDirectPair(Config{}, 0)
	p.a = New(Config{Buffers: &bufs, MaxMessageSize: 4096}, p.now)
	p.b = New(Config{MaxMessageSize: 4096}, p.now)
	if err := p.a.SendOwned(p.now, proto.Never, 0, ReliableOrdered, make([]byte, 4097)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized SendOwned: %v, want ErrMessageTooLarge", err)
	}
	if err := p.a.SendOwned(p.now, proto.Never, 7, ReliableOrdered, make([]byte, 10)); !errors.Is(err, ErrBadLane) {
		t.Fatalf("SendOwned on lane 7: %v, want ErrBadLane", err)
	}
	if bufs.puts != 0 {
		t.Fatalf("a refused SendOwned gave %d buffers to Put", bufs.puts)
	}
	for _, mode := range []Mode{ReliableOrdered, Unreliable} {
		msg := []byte("owned message, " + mode.String())
		p.send = func(now proto.Instant, mode Mode) error { return p.a.SendOwned(now, proto.Never, 0, mode, msg) }
		var data string
		p.onMessage = func(m *EventMessage) { data = string(m.Data) }
		bufs.lastPut = nil
		p.step(mode, time.Millisecond)
		p.step(mode, 50*time.Millisecond) // the ACK of the first step's packet
		if data != string(msg) {
			t.Fatalf("%v: delivered %q, want %q", mode, data, msg)
		}
		if bufs.lastPut != &msg[0] {
			t.Fatalf("%v: the buffer given to SendOwned did not come back to Put", mode)
		}
	}
	if bufs.gets != 0 {
		t.Fatalf("Send-less sender called Get %d times", bufs.gets)
	}
}

// TakeData with Buffers hands over the buffer Get returned, whole, even for a small
// message (the embedder chose its capacity and takes it back); the PollEvent after
// a message not taken (the one that returns false included) gives its buffer back
// to Put.
func TestBuffersTakeData(t *testing.T) {
	var bufs freeList
	bufs.free = append(bufs.free, make([]byte, 0, 4096))
	p := newDirectPair(Config{}, 100)
	p.b = New(Config{Buffers: &bufs}, p.now)
	var taken []byte
	p.onMessage = func(*EventMessage) { taken = p.b.TakeData() }
	p.step(ReliableOrdered, time.Millisecond)
	if len(taken) != 100 || cap(taken) != 4096 || bufs.gets != 1 {
		t.Fatalf("TakeData: len %d cap %d after %d Gets, want the 4096-byte buffer", len(taken), cap(taken), bufs.gets)
	}
	p.onMessage = nil
	p.step(ReliableOrdered, time.Millisecond)
	p.step(ReliableOrdered, time.Millisecond)
	if bufs.puts != 2 || bufs.gets != 3 {
		t.Fatalf("%d Gets, %d Puts after two messages not taken, want 3 and 2", bufs.gets, bufs.puts)
	}
}

// BenchmarkPairBulk: rudp's own CPU per 64 KiB reliable-ordered message, both Conns
// in memory on one core (directPair, 1 ms between messages, no loss), the receiver
// taking every message with TakeData as node does. "send-take": Send copies, and
// every message taken costs a new buffer (what node does today); "buffers-send":
// Config.Buffers on both ends and every taken buffer given back; "buffers-owned":
// that and SendOwned instead of Send.
func BenchmarkPairBulk(b *testing.B) {
	for _, variant := range []string{"send-take", "buffers-send", "buffers-owned"} {
		b.Run(variant, func(b *testing.B) {
			var sendBufs, recvBufs freeList
			const size = 64 << 10
			pooled := variant != "send-take"
			p := newDirectPair(Config{}, size)
			if pooled {
				p.a = New(Config{Buffers: &sendBufs}, p.now)
				p.b = New(Config{Buffers: &recvBufs}, p.now)
			}
			if variant == "buffers-owned" {
				p.send = func(now proto.Instant, mode Mode) error {
					return p.a.SendOwned(now, proto.Never, 0, mode, sendBufs.Get(size))
				}
			}
			var kept []byte
			p.onMessage = func(*EventMessage) {
				d := p.b.TakeData()
				if pooled {
					recvBufs.Put(d)
				} else {
					kept = d
				}
			}
			for range 200 {
				p.step(ReliableOrdered, time.Millisecond)
			}
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			received := p.received
			for range b.N {
				p.step(ReliableOrdered, time.Millisecond)
			}
			b.StopTimer()
			if p.received-received < uint64(b.N) {
				b.Fatalf("%d of %d messages delivered", p.received-received, b.N)
			}
			_ = kept
		})
	}
}
