package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natpass/natpass/natsbus"
)

// clusterMember is one `natpass server` of a test cluster, run in-process.
type clusterMember struct {
	addr   string
	admin  net.Addr // the admin endpoint (/metrics, /readyz)
	bus    *natsbus.Bus
	stop   context.CancelFunc
	exited chan int
	stderr *syncBuffer // the server's log
}

// startCluster runs n servers joined by routes and waits until every route is up.
// The first server's drain timeout is drain0; the others give up draining at once
// at cleanup, when their nodes are gone and only time would end the sessions.
func startCluster(t *testing.T, n int, secretFile, drain0 string) []*clusterMember {
	t.Helper()
	clusterSecret := filepath.Join(t.TempDir(), "cluster-secret")
	if err := os.WriteFile(clusterSecret, []byte("a cluster secret for natpass tests only"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The first server's route listener takes a free port itself (port 0); the others
	// name it as their one peer and learn the rest by gossip. (Picking free ports
	// ahead for all of them raced with the embedded servers' own client listeners.)
	var ms []*clusterMember
	for i := range n {
		args := []string{"--admin-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--secret-file", secretFile, "--cluster-name", "test",
			"--cluster-listen", "127.0.0.1:0", "--cluster-secret-file", clusterSecret, "--drain-timeout", "100ms"}
		if i > 0 {
			args = append(args, "--cluster-peers", "nats://"+ms[0].bus.ClusterAddr())
		}
		if i == 0 {
			args[len(args)-1] = drain0
		}
		ms = append(ms, runClusterMember(t, args))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, m := range ms {
		if err := m.bus.WaitPeers(ctx, n-1); err != nil {
			t.Fatalf("server %d: routes to %d of %d others: %v", i, m.bus.Peers(), n-1, err)
		}
	}
	return ms
}

func runClusterMember(t *testing.T, args []string) *clusterMember {
	t.Helper()
	return runClusterMemberWith(t, args, nil)
}

// runClusterMemberWith is runClusterMember that also hands the started server to
// onUp (nil: nothing more).
func runClusterMemberWith(t *testing.T, args []string, onUp func(serverUp)) *clusterMember {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &clusterMember{stop: cancel, exited: make(chan int, 1), stderr: &syncBuffer{}}
	started := make(chan struct{})
	go func() {
		m.exited <- serverMain(ctx, args, m.stderr, func(up serverUp) {
			m.addr, m.bus, m.admin = up.srv.Addr().String(), up.bus, up.admin
			if onUp != nil {
				onUp(up)
			}
			close(started)
		})
	}()
	select {
	case <-started:
	case code := <-m.exited:
		t.Fatalf("server exited %d: %s", code, m.stderr.String())
	}
	t.Cleanup(func() {
		cancel()
		<-m.exited
	})
	return m
}

// waitInterest waits until server m's bus sees a subscriber for peer id: the peer
// is registered somewhere in the cluster and m knows it.
func (m *clusterMember) waitInterest(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.bus.WaitInterest(ctx, "peer."+hex.EncodeToString([]byte(id))); err != nil {
		t.Fatalf("no interest for %q: %v", id, err)
	}
}

// waitRegistered waits until stderr reports a registration.
func waitRegistered(t *testing.T, stderr *syncBuffer) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "registered as"); {
		if time.Now().After(deadline) {
			t.Fatalf("never registered: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two cats on two servers of a three-server cluster, relayed across the servers,
// move bytes both ways intact; a peer registered nowhere is "not here" at once.
func TestClusterCatAcrossServers(t *testing.T) {
	secretFile, _ := writeSecret(t)
	ms := startCluster(t, 3, secretFile, "100ms")
	inA, inB := randomBytes(1, 256<<10), randomBytes(2, 128<<10)
	codes, outs, errs := runCats(t,
		[]string{"--server", ms[0].addr, "--id", "cl-a", "--connect", "cl-b", "--relay", "force", "--secret-file", secretFile}, inA,
		[]string{"--server", ms[1].addr, "--id", "cl-b", "--secret-file", secretFile}, inB,
		func(errB *syncBuffer) { waitRegistered(t, errB); ms[0].waitInterest(t, "cl-b") })
	for i := range 2 {
		if codes[i] != 0 || !strings.Contains(errs[i].String(), "path=relay") {
			t.Errorf("cat %d exit %d, want 0 and path=relay; stderr:\n%s", i, codes[i], errs[i].String())
		}
	}
	if !bytes.Equal(outs[1].Bytes(), inA) || !bytes.Equal(outs[0].Bytes(), inB) {
		t.Errorf("b got %d of %d bytes, a got %d of %d", len(outs[1].Bytes()), len(inA), len(outs[0].Bytes()), len(inB))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	code := catMain(ctx, []string{"--server", ms[2].addr, "--id", "cl-c", "--connect", "nobody", "--secret-file", secretFile},
		bytes.NewReader(nil), &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "peer not here") {
		t.Errorf("connect to a peer registered nowhere: exit %d; want an error saying 'peer not here'; stderr:\n%s", code, errOut.String())
	}
}

// SIGTERM on a server of the cluster drains it: its node moves to the next server
// of its list mid-transfer, the relayed transfer through the cluster completes
// intact, and the server exits 0 once the node has moved.
func TestClusterServerDrainMovesNodes(t *testing.T) {
	secretFile, _ := writeSecret(t)
	ms := startCluster(t, 3, secretFile, "15s")
	data := randomBytes(3, 2<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var outB, errB, outA, errA syncBuffer
	var codeB int
	done := make(chan struct{})
	go func() {
		defer close(done)
		codeB = catMain(ctx, []string{"--server", ms[1].addr, "--id", "dr-b", "--secret-file", secretFile},
			bytes.NewReader(nil), &outB, &errB)
	}()
	waitRegistered(t, &errB)
	ms[0].waitInterest(t, "dr-b")
	pr, pw := io.Pipe()
	go func() { // 2 MiB in 64 KiB pieces over about 1.5 s: the drain lands mid-transfer
		for off := 0; off < len(data); off += 64 << 10 {
			if _, err := pw.Write(data[off:min(off+64<<10, len(data))]); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		pw.Close()
	}()
	go func() {
		for len(outB.Bytes()) < 256<<10 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		ms[0].stop() // SIGTERM
	}()
	codeA := catMain(ctx, []string{"--server", ms[0].addr + "," + ms[2].addr, "--id", "dr-a", "--connect", "dr-b",
		"--relay", "force", "--secret-file", secretFile}, pr, &outA, &errA)
	<-done
	if codeA != 0 || codeB != 0 {
		t.Errorf("exit a %d, b %d; stderr a:\n%s\nb:\n%s", codeA, codeB, errA.String(), errB.String())
	}
	if !bytes.Equal(outB.Bytes(), data) {
		t.Errorf("b got %d of %d bytes (intact: %v)", len(outB.Bytes()), len(data), bytes.HasPrefix(data, outB.Bytes()))
	}
	moved := fmt.Sprintf("server from=%s to=%s reason=%q", ms[0].addr, ms[2].addr, "server moving")
	if !strings.Contains(errA.String(), moved) {
		t.Errorf("a's stderr lacks %q:\n%s", moved, errA.String())
	}
	if code := <-ms[0].exited; code != 0 || !strings.Contains(ms[0].stderr.String(), "drained: every node moved") {
		t.Errorf("drained server exit %d; stderr:\n%s", code, ms[0].stderr.String())
	}
	ms[0].exited <- 0 // for the cleanup
}

// A cluster needs its secret: a route listener without --cluster-secret-file is
// refused before anything starts (natsbus.TestRouteWithoutSecretRefused shows a
// route presenting no or another secret refused by a running cluster).
func TestClusterFlagsNeedSecret(t *testing.T) {
	secretFile, _ := writeSecret(t)
	for _, args := range [][]string{
		{"--listen", "127.0.0.1:0", "--secret-file", secretFile, "--cluster-listen", "127.0.0.1:0"},
		{"--listen", "127.0.0.1:0", "--secret-file", secretFile, "--cluster-secret-file", secretFile},
		{"--listen", "127.0.0.1:0", "--insecure-dev", "--nats", "nats://127.0.0.1:1"},
	} {
		var stderr syncBuffer
		if code := serverMain(context.Background(), args, &stderr, nil); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %s", args, code, stderr.String())
		}
	}
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = r.Read(b)
	return b
}

// One ID registered on two servers of the cluster: the newest registration wins and
// the older cat stops with a clear "replaced" error instead of taking the ID back.
func TestClusterDuplicateIDNewestWins(t *testing.T) {
	secretFile, _ := writeSecret(t)
	ms := startCluster(t, 2, secretFile, "100ms")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out1, err1, out2, err2 syncBuffer
	first := make(chan int, 1)
	hold, release := io.Pipe()
	defer release.Close()
	go func() {
		first <- catMain(ctx, []string{"--server", ms[0].addr, "--id", "twice", "--secret-file", secretFile}, hold, &out1, &err1)
	}()
	waitRegistered(t, &err1)
	ms[1].waitInterest(t, "twice")
	go catMain(ctx, []string{"--server", ms[1].addr, "--id", "twice", "--secret-file", secretFile}, hold, &out2, &err2)
	select {
	case code := <-first:
		if code == 0 || !strings.Contains(err1.String(), "replaced") {
			t.Errorf("older cat exit %d; want an error saying replaced; stderr:\n%s", code, err1.String())
		}
	case <-ctx.Done():
		t.Fatalf("the older cat was never told; stderr:\n%s", err1.String())
	}
	waitRegistered(t, &err2)
	if strings.Contains(err2.String(), "replaced") {
		t.Errorf("the newer cat was replaced: %s", err2.String())
	}
}
