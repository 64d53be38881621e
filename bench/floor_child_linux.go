//go:build linux

package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The relay floor (BENCHMARKS.md, "Issue 18: the game-rate relay floor"): the
// least a user-space relay can do per game datagram on this machine, as a
// child process of this binary whose CPU time is read as the servers' is.
// Frames are `F1 kind channel(2)` + payload on one UDP socket:
//   - kind 01 from a session's receiving end binds the channel's destination,
//   - kind 05 from its sending end binds the channel's source,
//   - kind 02 from the bound source is forwarded to the bound destination as
//     kind 03, payload untouched; from anyone else it is counted and dropped.
//
// Binds are answered with kind 04. One table lookup and one address compare per
// datagram: what a TURN server's channel check costs at the least, and less
// than natpass's session check. Two styles of the same loop:
//   - floorPoll: Go's netpoller and raw recvmmsg/sendmmsg, as driver/ reads and
//     writes (one goroutine, reads until a short read, then waits for readiness);
//   - floorUring: a thread locked to one io_uring (internal/uring): a multishot
//     recvmsg, each batch's sends submitted with the wait for the next batch in
//     one io_uring_enter, the wait bounded by a hold (floorHoldEnv).
//
// Its standard input is as the natpass child's: closing it ends the process;
// "stats" is answered with "in forwarded", "wakes" with the loop's counters,
// "holds" and "holdreset" with the hold histogram's (floor_hold_linux.go).

const (
	floorPollChild  = "floor-poll"
	floorUringChild = "floor-uring"
	// floorHoldEnv is the io_uring style's wait bound in µs (default 500):
	// how long a datagram may wait in the kernel for others to batch with.
	floorHoldEnv = "NATPASS_BENCH_FLOOR_HOLD_US"
	// floorBatchEnv is the io_uring style's min_complete (default 64). Measured
	// on 6.18, it does not end a wait early with a multishot recvmsg under
	// DEFER_TASKRUN (BENCHMARKS.md): the hold is what bounds the wait.
	floorBatchEnv = "NATPASS_BENCH_FLOOR_BATCH"
	// floorMinWaitEnv, set to 1, bounds the hold with the ext arg's
	// min_wait_usec (Linux 6.12) instead of its timeout: after the hold any one
	// completion ends the wait, and an idle relay sleeps up to 1 s.
	floorMinWaitEnv = "NATPASS_BENCH_FLOOR_MINWAIT"

	floorBind, floorData, floorDeliver, floorBound, floorBindSrc = 0x01, 0x02, 0x03, 0x04, 0x05
	floorMagic                                                   = 0xF1
	floorBufLen                                                  = 2048
)

// floorCounters are one floor relay's counts, written by its loop only.
type floorCounters struct {
	in, forwarded, dropped atomic.Uint64
	wakes                  atomic.Uint64 // poller waits (poll) or io_uring_enter returns (uring)
	reads                  atomic.Uint64 // recvmmsg calls that returned datagrams (poll)
	sendCalls              atomic.Uint64 // sendmmsg calls (poll), enters that submitted sends (uring)
	sendFailed             atomic.Uint64 // datagrams the kernel refused
	noBuffers, sqFull      atomic.Uint64 // uring: recvmsg out of buffers, SQ full mid-batch
	holds                  floorHolds    // with floorStampEnv
}

// floorTable is the channels' bound ends, indexed by channel.
type floorTable struct {
	src, dst [1 << 16]unix.RawSockaddrInet4
}

// route decides what to do with one datagram of n bytes in buf from `from`: it
// returns where to send buf[:n] (rewritten in place), or nil to drop it.
func (t *floorTable) route(buf []byte, n int, from *unix.RawSockaddrInet4, c *floorCounters) *unix.RawSockaddrInet4 {
	c.in.Add(1)
	if n < 4 || buf[0] != floorMagic {
		c.dropped.Add(1)
		return nil
	}
	ch := int(buf[2])<<8 | int(buf[3])
	switch buf[1] {
	case floorData:
		if s := &t.src[ch]; s.Port != from.Port || s.Addr != from.Addr || t.dst[ch].Port == 0 {
			c.dropped.Add(1)
			return nil
		}
		buf[1] = floorDeliver
		c.forwarded.Add(1)
		return &t.dst[ch]
	case floorBind:
		t.dst[ch] = *from
	case floorBindSrc:
		t.src[ch] = *from
	default:
		c.dropped.Add(1)
		return nil
	}
	buf[1] = floorBound
	return from
}

// runFloorChildIfAsked serves as a floor relay and exits when this process was
// started as one; it runs from init, so it works in the test binary too.
func runFloorChildIfAsked() {
	style := os.Getenv(childEnv)
	if style != floorPollChild && style != floorUringChild {
		return
	}
	c, t := &floorCounters{}, &floorTable{}
	failed := make(chan error, 1)
	var addr string
	if style == floorPollChild {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench floor child:", err)
			os.Exit(1)
		}
		_ = conn.SetReadBuffer(4 << 20)
		_ = conn.SetWriteBuffer(4 << 20)
		addr = conn.LocalAddr().String()
		if os.Getenv(floorStampEnv) == "1" {
			rc, _ := conn.SyscallConn()
			_ = rc.Control(func(fd uintptr) { _ = c.holds.enableStamps(int(fd)) })
		}
		go func() { failed <- floorPoll(conn, t, c) }()
	} else {
		// Outside Go's poller: its epoll registration would wake a thread per
		// arrival, which is what the ring is there to avoid.
		fd, err := floorRawSocket()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench floor child:", err)
			os.Exit(1)
		}
		if os.Getenv(floorStampEnv) == "1" {
			_ = c.holds.enableStamps(fd)
		}
		sa, _ := unix.Getsockname(fd)
		a4 := sa.(*unix.SockaddrInet4)
		addr = fmt.Sprintf("%d.%d.%d.%d:%d", a4.Addr[0], a4.Addr[1], a4.Addr[2], a4.Addr[3], a4.Port)
		go func() { failed <- floorUring(fd, t, c, floorUringConfigFromEnv()) }()
	}
	fmt.Println(addr)
	go floorAnswer(c)
	err := <-failed
	fmt.Fprintln(os.Stderr, "bench floor child:", err)
	os.Exit(1)
}

