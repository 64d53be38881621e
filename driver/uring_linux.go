//go:build linux

package driver

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/natpass/natpass/internal/uring"
)

// The holding reader (ServerConfig.ReadHold): a server socket read through
// io_uring by one goroutine locked to its thread. A multishot recvmsg fills
// provided buffers; with DEFER_TASKRUN the kernel keeps the completions until
// the thread asks, so while traffic flows the thread wakes once per hold (the
// timeout of its io_uring_enter) and hands the loop everything that arrived
// in it, rather than once per datagram or two: on this project's 2-core guest
// a wake-up costs ≈ 14 µs and a datagram's own kernel work ≈ 3.8 µs
// (BENCHMARKS.md, "Issue 18: the game-rate relay floor"). A wake-up that found
// no datagram, or one alone after a quiet hold, makes the next wait one per
// arrival, with no timeout: an idle server sleeps, and a lone datagram at a
// low rate waits for nothing.

const (
	uringBufCount    = 1024 // provided buffers per socket: ≤ this many datagrams per wake-up
	uringNameRoom    = 32   // ≥ unix.SizeofSockaddrInet6, keeps the control 8-aligned
	uringControlRoom = 96   // a packet-information control message, as batchReader's
	uringHeadRoom    = 16 + uringNameRoom + uringControlRoom
	// uringBufSize holds the header, the address, the control and a datagram
	// one byte longer than maxDatagram (seen as too long, not truncated).
	uringBufSize  = (uringHeadRoom + maxDatagram + 1 + 63) &^ 63
	uringBufGroup = 1
	// holdAfter: a wake-up that found at least this many datagrams makes the
	// next wait a hold; one that found fewer, and came longer than a hold after
	// the one before, makes the next wait for one arrival (a lone datagram is
	// read at once); one that found none, too. Counting alone was bistable: at
	// 20,000 datagrams a second a reader woken per arrival often found one
	// datagram and stayed waking per arrival (6.9 datagrams per wake-up
	// against 13.8 in a run of the bench).
	holdAfter = 2
	// holdMinComplete is the hold's io_uring_enter min_complete; with a multishot
	// recvmsg the kernel wakes the thread at the timeout anyway (the floor's
	// finding), so this only bounds a wait should it count datagrams.
	holdMinComplete = uringBufCount / 4

	userRecv   = 1 // the multishot recvmsg's completions
	userCancel = 2 // the eventfd poll that ends the reader (loop.shutdown)
)

// uringDisabled makes every holding reader fall back (tests of the fallback).
var uringDisabled atomic.Bool

// holdFds are a held socket's descriptors besides its net.UDPConn's: wake, an
// eventfd whose poll ends the reader's wait, and dup, the socket's descriptor
// the ring reads and the loop writes once the reader took the socket from Go's
// poller (-1 before). loop.shutdown closes both after the readers ended.
type holdFds struct {
	wake, dup int
}

// prepareHold gives s its wake eventfd; false if it cannot have one (s is
// then read as without a hold).
func (s *socket) prepareHold() bool {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return false
	}
	s.hold = &holdFds{wake: fd, dup: -1}
	return true
}

// wakeHold ends the holding reader's wait (its eventfd poll completes).
func (s *socket) wakeHold() {
	if s.hold != nil {
		one := [8]byte{1}
		_, _ = unix.Write(s.hold.wake, one[:])
	}
}

// closeHold closes the hold's descriptors; the reader has ended.
func (s *socket) closeHold() {
	if s.hold == nil {
		return
	}
	_ = unix.Close(s.hold.wake)
	if s.hold.dup >= 0 {
		_ = unix.Close(s.hold.dup)
	}
	s.hold = nil
}

// readHeld reads s through io_uring until the loop stops. It returns false,
// counted in holdFallbacks, when io_uring cannot be used here (the caller
// reads s with recvmmsg instead).
func (l *loop) readHeld(s *socket) bool {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := newUringReader(s, l.readHold, &l.stats)
	if err != nil {
		l.stats.holdFallbacks.Add(1)
		return false
	}
	defer r.close()
	if !l.detach(s, r) {
		return true
	}
	l.stats.holdReaders.Add(1)
	r.run(l.deliver)
	return true
}

