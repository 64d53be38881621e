//go:build linux

package driver

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP generic receive offload (Linux ≥ 5.0, udp(7) UDP_GRO): the kernel hands a
// run of equal-size datagrams from one sender over in one read, with the segment
// size in a control message. A sender using GSO on the same host (loopback, a
// container bridge) or a NIC that coalesces delivers tens of datagrams per system
// call instead of one; elsewhere every read holds one datagram, as without GRO.

const (
	// groBatchLen is how many (possibly coalesced) reads one recvmmsg returns.
	groBatchLen = 4
	// groBufLen holds the largest coalesced read: 64 segments can never exceed
	// the 64 KiB an IP packet (and so a GSO super-packet) may carry.
	groBufLen = 1 << 16
)

// enableGRO asks the kernel to coalesce; false if it cannot.
func (s *socket) enableGRO() bool {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	}); err != nil || serr != nil {
		return false
	}
	return true
}

// readLoopGRO is readLoop for a socket with GRO on: recvmmsg into groBatchLen
// scratch buffers of groBufLen bytes (256 KiB per socket, the only memory GRO adds),
// then each segment is copied into a pool buffer and handed to the loop, so the
// machine still sees one datagram per call and the pool still bounds what waits.
// It returns false if the socket cannot be read this way.
func (s *socket) readLoopGRO(free chan *packet, in chan<- *packet, done <-chan struct{}, tooLong *atomic.Uint64) bool {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return false
	}
	scratch := make([]byte, groBatchLen*groBufLen)
	var (
		hdrs  [groBatchLen]unix.Mmsghdr
		iovs  [groBatchLen]unix.Iovec
		names [groBatchLen]unix.RawSockaddrInet6
		oobs  [groBatchLen][64]byte
		got   int
		errno unix.Errno
	)
	for i := range groBatchLen {
		iovs[i].Base = &scratch[i*groBufLen]
		iovs[i].SetLen(groBufLen)
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
	}
	recv := func(fd uintptr) bool {
		for i := range groBatchLen {
			h := &hdrs[i]
			h.Hdr.Name = (*byte)(unsafe.Pointer(&names[i]))
			h.Hdr.Namelen = unix.SizeofSockaddrInet6
			h.Hdr.Control = &oobs[i][0]
			h.Hdr.SetControllen(len(oobs[i]))
			h.Hdr.Flags, h.Len = 0, 0
		}
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), groBatchLen, unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
			return false
		}
		got, errno = int(n), e
		return true
	}
	for {
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
		for i := range got {
			h := &hdrs[i]
			n := int(h.Len)
			from, ok := sockaddrAddrPort(&names[i])
			seg := groSegmentSize(oobs[i][:h.Hdr.Controllen], n)
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 || seg > maxDatagram {
				tooLong.Add(1)
				continue
			}
			if !ok {
				continue
			}
			buf := scratch[i*groBufLen : i*groBufLen+n]
			// An empty datagram is one (empty) segment: the machine counts it.
			for k := range max(1, (n+seg-1)/seg) {
				off := k * seg
				if s.dropRate > 0 && s.dropRNG.Float64() < s.dropRate {
					continue
				}
				var p *packet
				select {
				case p = <-free:
				case <-done:
					return true
				}
				p.sock, p.from, p.n = s, from, copy(p.buf[:], buf[off:min(off+seg, n)])
				select {
				case in <- p:
				case <-done:
					free <- p
					return true
				}
			}
		}
	}
}

// groSegmentSize reads the UDP_GRO control message in oob: the size of every
// segment of a coalesced read but the last. Without one, the read is a single
// datagram of n bytes.
func groSegmentSize(oob []byte, n int) int {
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(oob) {
			break
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(2) {
			// The kernel writes an int; its low 16 bits hold the size.
			data := oob[unix.CmsgLen(0):l]
			var seg int
			if len(data) >= 4 {
				seg = int(binary.NativeEndian.Uint32(data))
			} else {
				seg = int(binary.NativeEndian.Uint16(data))
			}
			if seg > 0 {
				return seg
			}
			break
		}
		oob = oob[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(oob)):]
	}
	return max(n, 1)
}
