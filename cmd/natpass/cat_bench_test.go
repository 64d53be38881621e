//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/rudp"
)

// benchSegment is what one iteration of BenchmarkCatVsAPI moves through each.
const benchSegment = 32 << 20

// apiBenchMessage is the message size of the API side: BenchmarkBulk's (driver).
const apiBenchMessage = 64 << 10

// BenchmarkCatVsAPI compares `natpass cat` with the Go API it is built on, one
// way on loopback, relayed (--relay force, through a server with an unlimited
// relay budget) and direct (--relay never). Both pairs connect once, through the
// same in-process server; then each iteration moves benchSegment through the API
// (driver Conn.Send/Recv, 64 KiB messages, the receiver discards) and through
// the two cats (catMain in-process; stdin and stdout are OS pipes that goroutines
// feed and drain with 1 MiB buffers), each from an idle pipeline until its last
// byte arrived. Taking turns segment by segment, the two see the same machine.
// cat/api is the ratio of the rates, which issue 18 asks to be ≥ 0.9.
//
// On a machine shared with other work the rates swing with the neighbours'
// load; the CPU time the process spent per MiB over the same windows (server,
// both ends and, for cat, the goroutines feeding and draining its pipes) is
// steadier, and on two cores, where the transfer is CPU-bound, the rate follows
// its inverse.
//
//	go test ./cmd/natpass -run '^$' -bench CatVsAPI -benchtime 20x
func BenchmarkCatVsAPI(b *testing.B) {
	for _, m := range []struct {
		name   string
		policy node.RelayPolicy
		flag   string
		want   string // the path line cat prints
	}{
		{"relay", node.RelayForce, "force", "path=relay"},
		{"direct", node.RelayNever, "never", "path=direct"},
	} {
		b.Run(m.name, func(b *testing.B) {
			addr := startBenchServer(b)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			// Labelled so that a -cpuprofile splits: pprof -tagfocus side=cat.
			var api *apiBenchPair
			var cat *catBenchPair
			pprof.Do(ctx, pprof.Labels("side", "api"), func(ctx context.Context) { api = startAPIBenchPair(ctx, b, addr, m.policy) })
			pprof.Do(ctx, pprof.Labels("side", "cat"), func(ctx context.Context) { cat = startCatBenchPair(ctx, b, addr, m.flag) })
			var apiWall, catWall, apiCPU, catCPU time.Duration
			b.ResetTimer()
			for i := range b.N {
				// Which goes first alternates: the garbage one segment leaves is
				// collected in the next.
				for j := range 2 {
					if (i+j)%2 == 0 {
						w, c := api.segment(b)
						apiWall, apiCPU = apiWall+w, apiCPU+c
					} else {
						w, c := cat.segment(b)
						catWall, catCPU = catWall+w, catCPU+c
					}
				}
			}
			b.StopTimer()
			cat.finish(b, m.want)
			mib := float64(b.N) * benchSegment / (1 << 20)
			b.ReportMetric(mib/apiWall.Seconds(), "api-MiB/s")
			b.ReportMetric(mib/catWall.Seconds(), "cat-MiB/s")
			b.ReportMetric(apiWall.Seconds()/catWall.Seconds(), "cat/api")
			b.ReportMetric(float64(apiCPU.Microseconds())/1e3/mib, "api-CPUms/MiB")
			b.ReportMetric(float64(catCPU.Microseconds())/1e3/mib, "cat-CPUms/MiB")
		})
	}
}

// startBenchServer runs an --insecure-dev server on loopback whose relay budget
// does not limit a transfer.
func startBenchServer(b *testing.B) string {
	budget, _ := relayBudget(maxRelayMbps)
	cfg := driver.ServerConfig{Listen: "127.0.0.1:0", AltAddr: "127.0.0.2:0", InsecureDev: true}
	cfg.Tune.RelaySessionRate, cfg.Tune.RelayServerRate = budget, budget
	s, err := driver.ListenServer(cfg)
	if err != nil {
		b.Fatalf("server: %v", err)
	}
	b.Cleanup(func() { s.Close() })
	return s.Addr().String()
}

// processCPU is the user and system time this process used so far
// (getrusage(RUSAGE_SELF) cannot fail with these arguments).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// progress counts the bytes that arrived and wakes whoever waits for a total.
type progress struct {
	mu   sync.Mutex
	n    int
	err  error
	wake chan struct{} // capacity 1
}

func newProgress() *progress { return &progress{wake: make(chan struct{}, 1)} }

