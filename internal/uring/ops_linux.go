//go:build linux

package uring

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SQE is struct io_uring_sqe (64 bytes), as the kernel reads it.
type SQE struct {
	Opcode      uint8
	Flags       uint8
	Ioprio      uint16
	Fd          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	OpFlags     uint32 // msg_flags for sendmsg/recvmsg
	UserData    uint64
	BufGroup    uint16 // buf_index / buf_group
	Personality uint16
	SpliceFdIn  int32
	Addr3       uint64
	_           uint64
}

// CQE is struct io_uring_cqe (16 bytes).
type CQE struct {
	UserData uint64
	Res      int32 // the operation's result: bytes, or -errno
	Flags    uint32
}

const (
	opPollAdd = 6
	opSendmsg = 9
	opRecvmsg = 10

	sqeBufferSelect   = 1 << 5
	sqeCQESkipSuccess = 1 << 6
	recvMultishot     = 1 << 1 // IORING_RECV_MULTISHOT, in the SQE's ioprio

	cqeFBuffer  = 1 << 0
	cqeFMore    = 1 << 1
	bufferShift = 16
)

// More says whether a multishot request stays armed after this completion
// (IORING_CQE_F_MORE); without it the request ended and must be submitted again.
func (c CQE) More() bool { return c.Flags&cqeFMore != 0 }

// Buffer is the provided buffer this completion filled, if any.
func (c CQE) Buffer() (id uint16, ok bool) {
	return uint16(c.Flags >> bufferShift), c.Flags&cqeFBuffer != 0
}

// PrepRecvMsgMultishot makes s a multishot recvmsg on fd: every datagram that
// arrives completes with a buffer of group bgid holding a recvmsg header, the
// source address (room for msg's Namelen bytes), control (Controllen) and the
// payload (ParseRecvMsg). msg is read at submission; its Iovlen must be 0.
func (s *SQE) PrepRecvMsgMultishot(fd int, msg *unix.Msghdr, bgid uint16, userData uint64) {
	s.Opcode, s.Fd, s.Len = opRecvmsg, int32(fd), 1
	s.Addr = uint64(uintptr(unsafe.Pointer(msg)))
	s.Ioprio = recvMultishot
	s.Flags = sqeBufferSelect
	s.BufGroup = bgid
	s.UserData = userData
}

// PrepPollAdd makes s a one-shot poll of fd for events (POLLIN and the
// like): it completes with userData once fd is ready. A ring's user arms one
// on an eventfd so that another goroutine can end a wait that has no timeout.
func (s *SQE) PrepPollAdd(fd int, events uint32, userData uint64) {
	s.Opcode, s.Fd = opPollAdd, int32(fd)
	s.OpFlags = events // poll32_events
	s.UserData = userData
}

// PrepSendMsgNow makes s a sendmsg of msg on fd with MSG_DONTWAIT: the kernel
// tries it while submitting and, if the socket is full, fails it with EAGAIN
// rather than waiting, so once Enter returned, the memory msg points at is
// free again. A success posts no completion (IOSQE_CQE_SKIP_SUCCESS); a
// failure posts one with userData and Res = -errno.
func (s *SQE) PrepSendMsgNow(fd int, msg *unix.Msghdr, userData uint64) {
	s.Opcode, s.Fd, s.Len = opSendmsg, int32(fd), 1
	s.Addr = uint64(uintptr(unsafe.Pointer(msg)))
	s.OpFlags = unix.MSG_DONTWAIT
	s.Flags = sqeCQESkipSuccess
	s.UserData = userData
}

// recvMsgOutSize is sizeof(struct io_uring_recvmsg_out).
const recvMsgOutSize = 16

// RecvMsg is one datagram a multishot recvmsg put in a provided buffer.
type RecvMsg struct {
	Name      []byte // the source address as the kernel wrote it
	Control   []byte // the control messages
	Payload   []byte // cut to what the buffer held
	Truncated bool   // the datagram (or its control) was longer than the buffer's room
}

