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
	batchLen := recvBatchLen
	if pool == s.groFree {
		batchLen = groBatchLen
	}
	var (
		pkts  [recvBatchLen]*packet
		hdrs  [recvBatchLen]unix.Mmsghdr
		iovs  [recvBatchLen]unix.Iovec
		names [recvBatchLen]unix.RawSockaddrInet6 // room for either family
		oobs  [recvBatchLen][64]byte              // UDP_GRO's segment size
		want  int                                 // buffers offered to this call
		got   int                                 // reads received
		errno unix.Errno
	)
	// Built once: a closure per call would allocate.
	recv := func(fd uintptr) bool {
		for i := range want {
			h := &hdrs[i]
			h.Hdr.Name = (*byte)(unsafe.Pointer(&names[i]))
			h.Hdr.Namelen = unix.SizeofSockaddrInet6
			h.Hdr.Control = &oobs[i][0]
			h.Hdr.SetControllen(len(oobs[i]))
			h.Hdr.Flags, h.Len = 0, 0
		}
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(want), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
			return false // wait for readiness
		}
		got, errno = int(n), e
		return true
	}
	defer func() {
		for i := range want {
			pool <- pkts[i]
		}
	}()
	for {
		// One buffer at least (wait for it), then whatever else is free.
		if want == 0 {
			select {
			case pkts[0] = <-pool:
				want = 1
			case <-done:
				return true
			}
		}
	fill:
		for want < batchLen {
			select {
			case pkts[want] = <-pool:
				want++
			default:
				break fill
			}
		}
		for i := range want {
			b := pkts[i].recvBuffer()
			iovs[i].Base = &b[0]
			iovs[i].SetLen(len(b))
			hdrs[i].Hdr.Iov = &iovs[i]
			hdrs[i].Hdr.SetIovlen(1)
		}
		got, errno = 0, 0
		if err := s.rc.Read(recv); err != nil {
			return true // closed
		}
		if errno != 0 {
			select {
			case <-done:
				return true
			default:
				continue // ICMP-induced errors and the like
			}
		}
		// Hand the received ones on; keep the unused buffers for the next call.
		kept := 0
		for i := range want {
			p := pkts[i]
			if i >= got {
				pkts[kept] = p
				kept++
				continue
			}
			h := &hdrs[i]
			n := int(h.Len)
			from, ok := sockaddrAddrPort(&names[i])
			// Without GRO there is no control message and the segment is the read.
			seg := groSegmentSize(oobs[i][:h.Hdr.Controllen], n)
			switch {
			case h.Hdr.Flags&unix.MSG_TRUNC != 0 || seg > maxDatagram:
				tooLong.Add(1)
			case !ok:
			case s.dropRate > 0 && s.dropRNG.Float64() < s.dropRate:
			default:
				p.sock, p.from, p.n, p.seg = s, from, n, seg
				select {
				case in <- p:
					continue
				case <-done:
					// Every buffer back: the ones kept so far, this one, the rest.
					for _, q := range pkts[:kept] {
						pool <- q
					}
					pool <- p
					for j := i + 1; j < want; j++ {
						pool <- pkts[j]
					}
					want = 0
					return true
				}
			}
			pkts[kept] = p // dropped: reuse the buffer
			kept++
		}
		want = kept
	}
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
