package netns

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The cluster: three servers on the core's loopback, each with its second address
// (--listen2) next to it and its NATS route listener on its own address.
var (
	clusterIPs  = [3]string{"203.0.113.1", "203.0.113.11", "203.0.113.21"}
	clusterIPs2 = [3]string{"203.0.113.2", "203.0.113.12", "203.0.113.22"}
)

func clusterServer(i int) string { return clusterIPs[i] + ":3478" }

const (
	clusterRoutePort = "6222"
	clusterBytes     = 8 << 20  // each way, each pair
	clusterPiece     = 64 << 10 // stdin is written in pieces this big
	clusterPace      = 25 * time.Millisecond
	clusterGateAt    = 1 << 20 // stdin waits here until the direct pair is direct
	clusterKillAt    = 3 << 20 // the server goes once every cat received this much
)

// clusterCats are the four nodes: a relayed pair behind random-symmetric NATs and a
// direct pair behind port-restricted NATs. servers lists the cluster's servers in
// the order of the cat's --server: its own first. Server 0 holds ra and da, so
// that one server's death hits one node of each pair; ra moves to server 2 and
// stays on a server other than rb's: the relay still crosses two servers.
var clusterCats = [4]struct {
	id, connect string
	kind        sideKind
	servers     [3]int
}{
	{"ra", "rb", randomFull, [3]int{0, 2, 1}},
	{"rb", "", randomFull, [3]int{1, 2, 0}},
	{"da", "db", masquerade, [3]int{0, 2, 1}},
	{"db", "", masquerade, [3]int{2, 1, 0}},
}

// catProc is one `natpass cat` process.
type catProc struct {
	id             string
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	stdout, stderr *syncBuffer
	done           chan struct{} // closed once the process ended; err is then set
	err            error
}

// clusterRun is one test's cluster, its four hosts and what their cats send.
type clusterRun struct {
	t          *testing.T
	tp         *topo
	core       string
	hosts      [4]string
	secretFile string
	servers    []*serverProc
	cats       [4]*catProc
	in         [4][]byte
}