// detach takes s away from Go's poller: the loop writes to the ring's dup of
// its descriptor from now on (rawConn), and s.conn is closed, so an arrival no
// longer wakes a thread waiting in epoll (it would, edge-triggered, once per
// datagram or two: what the hold saves). False if the loop stopped.
func (l *loop) detach(s *socket, r *uringReader) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	s.rc = rawConn{fd: r.fd}
	s.hold.dup, r.fd = r.fd, -1 // the socket's now: closed by shutdown
	r.readFd = s.hold.dup
	_ = s.conn.Close()
	return true
}

// uringReader is one held socket's ring, buffers and per-wake-up state. Only
// its goroutine, locked to the thread that made the ring, uses it.
type uringReader struct {
	s      *socket
	ring   *uring.Ring
	bufs   *uring.BufRing
	fd     int // the dup it made, until detach gives it to the socket
	readFd int // the descriptor the recvmsg reads
	msg    unix.Msghdr
	hold   time.Duration
	raw    bool // hold waits as raw system calls (GOMAXPROCS ≥ 2)
	st     *counters

	pkts      []packet
	ready     []*packet
	used      []uint16 // buffers this wake-up's completions filled
	complete  func(uring.CQE)
	armed     bool // the multishot recvmsg is in the kernel
	cancelled bool // the wake eventfd fired: the loop is shutting down
	overflow  uint32
}

// newUringReader makes the ring and its buffers on the calling thread (the
// ring's only issuer) and a dup of s's descriptor for it to read.
func newUringReader(s *socket, hold time.Duration, st *counters) (*uringReader, error) {
	if uringDisabled.Load() || s.hold == nil {
		return nil, uring.ErrUnsupported
	}
	ring, err := uring.New(64, 2*uringBufCount, uring.SetupSingleIssuer|uring.SetupDeferTaskrun|uring.SetupCQSize|uring.SetupSubmitAll)
	if err != nil {
		return nil, err
	}
	r := &uringReader{s: s, ring: ring, fd: -1, readFd: -1, hold: hold, st: st, raw: runtime.GOMAXPROCS(0) >= 2}
	if r.ring.Features()&uring.FeatExtArg == 0 {
		r.close()
		return nil, fmt.Errorf("%w: no IORING_FEAT_EXT_ARG", uring.ErrUnsupported)
	}
	if r.bufs, err = ring.RegisterBufRing(uringBufGroup, uringBufCount, uringBufSize); err != nil {
		r.close()
		return nil, err
	}
	var dupErr error
	if err := s.rc.Control(func(fd uintptr) { r.fd, dupErr = unix.Dup(int(fd)) }); err != nil || dupErr != nil {
		r.fd = -1
		r.close()
		return nil, fmt.Errorf("driver: dup for io_uring: %v %v", err, dupErr)
	}
	r.readFd = r.fd
	r.msg.Namelen = uringNameRoom
	r.msg.SetControllen(uringControlRoom)
	r.pkts = make([]packet, uringBufCount)
	r.ready = make([]*packet, 0, uringBufCount)
	r.used = make([]uint16, 0, uringBufCount)
	r.complete = r.take
	return r, nil
}

// close releases the ring, its buffers and a dup not handed to the socket.
func (r *uringReader) close() {
	if r.ring != nil {
		_ = r.ring.Close()
	}
	if r.bufs != nil {
		_ = r.bufs.Close()
	}
	if r.fd >= 0 {
		_ = unix.Close(r.fd)
	}
}

// run waits, reaps and delivers until the loop stops or shuts down.
func (r *uringReader) run(deliver func([]*packet) bool) {
	if sqe := r.ring.NextSQE(); sqe != nil {
		sqe.PrepPollAdd(r.s.hold.wake, unix.POLLIN, userCancel)
	}
	holding := false
	var last time.Time
	for {
		if !r.armed {
			r.arm()
		}
		w, raw := uring.Wait{MinComplete: 1}, false
		if holding {
			w, raw = uring.Wait{MinComplete: holdMinComplete, Timeout: int64(r.hold)}, r.raw
		}
		if _, err := r.ring.Enter(w, raw); err != nil {
			// EBADF, EFAULT and the like: the ring is unusable. Counted; the
			// socket goes unread (its kernel buffer drops and counts).
			r.st.holdEnterErrors.Add(1)
			return
		}
		r.st.holdWakeups.Add(1)
		found, now := r.reap(), time.Now()
		holding = found >= holdAfter || (found > 0 && now.Sub(last) < r.hold)
		last = now
		if r.cancelled {
			return
		}
		if len(r.ready) > 0 && !deliver(r.ready) {
			return
		}
		r.recycle()
	}
}

