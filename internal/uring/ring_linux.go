//go:build linux

package uring

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Setup flags (io_uring_setup(2)).
const (
	SetupCQSize       = 1 << 3  // IORING_SETUP_CQSIZE: cqEntries is honoured
	SetupSubmitAll    = 1 << 7  // IORING_SETUP_SUBMIT_ALL: a failing SQE does not stop the batch
	SetupCoopTaskrun  = 1 << 8  // IORING_SETUP_COOP_TASKRUN
	SetupSingleIssuer = 1 << 12 // IORING_SETUP_SINGLE_ISSUER: one thread submits
	// SetupDeferTaskrun (IORING_SETUP_DEFER_TASKRUN, Linux 6.1; needs
	// SetupSingleIssuer): completions wait as task work until the submitting
	// thread enters the kernel to get them, and a waiter is woken only when
	// enough are pending (or by its timeout): the kernel-side batching.
	SetupDeferTaskrun = 1 << 13
)

// Features the kernel reports (io_uring_params.features).
const (
	FeatSingleMmap = 1 << 0  // IORING_FEAT_SINGLE_MMAP
	FeatExtArg     = 1 << 8  // IORING_FEAT_EXT_ARG: Wait's timeout
	FeatMinTimeout = 1 << 15 // IORING_FEAT_MIN_TIMEOUT (6.12): Wait's MinWait
)

const (
	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3
)

// params is struct io_uring_params (120 bytes).
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// getEventsArg is struct io_uring_getevents_arg.
type getEventsArg struct {
	sigmask     uint64
	sigmaskSz   uint32
	minWaitUsec uint32
	ts          uint64
}

// Ring is one io_uring: its submission queue (SQ) of SQEs the caller fills
// with NextSQE and hands to the kernel with Enter, and its completion queue
// (CQ) read with Completions. Both are bounded (the sizes given to New): NextSQE
// returns nil when the SQ is full (count it, and Enter to make room); the
// kernel counts CQ overflows (Overflow) when the caller reads completions
// slower than they come.
type Ring struct {
	fd       int
	features uint32
	ringMem  []byte // SQ ring, and the CQ ring with FeatSingleMmap
	cqMem    []byte // the CQ ring without FeatSingleMmap
	sqeMem   []byte

	sqHead, sqTail *uint32
	sqMask         uint32
	sqArray        []uint32
	sqes           []SQE
	sqLocal        uint32 // tail of the SQEs handed out, not yet published

	cqHead, cqTail, cqOverflow *uint32
	cqMask                     uint32
	cqes                       []CQE

	arg getEventsArg
	ts  unix.Timespec
}

// New makes a ring of entries SQEs and (with SetupCQSize in flags)
// cqEntries completions. It reports ErrUnsupported, wrapped, where io_uring
// cannot be used.
func New(entries, cqEntries, flags uint32) (*Ring, error) {
	p := params{flags: flags, cqEntries: cqEntries}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		if errno == unix.ENOSYS || errno == unix.EPERM || errno == unix.EACCES || errno == unix.EINVAL {
			return nil, fmt.Errorf("%w: io_uring_setup(flags %#x): %v", ErrUnsupported, flags, errno)
		}
		return nil, fmt.Errorf("uring: io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd), features: p.features}
	if err := r.mapRings(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// mapRings maps the SQ and CQ rings and the SQE array and points the ring's
// fields into them.
func (r *Ring) mapRings(p *params) error {
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(CQE{})))
	if p.features&FeatSingleMmap != 0 {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if r.ringMem, err = unix.Mmap(r.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("uring: mmap SQ ring: %w", err)
	}
	cq := r.ringMem
	if p.features&FeatSingleMmap == 0 {
		if r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			return fmt.Errorf("uring: mmap CQ ring: %w", err)
		}
		cq = r.cqMem
	}
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(SQE{}))
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("uring: mmap SQEs: %w", err)
	}
	r.sqHead = u32At(r.ringMem, p.sqOff.head)
	r.sqTail = u32At(r.ringMem, p.sqOff.tail)
	r.sqMask = *u32At(r.ringMem, p.sqOff.ringMask)
	r.sqArray = unsafe.Slice(u32At(r.ringMem, p.sqOff.array), p.sqEntries)
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.sqLocal = atomic.LoadUint32(r.sqTail)
	r.cqHead = u32At(cq, p.cqOff.head)
	r.cqTail = u32At(cq, p.cqOff.tail)
	r.cqOverflow = u32At(cq, p.cqOff.overflow)
	r.cqMask = *u32At(cq, p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*CQE)(unsafe.Pointer(&cq[p.cqOff.cqes])), p.cqEntries)
	return nil
}

func u32At(mem []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }

// Features is what the kernel said it supports (Feat...).
func (r *Ring) Features() uint32 { return r.features }

