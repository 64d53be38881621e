//go:build linux

package main

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/natpass/natpass/internal/uring"
)

// The io_uring style of the floor relay (floor_child_linux.go says what it
// relays): one goroutine locked to its thread owns a ring made with
// DEFER_TASKRUN, so arrivals become completions only when that thread asks,
// and it is woken only when cfg.batch of them are pending or its hold ran out.
// Each io_uring_enter submits the previous batch's sends (MSG_DONTWAIT: done,
// or refused, before the call returns, so their buffers go back to the
// buffer ring right after) and waits for the next batch. The enter is a raw
// system call: the Go scheduler is not told the thread blocks, so sysmon is not
// woken by it (the child keeps GOMAXPROCS ≥ 2 so the stdin goroutine has a
// processor).

const (
	floorUringEntries = 256  // SQEs: sends of one batch (more: an extra enter)
	floorUringCQ      = 4096 // completions one wake-up may find
	floorUringBufs    = 1024 // provided buffers of floorBufLen bytes
	floorRecvTag      = 1
	floorSendTag      = 2
)

// floorUringLoop is the loop's state: the ring, its buffers and the sends of
// the batch under way.
type floorUringLoop struct {
	ring    *uring.Ring
	bufs    *uring.BufRing
	fd      int
	t       *floorTable
	c       *floorCounters
	tmpl    unix.Msghdr
	armed   bool
	woke    int64 // the clock at the last wake-up, with hold stamps on
	msgs    [floorUringEntries]unix.Msghdr
	iovs    [floorUringEntries]unix.Iovec
	sending []uint16 // buffers of the sends queued, recycled after the enter that submits them
}

// floorUring serves fd (a socket outside Go's poller) until an error.
func floorUring(fd int, t *floorTable, c *floorCounters, cfg floorUringConfig) error {
	runtime.LockOSThread() // SINGLE_ISSUER and DEFER_TASKRUN: this thread only
	ring, err := uring.New(floorUringEntries, floorUringCQ,
		uring.SetupCQSize|uring.SetupSubmitAll|uring.SetupSingleIssuer|uring.SetupDeferTaskrun)
	if err != nil {
		return err
	}
	bufs, err := ring.RegisterBufRing(1, floorUringBufs, floorBufLen)
	if err != nil {
		return err
	}
	if cfg.minWait && ring.Features()&uring.FeatMinTimeout == 0 {
		return fmt.Errorf("min_wait_usec asked for, but the kernel has no IORING_FEAT_MIN_TIMEOUT")
	}
	l := &floorUringLoop{ring: ring, bufs: bufs, fd: fd, t: t, c: c,
		tmpl: unix.Msghdr{Namelen: unix.SizeofSockaddrInet4}, sending: make([]uint16, 0, floorUringEntries)}
	if c.holds.on {
		l.tmpl.SetControllen(floorStampRoom)
	}
	w := uring.Wait{MinComplete: cfg.batch, Timeout: int64(cfg.hold)}
	if cfg.minWait {
		w = uring.Wait{MinComplete: cfg.batch, MinWaitMicros: uint32(cfg.hold / time.Microsecond), Timeout: int64(time.Second)}
	}
	if cfg.hold == 0 {
		w = uring.Wait{MinComplete: 1}
	}
	for {
		if !l.armed {
			l.nextSQE().PrepRecvMsgMultishot(l.fd, &l.tmpl, 1, floorRecvTag)
			l.armed = true
		}
		if err := l.enter(w); err != nil {
			return err
		}
		c.wakes.Add(1)
		l.woke = c.holds.wokeAt()
		ring.Completions(l.complete)
	}
}

// enter submits what is queued and waits as w says, then recycles the buffers
// the submitted sends used.
func (l *floorUringLoop) enter(w uring.Wait) error {
	if len(l.sending) > 0 {
		l.c.sendCalls.Add(1)
	}
	if _, err := l.ring.Enter(w, true); err != nil {
		return err
	}
	for _, id := range l.sending {
		l.bufs.Recycle(id)
	}
	l.sending = l.sending[:0]
	l.bufs.Publish()
	return nil
}

// complete handles one completion: a datagram (routed, sent from its own
// buffer), the recvmsg's end (re-armed by the loop), or a refused send.
func (l *floorUringLoop) complete(cqe uring.CQE) {
	if cqe.UserData == floorSendTag {
		l.c.sendFailed.Add(1)
		return
	}
	if !cqe.More() {
		l.armed = false
	}
	id, ok := cqe.Buffer()
	if cqe.Res < 0 || !ok {
		if -cqe.Res == int32(unix.ENOBUFS) {
			l.c.noBuffers.Add(1)
		}
		return
	}
	buf := l.bufs.Buf(id)
	m, ok := uring.ParseRecvMsg(buf, int(cqe.Res), l.tmpl.Namelen, uint32(l.tmpl.Controllen))
	payload := m.Payload
	var to *unix.RawSockaddrInet4
	if ok && !m.Truncated && len(m.Name) == unix.SizeofSockaddrInet4 && len(payload) > 0 {
		l.c.holds.add(m.Control, l.woke)
		to = l.t.route(payload, len(payload), (*unix.RawSockaddrInet4)(unsafe.Pointer(&m.Name[0])), l.c)
	}
	if to == nil {
		l.bufs.Recycle(id)
		return
	}
	sqe := l.nextSQE()
	k := len(l.sending)
	l.iovs[k] = unix.Iovec{Base: &payload[0]}
	l.iovs[k].SetLen(len(payload))
	l.msgs[k] = unix.Msghdr{Name: (*byte)(unsafe.Pointer(to)), Namelen: unix.SizeofSockaddrInet4, Iov: &l.iovs[k], Iovlen: 1}
	sqe.PrepSendMsgNow(l.fd, &l.msgs[k], floorSendTag)
	l.sending = append(l.sending, id)
}

// nextSQE is a free SQE; when the SQ is full of this batch's sends, it
// submits them first (counted), which frees their slots and buffers.
func (l *floorUringLoop) nextSQE() *uring.SQE {
	if sqe := l.ring.NextSQE(); sqe != nil {
		return sqe
	}
	l.c.sqFull.Add(1)
	_ = l.enter(uring.Wait{})
	return l.ring.NextSQE()
}
