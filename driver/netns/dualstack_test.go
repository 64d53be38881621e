package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The dual-stack topology's IPv6 addresses (2001:db8::/32, documentation): the
// server's two on the core's loopback, a /64 per core link and per LAN.
const (
	serverIP6  = "2001:db8:ff::1"
	serverIP6b = "2001:db8:ff::2"
	serverName = "natpass-server" // in each host's hosts file with an A and an AAAA record
)

// addr6 adds an IPv6 address without duplicate address detection, which would
// leave it tentative (unusable) for a second or two.
func (tp *topo) addr6(ns, dev, cidr string) {
	tp.t.Helper()
	tp.sh("ip", "-n", ns, "-6", "addr", "add", cidr, "dev", dev, "nodad")
}

// forward6 turns on IPv6 forwarding in ns.
func (tp *topo) forward6(ns string) {
	tp.t.Helper()
	tp.in(ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding")
}

// hostsFile gives namespace ns an /etc/hosts naming the server with both
// families' addresses (ip netns exec bind-mounts /etc/netns/NS/hosts over
// /etc/hosts for the processes it starts).
func (tp *topo) hostsFile(ns string) {
	tp.t.Helper()
	dir := filepath.Join("/etc/netns", ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tp.t.Fatal(err)
	}
	tp.t.Cleanup(func() { os.RemoveAll(dir) })
	hosts := fmt.Sprintf("127.0.0.1 localhost\n%s %s\n%s %s\n", serverIP, serverName, serverIP6, serverName)
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts), 0o644); err != nil {
		tp.t.Fatal(err)
	}
}

// dualSide adds IPv6 to side i built by tp.side (host behind router "nat"+name):
// core link 2001:db8:c<i>::/64, LAN 2001:db8:<i>::/64, routes both ways, and a
// stateful ip6tables firewall on the router: outbound flows pass, inbound only
// what belongs to one (RFC 6092's default for residential gateways).
func (tp *topo) dualSide(core, name string, i int) {
	tp.t.Helper()
	nat, host := tp.prefix+"nat"+name, tp.prefix+name
	tp.forward6(nat)
	tp.addr6(core, fmt.Sprintf("c%d", i+1), fmt.Sprintf("2001:db8:c%d::1/64", i+1))
	tp.addr6(nat, "wan", fmt.Sprintf("2001:db8:c%d::2/64", i+1))
	tp.addr6(nat, "lan", fmt.Sprintf("2001:db8:%d::1/64", i+1))
	tp.addr6(host, "eth0", fmt.Sprintf("2001:db8:%d::2/64", i+1))
	tp.sh("ip", "-n", host, "-6", "route", "add", "default", "via", fmt.Sprintf("2001:db8:%d::1", i+1))
	tp.sh("ip", "-n", nat, "-6", "route", "add", "default", "via", fmt.Sprintf("2001:db8:c%d::1", i+1))
	tp.sh("ip", "-n", core, "-6", "route", "add", fmt.Sprintf("2001:db8:%d::/64", i+1), "via", fmt.Sprintf("2001:db8:c%d::2", i+1))
	tp.in(nat, "ip6tables", "-P", "FORWARD", "DROP")
	tp.in(nat, "ip6tables", "-A", "FORWARD", "-i", "lan", "-o", "wan", "-j", "ACCEPT")
	tp.in(nat, "ip6tables", "-A", "FORWARD", "-i", "wan", "-o", "lan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	tp.hostsFile(host)
}

// TestNetnsDualStackEndsDirectOverIPv6 is issue 15's dual-stack acceptance: two
// hosts each behind a random-symmetric IPv4 NAT (MASQUERADE --random-fully: no
// direct IPv4 path) and a stateful IPv6 firewall, the server on both families and
// known by a name with an A and an AAAA record. natcheck reports each family, and
// the pair ends direct over IPv6 with 1 MiB each way intact.
func TestNetnsDualStackEndsDirectOverIPv6(t *testing.T) {
	need(t)
	if _, err := exec.LookPath("ip6tables"); err != nil {
		t.Skip("the dual-stack namespace test needs ip6tables (apt-get install iptables); skipped")
	}
	t.Parallel()
	tp := newTopo(t, "dual")
	core, hosts := tp.build([2]sideKind{randomFull, randomFull}, false)
	tp.forward6(core)
	tp.addr6(core, "lo", serverIP6+"/128")
	tp.addr6(core, "lo", serverIP6b+"/128")
	for i, name := range []string{"a", "b"} {
		tp.dualSide(core, name, i)
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("netns test secret 0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tp.runServer(ctx, core, "--listen", serverAt, "--listen", "["+serverIP6+"]:3478",
		"--listen2", serverIP2+":3479", "--listen2", "["+serverIP6b+"]:3479", "--secret-file", secretFile, "--quiet")
	checkDualNatcheck(t, ctx, hosts[0], secretFile)

	rng := rand.New(rand.NewPCG(6, 4))
	var in [2][]byte
	for i := range in {
		in[i] = make([]byte, 1<<20)
		for j := range in[i] {
			in[i][j] = byte(rng.Uint32())
		}
	}
	var res [2]catResult
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); res[1] = tp.catVia(ctx, hosts[1], "b", "", secretFile, in[1]) }()
	go func() {
		defer wg.Done()
		time.Sleep(300 * time.Millisecond) // b registers first, so a's introduction finds it
		res[0] = tp.catVia(ctx, hosts[0], "a", "b", secretFile, in[0])
	}()
	wg.Wait()
	for i, r := range res {
		if m := pathRE.FindAllSubmatch(r.stderr, -1); len(m) > 0 {
			t.Logf("cat %c: %d path lines, last %s", 'a'+i, len(m), m[len(m)-1][0])
		}
	}
	checkDirect(t, res, in, [2]string{"[2001:db8:2::2]:", "[2001:db8:1::2]:"})
}

