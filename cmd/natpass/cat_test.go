package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"hash"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/node"
)

func TestPathLine(t *testing.T) {
	local, peer := netip.MustParseAddrPort("192.0.2.1:4000"), netip.MustParseAddrPort("198.51.100.7:5000")
	server := netip.MustParseAddrPort("203.0.113.1:3478")
	for _, c := range []struct {
		name string
		e    driver.PathEvent
		srtt time.Duration
		want string
	}{
		{"direct", driver.PathEvent{Kind: driver.PathDirect, Local: local, Remote: peer, RTT: 12345 * time.Microsecond, Reason: "direct confirmed"}, 0,
			`path=direct local=192.0.2.1:4000 remote=198.51.100.7:5000 rtt=12.3ms reason="direct confirmed"`},
		{"direct on loopback", driver.PathEvent{Kind: driver.PathDirect, Local: local, Remote: peer, RTT: 42 * time.Microsecond, Reason: "r"}, 0,
			`path=direct local=192.0.2.1:4000 remote=198.51.100.7:5000 rtt=42µs reason="r"`},
		// Today's node: no local, the server as the remote, no RTT: the
		// connection's smoothed RTT stands in.
		{"relay from the connection's RTT", driver.PathEvent{Kind: driver.PathRelay, Remote: server, Reason: "relay ready"}, 5600 * time.Microsecond,
			`path=relay relay=203.0.113.1:3478 rtt=5.6ms reason="relay ready"`},
		{"relay not yet measured", driver.PathEvent{Kind: driver.PathRelay, Remote: server, Reason: "relay ready"}, 0,
			`path=relay relay=203.0.113.1:3478 reason="relay ready"`},
		{"relay without a remote names the server", driver.PathEvent{Kind: driver.PathRelay, Reason: "x"}, 0,
			`path=relay relay=relay.example:3478 reason="x"`},
		// The node to come: its socket as the local, the RTT in the event.
		{"relay with local and RTT", driver.PathEvent{Kind: driver.PathRelay, Local: local, Remote: server, RTT: 7 * time.Millisecond, Reason: "relay ready"}, time.Second,
			`path=relay local=192.0.2.1:4000 relay=203.0.113.1:3478 rtt=7ms reason="relay ready"`},
		{"none", driver.PathEvent{Kind: driver.PathNone, Reason: "server lost the session"}, time.Second,
			`path=none reason="server lost the session"`},
	} {
		if got := pathLine(c.e, "relay.example:3478", c.srtt); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

// randInput is size bytes of a seeded pseudo-random stream, hashed as it is read,
// so that a large input costs no memory.
type randInput struct {
	rng  *rand.Rand
	left int
	h    hash.Hash
}

func (r *randInput) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.left)
	for i := range n {
		p[i] = byte(r.rng.Uint32())
	}
	r.left -= n
	r.h.Write(p[:n])
	return n, nil
}

// pausedOutput is a consumer that takes nothing for pause, then hashes what it is
// given.
type pausedOutput struct {
	pause time.Duration
	once  sync.Once
	h     hash.Hash
	n     int
}

func (w *pausedOutput) Write(p []byte) (int, error) {
	w.once.Do(func() { time.Sleep(w.pause) })
	w.h.Write(p)
	w.n += len(p)
	return len(p), nil
}

// heapWatch samples the live heap (after a collection) until stopped and keeps
// the largest sample.
func heapWatch() (stop func() (peak uint64)) {
	var peak atomic.Uint64
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		var ms runtime.MemStats
		for {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak.Store(max(peak.Load(), ms.HeapAlloc))
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-exited
		return peak.Load()
	}
}

