package natsbus

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natpass/natpass/rendezvous"
)

// waitLimit bounds every wait in these tests; a healthy run needs milliseconds.
const waitLimit = 15 * time.Second

var (
	secretA = bytes.Repeat([]byte("a"), 32)
	secretB = bytes.Repeat([]byte("b"), 32)
)

// start starts a bus and closes it when the test ends.
func start(t *testing.T, cfg Config) *Bus {
	t.Helper()
	b, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// cluster starts n buses, each naming the ones started before it as peers, and
// waits for the full mesh (routes the buses did not name come by gossip).
func cluster(t *testing.T, n int, tweak func(i int, c *Config)) []*Bus {
	t.Helper()
	buses := make([]*Bus, n)
	for i := range buses {
		// Each route listener takes a free port itself; each bus names the ones
		// before it (picking ports ahead raced with the servers' client listeners).
		cfg := Config{ClusterName: "t", ClusterListen: "127.0.0.1:0", Secret: secretA}
		for _, b := range buses[:i] {
			cfg.ClusterPeers = append(cfg.ClusterPeers, "nats://"+b.ClusterAddr())
		}
		if tweak != nil {
			tweak(i, &cfg)
		}
		buses[i] = start(t, cfg)
	}
	for i, b := range buses {
		waitPeers(t, b, n-1)
		if got := b.Peers(); got != n-1 {
			t.Fatalf("bus %d: %d peers, want %d", i+1, got, n-1)
		}
	}
	return buses
}

func waitPeers(t *testing.T, b *Bus, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.WaitPeers(ctx, n); err != nil {
		t.Fatalf("WaitPeers(%d): %v (have %d)", n, err, b.Peers())
	}
}

func waitInterest(t *testing.T, b *Bus, subject string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.WaitInterest(ctx, subject); err != nil {
		t.Fatalf("WaitInterest(%s): %v", subject, err)
	}
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := poll(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func mustSubscribe(t *testing.T, b *Bus, subject string) {
	t.Helper()
	if err := b.Subscribe(subject); err != nil {
		t.Fatalf("Subscribe(%s): %v", subject, err)
	}
}

func mustPublish(t *testing.T, b *Bus, m rendezvous.ClusterMessage) {
	t.Helper()
	if err := b.Publish(m); err != nil {
		t.Fatalf("Publish(%s): %v", m.Subject, err)
	}
}

// recv takes the next Inbox message, failing after waitLimit.
func recv(t *testing.T, b *Bus) rendezvous.ClusterMessage {
	t.Helper()
	select {
	case m, ok := <-b.Inbox():
		if !ok {
			t.Fatal("Inbox closed")
		}
		return m
	case <-time.After(waitLimit):
		t.Fatalf("no message in %v; stats %+v", waitLimit, b.Stats())
	}
	panic("unreachable")
}

// logRecorder collects Config.Log lines.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) log(s string) {
	r.mu.Lock()
	r.lines = append(r.lines, s)
	r.mu.Unlock()
}

// count is the number of lines containing sub (case-insensitive).
func (r *logRecorder) count(sub string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.Contains(strings.ToLower(l), strings.ToLower(sub)) {
			n++
		}
	}
	return n
}

func (r *logRecorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}
