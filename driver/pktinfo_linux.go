//go:build linux

package driver

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// enablePktinfo asks the kernel for every datagram's destination address, on a
// socket bound to an unspecified address; it reports whether s now gets them.
func (s *socket) enablePktinfo(bound netip.Addr) bool {
	if !bound.IsUnspecified() {
		return false
	}
	var serr error
	err := s.rc.Control(func(fd uintptr) {
		if s.v4 != nil {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		}
	})
	s.pktinfo = err == nil && serr == nil
	return s.pktinfo
}

// pktinfoDst returns the destination address an IP_PKTINFO or IPV6_PKTINFO
// control message in oob names; the zero Addr when there is none.
func pktinfoDst(oob []byte) netip.Addr {
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(oob) {
			break
		}
		data := oob[unix.CmsgLen(0):l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			return netip.AddrFrom4(pi.Addr)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			return netip.AddrFrom16(pi.Addr).Unmap()
		}
		oob = oob[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(oob)):]
	}
	return netip.Addr{}
}

// appendPktinfo appends to b the control message that sends from src on s (an
// IPv4 or IPv6 socket); b unchanged when src is the zero Addr or of the other
// family.
func (s *socket) appendPktinfo(b []byte, src netip.Addr) []byte {
	switch {
	case !src.IsValid():
		return b
	case s.v4 != nil && src.Is4():
		off := len(b)
		b = append(b, make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))...)
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[off]))
		h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&b[off+unix.CmsgLen(0)]))
		pi.Spec_dst = src.As4()
		return b
	case s.v6 != nil && src.Is6():
		off := len(b)
		b = append(b, make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))...)
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[off]))
		h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
		pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&b[off+unix.CmsgLen(0)]))
		pi.Addr = src.As16()
		return b
	}
	return b
}