// newClusterRun builds the namespaces and starts the three servers (server 0 with
// drain0 as its --drain-timeout) and waits until their routes are up.
func newClusterRun(t *testing.T, ctx context.Context, cell, drain0 string) *clusterRun {
	need(t)
	r := &clusterRun{t: t, tp: newTopo(t, cell)}
	r.core = r.tp.ns("core")
	for i := range clusterIPs {
		r.tp.sh("ip", "-n", r.core, "addr", "add", clusterIPs[i]+"/32", "dev", "lo")
		r.tp.sh("ip", "-n", r.core, "addr", "add", clusterIPs2[i]+"/32", "dev", "lo")
	}
	for i, c := range clusterCats {
		r.hosts[i] = r.tp.side(r.core, c.id, i, c.kind)
	}
	dir := t.TempDir()
	r.secretFile = filepath.Join(dir, "secret")
	clusterSecret := filepath.Join(dir, "cluster-secret")
	if err := os.WriteFile(r.secretFile, []byte("netns test secret 0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(clusterSecret, []byte("netns cluster secret 0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, ip := range clusterIPs {
		var peers []string
		for j, other := range clusterIPs {
			if j != i {
				peers = append(peers, "nats://"+other+":"+clusterRoutePort)
			}
		}
		drain := "100ms" // the others give up draining at once at cleanup
		if i == 0 {
			drain = drain0
		}
		r.servers = append(r.servers, r.tp.runServer(ctx, r.core, "--listen", clusterServer(i),
			"--listen2", clusterIPs2[i]+":3479", "--secret-file", r.secretFile, "--quiet",
			"--cluster-name", "netns", "--cluster-listen", ip+":"+clusterRoutePort,
			"--cluster-peers", strings.Join(peers, ","), "--cluster-secret-file", clusterSecret,
			"--drain-timeout", drain))
	}
	r.waitRoutes(ctx)
	return r
}

// waitRoutes waits until every server reports its routes to the two others.
func (r *clusterRun) waitRoutes(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for i, s := range r.servers {
		for j, ip := range clusterIPs {
			if j == i {
				continue
			}
			if !waitFor(ctx, func() bool {
				return s.stderr.contains("Route connection created (" + ip + ":" + clusterRoutePort + ")")
			}) {
				r.t.Fatalf("server %d has no route to server %d; stderr:\n%s", i, j, s.stderr.bytes())
			}
		}
	}
}

// waitFor polls cond every 10 ms until it holds (true) or ctx ends (false).
func waitFor(ctx context.Context, cond func() bool) bool {
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}

// startCats starts the accepting cats, waits until they registered, then the
// connecting ones; each gets clusterBytes of its own random data, written into its
// stdin in pieces every clusterPace, holding at clusterGateAt until both cats
// of the direct pair report the direct path.
func (r *clusterRun) startCats(ctx context.Context) {
	for i := range r.in {
		r.in[i] = make([]byte, clusterBytes)
		_, _ = rand.NewChaCha8([32]byte{byte(i), 'n', 'e', 't', 'n', 's'}).Read(r.in[i])
	}
	gate := make(chan struct{})
	for _, i := range []int{1, 3, 0, 2} {
		c := clusterCats[i]
		if i == 0 {
			// The accepting peers' interest has to reach the other servers (one
			// route hop, well under a millisecond here).
			time.Sleep(300 * time.Millisecond)
		}
		var servers []string
		for _, s := range c.servers {
			servers = append(servers, clusterServer(s))
		}
		r.cats[i] = r.tp.startCat(ctx, r.hosts[i], c.id, c.connect, strings.Join(servers, ","), r.secretFile)
		go pace(ctx, r.cats[i].stdin, r.in[i], gate)
		if c.connect != "" {
			continue
		}
		registered := func() bool { return r.cats[i].stderr.contains("waiting for a peer") || r.cats[i].exited() }
		if !waitFor(ctx, registered) || r.cats[i].exited() {
			r.fatal("cat %s never registered (exit: %v)", c.id, r.cats[i].err)
		}
	}
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		waitFor(wctx, func() bool {
			return r.cats[2].stderr.contains("path=direct") && r.cats[3].stderr.contains("path=direct")
		})
		close(gate)
	}()
}

// startCat starts `natpass cat` on host, with extra flags after the usual ones;
// the caller writes its stdin.
func (tp *topo) startCat(ctx context.Context, host, id, connect, servers, secretFile string, extra ...string) *catProc {
	tp.t.Helper()
	cmd := exec.CommandContext(ctx, "ip", append(catArgs(host, id, connect, servers, secretFile, 30*time.Second), extra...)...)
	p := &catProc{id: id, cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		tp.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tp.t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

// exited reports whether the cat's process ended (its err is then set).
func (p *catProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// pace writes data into w in clusterPiece pieces, one every clusterPace, waiting
// at clusterGateAt until gate closes, then closes w.
func pace(ctx context.Context, w io.WriteCloser, data []byte, gate <-chan struct{}) {
	defer w.Close()
	for off := 0; off < len(data); off += clusterPiece {
		if off == clusterGateAt {
			select {
			case <-gate:
			case <-ctx.Done():
				return
			}
		}
		if _, err := w.Write(data[off:min(off+clusterPiece, len(data))]); err != nil {
			return
		}
		select {
		case <-time.After(clusterPace):
		case <-ctx.Done():
			return
		}
	}
}

// stopMidTransfer waits until every cat received clusterKillAt bytes, then sends
// server 0 sig, and checks that no transfer had finished by then. It returns the
// moment of the signal.
func (r *clusterRun) stopMidTransfer(ctx context.Context, sig os.Signal) time.Time {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if !waitFor(wctx, func() bool {
		for _, c := range r.cats {
			if c.exited() {
				return true
			}
			if c.stdout.len() < clusterKillAt {
				return false
			}
		}
		return true
	}) || slices.ContainsFunc(r.cats[:], (*catProc).exited) {
		r.fatal("the transfers did not reach %d bytes, or a cat ended", clusterKillAt)
	}
	if err := r.servers[0].cmd.Process.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
	at := time.Now()
	var got []string
	for _, c := range r.cats {
		n := c.stdout.len()
		got = append(got, fmt.Sprintf("%s %d", c.id, n))
		if n >= clusterBytes {
			r.t.Errorf("cat %s had received all %d bytes before the server stopped: not mid-transfer", c.id, n)
		}
	}
	r.t.Logf("%v to server 0 with received bytes: %s", sig, strings.Join(got, ", "))
	return at
}

// longestStall samples cat i's output every 10 ms until the cat ended and
// returns the longest time it did not grow: how long the stream to it stopped.
func (r *clusterRun) longestStall(ctx context.Context, i int) time.Duration {
	c := r.cats[i]
	var longest time.Duration
	n, grew := c.stdout.len(), time.Now()
	for {
		select {
		case <-c.done:
			return longest
		case <-ctx.Done():
			return longest
		case <-time.After(10 * time.Millisecond):
		}
		if m := c.stdout.len(); m != n {
			n, grew = m, time.Now()
		} else if m < clusterBytes {
			longest = max(longest, time.Since(grew))
		}
	}
}

// wait waits for the four cats.
func (r *clusterRun) wait(ctx context.Context) {
	for _, c := range r.cats {
		select {
		case <-c.done:
		case <-ctx.Done():
			r.fatal("cat %s did not finish in time", c.id)
		}
	}
}

// check asserts that every cat exited 0 with its peer's bytes, the relayed pair
// only ever on the relay and the direct pair ending direct.
func (r *clusterRun) check() {
	res := func(i int) catResult {
		return catResult{err: r.cats[i].err, stdout: r.cats[i].stdout.bytes(), stderr: r.cats[i].stderr.bytes()}
	}
	checkPath(r.t, [2]catResult{res(0), res(1)}, [2][]byte{r.in[0], r.in[1]}, "relay", [2]string{})
	// Each direct cat sees its peer's NAT's WAN address (sides 2 and 3).
	checkPath(r.t, [2]catResult{res(2), res(3)}, [2][]byte{r.in[2], r.in[3]}, "direct",
		[2]string{"198.51.100.14:", "198.51.100.10:"})
	// A server going away does not touch a direct path (DESIGN §12).
	for _, i := range []int{2, 3} {
		if r.cats[i].stderr.contains("path=none") {
			r.t.Errorf("cat %s lost its path when the server went", r.cats[i].id)
		}
	}
}

// fatal fails the test now with the cats' and the servers' stderr.
func (r *clusterRun) fatal(format string, args ...any) {
	r.t.Helper()
	r.dump()
	r.t.Fatalf(format, args...)
}

// dump logs the cats' and the servers' stderr.
func (r *clusterRun) dump() {
	for _, c := range r.cats {
		if c != nil {
			r.t.Logf("cat %s (received %d bytes) stderr:\n%s", c.id, c.stdout.len(), c.stderr.bytes())
		}
	}
	for i, s := range r.servers {
		r.t.Logf("server %d stdout:\n%s\nstderr:\n%s", i, s.stdout.bytes(), s.stderr.bytes())
	}
}

// serverLine is the line a cat prints when it moves from server 0 to the next of
// its list (server 2 for ra and da), with reason (empty: any reason).
func serverLine(reason string) string {
	line := fmt.Sprintf("server from=%s to=%s reason=", clusterServer(0), clusterServer(2))
	if reason != "" {
		line += fmt.Sprintf("%q", reason)
	}
	return line
}

// A hard death in the cluster: three servers, a relayed pair (random-symmetric
// NATs) with ra on server 0 and rb on server 1, a direct pair (port-restricted
// NATs) with da on server 0 and db on server 2, 8 MiB each way in each pair.
// Server 0 is SIGKILLed mid-transfer: ra moves to server 2 and the relay, still
// across two servers, carries the rest; the direct pair does not notice. Every byte
// arrives in order and every cat exits 0.
func TestNetnsClusterServerKilled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	r := newClusterRun(t, ctx, "clk", "100ms")
	start := time.Now()
	r.startCats(ctx)
	r.stopMidTransfer(ctx, syscall.SIGKILL)
	t.Logf("the relayed stream ra→rb stopped for %v at most after the kill", r.longestStall(ctx, 1))
	r.wait(ctx)
	t.Logf("transfers done %v after the cats started", time.Since(start))
	r.check()
	<-r.servers[0].exited
	if err := r.servers[0].err; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("server 0 ended with %v, want killed", err)
	}
	if line := serverLine(""); !r.cats[0].stderr.contains(line) {
		t.Errorf("cat ra's stderr lacks %q", line)
	}
	if t.Failed() {
		r.dump()
	}
}

// A drain in the cluster: the same nodes, but server 0 gets SIGTERM mid-transfer.
// It tells its nodes to move: ra and da both print a move to server 2 with reason
// "server moving", both transfers finish intact, and the server exits 0 once its
// nodes have moved.
func TestNetnsClusterServerDrained(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	r := newClusterRun(t, ctx, "cld", "15s")
	r.startCats(ctx)
	termed := r.stopMidTransfer(ctx, syscall.SIGTERM)
	s := r.servers[0]
	select {
	case <-s.exited:
		t.Logf("server 0 exited %v after SIGTERM", time.Since(termed))
	case <-ctx.Done():
		r.fatal("server 0 did not exit after SIGTERM")
	}
	if s.err != nil || !s.stderr.contains("drained: every node moved") {
		t.Errorf("drained server: %v, want exit 0 after every node moved", s.err)
	}
	r.wait(ctx)
	r.check()
	for _, i := range []int{0, 2} {
		if line := serverLine("server moving"); !r.cats[i].stderr.contains(line) {
			t.Errorf("cat %s's stderr lacks %q", r.cats[i].id, line)
		}
	}
	if t.Failed() {
		r.dump()
	}
}
