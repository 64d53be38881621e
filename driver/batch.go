package driver

import "net/netip"

// sendBatchLen is how many datagrams one batch holds: one sendmmsg, whose entries
// are GSO runs of up to gsoMaxSegments and single datagrams. Twice as many (two
// full runs) made a bulk sender's calls carry 40–45 datagrams instead of 30, but
// no difference in CPU per byte could be measured (a send call's fixed cost is
// small beside the bytes it moves), and the first datagram of a long drain would
// wait for twice as many to be sealed (issue 18); so one run's worth.
const sendBatchLen = gsoMaxSegments

// sendBatch collects datagrams for one socket. Each slot owns a buffer the
// machine's PollTransmit writes into, and the sendmmsg writer's header for it
// (batch_linux.go, batch_other.go) is reused, so batching allocates nothing.
type sendBatch struct {
	sock *socket
	n    int
	bufs [sendBatchLen][]byte
	fail [sendBatchLen]bool
	to   [sendBatchLen]netip.AddrPort
	// oobs hold each slot's packet-information control message, when its socket
	// sends from the address the destination asked on (pktinfo.go).
	oobs [sendBatchLen][64]byte

	iov  [sendBatchLen][1][]byte
	mmsg mmsgWriter
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
	b.iov[i][0] = p
	b.to[i] = to
	var oob []byte
	if src := s.sourceFor(to); src.IsValid() {
		oob = s.appendPktinfo(b.oobs[i][:0], src)
	}
	b.mmsg.set(i, s, b.iov[i][:], to, oob)
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

// openRun returns where the batch's last GSO run starts when that run could still
// grow (every datagram in it the same size, fewer than gsoMaxSegments, room for
// one more under gsoMaxBytes), and that run is not the whole batch; 0 otherwise.
// A full batch keeps that run back (flushFull) instead of cutting it where the
// slots ran out.
func (b *sendBatch) openRun() int {
	if b.n < 2 || b.sock.noGSO || !gsoSupported {
		return 0
	}
	k, seg, to := b.n-1, len(b.iov[b.n-1][0]), b.to[b.n-1]
	if seg == 0 {
		return 0
	}
	for k > 0 && b.to[k-1] == to && len(b.iov[k-1][0]) == seg {
		k--
	}
	// The equal datagrams before k that a run reaching back would not include
	// (it could hold no more) are runs of their own: start at a run boundary.
	for b.n-k >= gsoMaxSegments || (b.n-k+1)*seg > gsoMaxBytes {
		k = b.runEnd(k)
	}
	return k
}

// keepFrom moves slots [k, n) to the front after slots [0, k) were sent: their
// buffers trade places with the sent ones (nothing is copied), and their send
// headers are set again for their new slots.
func (b *sendBatch) keepFrom(k int) {
	s, n := b.sock, b.n
	b.reset()
	for i := 0; i < n-k; i++ {
		b.bufs[i], b.bufs[k+i] = b.bufs[k+i], b.bufs[i]
		b.add(s, b.iov[k+i][0], b.to[k+i])
	}
}

func (b *sendBatch) reset() {
	b.n, b.sock = 0, nil
	b.fail = [sendBatchLen]bool{}
}