// The acceptance: the receiver pauses 10 s while the sender sends 64 MiB
// through `natpass cat` on loopback; both exit 0, the bytes arrive intact, and
// memory stays bounded. The receiving cat's stdout takes nothing for 10 s, so it
// stops reading its connection and the sender is held to the flow-control window
// and its send buffer (20 MiB with rudp's defaults): the live heap of the whole
// process (both cats and the server) stays well below what holding 64 MiB would
// take. The relay budget is raised so that the transfer does not wait on it
// before the direct path is up.
func TestCatSlowReader(t *testing.T) {
	if testing.Short() {
		t.Skip("pauses the reader for 10 s")
	}
	const size, pause, heapBound = 64 << 20, 10 * time.Second, 48 << 20
	secretFile, _ := writeSecret(t)
	addr, _ := startServerCmd(t, "--listen", "127.0.0.1:0", "--listen2", "127.0.0.2:0", "--secret-file", secretFile, "--quiet",
		"--relay-session-mbps", "10000", "--relay-total-mbps", "10000")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	stopWatch := heapWatch()

	in := &randInput{rng: rand.New(rand.NewPCG(64, 64)), left: size, h: sha256.New()}
	out := &pausedOutput{pause: pause, h: sha256.New()}
	var codes [2]int
	errs := [2]*syncBuffer{{}, {}}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		codes[1] = catMain(ctx, []string{"--server", addr, "--id", "slow-b", "--secret-file", secretFile}, bytes.NewReader(nil), out, errs[1])
	}()
	go func() {
		defer wg.Done()
		time.Sleep(100 * time.Millisecond) // b registers first
		codes[0] = catMain(ctx, []string{"--server", addr, "--id", "slow-a", "--connect", "slow-b", "--secret-file", secretFile}, in, &syncBuffer{}, errs[0])
	}()
	wg.Wait()
	peak := stopWatch()

	for i := range 2 {
		if codes[i] != 0 {
			t.Errorf("cat %d exit %d; stderr:\n%s", i, codes[i], errs[i].String())
		}
	}
	if in.left != 0 || out.n != size || !bytes.Equal(out.h.Sum(nil), in.h.Sum(nil)) {
		t.Errorf("the receiver wrote %d bytes of the %d sent (%d not read from stdin); equal hashes: %v",
			out.n, size-in.left, in.left, bytes.Equal(out.h.Sum(nil), in.h.Sum(nil)))
	}
	grew := int64(peak) - int64(base.HeapAlloc)
	t.Logf("live heap: %d MiB at the start, at most %d MiB above it", base.HeapAlloc>>20, grew>>20)
	if grew > heapBound {
		t.Errorf("the live heap grew by %d MiB while 64 MiB went through a paused reader; want under %d MiB", grew>>20, heapBound>>20)
	}
}

// --server takes one address or a comma-separated list (DESIGN §12: the servers of
// a cluster, tried in order).
func TestParseServers(t *testing.T) {
	for v, want := range map[string][]string{
		"127.0.0.1:3478":                    {"127.0.0.1:3478"},
		"a.example:1,b.example:2":           {"a.example:1", "b.example:2"},
		" 10.0.0.1:1 , 10.0.0.2:1,[::1]:3 ": {"10.0.0.1:1", "10.0.0.2:1", "[::1]:3"},
	} {
		got, err := parseServers(v)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseServers(%q) = %q, %v; want %q", v, got, err, want)
		}
	}
	for _, v := range []string{"a:1,,b:2", "a:1,", "a:1,a:1", "a:1,nohost"} {
		if got, err := parseServers(v); err == nil {
			t.Errorf("parseServers(%q) = %q, want an error", v, got)
		}
		if code := catMain(context.Background(), []string{"--server", v, "--id", "a", "--insecure-dev"}, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
			t.Errorf("cat --server %q: exit %d, want 2 (usage)", v, code)
		}
	}
}

func TestConnectedLine(t *testing.T) {
	relay := driver.PathEvent{Kind: driver.PathRelay, Reason: "relay ready"}
	direct := driver.PathEvent{Kind: driver.PathDirect, Remote: netip.MustParseAddrPort("192.0.2.7:4000"), Reason: "direct confirmed"}
	for _, c := range []struct {
		path      driver.PathEvent
		strategy  string
		relayOnly bool
		policy    node.RelayPolicy
		want      string
	}{
		{relay, "simultaneous-open", true, node.RelayForce,
			`connected to "p" via relay 198.51.100.1:3478 (relay forced by --relay force: no hole punching)`},
		{relay, "birthday", true, node.RelayAuto,
			`connected to "p" via relay 198.51.100.1:3478 (relay forced by the peer: no hole punching)`},
		{relay, "port-prediction", false, node.RelayAuto,
			`connected to "p" via relay 198.51.100.1:3478 (looking for a direct path: strategy port-prediction)`},
		{relay, "none", false, node.RelayAuto,
			`connected to "p" via relay 198.51.100.1:3478 (no direct path possible between these NATs: strategy none)`},
		{direct, "simultaneous-open", false, node.RelayNever,
			`connected to "p" via direct path 192.0.2.7:4000 (strategy simultaneous-open)`},
	} {
		if got := connectedLine("p", c.path, c.strategy, c.relayOnly, c.policy, "198.51.100.1:3478"); got != c.want {
			t.Errorf("connectedLine(%v, %s, relayOnly %v, policy %v):\n got %s\nwant %s", c.path.Kind, c.strategy, c.relayOnly, c.policy, got, c.want)
		}
	}
}