// catVia runs natpass cat on host against the server by name, holding its input
// open until it reports a direct path (at most 20 s), as tp.cat does.
func (tp *topo) catVia(ctx context.Context, host, id, connect, secretFile string, stdin []byte) catResult {
	cmd := exec.CommandContext(ctx, "ip", catArgs(host, id, connect, serverName+":3478", secretFile, 40*time.Second)...)
	var out bytes.Buffer
	errb := &watchBuffer{want: []byte("path=direct"), seen: make(chan struct{})}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return catResult{err: err}
	}
	go func() {
		_, _ = stdinW.Write(stdin)
		select {
		case <-errb.seen:
		case <-time.After(20 * time.Second):
		case <-ctx.Done():
		}
		stdinW.Close()
	}()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, &out, errb
	err = cmd.Run()
	stdinR.Close()
	return catResult{err: err, stdout: out.Bytes(), stderr: errb.bytes()}
}

// checkDualNatcheck runs natcheck on host by the server's name: the IPv4 report
// must show a translating, symmetric NAT and the IPv6 one no translation (a
// firewall only) on the host's own address.
func checkDualNatcheck(t *testing.T, ctx context.Context, host, secretFile string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", host, natpassBin, "natcheck", "--server", serverName+":3478",
		"--secret-file", secretFile, "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("natcheck: %v: %s", err, out)
	}
	var r struct {
		Family, Local, External, Mapping string
		Translation                      bool
		Other                            *struct {
			Family, Local, External string
			Translation             bool
		}
		OtherError string `json:"other_error"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		t.Fatalf("natcheck --json printed %q: %v", out, err)
	}
	if r.Family != "ipv4" || !r.Translation || r.Mapping == "endpoint-independent" {
		t.Errorf("natcheck's IPv4 report %+v: want a translating, symmetric NAT", r)
	}
	if r.Other == nil {
		t.Fatalf("natcheck reported no IPv6 family (%s): %s", r.OtherError, out)
	}
	if r.Other.Family != "ipv6" || r.Other.Translation || r.Other.External != r.Other.Local || !strings.HasPrefix(r.Other.Local, "[2001:db8:1::2]:") {
		t.Errorf("natcheck's IPv6 report %+v: want no translation on [2001:db8:1::2]", *r.Other)
	}
}
