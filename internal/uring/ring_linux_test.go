//go:build linux

package uring

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newTestRing makes a ring as a relay would (deferred task work, one issuer)
// on the calling goroutine's locked thread, or skips the test where io_uring
// cannot be used.
func newTestRing(t *testing.T) *Ring {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	r, err := New(64, 256, SetupCQSize|SetupSubmitAll|SetupSingleIssuer|SetupDeferTaskrun)
	if IsUnsupported(err) {
		t.Skipf("io_uring with DEFER_TASKRUN unavailable here (kernel ≥ 6.1 and kernel.io_uring_disabled = 0 needed): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if r.Features()&FeatExtArg == 0 {
		t.Skip("io_uring without IORING_FEAT_EXT_ARG (kernel < 5.11)")
	}
	return r
}

// udpSocket is a non-blocking UDP socket on 127.0.0.1 and its address.
func udpSocket(t *testing.T) (int, *unix.SockaddrInet4) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, sa.(*unix.SockaddrInet4)
}

// TestMultishotEcho sends datagrams from a client socket to a socket served by
// a multishot recvmsg and sends each back from its provided buffer with
// PrepSendMsgNow, every step through the ring: all arrive back, intact, with
// the client's address as their source, and the buffers go round the ring
// more than once.
func TestMultishotEcho(t *testing.T) {
	r := newTestRing(t)
	bufs, err := r.RegisterBufRing(1, 8, 256)
	if IsUnsupported(err) {
		t.Skipf("no provided-buffer rings here (kernel < 5.19): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	server, serverAddr := udpSocket(t)
	client, clientAddr := udpSocket(t)
	tmpl := &unix.Msghdr{Namelen: unix.SizeofSockaddrInet4}
	r.NextSQE().PrepRecvMsgMultishot(server, tmpl, 1, 1)
	if _, err := r.Enter(Wait{}, false); err != nil {
		t.Fatal(err)
	}
	const total = 40 // five times the buffers
	var got [][]byte
	sends := make([]unix.Msghdr, 4)
	iovs := make([]unix.Iovec, 4)
	for i := 0; i < total; i += 4 {
		for k := range 4 {
			if err := unix.Sendto(client, fmt.Appendf(nil, "datagram %d", i+k), 0, serverAddr); err != nil {
				t.Fatal(err)
			}
		}
		echoed := echoBatch(t, r, bufs, server, tmpl, sends, iovs, clientAddr)
		got = append(got, readAll(t, client, echoed)...)
	}
	if len(got) != total {
		t.Fatalf("%d of %d datagrams came back", len(got), total)
	}
	for i, g := range got {
		if want := fmt.Appendf(nil, "datagram %d", i); !bytes.Equal(g, want) {
			t.Fatalf("datagram %d came back as %q", i, g)
		}
	}
	if o := r.Overflow(); o != 0 {
		t.Fatalf("%d completions overflowed", o)
	}
}

// echoBatch waits for 4 completions of the multishot recvmsg, checks each
// source is want, sends each payload back in one Enter and recycles the
// buffers after it; it returns how many it sent.
func echoBatch(t *testing.T, r *Ring, bufs *BufRing, fd int, tmpl *unix.Msghdr, sends []unix.Msghdr, iovs []unix.Iovec, want *unix.SockaddrInet4) int {
	t.Helper()
	if _, err := r.Enter(Wait{MinComplete: 4, Timeout: int64(time.Second)}, false); err != nil {
		t.Fatal(err)
	}
	var used []uint16
	r.Completions(func(c CQE) {
		id, ok := c.Buffer()
		if c.Res < 0 || !ok || !c.More() {
			t.Fatalf("recvmsg completion %+v", c)
		}
		m, ok := ParseRecvMsg(bufs.Buf(id), int(c.Res), tmpl.Namelen, 0)
		name, payload := m.Name, m.Payload
		if !ok || m.Truncated || len(name) != unix.SizeofSockaddrInet4 || len(m.Control) != 0 {
			t.Fatalf("recvmsg buffer: %+v, ok %v", m, ok)
		}
		if port := int(name[2])<<8 | int(name[3]); port != want.Port {
			t.Fatalf("source port %d, want %d", port, want.Port)
		}
		k := len(used)
		iovs[k] = unix.Iovec{Base: &payload[0]}
		iovs[k].SetLen(len(payload))
		sends[k] = unix.Msghdr{Name: &name[0], Namelen: uint32(len(name)), Iov: &iovs[k], Iovlen: 1}
		r.NextSQE().PrepSendMsgNow(fd, &sends[k], 2)
		used = append(used, id)
	})
	if len(used) != 4 {
		t.Fatalf("%d completions, want 4", len(used))
	}
	if n, err := r.Enter(Wait{}, false); err != nil || n != len(used) {
		t.Fatalf("submitted %d sends of %d: %v", n, len(used), err)
	}
	r.Completions(func(c CQE) { t.Fatalf("a send failed: %+v", c) })
	for _, id := range used {
		bufs.Recycle(id)
	}
	bufs.Publish()
	return len(used)
}

// readAll reads n datagrams from fd, waiting up to a second for each.
func readAll(t *testing.T, fd, n int) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 512)
	for len(out) < n {
		k, err := unix.Read(fd, buf)
		if err == unix.EAGAIN {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if m, _ := unix.Poll(fds, 1000); m == 0 {
				t.Fatalf("%d of %d datagrams back after a second", len(out), n)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(buf[:k]))
	}
	return out
}

// TestWaitEndsWithoutCompletions: a bounded wait for completions that never
// come ends (at its timeout, or earlier on a signal) without an error and
// without completions, through the raw system call as through the scheduler's.
func TestWaitEndsWithoutCompletions(t *testing.T) {
	r := newTestRing(t)
	for _, raw := range []bool{true, false} {
		if _, err := r.Enter(Wait{MinComplete: 1, Timeout: int64(20 * time.Millisecond)}, raw); err != nil {
			t.Fatal(err)
		}
		if n := r.Completions(func(CQE) {}); n != 0 {
			t.Fatalf("%d completions from nothing", n)
		}
	}
}

// TestSQBounded: NextSQE hands out as many SQEs as the ring has and then nil.
func TestSQBounded(t *testing.T) {
	r := newTestRing(t)
	n := 0
	for r.NextSQE() != nil {
		n++
	}
	if n != 64 || r.Pending() != 64 {
		t.Fatalf("%d SQEs handed out, %d pending; want 64", n, r.Pending())
	}
}

func TestLayout(t *testing.T) {
	if s, c, p := unsafe.Sizeof(SQE{}), unsafe.Sizeof(CQE{}), unsafe.Sizeof(params{}); s != 64 || c != 16 || p != 120 {
		t.Fatalf("SQE %d, CQE %d, params %d bytes; the kernel's are 64, 16, 120", s, c, p)
	}
}
