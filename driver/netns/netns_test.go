package netns

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// natpassBin is the natpass binary the tests run inside the namespaces, built once.
var (
	buildOnce  sync.Once
	natpassBin string
	buildErr   error
	noNetns    string // why namespaces cannot be made here, if they cannot
)

// need skips the test, saying why, when this machine cannot build namespaces.
func need(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network-namespace tests need root (ip netns, iptables); skipped")
	}
	for _, tool := range []string{"ip", "iptables", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("network-namespace tests need %s in PATH (apt-get install iptables iproute2); skipped", tool)
		}
	}
	buildOnce.Do(func() {
		probe := fmt.Sprintf("npprobe%d", os.Getpid())
		if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
			noNetns = fmt.Sprintf("cannot create a network namespace here (%v: %s); skipped", err, bytes.TrimSpace(out))
			return
		}
		exec.Command("ip", "netns", "del", probe).Run()
		dir, err := os.MkdirTemp("", "natpass-netns")
		if err != nil {
			buildErr = err
			return
		}
		natpassBin = filepath.Join(dir, "natpass")
		out, err := exec.Command("go", "build", "-o", natpassBin, "github.com/natpass/natpass/cmd/natpass").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if noNetns != "" {
		t.Skip(noNetns)
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// topo is a set of namespaces one test made; Cleanup deletes them.
type topo struct {
	t      *testing.T
	prefix string
	made   []string
}

func newTopo(t *testing.T, cell string) *topo {
	tp := &topo{t: t, prefix: fmt.Sprintf("np%d%s-", os.Getpid()%100000, cell)}
	t.Cleanup(func() {
		for _, ns := range tp.made {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	return tp
}

// ip runs an ip(8) (or other) command and fails the test on error.
func (tp *topo) sh(args ...string) {
	tp.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		tp.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// ns makes a namespace with its loopback up and forwarding on, and returns its
// full name.
func (tp *topo) ns(name string) string {
	full := tp.prefix + name
	tp.sh("ip", "netns", "add", full)
	tp.made = append(tp.made, full)
	tp.sh("ip", "-n", full, "link", "set", "lo", "up")
	// Through /proc rather than sysctl(8), which a bare machine may lack.
	tp.in(full, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	return full
}

func (tp *topo) in(ns string, args ...string) {
	tp.t.Helper()
	tp.sh(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// link joins namespaces a and b with a veth pair, addresses in CIDR form.
func (tp *topo) link(a, ifA, addrA, b, ifB, addrB string) {
	tp.t.Helper()
	tp.sh("ip", "-n", a, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", b)
	tp.sh("ip", "-n", a, "addr", "add", addrA, "dev", ifA)
	tp.sh("ip", "-n", b, "addr", "add", addrB, "dev", ifB)
	tp.sh("ip", "-n", a, "link", "set", ifA, "up")
	tp.sh("ip", "-n", b, "link", "set", ifB, "up")
}

func (tp *topo) route(ns, via string) { tp.sh("ip", "-n", ns, "route", "add", "default", "via", via) }

// sideKind is what stands between a host and the core.
type sideKind int

const (
	public     sideKind = iota // the host sits on the core: a public address
	masquerade                 // Linux NAT: port-restricted cone (DESIGN §9)
	randomFull                 // MASQUERADE --random-fully: random-symmetric
)

// Addresses (documentation ranges as the public internet, 10/8 behind NATs).
const (
	serverIP  = "203.0.113.1"
	serverIP2 = "203.0.113.2"
	serverAt  = serverIP + ":3478"
)

// build makes the core (a router with the server on its loopback) and the hosts
// a and b, each behind kinds[i]; sameNAT puts both hosts behind one MASQUERADE
// NAT. It returns the host namespaces.
func (tp *topo) build(kinds [2]sideKind, sameNAT bool) (core string, hosts [2]string) {
	core = tp.ns("core")
	tp.sh("ip", "-n", core, "addr", "add", serverIP+"/32", "dev", "lo")
	tp.sh("ip", "-n", core, "addr", "add", serverIP2+"/32", "dev", "lo")
	if sameNAT {
		nat := tp.ns("nat")
		tp.link(core, "c1", "198.51.100.1/30", nat, "wan", "198.51.100.2/30")
		tp.route(nat, "198.51.100.1")
		tp.in(nat, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE")
		for i, name := range []string{"a", "b"} {
			hosts[i] = tp.ns(name)
			tp.link(nat, fmt.Sprintf("lan%d", i+1), fmt.Sprintf("10.0.%d.1/24", i+1), hosts[i], "eth0", fmt.Sprintf("10.0.%d.2/24", i+1))
			tp.route(hosts[i], fmt.Sprintf("10.0.%d.1", i+1))
		}
		return core, hosts
	}
	for i, name := range []string{"a", "b"} {
		hosts[i] = tp.side(core, name, i, kinds[i])
	}
	return core, hosts
}

// side makes host name, the i-th side of the core, behind kind: on the core itself
// (192.0.2.4i+2/30) or behind a NAT router of its own (WAN 198.51.100.4i+2/30, LAN
// 10.0.i+1.0/24). It returns the host's namespace.
func (tp *topo) side(core, name string, i int, kind sideKind) string {
	host := tp.ns(name)
	n := 4*i + 1 // each side gets its own /30 on the core
	if kind == public {
		tp.link(core, fmt.Sprintf("c%d", i+1), fmt.Sprintf("192.0.2.%d/30", n), host, "eth0", fmt.Sprintf("192.0.2.%d/30", n+1))
		tp.route(host, fmt.Sprintf("192.0.2.%d", n))
		return host
	}
	nat := tp.ns("nat" + name)
	tp.link(core, fmt.Sprintf("c%d", i+1), fmt.Sprintf("198.51.100.%d/30", n), nat, "wan", fmt.Sprintf("198.51.100.%d/30", n+1))
	tp.route(nat, fmt.Sprintf("198.51.100.%d", n))
	tp.link(nat, "lan", fmt.Sprintf("10.0.%d.1/24", i+1), host, "eth0", fmt.Sprintf("10.0.%d.2/24", i+1))
	tp.route(host, fmt.Sprintf("10.0.%d.1", i+1))
	rule := []string{"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
	if kind == randomFull {
		rule = append(rule, "--random-fully")
	}
	tp.in(nat, rule...)
	return host
}

// startServer runs `natpass server` in the core and waits until it listens.
func (tp *topo) startServer(ctx context.Context, core, secretFile string) {
	tp.t.Helper()
	tp.runServer(ctx, core, "--listen", serverAt, "--listen2", serverIP2+":3479", "--secret-file", secretFile, "--quiet")
}

// serverProc is one `natpass server` process.
type serverProc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	exited         chan struct{} // closed once the process ended; err is then set
	err            error
}

// runServer runs `natpass server args...` in namespace ns and waits until it
// listens; at cleanup it interrupts the server (if still running) and waits.
func (tp *topo) runServer(ctx context.Context, ns string, args ...string) *serverProc {
	tp.t.Helper()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, natpassBin, "server"}, args...)...)
	p := &serverProc{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		tp.t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	tp.t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.exited
		}
	})
	for !p.stderr.contains("natpass server listening") { // its log (slog, on stderr)
		select {
		case <-p.exited:
			tp.t.Fatalf("server did not start: %v; stdout: %s; stderr: %s", p.err, p.stdout.bytes(), p.stderr.bytes())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return p
}

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *syncBuffer) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *syncBuffer) contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Contains(b.buf.Bytes(), []byte(s))
}

// catResult is one `natpass cat` run.
type catResult struct {
	err            error
	stdout, stderr []byte
}

// cat runs `natpass cat` on host with stdin as its input. With holdFor set, the input
// stays open after stdin until cat's stderr shows that text (at most 20 s): traffic
// starts on the relay, and a test that asserts the direct path must give punching the
// time to finish before cat ends.
func (tp *topo) cat(ctx context.Context, host, id, connect, secretFile string, stdin []byte, timeout time.Duration, holdFor string) catResult {
	cmd := exec.CommandContext(ctx, "ip", catArgs(host, id, connect, serverAt, secretFile, timeout)...)
	var out bytes.Buffer
	errb := &watchBuffer{want: []byte(holdFor), seen: make(chan struct{})}
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(stdin)
		if holdFor != "" {
			select {
			case <-errb.seen:
			case <-time.After(20 * time.Second):
			case <-ctx.Done():
			}
		}
		pw.Close()
	}()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pr, &out, errb
	err := cmd.Run()
	pr.Close()
	return catResult{err: err, stdout: out.Bytes(), stderr: errb.bytes()}
}

// catArgs are ip(8)'s arguments that run `natpass cat` on host.
func catArgs(host, id, connect, servers, secretFile string, timeout time.Duration) []string {
	args := []string{"netns", "exec", host, natpassBin, "cat", "--server", servers, "--id", id,
		"--secret-file", secretFile, "--timeout", timeout.String()}
	if connect != "" {
		args = append(args, "--connect", connect)
	}
	return args
}

// watchBuffer collects a process's stderr and closes seen once want appears in it.
type watchBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want []byte
	seen chan struct{}
	done bool
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if !w.done && len(w.want) > 0 && bytes.Contains(w.buf.Bytes(), w.want) {
		w.done = true
		close(w.seen)
	}
	return n, err
}

func (w *watchBuffer) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

var pathRE = regexp.MustCompile(`(?m)^path=(\w+)(?: local=(\S+) remote=(\S+))?`)

// runCell moves 1 MiB each way between the two hosts with natpass cat and returns
// both results.
func runCell(t *testing.T, cell string, kinds [2]sideKind, sameNAT bool, timeout time.Duration, holdFor string) (res [2]catResult, in [2][]byte) {
	need(t)
	tp := newTopo(t, cell)
	core, hosts := tp.build(kinds, sameNAT)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("netns test secret 0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tp.startServer(ctx, core, secretFile)
	rng := rand.New(rand.NewPCG(uint64(len(cell)), 9))
	for i := range in {
		in[i] = make([]byte, 1<<20)
		for j := range in[i] {
			in[i][j] = byte(rng.Uint32())
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); res[1] = tp.cat(ctx, hosts[1], "b", "", secretFile, in[1], timeout, holdFor) }()
	go func() {
		defer wg.Done()
		time.Sleep(300 * time.Millisecond) // b registers first, so a's introduction finds it
		res[0] = tp.cat(ctx, hosts[0], "a", "b", secretFile, in[0], timeout, holdFor)
	}()
	wg.Wait()
	return res, in
}

// checkPath asserts both cats exited 0, every byte arrived, and each ended on path
// kind ("direct" or "relay"); for direct, the remote address must start with
// remotePrefix[i]; for relay, no direct path may ever have been reported.
func checkPath(t *testing.T, res [2]catResult, in [2][]byte, kind string, remotePrefix [2]string) {
	t.Helper()
	for i, r := range res {
		name := string(rune('a' + i))
		if r.err != nil {
			t.Errorf("cat %s: %v\nstderr:\n%s", name, r.err, r.stderr)
			continue
		}
		if !bytes.Equal(r.stdout, in[1-i]) {
			t.Errorf("cat %s received %d bytes; they differ from the %d its peer sent", name, len(r.stdout), len(in[1-i]))
		}
		m := pathRE.FindAllSubmatch(r.stderr, -1)
		if len(m) == 0 {
			t.Errorf("cat %s printed no path line:\n%s", name, r.stderr)
			continue
		}
		last := m[len(m)-1]
		switch {
		case string(last[1]) != kind:
			t.Errorf("cat %s ended on path=%s, want %s:\n%s", name, last[1], kind, r.stderr)
		case kind == "direct" && !strings.HasPrefix(string(last[3]), remotePrefix[i]):
			t.Errorf("cat %s ended on a direct path to %s, want %s*:\n%s", name, last[3], remotePrefix[i], r.stderr)
		case kind == "relay" && bytes.Contains(r.stderr, []byte("path=direct")):
			t.Errorf("cat %s reported a direct path where none is possible:\n%s", name, r.stderr)
		}
	}
}

func checkDirect(t *testing.T, res [2]catResult, in [2][]byte, remotePrefix [2]string) {
	t.Helper()
	checkPath(t, res, in, "direct", remotePrefix)
}

func TestNetnsBothPublic(t *testing.T) {
	t.Parallel()
	res, in := runCell(t, "pub", [2]sideKind{public, public}, false, 40*time.Second, "path=direct")
	checkDirect(t, res, in, [2]string{"192.0.2.6:", "192.0.2.2:"})
}

func TestNetnsMasqueradeBoth(t *testing.T) {
	t.Parallel()
	res, in := runCell(t, "masq", [2]sideKind{masquerade, masquerade}, false, 40*time.Second, "path=direct")
	checkDirect(t, res, in, [2]string{"198.51.100.6:", "198.51.100.2:"})
}

func TestNetnsRandomFullyOneSide(t *testing.T) {
	t.Parallel()
	res, in := runCell(t, "rnd1", [2]sideKind{randomFull, masquerade}, false, 40*time.Second, "path=direct")
	checkDirect(t, res, in, [2]string{"198.51.100.6:", "198.51.100.2:"})
}

func TestNetnsSameNAT(t *testing.T) {
	t.Parallel()
	res, in := runCell(t, "same", [2]sideKind{masquerade, masquerade}, true, 40*time.Second, "path=direct")
	// Behind one NAT the host candidates on the LAN side work.
	checkDirect(t, res, in, [2]string{"10.0.2.2:", "10.0.1.2:"})
}

// Random-symmetric on both sides has no practical direct path (DESIGN §6.5): the
// pair must use the relay, and every byte still arrives.
func TestNetnsRandomFullyBoth(t *testing.T) {
	t.Parallel()
	res, in := runCell(t, "rnd2", [2]sideKind{randomFull, randomFull}, false, 40*time.Second, "")
	checkPath(t, res, in, "relay", [2]string{})
}
