//go:build linux

package driver

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP generic segmentation offload (Linux ≥ 4.18, udp(7) UDP_SEGMENT): one
// sendmsg carries a run of equal-size datagrams to one destination, and the kernel
// cuts it, which saves most of the per-datagram cost of the send path. rudp's bulk
// packets are equal-size, so runs are common while a transfer is under way.

// gsoMaxSegments bounds one run (the kernel's limit is 64, UDP_MAX_SEGMENTS).
const gsoMaxSegments = sendBatchLen

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

// writeGSO sends the segments of buf (each seg bytes, the last possibly shorter)
// to to in one system call.
func (s *socket) writeGSO(buf []byte, seg int, to netip.AddrPort, oob []byte) error {
	_, _, err := s.conn.WriteMsgUDPAddrPort(buf, gsoOOB(oob, seg), to)
	return err
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