// ParseRecvMsg splits a buffer a multishot recvmsg filled (n bytes, the CQE's
// Res) whose request's msghdr reserved nameRoom and controlRoom bytes. ok is
// false when n is too short to hold the header and the reserved room.
func ParseRecvMsg(buf []byte, n int, nameRoom, controlRoom uint32) (m RecvMsg, ok bool) {
	at := recvMsgOutSize + int(nameRoom) + int(controlRoom)
	if n < at || n > len(buf) {
		return m, false
	}
	nameLen := binary.NativeEndian.Uint32(buf[0:])
	controlLen := binary.NativeEndian.Uint32(buf[4:])
	payloadLen := binary.NativeEndian.Uint32(buf[8:])
	flags := binary.NativeEndian.Uint32(buf[12:])
	m.Name = buf[recvMsgOutSize : recvMsgOutSize+int(min(nameLen, nameRoom))]
	ctl := recvMsgOutSize + int(nameRoom)
	m.Control = buf[ctl : ctl+int(min(controlLen, controlRoom))]
	m.Payload = buf[at:n]
	m.Truncated = flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || int(payloadLen) > len(m.Payload)
	return m, true
}

// bufRingEntry is struct io_uring_buf; the ring's tail is the first entry's
// last 16 bits.
type bufRingEntry struct {
	addr uint64
	len  uint32
	bid  uint16
	resv uint16
}

// BufRing is a provided-buffer ring (IORING_REGISTER_PBUF_RING, Linux 5.19):
// count buffers of size bytes the kernel picks from for requests of its group
// (PrepRecvMsgMultishot). A buffer the kernel filled is the caller's until
// Recycle gives it back; Publish makes the recycled ones visible to the
// kernel. When none is left, a multishot recvmsg ends with ENOBUFS.
type BufRing struct {
	mem     []byte // the ring's entries, then the buffers
	entries []bufRingEntry
	local   uint16
	mask    uint16
	size    int
	bufs    []byte
}

// RegisterBufRing registers a ring of count (a power of two ≤ 32768)
// buffers of size bytes as group bgid, all handed to the kernel.
func (r *Ring) RegisterBufRing(bgid uint16, count, size int) (*BufRing, error) {
	if count <= 0 || count > 1<<15 || count&(count-1) != 0 || size <= 0 {
		return nil, fmt.Errorf("uring: buffer ring of %d × %d bytes", count, size)
	}
	ringBytes := count * int(unsafe.Sizeof(bufRingEntry{}))
	mem, err := unix.Mmap(-1, 0, ringBytes+count*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("uring: buffer ring memory: %w", err)
	}
	b := &BufRing{mem: mem, mask: uint16(count - 1), size: size, bufs: mem[ringBytes:]}
	b.entries = unsafe.Slice((*bufRingEntry)(unsafe.Pointer(&mem[0])), count)
	reg := struct {
		ringAddr    uint64
		ringEntries uint32
		bgid, flags uint16
		resv        [3]uint64
	}{ringAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), ringEntries: uint32(count), bgid: bgid}
	const registerPbufRing = 22
	if err := r.register(registerPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		_ = unix.Munmap(mem)
		return nil, fmt.Errorf("%w: IORING_REGISTER_PBUF_RING: %v", ErrUnsupported, err)
	}
	for id := range count {
		b.Recycle(uint16(id))
	}
	b.Publish()
	return b, nil
}

// Buf is buffer id's memory.
func (b *BufRing) Buf(id uint16) []byte {
	at := int(id) * b.size
	return b.bufs[at : at+b.size : at+b.size]
}

// Recycle queues buffer id for the kernel again (after Publish).
func (b *BufRing) Recycle(id uint16) {
	e := &b.entries[b.local&b.mask]
	e.addr = uint64(uintptr(unsafe.Pointer(&b.Buf(id)[0])))
	e.len = uint32(b.size)
	e.bid = id
	b.local++
}

// Publish hands the recycled buffers to the kernel: the tail is stored with
// release order (an atomic store of the 32-bit word it shares with the first
// entry's buffer id, which only this side writes), after the entries.
func (b *BufRing) Publish() {
	word := (*uint32)(unsafe.Pointer(&b.entries[0].bid))
	var w [4]byte
	binary.NativeEndian.PutUint16(w[0:], b.entries[0].bid)
	binary.NativeEndian.PutUint16(w[2:], b.local)
	atomic.StoreUint32(word, binary.NativeEndian.Uint32(w[:]))
}

// Close unmaps the buffers; call it after the ring that used them closed.
func (b *BufRing) Close() error { return unix.Munmap(b.mem) }
