//go:build linux

package driver

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP generic segmentation offload (Linux ≥ 4.18, udp(7) UDP_SEGMENT): one
// sendmsg carries a run of equal-size datagrams to one destination, and the kernel
// cuts it, which saves most of the per-datagram cost of the send path. rudp's bulk
// packets are equal-size, so runs are common while a transfer is under way.

// gsoMaxSegments bounds one run: the kernel's UDP_MAX_SEGMENTS.
const gsoMaxSegments = 64

// gsoMaxBytes bounds one run's bytes: a GSO send is one UDP datagram to the
// kernel before it is cut, so it must fit an IPv4 UDP payload (65,535 − 20 − 8).
const gsoMaxBytes = 65507

// gsoWriter sends a run of datagrams with one sendmsg(2): the datagrams are the
// iovecs, so the kernel gathers them where they lie and nothing is copied into a
// run buffer first. Its message, address and control buffers are reused for every
// send, and the function handed to RawConn.Write is built once: sending allocates
// nothing. Only the loop (holding its mu) uses it.
type gsoWriter struct {
	hdr   unix.Msghdr
	iov   [gsoMaxSegments]unix.Iovec
	name  unix.RawSockaddrInet6 // room for either family
	oob   [96]byte              // UDP_SEGMENT, and the source address (pktinfo.go)
	errno unix.Errno
	send  func(fd uintptr) bool
}

// writeGSO sends segs (each seg bytes, the last possibly shorter; at most
// gsoMaxSegments and gsoMaxBytes in all) to to in one system call.
func (s *socket) writeGSO(w *gsoWriter, segs [][1][]byte, seg int, to netip.AddrPort) error {
	if w.send == nil {
		w.send = func(fd uintptr) bool {
			// Raw: the socket is non-blocking, and entering the scheduler's
			// syscall state would wake its monitor (recvmmsg_linux.go's recv).
			_, _, e := unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&w.hdr)), unix.MSG_DONTWAIT)
			if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
				return false // the socket buffer is full: wait until it drains
			}
			w.errno = e
			return true
		}
	}
	if len(segs) == 0 || len(segs) > gsoMaxSegments {
		return unix.EINVAL
	}
	for i, b := range segs {
		if len(b[0]) == 0 {
			return errEmptySegment // the caller's mistake, not the kernel's: GSO stays on
		}
		w.iov[i].Base = &b[0][0]
		w.iov[i].SetLen(len(b[0]))
	}
	w.name = unix.RawSockaddrInet6{}
	namelen := w.setName(s, to)
	if namelen == 0 {
		return unix.EAFNOSUPPORT
	}
	w.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&w.name)), Namelen: namelen, Iov: &w.iov[0]}
	w.hdr.SetIovlen(len(segs))
	oob := s.appendPktinfo(gsoOOB(w.oob[:], seg), s.sourceFor(to))
	w.hdr.Control = &oob[0]
	w.hdr.SetControllen(len(oob))
	w.errno = 0
	if err := s.rc.Write(w.send); err != nil {
		return err
	}
	if w.errno != 0 {
		return w.errno
	}
	return nil
}

// setName writes to as the socket's family wants it and returns its length; 0 if
// the socket cannot reach it.
func (w *gsoWriter) setName(s *socket, to netip.AddrPort) uint32 {
	return putSockaddr(&w.name, s, to)
}

// putSockaddr writes to into name (zeroed) as s's family wants it and returns
// its length; 0 if s cannot reach it.
func putSockaddr(name *unix.RawSockaddrInet6, s *socket, to netip.AddrPort) uint32 {
	port := (*[2]byte)(unsafe.Pointer(&name.Port))
	binary.BigEndian.PutUint16(port[:], to.Port())
	if s.v4 != nil {
		ip := to.Addr().Unmap()
		if !ip.Is4() {
			return 0
		}
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(name))
		sa.Family, sa.Addr = unix.AF_INET, ip.As4()
		return unix.SizeofSockaddrInet4
	}
	name.Family, name.Addr = unix.AF_INET6, to.Addr().As16()
	if zone := to.Addr().Zone(); zone != "" {
		name.Scope_id = zoneIndex(zone)
	}
	return unix.SizeofSockaddrInet6
}

// zoneIndex is the interface index of an IPv6 zone (a name or a number); 0 if
// there is no such interface.
func zoneIndex(zone string) uint32 {
	if i, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(i)
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// errEmptySegment: writeGSO was given an empty datagram, which a run cannot carry.
var errEmptySegment = errors.New("driver: empty datagram in a GSO run")

// gsoOOB builds the UDP_SEGMENT control message for segment size seg into b.
func gsoOOB(b []byte, seg int) []byte {
	b = b[:unix.CmsgSpace(2)]
	clear(b)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], uint16(seg))
	return b
}

const gsoSupported = true

// gsoUnsupported reports whether a failed GSO send means the kernel, the device or
// the socket cannot do GSO (udp(7): EIO when the device cannot checksum, EINVAL or
// ENOPROTOOPT on kernels without UDP_SEGMENT) rather than that the destination
// failed.
func gsoUnsupported(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOPROTOOPT) ||
		errors.Is(err, unix.EOPNOTSUPP)
}