// 32 MiB each way at once through two `natpass cat`, relayed and direct, with OS
// pipes for stdin and stdout as a shell gives them (so the large reads, the
// gathered writes and the grown pipes are the ones under test): both exit 0 and
// each side's stdout hashes to what the other read from its stdin.
func TestCatLargeBothWays(t *testing.T) {
	const size = 32 << 20
	addr, _ := startServerCmd(t, "--listen", "127.0.0.1:0", "--listen2", "127.0.0.2:0", "--insecure-dev", "--quiet",
		"--relay-session-mbps", "10000", "--relay-total-mbps", "10000")
	for _, c := range []struct{ relay, want string }{{"force", "path=relay"}, {"never", "path=direct"}} {
		t.Run(c.relay, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			ids := [2]string{"large-a-" + c.relay, "large-b-" + c.relay}
			args := [2][]string{{"--connect", ids[1]}, nil}
			var ins [2]*randInput
			var outs [2]*hashedPipe
			var codes [2]int
			errs := [2]*syncBuffer{{}, {}}
			var wg sync.WaitGroup
			for i := range 2 {
				ins[i] = &randInput{rng: rand.New(rand.NewPCG(uint64(i), 32)), left: size, h: sha256.New()}
				stdin := pipeFrom(t, ins[i])
				outs[i] = newHashedPipe(t)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if i == 0 {
						time.Sleep(100 * time.Millisecond) // b registers first
					}
					a := append([]string{"--server", addr, "--id", ids[i], "--insecure-dev", "--relay", c.relay}, args[i]...)
					codes[i] = catMain(ctx, a, stdin, outs[i].w, errs[i])
					outs[i].w.Close()
				}()
			}
			wg.Wait()
			for i := range 2 {
				n, sum := outs[i].result()
				from := ins[1-i]
				if codes[i] != 0 || !strings.Contains(errs[i].String(), c.want) {
					t.Errorf("cat %d exit %d, want 0 and a %q line; stderr:\n%s", i, codes[i], c.want, errs[i])
				}
				if from.left != 0 || n != size || !bytes.Equal(sum, from.h.Sum(nil)) {
					t.Errorf("cat %d wrote %d bytes of the %d its peer sent (%d unread); equal hashes: %v",
						i, n, size-from.left, from.left, bytes.Equal(sum, from.h.Sum(nil)))
				}
			}
		})
	}
}

// pipeFrom is the read end of an OS pipe that a goroutine fills from r and then
// closes.
func pipeFrom(t *testing.T, r io.Reader) *os.File {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close() })
	go func() {
		_, _ = io.Copy(pw, r)
		pw.Close()
	}()
	return pr
}

// hashedPipe is an OS pipe whose read end a goroutine drains into a hash.
type hashedPipe struct {
	w    *os.File
	done chan struct{}
	n    int64
	h    hash.Hash
}

func newHashedPipe(t *testing.T) *hashedPipe {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close(); pw.Close() })
	p := &hashedPipe{w: pw, done: make(chan struct{}), h: sha256.New()}
	go func() {
		defer close(p.done)
		p.n, _ = io.Copy(p.h, pr)
	}()
	return p
}

// result waits for the end of the pipe (its write end closed) and returns how
// many bytes came through and their hash.
func (p *hashedPipe) result() (int, []byte) {
	<-p.done
	return int(p.n), p.h.Sum(nil)
}