// floorRawSocket is a UDP socket on 127.0.0.1 with 4 MiB buffers, not in Go's poller.
func floorRawSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// floorAnswer answers the parent's lines until stdin closes, then exits.
func floorAnswer(c *floorCounters) {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "stats":
			fmt.Println(c.in.Load(), c.forwarded.Load())
		case "wakes":
			fmt.Println(c.wakes.Load(), c.reads.Load(), c.sendCalls.Load(), c.sendFailed.Load(), c.dropped.Load(),
				c.noBuffers.Load(), c.sqFull.Load())
		case "holds":
			fmt.Println(c.holds.report())
		case "holdreset":
			c.holds.reset()
			fmt.Println("ok")
		}
	}
	os.Exit(0)
}

// floorUringConfig is the io_uring style's wait.
type floorUringConfig struct {
	hold    time.Duration
	batch   uint32
	minWait bool
}

func floorUringConfigFromEnv() floorUringConfig {
	cfg := floorUringConfig{hold: 500 * time.Microsecond, batch: 64}
	if us, err := strconv.Atoi(os.Getenv(floorHoldEnv)); err == nil && us >= 0 {
		cfg.hold = time.Duration(us) * time.Microsecond
	}
	if b, err := strconv.Atoi(os.Getenv(floorBatchEnv)); err == nil && b > 0 {
		cfg.batch = uint32(b)
	}
	cfg.minWait = os.Getenv(floorMinWaitEnv) == "1"
	return cfg
}

// floorPollBatch is how many datagrams one recvmmsg or sendmmsg takes.
const floorPollBatch = 32

// floorPoll is the netpoller style: recvmmsg until a short read, route, one
// sendmmsg for what the read produced, then wait for readiness.
func floorPoll(conn *net.UDPConn, t *floorTable, c *floorCounters) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var (
		rhdrs, shdrs [floorPollBatch]unix.Mmsghdr
		riovs, siovs [floorPollBatch]unix.Iovec
		names        [floorPollBatch]unix.RawSockaddrInet4
		controls     [floorPollBatch][64]byte
		bufs         [floorPollBatch][floorBufLen]byte
	)
	for i := range floorPollBatch {
		riovs[i].Base = &bufs[i][0]
		riovs[i].SetLen(floorBufLen)
		rhdrs[i].Hdr.Iov, siovs[i].Base = &riovs[i], &bufs[i][0]
		rhdrs[i].Hdr.SetIovlen(1)
		shdrs[i].Hdr.Iov = &siovs[i]
		shdrs[i].Hdr.SetIovlen(1)
	}
	waitFirst := false
	recv := func(fd uintptr) bool {
		if waitFirst {
			waitFirst = false
			c.wakes.Add(1)
			return false
		}
		for i := range floorPollBatch {
			rhdrs[i].Hdr.Name, rhdrs[i].Hdr.Namelen = (*byte)(unsafe.Pointer(&names[i])), unix.SizeofSockaddrInet4
			if c.holds.on {
				rhdrs[i].Hdr.Control = &controls[i][0]
				rhdrs[i].Hdr.SetControllen(len(controls[i]))
			}
		}
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&rhdrs[0])), floorPollBatch, unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN {
			c.wakes.Add(1)
			return false
		}
		if e == 0 {
			c.reads.Add(1)
			k, woke := 0, c.holds.wokeAt()
			for i := range int(n) {
				c.holds.add(controls[i][:rhdrs[i].Hdr.Controllen], woke)
				if to := t.route(bufs[i][:], int(rhdrs[i].Len), &names[i], c); to != nil {
					shdrs[k].Hdr.Name, shdrs[k].Hdr.Namelen = (*byte)(unsafe.Pointer(to)), unix.SizeofSockaddrInet4
					siovs[k].Base = &bufs[i][0]
					siovs[k].SetLen(int(rhdrs[i].Len))
					k++
				}
			}
			floorSendmmsg(fd, shdrs[:k], c)
			waitFirst = int(n) < floorPollBatch
		}
		return true
	}
	for {
		if err := rc.Read(recv); err != nil {
			return err
		}
	}
}

// floorSendmmsg sends hdrs with non-blocking sendmmsg calls, skipping (and
// counting) a datagram the kernel refuses.
func floorSendmmsg(fd uintptr, hdrs []unix.Mmsghdr, c *floorCounters) {
	for len(hdrs) > 0 {
		n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), unix.MSG_DONTWAIT, 0, 0)
		c.sendCalls.Add(1)
		if e != 0 || n == 0 {
			c.sendFailed.Add(1)
			n = 1
		}
		hdrs = hdrs[n:]
	}
}

func init() { runFloorChildIfAsked() }
