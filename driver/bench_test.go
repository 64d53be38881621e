package driver

import (
	"context"
	"testing"
	"time"

	"github.com/natpass/natpass/rudp"
)

// benchPair is two connected nodes on loopback.
func benchPair(b *testing.B) (ca, cb *Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	b.Cleanup(cancel)
	s := startServer(b)
	a := listen(b, ctx, s, "bench-a")
	n := listen(b, ctx, s, "bench-b")
	return connectPair(b, ctx, a, n)
}

// BenchmarkBulk: one-way reliable-ordered transfer in 64 KiB messages, encrypted,
// acknowledged (b.N messages). go test -bench Bulk ./driver
func BenchmarkBulk(b *testing.B) {
	ca, cb := benchPair(b)
	ctx := context.Background()
	msg := make([]byte, 64<<10)
	done := make(chan error, 1)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for range b.N {
			if _, err := cb.Recv(ctx); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if err := ca.SendContext(ctx, 0, rudp.ReliableOrdered, msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if err := ca.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	st := &ca.n.loop.stats
	b.ReportMetric(float64(st.datagramsOut.Load())/float64(max(st.gsoSends.Load(), 1)), "datagrams/gso-send")
	// Send system calls: since a flush is one sendmmsg carrying its GSO runs,
	// mmsgSends counts every call on Linux.
	b.ReportMetric(float64(st.datagramsOut.Load())/float64(max(st.mmsgSends.Load(), 1)), "datagrams/send-call")
	rst := &cb.n.loop.stats
	b.ReportMetric(float64(rst.datagramsOut.Load())/float64(max(rst.mmsgSends.Load(), 1)), "acks/send-call")
}

// BenchmarkPingPong: 64-byte round trips a -> b -> a (b.N of them).
func BenchmarkPingPong(b *testing.B) {
	ca, cb := benchPair(b)
	ctx := context.Background()
	go func() {
		for {
			m, err := cb.Recv(ctx)
			if err != nil || cb.Send(0, rudp.ReliableOrdered, m.Data) != nil {
				return
			}
		}
	}()
	ping := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := ca.Send(0, rudp.ReliableOrdered, ping); err != nil {
			b.Fatal(err)
		}
		if _, err := ca.Recv(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoomBroadcast: 64-byte reliable broadcasts from one member of a room of
// three to the other two, each counted by its reader (b.N broadcasts, 2·b.N
// deliveries). go test -bench RoomBroadcast ./driver
func BenchmarkRoomBroadcast(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	b.Cleanup(cancel)
	s := startServer(b)
	rooms := make([]*Room, 3)
	for i, id := range []string{"bench-a", "bench-b", "bench-c"} {
		r, err := listen(b, ctx, s, id).JoinRoom(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		rooms[i] = r
	}
	for _, r := range rooms {
		for len(r.Linked()) < 2 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	msg := make([]byte, 64)
	done := make(chan error, 2)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for _, r := range rooms[1:] {
		go func() {
			for range b.N {
				if _, err := r.Recv(ctx); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range b.N {
		if err := rooms[0].Broadcast(0, rudp.ReliableOrdered, msg); err != nil {
			b.Fatal(err)
		}
	}
	for range 2 {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}
