package main

import (
	"context"
	"testing"
	"time"

	"github.com/natpass/natpass/rudp"
)

// BenchmarkIssue18Bulk: one-way reliable-ordered transfer in 64 KiB messages between
// two natpass nodes on loopback (server, both nodes and the benchmark in this
// process, on the direct path), as driver's BenchmarkBulk. "copy": rudp allocates
// each received message's buffer, which the application keeps (TakeData); "pooled":
// each node has driver.Config.RecycleBuffers and the receiver releases every
// message after reading it; "owned": that, and the sender uses SendOwned;
// "quic-go": the same through quic-go (one stream, 4-byte length prefixes, its
// default AES-128-GCM) for comparison,
// since on a shared machine CPU per byte scatters less than MiB/s. CPU per GiB from
// the whole process:
//
//	go test -c -o /tmp/bench.test . && /usr/bin/time -f '%U %S' /tmp/bench.test \
//	    -test.run '^$' -test.bench 'BenchmarkIssue18Bulk/pooled$' -test.benchtime 8000x
func BenchmarkIssue18Bulk(b *testing.B) {
	for _, name := range []string{"copy", "pooled", "owned", "quic-go"} {
		b.Run(name, func(b *testing.B) { benchBulk(b, name) })
	}
}

// benchBulk is one variant of BenchmarkIssue18Bulk. "owned" is "pooled" with the
// sender handing each message over with driver.Conn.SendOwned, in a buffer from its
// pool (Node.Buffer; one rudp gave back once the peer acknowledged it), unfilled: an
// application producing its data in place writes it once either way, and what is
// measured is the copy SendOwned saves.
func benchBulk(b *testing.B, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pooled := name == "pooled" || name == "owned"
	var p *pair
	var err error
	if name == "quic-go" {
		p, err = dialQUIC(ctx, 0)
	} else {
		p, err = dialNatpassWith(ctx, 0, pooled)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	const size = 64 << 10
	msg := make([]byte, size)
	send := p.client.Send
	if name == "owned" {
		client := p.client.(*natpassEnd)
		send = func([]byte) error {
			return client.c.SendOwned(ctx, 0, rudp.ReliableOrdered, client.n.Buffer(size))
		}
	}
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
	for range b.N {
		if err := send(msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if pooled {
		b.ReportMetric(float64(p.server.(*natpassEnd).n.Stats().Buffers.Made), "fresh-recv-buffers")
	}
	if name == "owned" {
		b.ReportMetric(float64(p.client.(*natpassEnd).n.Stats().Buffers.Made), "fresh-send-buffers")
	}
}

// With driver.Config.RecycleBuffers on both nodes, every message arrives whole
// and in order although each lands in a buffer that held an earlier one (the pool
// hands them out unzeroed), and the receiver's buffers are reused rather than made
// anew: what BenchmarkIssue18Bulk/pooled and -natpass-buffers rely on.
func TestNatpassPooledBuffersCarryMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and two nodes")
	}
	p, err := dialNatpassWith(t.Context(), 0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	const n = 300
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			msg := make([]byte, 1000+i*211)
			for j := range msg {
				msg[j] = byte(i + j)
			}
			if err := p.client.Send(msg); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := range n {
		m, err := p.server.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 1000+i*211 {
			t.Fatalf("message %d: %d bytes, want %d", i, len(m), 1000+i*211)
		}
		for j := range m {
			if m[j] != byte(i+j) {
				t.Fatalf("message %d: byte %d is %d, want %d", i, j, m[j], byte(i+j))
			}
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st := p.server.(*natpassEnd).n.Stats().Buffers
	if st.Lent < n || st.Made*2 > st.Lent {
		t.Fatalf("receiver's pool: %d buffers lent, %d of them new: not reused", st.Lent, st.Made)
	}
	t.Logf("receiver's pool: %d buffers lent, %d new", st.Lent, st.Made)
}
