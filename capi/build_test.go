package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natpass/natpass/driver"
)

// The tests build the library and the C programs once per test binary (a
// c-shared and a c-archive link cost seconds each), into built.dir, which
// TestMain removes.
var built struct {
	once sync.Once
	dir  string
	skip string // no C compiler: every test skips with this
	err  error  // a build failed: every test fails with it
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildAll returns the directory holding libnatpass.so, libnatpass.a and the
// programs cat, sansio (against the shared library) and errors (against the
// archive), building them the first time.
func buildAll(t *testing.T) string {
	t.Helper()
	built.once.Do(func() { built.dir, built.skip, built.err = build() })
	if built.skip != "" {
		t.Skip(built.skip)
	}
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

func build() (dir, skip string, err error) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		return "", fmt.Sprintf("no C compiler (%s) on PATH: the C ABI tests need one (apt-get install gcc libc6-dev)", cc), nil
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", "no go command on PATH: the C ABI tests build the library with it", nil
	}
	if dir, err = os.MkdirTemp("", "natpass-capi-"); err != nil {
		return "", "", err
	}
	lib := "-L" + dir
	rpath := "-Wl,-rpath," + dir
	cflags := []string{"-std=c11", "-D_DEFAULT_SOURCE", "-Wall", "-Wextra", "-Werror", "-O2", "-I."}
	steps := [][]string{
		{goTool, "build", "-buildmode=c-shared", "-o", filepath.Join(dir, "libnatpass.so"), "."},
		{goTool, "build", "-buildmode=c-archive", "-o", filepath.Join(dir, "libnatpass.a"), "."},
		append(append([]string{cc}, cflags...), "-o", filepath.Join(dir, "cat"), "examples/cat.c", lib, rpath, "-lnatpass", "-lpthread"),
		append(append([]string{cc}, cflags...), "-o", filepath.Join(dir, "sansio"), "examples/sansio.c", lib, rpath, "-lnatpass"),
		append(append([]string{cc}, cflags...), "-o", filepath.Join(dir, "errors"), "testdata/errors.c", filepath.Join(dir, "libnatpass.a"), "-lpthread"),
	}
	for _, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "CC="+cc)
		if out, err := cmd.CombinedOutput(); err != nil {
			return dir, "", fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	return dir, "", nil
}

// startServer runs an --insecure-dev rendezvous server on loopback.
func startServer(t *testing.T) string {
	t.Helper()
	srv, err := driver.ListenServer(driver.ServerConfig{Listen: "127.0.0.1:0", InsecureDev: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv.Addr().String()
}

// testBound bounds every process and wait of a test, so that a hang fails the
// test with the programs' output instead of running into go test's timeout. It
// is no speed assertion: the exchanges take well under a second.
const testBound = 90 * time.Second

// proc is a program under test with its output.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr watchedBuffer
	done   chan struct{}
	err    error
}

func start(t *testing.T, ctx context.Context, stdin []byte, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: filepath.Base(name), done: make(chan struct{})}
	for _, a := range args {
		if strings.HasSuffix(a, ".py") {
			p.name = filepath.Base(a)
		}
	}
	p.cmd = exec.CommandContext(ctx, name, args...)
	p.cmd.Stdin = bytes.NewReader(stdin)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for the program to exit and fails the test unless it exited 0.
func (p *proc) wait(t *testing.T) {
	t.Helper()
	<-p.done
	if p.err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s", p.name, p.err, p.stderr.String())
	}
}

// waitStderr waits until the program printed s on stderr.
func (p *proc) waitStderr(t *testing.T, ctx context.Context, s string) {
	t.Helper()
	if err := p.stderr.waitFor(ctx, p.done, s); err != nil {
		t.Fatalf("%s: waiting for %q: %v\nstderr:\n%s", p.name, s, err, p.stderr.String())
	}
}

// watchedBuffer is a buffer one goroutine writes while another waits for text.
type watchedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func (w *watchedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.changed != nil {
		close(w.changed)
		w.changed = nil
	}
	return w.b.Write(p)
}

func (w *watchedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (w *watchedBuffer) waitFor(ctx context.Context, exited <-chan struct{}, s string) error {
	for {
		w.mu.Lock()
		if strings.Contains(w.b.String(), s) {
			w.mu.Unlock()
			return nil
		}
		if w.changed == nil {
			w.changed = make(chan struct{})
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-exited:
			return fmt.Errorf("the program exited")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sameBytes fails the test when got is not want, naming the first difference.
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: got %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
}
