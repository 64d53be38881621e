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
// message carries a run of equal-size datagrams to one destination, and the kernel
// cuts it, which saves most of the per-datagram cost of the send path. rudp's bulk
// packets are equal-size, so runs are common while a transfer is under way. The
// control message is per message, so one sendmmsg carries several runs and single
// datagrams side by side (sendSlots).

// gsoMaxSegments bounds one run: the kernel's UDP_MAX_SEGMENTS.
const gsoMaxSegments = 64

// gsoMaxBytes bounds one run's bytes: a GSO send is one UDP datagram to the
// kernel before it is cut, so it must fit an IPv4 UDP payload (65,535 − 20 − 8).
const gsoMaxBytes = 65507

// sendEntries sends the entries the batch's writer holds (sendSlots), as few
// sendmmsg calls as the socket buffer allows. An entry the kernel refuses costs
// the others nothing: a run refused in a way that says the kernel or device
// cannot do GSO turns GSO off for the socket and goes again one datagram per
// entry; any other refusal counts its datagrams as write errors.
func (l *loop) sendEntries(n int) {
	b := &l.batch
	w := &b.mmsg
	for e := 0; e < n; {
		sent, err := w.writeEntries(b.sock, e, n)
		l.stats.mmsgSends.Add(1)
		for ; sent > 0; sent-- {
			i, j := w.entrySlots(e)
			bytes := 0
			for k := i; k < j; k++ {
				bytes += len(b.iov[k][0])
			}
			l.countSent(j-i, bytes)
			if j-i > 1 {
				l.stats.gsoSends.Add(1)
			}
			e++
		}
		if err == nil {
			continue
		}
		i, j := w.entrySlots(e)
		if _, refused := err.(unix.Errno); !refused {
			_, j = w.entrySlots(n - 1) // the socket closed: nothing more goes
			e = n
		} else {
			e++
		}
		if j-i > 1 && gsoUnsupported(err) {
			b.sock.noGSO = true
			l.sendmmsg(i, j)
			continue
		}
		l.stats.writeErrors.Add(uint64(j - i))
	}
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
