//go:build linux

package driver

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgWriter sends batch slots with sendmmsg(2), a raw system call on the
// non-blocking socket (recvmmsg_linux.go's recv says why), from headers,
// iovecs and addresses reused for every send: sending allocates nothing. Only the
// loop (holding its mu) uses it.
type mmsgWriter struct {
	hdrs  [sendBatchLen]unix.Mmsghdr
	iovs  [sendBatchLen]unix.Iovec
	names [sendBatchLen]unix.RawSockaddrInet6 // room for either family

	from, to int // the slots of the call under way
	sent     int
	errno    unix.Errno
	send     func(fd uintptr) bool // built once: a closure per call would allocate
}

// set makes slot i the datagram iov[0] to to from s, with control message oob
// (may be nil). A destination s cannot reach gets no address, and the kernel
// refuses that datagram alone.
func (w *mmsgWriter) set(i int, s *socket, iov [][]byte, to netip.AddrPort, oob []byte) {
	h := &w.hdrs[i].Hdr
	*h = unix.Msghdr{}
	w.names[i] = unix.RawSockaddrInet6{}
	if n := putSockaddr(&w.names[i], s, to); n > 0 {
		h.Name, h.Namelen = (*byte)(unsafe.Pointer(&w.names[i])), n
	}
	w.iovs[i] = unix.Iovec{}
	if p := iov[0]; len(p) > 0 {
		w.iovs[i].Base = &p[0]
		w.iovs[i].SetLen(len(p))
	}
	h.Iov = &w.iovs[i]
	h.SetIovlen(1)
	if len(oob) > 0 {
		h.Control = &oob[0]
		h.SetControllen(len(oob))
	}
}

// write sends slots [i, j) from s; failed[k] reports the datagrams the kernel
// refused (an unreachable destination must not cost the others in the batch).
// A full socket buffer waits until it drains, as a blocking write would.
func (w *mmsgWriter) write(s *socket, i, j int, failed []bool) {
	if w.send == nil {
		w.send = func(fd uintptr) bool {
			n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[w.from])),
				uintptr(w.to-w.from), unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
				return false
			}
			w.sent, w.errno = int(n), e
			return true
		}
	}
	for i < j {
		w.from, w.to, w.sent, w.errno = i, j, 0, 0
		if err := s.rc.Write(w.send); err != nil {
			for ; i < j; i++ {
				failed[i] = true // the socket closed
			}
			return
		}
		if w.errno != 0 || w.sent <= 0 {
			// sendmmsg stops at the first datagram that fails: skip it, go on.
			failed[i] = true
			i++
			continue
		}
		i += w.sent
	}
}
