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
