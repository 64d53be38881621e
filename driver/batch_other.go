//go:build !linux

package driver

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// mmsgWriter sends batch slots with x/net's WriteBatch (sendmmsg where the
// platform has it, one write per datagram elsewhere). Each slot keeps a
// *net.UDPAddr reused for its destination, so sending allocates nothing.
type mmsgWriter struct {
	addrs [sendBatchLen]net.UDPAddr
	ips   [sendBatchLen][16]byte
	msgs  [sendBatchLen]ipv4.Message
}

// set makes slot i the datagram iov[0] to to, with control message oob (may be nil).
func (w *mmsgWriter) set(i int, _ *socket, iov [][]byte, to netip.AddrPort, oob []byte) {
	a := &w.addrs[i]
	ip := to.Addr()
	w.ips[i] = ip.As16()
	if ip.Is4() {
		a.IP = w.ips[i][12:16]
	} else {
		a.IP = w.ips[i][:]
	}
	a.Port, a.Zone = int(to.Port()), ip.Zone()
	w.msgs[i] = ipv4.Message{Buffers: iov, Addr: a, OOB: oob}
}

// write sends slots [i, j) from s; failed[k] reports the datagrams the kernel
// refused (an unreachable destination must not cost the others in the batch).
// Without batch support (IPv6 sockets here) it writes one at a time.
func (w *mmsgWriter) write(s *socket, i, j int, failed []bool) {
	for i < j {
		if s.v4 != nil {
			n, err := s.v4.WriteBatch(w.msgs[i:j], 0)
			if err == nil && n > 0 {
				i += n
				continue
			}
		} else if _, _, err := s.conn.WriteMsgUDP(w.msgs[i].Buffers[0], w.msgs[i].OOB, w.msgs[i].Addr.(*net.UDPAddr)); err == nil {
			i++
			continue
		}
		// sendmmsg stops at the first datagram that fails: skip it, go on.
		failed[i] = true
		i++
	}
}
