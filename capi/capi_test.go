package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/rudp"
)

// payload is n deterministic bytes, different for each seed.
func payload(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// catRun says how to run a cat program: prog with args before the flags (the
// Python script), its environment, the server, and each side's admission flags.
type catRun struct {
	prog             string
	pre, env         []string
	server           string
	aliceAdm, bobAdm []string
	size             int
}

// exchange runs the cat program as bob, accepting, and alice, connecting,
// through the server on loopback: each sends r.size bytes on stdin, and each
// must print the other's.
func exchange(t *testing.T, r catRun) (alice, bob *proc) {
	ctx, cancel := context.WithTimeout(context.Background(), testBound)
	defer cancel()
	aliceIn, bobIn := payload('a', r.size), payload('b', r.size)
	flags := func(id string, adm []string, more ...string) []string {
		f := append(append([]string{}, r.pre...), "--server", r.server, "--id", id)
		return append(append(f, adm...), more...)
	}
	bob = start(t, ctx, bobIn, r.env, r.prog, flags("bob", r.bobAdm)...)
	bob.waitStderr(t, ctx, "registered")
	alice = start(t, ctx, aliceIn, r.env, r.prog, flags("alice", r.aliceAdm, "--connect", "bob")...)
	alice.wait(t)
	bob.wait(t)
	sameBytes(t, "bob received", bob.stdout.Bytes(), aliceIn)
	sameBytes(t, "alice received", alice.stdout.Bytes(), bobIn)
	for _, p := range []*proc{alice, bob} {
		t.Logf("%s stderr:\n%s", p.name, p.stderr.String())
	}
	return alice, bob
}

// devRun is a 1 MiB exchange through an --insecure-dev server.
func devRun(t *testing.T, prog string, env []string, pre ...string) catRun {
	dev := []string{"--insecure-dev"}
	return catRun{prog: prog, pre: pre, env: env, server: startServer(t), aliceAdm: dev, bobAdm: dev, size: 1 << 20}
}

// TestCCatExchanges1MiBEachWay: two C programs on the driver level of the ABI
// (examples/cat.c) exchange 1 MiB each way through a server, byte for byte.
// The connecting side's Conn exists before the introduction, so it hears the
// first path change (natpass_path_event) whatever the timing; both print the
// connection's statistics (natpass_conn_stats_get).
func TestCCatExchanges1MiBEachWay(t *testing.T) {
	dir := buildAll(t)
	alice, bob := exchange(t, devRun(t, filepath.Join(dir, "cat"), nil))
	if !strings.Contains(alice.stderr.String(), "path=") {
		t.Errorf("alice printed no path event")
	}
	for _, p := range []*proc{alice, bob} {
		if !strings.Contains(p.stderr.String(), "cat: srtt=") {
			t.Errorf("%s printed no statistics", p.name)
		}
	}
}

// TestPythonCtypesCatExchanges1MiBEachWay: the same through Python's ctypes
// (examples/natpass.py, examples/cat.py).
func TestPythonCtypesCatExchanges1MiBEachWay(t *testing.T) {
	dir := buildAll(t)
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on PATH: the ctypes test needs it")
	}
	script, err := filepath.Abs("examples/cat.py")
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, devRun(t, python, []string{"NATPASS_LIB=" + filepath.Join(dir, "libnatpass.so")}, script))
}

