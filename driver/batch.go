package driver

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// sendBatchLen is how many datagrams one batch holds: one sendmmsg, or GSO runs of
// up to gsoMaxSegments.
const sendBatchLen = gsoMaxSegments

// sendBatch collects datagrams for one socket. Each slot owns a buffer the
// machine's PollTransmit writes into, and a *net.UDPAddr reused for its
// destination, so batching allocates nothing.
type sendBatch struct {
	sock  *socket
	n     int
	bufs  [sendBatchLen][]byte
	addrs [sendBatchLen]net.UDPAddr
	ips   [sendBatchLen][16]byte
	msgs  [sendBatchLen]ipv4.Message
	fail  [sendBatchLen]bool
	to    [sendBatchLen]netip.AddrPort
	// oobs hold each slot's packet-information control message, when its socket
	// sends from the address the destination asked on (pktinfo.go).
	oobs [sendBatchLen][64]byte

	iov [sendBatchLen][1][]byte
	gso gsoWriter
}

func newSendBatch(bufLen int) sendBatch {
	var b sendBatch
	for i := range b.bufs {
		b.bufs[i] = make([]byte, bufLen)
	}
	return b
}

// next is the buffer for the next datagram.
func (b *sendBatch) next() []byte { return b.bufs[b.n] }

func (b *sendBatch) full() bool { return b.n == sendBatchLen }

// adopt copies p (which aliases slot n's buffer before a flush) into the fresh
// slot 0 and returns the copy.
func (b *sendBatch) adopt(p []byte) []byte {
	return b.bufs[0][:copy(b.bufs[0], p)]
}

// add queues p (in slot n's buffer) for to from s.
func (b *sendBatch) add(s *socket, p []byte, to netip.AddrPort) {
	i := b.n
	b.sock = s
	a := &b.addrs[i]
	ip := to.Addr()
	if ip.Is4() {
		b.ips[i] = ip.As16()
		a.IP = b.ips[i][12:16]
	} else {
		b.ips[i] = ip.As16()
		a.IP = b.ips[i][:]
	}
	a.Port, a.Zone = int(to.Port()), ip.Zone()
	b.iov[i][0] = p
	b.to[i] = to
	b.msgs[i] = ipv4.Message{Buffers: b.iov[i][:], Addr: a}
	if src := s.sourceFor(to); src.IsValid() {
		b.msgs[i].OOB = s.appendPktinfo(b.oobs[i][:0], src)
	}
	b.n++
}

// runEnd returns the end of the GSO run starting at slot i: the slots after it to
// the same destination, every one but the last exactly as long as slot i and the
// last no longer, none empty, at most gsoMaxSegments and gsoMaxBytes in all. A
// run of one is no run.
func (b *sendBatch) runEnd(i int) int {
	seg, to := len(b.iov[i][0]), b.to[i]
	if seg == 0 {
		return i + 1
	}
	j, total := i+1, seg
	for ; j < b.n && j-i < gsoMaxSegments && b.to[j] == to && len(b.iov[j-1][0]) == seg; j++ {
		n := len(b.iov[j][0])
		if n == 0 || n > seg || total+n > gsoMaxBytes {
			break
		}
		total += n
	}
	return j
}

func (b *sendBatch) reset() {
	b.n, b.sock = 0, nil
	b.fail = [sendBatchLen]bool{}
}

// writeBatch sends ms; failed[i] (len(ms) of them) reports the datagrams the kernel refused (an
// unreachable destination must not cost the others in the batch). Without batch
// support (IPv6 sockets here; other platforms inside x/net) it writes one at a time.
func (s *socket) writeBatch(ms []ipv4.Message, failed []bool) {
	for i := 0; i < len(ms); {
		if s.v4 != nil {
			n, err := s.v4.WriteBatch(ms[i:], 0)
			if err == nil && n > 0 {
				i += n
				continue
			}
		} else if _, _, err := s.conn.WriteMsgUDP(ms[i].Buffers[0], ms[i].OOB, ms[i].Addr.(*net.UDPAddr)); err == nil {
			ms[i].N = len(ms[i].Buffers[0])
			i++
			continue
		}
		// sendmmsg stops at the first datagram that fails: skip it, go on.
		failed[i] = true
		i++
	}
}
