package driver

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/natpass/natpass/rudp"
)

// recordingPool is a rudp.Buffers that remembers which buffers came back.
type recordingPool struct {
	mu   sync.Mutex
	back map[*byte]bool
}

func (p *recordingPool) Get(n int) []byte { return make([]byte, n) }

func (p *recordingPool) Put(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cap(b) > 0 {
		p.back[&b[:1][0]] = true
	}
}

// SendOwned hands the caller's buffer to rudp without a copy: every message arrives
// in order with its own bytes, and once Flush has seen all of them acknowledged,
// each buffer given to SendOwned has come back to Config.RUDP.Buffers' Put.
func TestSendOwnedGivesBuffersBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := startServer(t)
	pool := &recordingPool{back: map[*byte]bool{}}
	a, err := Listen(ctx, Config{Server: s.Addr().String(), ID: "owned-a", Secret: testSecret,
		Listen: "127.0.0.1:0", RUDP: rudp.Config{Buffers: pool}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ca, cb := connectPair(t, ctx, a, listen(t, ctx, s, "owned-b"))
	const n, size = 50, 5000
	var given []*byte
	for i := range n {
		msg := make([]byte, size)
		binary.BigEndian.PutUint32(msg, uint32(i))
		given = append(given, &msg[0])
		if err := ca.SendOwned(ctx, 0, rudp.ReliableOrdered, msg); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		m, err := cb.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Data) != size || binary.BigEndian.Uint32(m.Data) != uint32(i) {
			t.Fatalf("message %d: %d bytes starting %x", i, len(m.Data), m.Data[:4])
		}
	}
	if err := ca.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	pool.mu.Lock()
	defer pool.mu.Unlock()
	for i, p := range given {
		if !pool.back[p] {
			t.Errorf("message %d's buffer did not come back to Put", i)
		}
	}
}

// With Config.RecycleBuffers on both nodes, a sender filling Node.Buffer buffers for
// SendOwned and a receiver releasing each message after checking every byte: the
// receiver reuses its buffers (each message lands in one that held an earlier one,
// unzeroed, and still arrives whole and in order), and the sender's come back to
// its pool once acknowledged.
func TestRecycleBuffers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startServer(t)
	node := func(id string) *Node {
		n, err := Listen(ctx, Config{Server: s.Addr().String(), ID: id, Secret: testSecret,
			Listen: "127.0.0.1:0", RecycleBuffers: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a, b := node("recycle-a"), node("recycle-b")
	ca, cb := connectPair(t, ctx, a, b)
	const n = 300
	size := func(i int) int { return 1000 + i*211 }
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			msg := a.Buffer(size(i))
			for j := range msg {
				msg[j] = byte(i + j)
			}
			if err := ca.SendOwned(ctx, 0, rudp.ReliableOrdered, msg); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := range n {
		m, err := cb.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Data) != size(i) {
			t.Fatalf("message %d: %d bytes, want %d", i, len(m.Data), size(i))
		}
		for j, c := range m.Data {
			if c != byte(i+j) {
				t.Fatalf("message %d: byte %d is %d, want %d", i, j, c, byte(i+j))
			}
		}
		m.Release()
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// The receiver reused its buffers; the sender's came back once acknowledged.
	if st := b.Stats().Buffers; st.Lent < n || st.Made*2 > st.Lent {
		t.Errorf("receiver: %d buffers lent, %d of them new: not reused", st.Lent, st.Made)
	}
	if err := ca.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The sender may have reused some already (an acknowledgement can come back
	// before the next Buffer call, more often under the race detector), so every
	// buffer its pool made must be back, up to the pool's bound.
	made := a.Stats().Buffers.Made
	a.pool.mu.Lock()
	back := len(a.pool.small) + len(a.pool.big)
	a.pool.mu.Unlock()
	if want := min(made, poolKeep); uint64(back) < want {
		t.Errorf("sender: %d buffers back in the pool after Flush, want ≥ %d (%d made for %d messages)", back, want, made, n)
	}
}