// Close unmaps the rings and closes the ring's descriptor; requests in flight
// are cancelled by the kernel.
func (r *Ring) Close() error {
	for _, m := range [][]byte{r.sqeMem, r.cqMem, r.ringMem} {
		if m != nil {
			_ = unix.Munmap(m)
		}
	}
	r.sqeMem, r.cqMem, r.ringMem = nil, nil, nil
	return unix.Close(r.fd)
}

// NextSQE hands out the next free SQE, zeroed, or nil when the SQ is full
// (Enter submits what is queued and makes room). It is submitted by the next
// Enter.
func (r *Ring) NextSQE() *SQE {
	head := atomic.LoadUint32(r.sqHead)
	if r.sqLocal-head > r.sqMask {
		return nil
	}
	i := r.sqLocal & r.sqMask
	r.sqArray[i] = i
	r.sqLocal++
	s := &r.sqes[i]
	*s = SQE{}
	return s
}

// Pending is the number of SQEs handed out and not yet taken by the kernel
// (a failed Enter may leave some: the next one submits them).
func (r *Ring) Pending() uint32 { return r.sqLocal - atomic.LoadUint32(r.sqHead) }

// Wait bounds Enter's wait for completions.
type Wait struct {
	// MinComplete: Enter returns once this many completions are ready (0: it
	// does not wait at all, only submits).
	MinComplete uint32
	// Timeout, when > 0, ends the wait after that many nanoseconds with
	// ETIME (reported by Enter as a nil error: it is the bound, not a failure).
	Timeout int64
	// MinWaitMicros, when > 0 (FeatMinTimeout), is how long the kernel waits
	// for MinComplete completions; after it, any one completion ends the wait
	// (Timeout still bounds the whole).
	MinWaitMicros uint32
}

// Enter publishes the SQEs handed out since the last Enter, submits them and
// waits as w says, in one io_uring_enter. It returns the number submitted.
// raw makes it a RawSyscall: the Go scheduler is not told the thread blocks
// (no handoff of its processor, no sysmon wake-up), so only a goroutine locked
// to its thread, in a program with processors to spare, should use it.
// EINTR (a signal, e.g. the runtime's preemption) and ETIME end the wait
// without an error.
func (r *Ring) Enter(w Wait, raw bool) (int, error) {
	atomic.StoreUint32(r.sqTail, r.sqLocal)
	head := atomic.LoadUint32(r.sqHead)
	toSubmit := r.sqLocal - head
	flags := uintptr(0)
	var arg, argSize uintptr
	if w.MinComplete > 0 {
		flags |= enterGetEvents
		if w.Timeout > 0 || w.MinWaitMicros > 0 {
			r.arg = getEventsArg{minWaitUsec: w.MinWaitMicros}
			if w.Timeout > 0 {
				r.ts = unix.NsecToTimespec(w.Timeout)
				r.arg.ts = uint64(uintptr(unsafe.Pointer(&r.ts)))
			}
			flags |= enterExtArg
			arg, argSize = uintptr(unsafe.Pointer(&r.arg)), unsafe.Sizeof(r.arg)
		}
	}
	call := unix.Syscall6
	if raw {
		call = unix.RawSyscall6
	}
	n, _, errno := call(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(w.MinComplete), flags, arg, argSize)
	runtime.KeepAlive(r)
	switch {
	case errno == 0:
		return int(n), nil
	case errno == unix.EINTR || errno == unix.ETIME || errno == unix.EAGAIN || errno == unix.EBUSY:
		// EAGAIN/EBUSY: completions must be reaped first; the caller does that
		// next, and what the kernel did not take stays queued for the next Enter.
		return int(atomic.LoadUint32(r.sqHead) - head), nil
	default:
		return 0, fmt.Errorf("uring: io_uring_enter: %w", errno)
	}
}

// Completions calls fn for every ready completion, oldest first, and then
// frees their slots; fn must copy what it keeps. It returns how many it saw.
func (r *Ring) Completions(fn func(c CQE)) int {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	for i := head; i != tail; i++ {
		fn(r.cqes[i&r.cqMask])
	}
	atomic.StoreUint32(r.cqHead, tail)
	return int(tail - head)
}

// Overflow is the kernel's count of completions it could not post because the
// CQ was full (lost to the caller unless the kernel kept them as overflow).
func (r *Ring) Overflow() uint32 { return atomic.LoadUint32(r.cqOverflow) }

// register is io_uring_register(2).
func (r *Ring) register(op uint32, arg unsafe.Pointer, nr uint32) error {
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uintptr(op), uintptr(arg), uintptr(nr), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// IsUnsupported says whether err means io_uring (or a feature of it) cannot be
// used here.
func IsUnsupported(err error) bool {
	var errno syscall.Errno
	return errors.Is(err, ErrUnsupported) || (errors.As(err, &errno) && (errno == unix.ENOSYS || errno == unix.EOPNOTSUPP))
}