func (p *progress) add(n int, err error) {
	p.mu.Lock()
	p.n += n
	if err != nil && p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// await returns when total bytes arrived, or the error that stopped them.
func (p *progress) await(total int) error {
	for {
		p.mu.Lock()
		n, err := p.n, p.err
		p.mu.Unlock()
		if n >= total {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%d of %d bytes: %w", n, total, err)
		}
		<-p.wake
	}
}

// apiBenchPair is two connected nodes; a goroutine reads b's side.
type apiBenchPair struct {
	ctx  context.Context
	a    *driver.Conn
	got  *progress
	sent int
	msg  []byte
}

func startAPIBenchPair(ctx context.Context, b *testing.B, addr string, policy node.RelayPolicy) *apiBenchPair {
	nodes := [2]*driver.Node{}
	for j, id := range []string{"api-a", "api-b"} {
		n, err := driver.Listen(ctx, driver.Config{Server: addr, ID: id, InsecureDev: true, Listen: "127.0.0.1:0", Relay: policy})
		if err != nil {
			b.Fatalf("Listen %s: %v", id, err)
		}
		b.Cleanup(func() { n.Close() })
		nodes[j] = n
	}
	accepted := make(chan *driver.Conn, 1)
	go func() {
		c, _ := nodes[1].Accept(ctx)
		accepted <- c
	}()
	ca, err := nodes[0].Connect(ctx, nodes[1].ID())
	if err != nil {
		b.Fatalf("Connect: %v", err)
	}
	cb := <-accepted
	if cb == nil {
		b.Fatal("Accept failed")
	}
	p := &apiBenchPair{ctx: ctx, a: ca, got: newProgress(), msg: make([]byte, apiBenchMessage)}
	go func() {
		for {
			m, err := cb.Recv(ctx)
			p.got.add(len(m.Data), err)
			if err != nil {
				return
			}
		}
	}()
	return p
}

// segment sends benchSegment and times it until it all arrived.
func (p *apiBenchPair) segment(b *testing.B) (wall, cpu time.Duration) {
	start, cpu0 := time.Now(), processCPU()
	for range benchSegment / apiBenchMessage {
		if err := p.a.SendContext(p.ctx, 0, rudp.ReliableOrdered, p.msg); err != nil {
			b.Fatalf("Send: %v", err)
		}
	}
	p.sent += benchSegment
	if err := p.got.await(p.sent); err != nil {
		b.Fatalf("API receiver: %v", err)
	}
	return time.Since(start), processCPU() - cpu0
}

// catBenchPair is two `natpass cat` running: a (connecting) reads a pipe that
// segment fills, b (accepting) writes a pipe that a goroutine drains.
type catBenchPair struct {
	feed    chan int // bytes to write to a's stdin; closed: close it
	got     *progress
	sent    int
	done    chan struct{} // closed when both cats exited
	codes   [2]int
	stderrs [2]*syncBuffer
}

func startCatBenchPair(ctx context.Context, b *testing.B, addr, relay string) *catBenchPair {
	common := []string{"--server", addr, "--insecure-dev", "--relay", relay}
	inR, inW := osPipe(b)
	outR, outW := osPipe(b)
	p := &catBenchPair{feed: make(chan int), got: newProgress(), done: make(chan struct{}), stderrs: [2]*syncBuffer{{}, {}}}
	go p.feedStdin(inW)
	go func() {
		buf := make([]byte, 1<<20)
		for {
			n, err := outR.Read(buf)
			p.got.add(n, err)
			if err != nil {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.codes[1] = catMain(ctx, append([]string{"--id", "cat-b"}, common...), bytes.NewReader(nil), outW, p.stderrs[1])
		outW.Close()
	}()
	go func() {
		defer wg.Done()
		time.Sleep(50 * time.Millisecond) // b registers first
		p.codes[0] = catMain(ctx, append([]string{"--id", "cat-a", "--connect", "cat-b"}, common...), inR, io.Discard, p.stderrs[0])
		inR.Close()
	}()
	go func() {
		wg.Wait()
		close(p.done)
	}()
	// The first segment starts once a is connected: a byte goes through.
	p.feed <- 1
	p.sent = 1
	if err := p.got.await(1); err != nil {
		b.Fatalf("cat: %v; a's stderr:\n%s\nb's stderr:\n%s", err, p.stderrs[0], p.stderrs[1])
	}
	return p
}

// feedStdin writes what feed asks to w in 1 MiB writes, and closes w when feed
// is closed.
func (p *catBenchPair) feedStdin(w *os.File) {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*7 + i>>9)
	}
	var err error
	for size := range p.feed {
		for size > 0 && err == nil {
			var n int
			n, err = w.Write(buf[:min(len(buf), size)])
			size -= n
		}
	}
	w.Close()
}

// segment writes benchSegment to a's stdin and times it until it all came out
// of b's stdout.
func (p *catBenchPair) segment(b *testing.B) (wall, cpu time.Duration) {
	start, cpu0 := time.Now(), processCPU()
	p.feed <- benchSegment
	p.sent += benchSegment
	if err := p.got.await(p.sent); err != nil {
		b.Fatalf("cat: %v; a's stderr:\n%s\nb's stderr:\n%s", err, p.stderrs[0], p.stderrs[1])
	}
	return time.Since(start), processCPU() - cpu0
}

// finish ends a's input and checks that both cats exit 0 with every byte
// delivered over the path named want.
func (p *catBenchPair) finish(b *testing.B, want string) {
	close(p.feed)
	<-p.done
	_ = p.got.await(p.sent + 1) // returns with the end of b's stdout
	p.got.mu.Lock()
	n, err := p.got.n, p.got.err
	p.got.mu.Unlock()
	if p.codes != [2]int{} || n != p.sent || err != io.EOF || !strings.Contains(p.stderrs[0].String(), want) {
		b.Fatalf("cat exits %v, stdout: %d bytes (want %d), then %v; want %q; a's stderr:\n%s\nb's stderr:\n%s",
			p.codes, n, p.sent, err, want, p.stderrs[0], p.stderrs[1])
	}
}

func osPipe(b *testing.B) (r, w *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}
