//go:build linux

package driver

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvBatchLen is how many datagrams one recvmmsg may return.
const recvBatchLen = 8

// readLoopBatch is readLoop with recvmmsg(2): several reads per system call,
// straight into the reader's own batchLen buffers of bufLen bytes each, addresses
// parsed without allocating (x/net's ReadBatch allocates a net.Addr per
// datagram). A GRO socket's buffers take coalesced reads (groBatchLen of
// groBufLen), each handed on whole with its segment size. Every call's reads go
// to deliver together. It returns false if the socket cannot be read this way;
// readLoop then reads one datagram at a time.
func (s *socket) readLoopBatch(batchLen, bufLen int, deliver func([]*packet) bool, done <-chan struct{}, tooLong *atomic.Uint64) bool {
	r := newBatchReader(s, batchLen, bufLen)
	r.deliver, r.tooLong = deliver, tooLong
	recv := r.recv // built once: a method value per call would allocate
	for {
		if err := s.rc.Read(recv); err != nil || r.stopped {
			return true // closed, or the loop stopped
		}
		select {
		case <-done:
			return true
		default: // a read error: ICMP-induced (connection refused) and the like
		}
	}
}

// batchReader is the state of one socket's recvmmsg reads: its buffers and the
// headers that point into them.
type batchReader struct {
	s        *socket
	batchLen int
	deliver  func([]*packet) bool
	tooLong  *atomic.Uint64

	pkts    [recvBatchLen]*packet
	ready   [recvBatchLen]*packet // the reads accepted, for deliver
	hdrs    [recvBatchLen]unix.Mmsghdr
	iovs    [recvBatchLen]unix.Iovec
	names   [recvBatchLen]unix.RawSockaddrInet6 // room for either family
	oobs    [recvBatchLen][96]byte              // UDP_GRO's segment size, the destination address
	got     int                                 // reads received
	stopped bool                                // deliver said the loop stopped
}

// newBatchReader gives s batchLen (at most recvBatchLen) buffers of bufLen bytes
// and points the headers at them.
func newBatchReader(s *socket, batchLen, bufLen int) *batchReader {
	r := &batchReader{s: s, batchLen: min(batchLen, recvBatchLen)}
	for i := range r.batchLen {
		r.pkts[i] = newPacket(bufLen)
		r.iovs[i].Base = &r.pkts[i].buf[0]
		r.iovs[i].SetLen(bufLen)
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.SetIovlen(1)
	}
	return r
}

// recv is RawConn.Read's function: it reads with recvmmsg and hands each call's
// reads to deliver until the socket is empty, and returns false to wait for
// readiness (true on an error, or once the loop stopped). Once a call took fewer
// reads than it offered buffers, the socket was empty: it waits before reading
// again, rather than make a call that would only say EAGAIN. No datagram is
// missed: within one RawConn.Read the poller's readiness is not reset, and each
// arrival after the read is an edge that ends the wait. The system call never
// blocks (MSG_DONTWAIT), so it is a raw one: entering the scheduler's syscall
// state would wake its monitor thread (sysmon), which then polls every 20 µs for
// a while, a cost paid per datagram at low rates.
func (r *batchReader) recv(fd uintptr) bool {
	for {
		r.prepare()
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.batchLen), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == unix.EAGAIN || e == unix.EWOULDBLOCK:
			return false
		case e != 0:
			return true
		}
		r.got = int(n)
		if k := r.accepted(r.tooLong); k > 0 && !r.deliver(r.ready[:k]) {
			r.stopped = true
			return true
		}
		if r.got < r.batchLen {
			return false // emptied: wait
		}
	}
}

// prepare resets the headers' address, control and result fields for a call.
func (r *batchReader) prepare() {
	for i := range r.batchLen {
		h := &r.hdrs[i]
		h.Hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Hdr.Namelen = unix.SizeofSockaddrInet6
		h.Hdr.Control = &r.oobs[i][0]
		h.Hdr.SetControllen(len(r.oobs[i]))
		h.Hdr.Flags, h.Len = 0, 0
	}
}

// accepted fills the packets of the reads received, puts those that go to the
// loop in ready and returns how many.
func (r *batchReader) accepted(tooLong *atomic.Uint64) int {
	k := 0
	for i := range r.got {
		if r.accept(i, r.pkts[i], tooLong) {
			r.ready[k] = r.pkts[i]
			k++
		}
	}
	return k
}

// accept fills p from read i and says whether it goes to the loop: truncated or
// overlong reads are counted and dropped, as are those of an unknown address
// family and those the test loss model drops.
func (r *batchReader) accept(i int, p *packet, tooLong *atomic.Uint64) bool {
	h := &r.hdrs[i]
	n := int(h.Len)
	from, ok := sockaddrAddrPort(&r.names[i])
	// Without GRO there is no control message and the segment is the read.
	seg := groSegmentSize(r.oobs[i][:h.Hdr.Controllen], n)
	switch {
	case h.Hdr.Flags&unix.MSG_TRUNC != 0 || seg > maxDatagram:
		tooLong.Add(1)
		return false
	case !ok:
		return false
	case r.s.dropRate > 0 && r.s.dropRNG.Float64() < r.s.dropRate:
		return false
	}
	p.sock, p.from, p.n, p.seg = r.s, from, n, seg
	p.dst, p.stream = netip.Addr{}, false
	if r.s.pktinfo {
		p.dst = pktinfoDst(r.oobs[i][:h.Hdr.Controllen])
	}
	return true
}

// sockaddrAddrPort parses a raw IPv4 or IPv6 socket address.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), true
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}
