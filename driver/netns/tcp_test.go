package netns

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

const (
	tcpBytes  = 8 << 20  // each way
	tcpPiece  = 64 << 10 // stdin is written in pieces this big
	tcpPace   = 40 * time.Millisecond
	tcpGateAt = 1 << 20 // stdin waits here until both cats relay over TCP
	tcpOpenAt = 2 << 20 // the UDP drop rules go once both cats received this much
	tcpListen = serverIP + ":443"
)

// Issue 15: both hosts behind MASQUERADE routers whose FORWARD chains drop all
// UDP. `natpass cat --server-tcp` registers over TCP and the pair moves data
// relayed over it; the drop rules go mid-transfer, and the pair moves back to UDP
// with every byte of 8 MiB each way intact, and then direct: both cats end on
// the direct path.
func TestNetnsTCPFallbackMovesBackToUDP(t *testing.T) {
	need(t)
	tp := newTopo(t, "tcp")
	core, hosts := tp.build([2]sideKind{masquerade, masquerade}, false)
	routers := [2]string{tp.prefix + "nata", tp.prefix + "natb"}
	for _, r := range routers {
		tp.in(r, "iptables", "-A", "FORWARD", "-p", "udp", "-j", "DROP")
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("netns test secret 0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	tp.runServer(ctx, core, "--listen", serverAt, "--listen2", serverIP2+":3479", "--secret-file", secretFile,
		"--quiet", "--tcp-listen", tcpListen)

	var in [2][]byte
	for i := range in {
		in[i] = make([]byte, tcpBytes)
		_, _ = rand.NewChaCha8([32]byte{byte(i), 't', 'c', 'p'}).Read(in[i])
	}
	relayed, direct := make(chan struct{}), make(chan struct{})
	var cats [2]*catProc
	cats[1] = tp.startCat(ctx, hosts[1], "b", "", serverAt, secretFile, "--server-tcp", tcpListen)
	if !waitFor(ctx, func() bool { return cats[1].stderr.contains("waiting for a peer") || cats[1].exited() }) || cats[1].exited() {
		t.Fatalf("cat b never registered over TCP (exit %v):\n%s", cats[1].err, cats[1].stderr.bytes())
	}
	cats[0] = tp.startCat(ctx, hosts[0], "a", "b", serverAt, secretFile, "--server-tcp", tcpListen)
	for i := range cats {
		go paceGated(ctx, cats[i].stdin, in[i], relayed, direct)
	}
	both := func(s string) bool { return cats[0].stderr.contains(s) && cats[1].stderr.contains(s) }
	if !waitFor(ctx, func() bool { return both("via=tcp") }) {
		t.Fatalf("no relay over TCP:\na: %s\nb: %s", cats[0].stderr.bytes(), cats[1].stderr.bytes())
	}
	close(relayed)
	if !waitFor(ctx, func() bool { return cats[0].stdout.len() >= tcpOpenAt && cats[1].stdout.len() >= tcpOpenAt }) {
		t.Fatal("the transfers did not get going over TCP")
	}
	for _, r := range routers {
		tp.in(r, "iptables", "-D", "FORWARD", "-p", "udp", "-j", "DROP")
	}
	t.Logf("UDP unblocked with %d and %d bytes received", cats[0].stdout.len(), cats[1].stdout.len())
	go func() {
		// The last piece waits for the direct path (at most 25 s: the move back,
		// a NAT measurement over UDP, the introduction, punching), so that the
		// transfer is still running if the pair gets there.
		wctx, cancel := context.WithTimeout(ctx, 25*time.Second)
		defer cancel()
		waitFor(wctx, func() bool { return both("path=direct") })
		close(direct)
	}()
	for i, c := range cats {
		select {
		case <-c.done:
		case <-ctx.Done():
			t.Fatalf("cat %s did not finish: %s", c.id, c.stderr.bytes())
		}
		checkTCPCat(t, c, in[1-i])
	}
}

// checkTCPCat asserts cat c exited 0 with every byte of want and reported the
// relay over TCP, the move back to UDP, and ended on the direct path.
func checkTCPCat(t *testing.T, c *catProc, want []byte) {
	t.Helper()
	stderr := c.stderr.bytes()
	if c.err != nil {
		t.Errorf("cat %s: %v\n%s", c.id, c.err, stderr)
		return
	}
	if got := c.stdout.bytes(); !bytes.Equal(got, want) {
		t.Errorf("cat %s received %d bytes; they differ from the %d its peer sent\n%s", c.id, len(got), len(want), stderr)
	}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^server transport=tcp`),
		regexp.MustCompile(`(?m)^path=relay .* via=tcp`),
		regexp.MustCompile(`(?m)^server transport=udp`),
	} {
		if !re.Match(stderr) {
			t.Errorf("cat %s printed no line matching %s:\n%s", c.id, re, stderr)
		}
	}
	if m := pathRE.FindAllSubmatch(stderr, -1); len(m) == 0 || string(m[len(m)-1][1]) != "direct" {
		t.Errorf("cat %s did not end on the direct path after the move back to UDP:\n%s", c.id, stderr)
	}
}

// paceGated writes data into w in tcpPiece pieces, one every tcpPace, waiting at
// tcpGateAt until relayed closes and before the last piece until direct closes,
// then closes w.
func paceGated(ctx context.Context, w io.WriteCloser, data []byte, relayed, direct <-chan struct{}) {
	defer w.Close()
	for off := 0; off < len(data); off += tcpPiece {
		gate := relayed
		switch {
		case off == tcpGateAt:
		case off+tcpPiece >= len(data):
			gate = direct
		default:
			gate = nil
		}
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return
			}
		}
		if _, err := w.Write(data[off:min(off+tcpPiece, len(data))]); err != nil {
			return
		}
		select {
		case <-time.After(tcpPace):
		case <-ctx.Done():
			return
		}
	}
}
