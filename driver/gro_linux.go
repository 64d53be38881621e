//go:build linux

package driver

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP generic receive offload (Linux ≥ 5.0, udp(7) UDP_GRO): the kernel hands a
// run of equal-size datagrams from one sender over in one read, with the segment
// size in a control message. A sender using GSO on the same host (loopback, a
// container bridge) or a NIC that coalesces delivers tens of datagrams per system
// call instead of one; elsewhere every read holds one datagram, as without GRO.

const (
	// groBatchLen is how many (possibly coalesced) reads one recvmmsg returns: a
	// GRO socket's reader owns that many groBufLen buffers (512 KiB, the only
	// memory GRO adds), and hands each read to the loop whole, with its segment
	// size; the loop gives the machine one segment at a time. A coalesced read
	// thus costs one system call and no copy, however many datagrams it holds.
	groBatchLen = 4
	// groBufLen holds the largest coalesced read of datagrams the driver takes:
	// the kernel coalesces at most 64 segments (UDP_GRO_CNT_MAX), and with a
	// raised gro_max_size (BIG TCP) a read may pass the 64 KiB of one IP packet.
	groBufLen = gsoMaxSegments * maxDatagram
)

// enableGRO asks the kernel to coalesce; false if it cannot.
func (s *socket) enableGRO() bool {
	var serr error
	if err := s.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	}); err != nil || serr != nil {
		return false
	}
	return true
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
