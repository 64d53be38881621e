package main

import (
	"context"
	"testing"
	"time"

	"github.com/natpass/natpass/rudp"
)

// BenchmarkIssue18BulkOwned is BenchmarkIssue18Bulk/pooled with the sender handing
// its messages over with driver.Conn.SendOwned: each is a buffer from the sender's
// pool (Node.Buffer; one rudp gave back once the peer acknowledged it), handed over
// without filling (an application producing its data in place, e.g. reading a file
// into it, writes it once either way; what is measured is the copy SendOwned saves).
func BenchmarkIssue18BulkOwned(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := dialNatpassWith(ctx, 0, true)
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	const size = 64 << 10
	done := make(chan error, 1)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for range b.N {
			if _, err := p.server.Recv(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	client := p.client.(*natpassEnd)
	for range b.N {
		if err := client.c.SendOwned(ctx, 0, rudp.ReliableOrdered, client.n.Buffer(size)); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(client.n.Stats().Buffers.Made), "fresh-send-buffers")
}
