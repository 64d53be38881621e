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

// readLoopBatch is readLoop with recvmmsg(2): up to recvBatchLen datagrams per
// system call, straight into pool buffers, addresses parsed without allocating
// (x/net's ReadBatch allocates a net.Addr per datagram). It returns false if the
// socket cannot be read this way; readLoop then reads one datagram at a time.
func (s *socket) readLoopBatch(free chan *packet, in chan<- *packet, done <-chan struct{}, tooLong *atomic.Uint64) bool {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return false
	}
	var (
		pkts  [recvBatchLen]*packet
		hdrs  [recvBatchLen]unix.Mmsghdr
		iovs  [recvBatchLen]unix.Iovec
		names [recvBatchLen]unix.RawSockaddrInet6 // room for either family
		want  int                                 // buffers offered to this call
		got   int                                 // datagrams received
		errno unix.Errno
	)
	// Built once: a closure per call would allocate.
	recv := func(fd uintptr) bool {
		for i := range want {
			hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&names[i]))
			hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
			hdrs[i].Hdr.Flags = 0
			hdrs[i].Len = 0
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
			free <- pkts[i]
		}
	}()
	for {
		// One buffer at least (wait for it), then whatever else is free.
		if want == 0 {
			select {
			case pkts[0] = <-free:
				want = 1
			case <-done:
				return true
			}
		}
	fill:
		for want < recvBatchLen {
			select {
			case pkts[want] = <-free:
				want++
			default:
				break fill
			}
		}
		for i := range want {
			iovs[i].Base = &pkts[i].buf[0]
			iovs[i].SetLen(len(pkts[i].buf))
			hdrs[i].Hdr.Iov = &iovs[i]
			hdrs[i].Hdr.SetIovlen(1)
		}
		got, errno = 0, 0
		if err := rc.Read(recv); err != nil {
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
			n := int(hdrs[i].Len)
			from, ok := sockaddrAddrPort(&names[i])
			switch {
			case hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 || n > maxDatagram:
				tooLong.Add(1)
			case !ok:
			case s.dropRate > 0 && s.dropRNG.Float64() < s.dropRate:
			default:
				p.sock, p.from, p.n = s, from, n
				select {
				case in <- p:
					continue
				case <-done:
					free <- p
					for j := i + 1; j < want; j++ {
						free <- pkts[j]
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