// TestCCatAdmittedByTicketAndSecret: a server with a secret admits the C
// programs through the other two admissions natpass_config_set takes: bob
// mints his own ticket from the secret file, alice brings a ticket minted for
// her key (in natpass ticket's encodings).
func TestCCatAdmittedByTicketAndSecret(t *testing.T) {
	dir := buildAll(t)
	secret := []byte("a secret of more than sixteen bytes")
	srv, err := driver.ListenServer(driver.ServerConfig{Listen: "127.0.0.1:0", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	priv, pub, err := driver.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ticket, err := driver.MintTicket(secret, "alice", pub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, catRun{prog: filepath.Join(dir, "cat"), server: srv.Addr().String(), size: 64 << 10,
		aliceAdm: []string{"--ticket", base64.RawURLEncoding.EncodeToString(ticket), "--key", base64.StdEncoding.EncodeToString(priv[:])},
		bobAdm:   []string{"--secret-file", secretFile}})
}

// TestCErrorContract runs testdata/errors.c, linked against the c-archive
// build: error codes, the calling thread's message, truncation, stale handles
// and the Sans-IO argument checks, from C.
func TestCErrorContract(t *testing.T) {
	dir := buildAll(t)
	out, err := exec.Command(filepath.Join(dir, "errors")).CombinedOutput()
	if err != nil {
		t.Fatalf("errors: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "ok "); n < 20 {
		t.Fatalf("errors ran %d checks, want at least 20:\n%s", n, out)
	}
}

// echoPeer accepts one connection on n and answers every message with
// "echo: " and the message; it reports the messages and the error that ended
// the connection.
func echoPeer(ctx context.Context, n *driver.Node) (msgs []string, err error) {
	c, err := n.Accept(ctx)
	if err != nil {
		return nil, err
	}
	for {
		m, err := c.Recv(ctx)
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, string(m.Data))
		if err := c.Send(m.Lane, m.Mode, append([]byte("echo: "), m.Data...)); err != nil {
			return msgs, err
		}
	}
}

// TestCSansIOConnectsToGoPeer: the Sans-IO C program (examples/sansio.c, its
// own BSD sockets and clock) registers, is introduced to a Go driver node,
// completes the handshake, sends 5 messages, gets the echoes and closes; the
// Go side sees the messages and then the normal close (io.EOF).
func TestCSansIOConnectsToGoPeer(t *testing.T) {
	dir := buildAll(t)
	addr := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), testBound)
	defer cancel()
	n, err := driver.Listen(ctx, driver.Config{Server: addr, ID: "go-peer", InsecureDev: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	type result struct {
		msgs []string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		msgs, err := echoPeer(ctx, n)
		done <- result{msgs, err}
	}()
	p := start(t, ctx, nil, nil, filepath.Join(dir, "sansio"),
		"--server", addr, "--id", "c-sansio", "--insecure-dev", "--connect", "go-peer", "--count", "5")
	p.wait(t)
	var want, wantEchoes []string
	for i := range 5 {
		want = append(want, fmt.Sprintf("message %d", i))
		wantEchoes = append(wantEchoes, fmt.Sprintf("go-peer: echo: message %d", i))
	}
	if got := strings.Split(strings.TrimSpace(p.stdout.String()), "\n"); strings.Join(got, "|") != strings.Join(wantEchoes, "|") {
		t.Errorf("sansio printed %q, want %q", got, wantEchoes)
	}
	r := <-done
	if strings.Join(r.msgs, "|") != strings.Join(want, "|") || !errors.Is(r.err, io.EOF) {
		t.Errorf("Go peer got %q, ended by %v; want %q, then io.EOF", r.msgs, r.err, want)
	}
	t.Logf("sansio stderr:\n%s", p.stderr.String())
}

// TestCSansIOAcceptsGoPeer: the other way round: a Go driver node connects to
// the Sans-IO C program, which echoes messages (a 300 KiB one among them:
// fragments, and the flow-control credit the C side gives back as it polls)
// and exits 0 when the Go side closes.
func TestCSansIOAcceptsGoPeer(t *testing.T) {
	dir := buildAll(t)
	addr := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), testBound)
	defer cancel()
	p := start(t, ctx, nil, nil, filepath.Join(dir, "sansio"), "--server", addr, "--id", "c-echo", "--insecure-dev")
	p.waitStderr(t, ctx, "registered")
	n, err := driver.Listen(ctx, driver.Config{Server: addr, ID: "go-client", InsecureDev: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := n.Connect(ctx, "c-echo")
	if err != nil {
		t.Fatalf("connect: %v\nsansio stderr:\n%s", err, p.stderr.String())
	}
	msgs := [][]byte{[]byte("hello"), payload('x', 300<<10), {}, []byte("last")}
	for _, m := range msgs {
		if err := c.Send(0, rudp.ReliableOrdered, m); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range msgs {
		got, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("echo %d: %v\nsansio stderr:\n%s", i, err, p.stderr.String())
		}
		if got.Lane != 0 || got.Mode != rudp.ReliableOrdered {
			t.Errorf("echo %d came on lane %d mode %v, want lane 0 reliable-ordered", i, got.Lane, got.Mode)
		}
		sameBytes(t, fmt.Sprintf("echo %d", i), got.Data, append([]byte("echo: "), m...))
	}
	c.Close()
	p.wait(t)
	if !strings.Contains(p.stderr.String(), `"go-client" closed`) {
		t.Errorf("sansio did not report the close:\n%s", p.stderr.String())
	}
}