// arm queues the multishot recvmsg (again, after the kernel ended it: out of
// buffers, counted in holdNoBuffers).
func (r *uringReader) arm() {
	if sqe := r.ring.NextSQE(); sqe != nil {
		sqe.PrepRecvMsgMultishot(r.readFd, &r.msg, uringBufGroup, userRecv)
		r.armed = true
	}
}

// reap takes every completion into ready and returns how many datagrams
// arrived (those dropped as too long included).
func (r *uringReader) reap() int {
	r.ready, r.used = r.ready[:0], r.used[:0]
	r.ring.Completions(r.complete)
	if o := r.ring.Overflow(); o != r.overflow {
		r.st.holdOverflow.Add(uint64(o - r.overflow))
		r.overflow = o
	}
	r.st.holdDatagrams.Add(uint64(len(r.used)))
	return len(r.used)
}

// take is Completions' function: one completion.
func (r *uringReader) take(c uring.CQE) {
	switch c.UserData {
	case userCancel:
		r.cancelled = true
		return
	case userRecv:
	default:
		return
	}
	if !c.More() {
		r.armed = false
	}
	id, ok := c.Buffer()
	if c.Res < 0 || !ok {
		if c.Res == -int32(unix.ENOBUFS) {
			r.st.holdNoBuffers.Add(1)
		}
		return
	}
	r.used = append(r.used, id)
	p := &r.pkts[len(r.used)-1]
	if r.accept(p, r.bufs.Buf(id), int(c.Res)) {
		r.ready = append(r.ready, p)
	}
}

// accept fills p from a provided buffer holding n bytes and says whether it
// goes to the loop: too long (counted), an unknown address family, or the
// test loss model's drop do not.
func (r *uringReader) accept(p *packet, buf []byte, n int) bool {
	m, ok := uring.ParseRecvMsg(buf, n, uringNameRoom, uringControlRoom)
	switch {
	case !ok:
		return false
	case m.Truncated || len(m.Payload) > maxDatagram:
		r.st.tooLong.Add(1)
		return false
	}
	from, ok := sockaddrAddrPort((*unix.RawSockaddrInet6)(unsafe.Pointer(&buf[16])))
	if !ok || (r.s.dropRate > 0 && r.s.dropRNG.Float64() < r.s.dropRate) {
		return false
	}
	p.sock, p.from, p.buf, p.n, p.seg = r.s, from, m.Payload, len(m.Payload), 0
	p.dst, p.stream = netip.Addr{}, false
	if r.s.pktinfo {
		p.dst = pktinfoDst(m.Control)
	}
	return true
}

// recycle gives this wake-up's buffers back to the kernel (the loop is done
// with them: deliver returned).
func (r *uringReader) recycle() {
	for _, id := range r.used {
		r.bufs.Recycle(id)
	}
	if len(r.used) > 0 {
		r.bufs.Publish()
	}
}

// rawConn is a held socket's syscall.RawConn once Go's poller no longer
// watches it: the loop's sendmmsg (mmsgWriter) runs on the descriptor
// directly, waiting in poll(2) while the socket's buffer is full.
type rawConn struct{ fd int }

var _ syscall.RawConn = rawConn{}

func (c rawConn) Control(f func(fd uintptr)) error {
	f(uintptr(c.fd))
	return nil
}

func (c rawConn) Read(f func(fd uintptr) bool) error { return c.wait(f, unix.POLLIN) }

func (c rawConn) Write(f func(fd uintptr) bool) error { return c.wait(f, unix.POLLOUT) }

// wait calls f until it reports done, polling for events between calls.
func (c rawConn) wait(f func(fd uintptr) bool, events int16) error {
	for !f(uintptr(c.fd)) {
		fds := []unix.PollFd{{Fd: int32(c.fd), Events: events}}
		if _, err := unix.Poll(fds, 100); err != nil && err != unix.EINTR {
			return err
		}
	}
	return nil
}
