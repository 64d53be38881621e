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

	// ents are the entries of a flush's sendmmsg (setEntry): a slot's header, or
	// a GSO run's (the run's slots' iovecs, which lie in a row in iovs, and a
	// UDP_SEGMENT control message in ctls). entEnd[e] is the slot after entry e.
	ents     [sendBatchLen]unix.Mmsghdr
	entEnd   [sendBatchLen]int
	ctls     [sendBatchLen][64]byte
	entFrom  int // the first entry of the call under way (to: entTo)
	entTo    int
	sendEnts func(fd uintptr) bool
}

// setEntry makes entry e slots [i, j) to to from s: slot i's header as set, or
// for a run (j > i+1) that header over the run's datagrams with a UDP_SEGMENT
// control message (the segment size is slot i's length) and the source address.
func (w *mmsgWriter) setEntry(e, i, j int, s *socket, to netip.AddrPort) {
	w.ents[e] = w.hdrs[i]
	w.entEnd[e] = j
	if j == i+1 {
		return
	}
	h := &w.ents[e].Hdr
	h.SetIovlen(j - i)
	oob := s.appendPktinfo(gsoOOB(w.ctls[e][:], int(w.iovs[i].Len)), s.sourceFor(to))
	h.Control = &oob[0]
	h.SetControllen(len(oob))
}

// entrySlots is entry e's slots [i, j).
func (w *mmsgWriter) entrySlots(e int) (i, j int) {
	if e > 0 {
		i = w.entEnd[e-1]
	}
	return i, w.entEnd[e]
}

// writeEntries sends entries [e, n) from s with one sendmmsg (waiting while the
// socket buffer is full) and returns how many the kernel took. err is the
// unix.Errno of entry e+sent when the kernel refused it, or the socket's error
// when it closed (nothing sent).
func (w *mmsgWriter) writeEntries(s *socket, e, n int) (sent int, err error) {
	if w.sendEnts == nil {
		w.sendEnts = func(fd uintptr) bool {
			n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.ents[w.entFrom])),
				uintptr(w.entTo-w.entFrom), unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
				return false
			}
			w.sent, w.errno = int(n), e
			return true
		}
	}
	w.entFrom, w.entTo, w.sent, w.errno = e, n, 0, 0
	if err := s.rc.Write(w.sendEnts); err != nil {
		return 0, err
	}
	if w.errno != 0 || w.sent <= 0 {
		// sendmmsg stops at the first entry that fails, and says why only when
		// it is the first of the call.
		if w.errno == 0 {
			w.errno = unix.ENOBUFS
		}
		return 0, w.errno
	}
	return w.sent, nil
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
