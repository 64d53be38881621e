package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func pipeSize(t *testing.T, f *os.File) int {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var size int
	var serr error
	if err := rc.Control(func(fd uintptr) { size, serr = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0) }); err != nil || serr != nil {
		t.Fatalf("F_GETPIPE_SZ: %v %v", err, serr)
	}
	return size
}

// growPipe makes a pipe 1 MiB and leaves it non-blocking (a read deadline still
// works); anything else it leaves alone.
func TestGrowPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if got := pipeSize(t, r); got >= catPipeBytes {
		t.Skipf("pipes start at %d bytes here: nothing to grow", got)
	}
	growPipe(r)
	if got := pipeSize(t, w); got != catPipeBytes {
		// The user's pipe budget may be spent (pipe-user-pages-soft): then
		// growPipe leaves it, which is what it promises.
		t.Errorf("after growPipe the pipe holds %d bytes, want %d", got, catPipeBytes)
	}
	if err := r.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read of an empty pipe after growPipe: %v, want the deadline (the pipe stays non-blocking)", err)
	}

	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	growPipe(f)
	growPipe(bytes.NewReader(nil))
	if b, err := os.ReadFile(path); err != nil || string(b) != "data" {
		t.Errorf("a regular file after growPipe: %q, %v", b, err)
	}
}
