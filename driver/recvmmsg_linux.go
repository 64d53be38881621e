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
// straight into pool buffers, addresses parsed without allocating (x/net's
// ReadBatch allocates a net.Addr per datagram). pool is where the buffers come
// from: the loop's free list (one datagram per buffer, recvBatchLen per call), or a
// GRO socket's own groFree (one coalesced read per buffer, groBatchLen per call),
// whose packets go to the loop whole with their segment size. It returns false if
// the socket cannot be read this way; readLoop then reads one datagram at a time.
func (s *socket) readLoopBatch(pool chan *packet, in chan<- *packet, done <-chan struct{}, tooLong *atomic.Uint64) bool {
	r := &batchReader{s: s, pool: pool, batchLen: recvBatchLen}
	if pool == s.groFree {
		r.batchLen = groBatchLen
	}
	recv := r.recv // built once: a method value per call would allocate
	defer r.giveBack()
	for {
		if !r.fill(done) {
			return true
		}
		r.got, r.errno = 0, 0
		if err := s.rc.Read(recv); err != nil {
			return true // closed
		}
		if r.errno != 0 {
			select {
			case <-done:
				return true
			default:
				continue // ICMP-induced errors and the like
			}
		}
		if !r.handOn(in, done, tooLong) {
			return true
		}
	}
}

// batchReader is the state of one socket's recvmmsg reads: the buffers offered
// to the next call and the headers that point into them.
type batchReader struct {
	s        *socket
	pool     chan *packet
	batchLen int

	pkts  [recvBatchLen]*packet
	hdrs  [recvBatchLen]unix.Mmsghdr
	iovs  [recvBatchLen]unix.Iovec
	names [recvBatchLen]unix.RawSockaddrInet6 // room for either family
	oobs  [recvBatchLen][96]byte              // UDP_GRO's segment size, the destination address
	want  int                                 // buffers offered to this call
	got   int                                 // reads received
	errno unix.Errno
}

// fill takes one buffer at least (waiting for it), then whatever else is free,
// up to batchLen, and points the headers at them; false when done closed first.
func (r *batchReader) fill(done <-chan struct{}) bool {
	if r.want == 0 {
		select {
		case r.pkts[0] = <-r.pool:
			r.want = 1
		case <-done:
			return false
		}
	}
fill:
	for r.want < r.batchLen {
		select {
		case r.pkts[r.want] = <-r.pool:
			r.want++
		default:
			break fill
		}
	}
	for i := range r.want {
		b := r.pkts[i].recvBuffer()
		r.iovs[i].Base = &b[0]
		r.iovs[i].SetLen(len(b))
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.SetIovlen(1)
	}
	return true
}

// recv is one recvmmsg on fd, for RawConn.Read: false asks to wait for
// readiness.
func (r *batchReader) recv(fd uintptr) bool {
	for i := range r.want {
		h := &r.hdrs[i]
		h.Hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Hdr.Namelen = unix.SizeofSockaddrInet6
		h.Hdr.Control = &r.oobs[i][0]
		h.Hdr.SetControllen(len(r.oobs[i]))
		h.Hdr.Flags, h.Len = 0, 0
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.want), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
		return false // wait for readiness
	}
	r.got, r.errno = int(n), e
	return true
}

// handOn gives the loop the reads received and keeps the unused (and dropped)
// buffers for the next call; false when done closed, every buffer then back in
// the pool.
func (r *batchReader) handOn(in chan<- *packet, done <-chan struct{}, tooLong *atomic.Uint64) bool {
	kept := 0
	for i := range r.want {
		p := r.pkts[i]
		if i < r.got && r.accept(i, p, tooLong) {
			select {
			case in <- p:
				continue
			case <-done:
				// Every buffer back: the ones kept so far, this one, the rest.
				for _, q := range r.pkts[:kept] {
					r.pool <- q
				}
				r.pool <- p
				for j := i + 1; j < r.want; j++ {
					r.pool <- r.pkts[j]
				}
				r.want = 0
				return false
			}
		}
		r.pkts[kept] = p // unused or dropped: reuse the buffer
		kept++
	}
	r.want = kept
	return true
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

// giveBack returns the buffers offered and not handed on.
func (r *batchReader) giveBack() {
	for i := range r.want {
		r.pool <- r.pkts[i]
	}
	r.want = 0
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
