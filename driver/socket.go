package driver

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// maxDatagram is the largest datagram the driver accepts. natpass datagrams are at
// most rudp's DatagramSizeMax plus framing (well under 1500 bytes); STUN requests the
// server answers are small. Receive buffers hold one byte more, so a longer datagram
// is seen as too long and dropped rather than silently truncated.
const maxDatagram = 2048

// packet is one read: a datagram, or a run of them the kernel coalesced (GRO), in
// a buffer its socket's reader owns. The reader fills it and hands it to the loop
// (loop.deliver), which gives it to the machine before the reader reads again.
type packet struct {
	sock *socket
	from netip.AddrPort
	// dst is the local address the datagrams were sent to, on a socket that asks
	// for it (socket.pktinfo); the zero Addr otherwise.
	dst netip.Addr
	// stream: the datagram came over a TCP/TLS stream (loop.deliverStream), not
	// from sock itself.
	stream bool
	// buf[:n] is the read: one datagram when seg is 0, else datagrams of seg
	// bytes each, the last possibly shorter (recvmmsg sets seg to n for a read
	// that was not coalesced).
	buf    []byte
	n, seg int
}

// newPacket is a packet with a receive buffer of size bytes.
func newPacket(size int) *packet { return &packet{buf: make([]byte, size)} }

// datagram returns the k-th datagram the packet holds and whether there is one.
func (p *packet) datagram(k int) ([]byte, bool) {
	if p.seg <= 0 {
		return p.buf[:p.n], k == 0
	}
	off := k * p.seg
	if off >= p.n && (k > 0 || p.n > 0) {
		return nil, false
	}
	return p.buf[off:min(off+p.seg, p.n)], true
}

// socket is one bound UDP socket: the machine names it by addr (Transmit.From, the
// local argument of HandleDatagram).
type socket struct {
	conn *net.UDPConn
	rc   syscall.RawConn // conn's, kept: asking for it allocates
	addr netip.AddrPort  // the address the machine knows the socket by
	v4   *ipv4.PacketConn
	v6   *ipv6.PacketConn
	ttl  int // the socket's default TTL / hop limit, restored after a TTL-limited write

	// dropRate and dropRNG impair the socket on purpose (Config.DropInbound): the
	// reader discards that share of received datagrams. Only the reader uses them.
	dropRate float64
	dropRNG  *rand.Rand

	// noGSO: a GSO send failed in a way that says the kernel or device cannot do
	// it; this socket sends with sendmmsg from then on.
	noGSO bool
	// batch: the reader uses recvmmsg (and UDP_GRO where it can) and owns
	// recvBatchLen buffers (groBatchLen coalesced-read ones).
	batch bool

	// pktinfo: the socket is bound to an unspecified address and learns each
	// datagram's destination address; sources maps a remote address to the local
	// address it last reached (pktinfo.go). Only the loop uses sources.
	pktinfo bool
	sources map[netip.AddrPort]netip.Addr
	// lastTo and lastSrc repeat sources' entry sourceFor found last (lastSrc
	// invalid: none): a transfer asks for one remote per datagram. noteSource
	// keeps them true.
	lastTo  netip.AddrPort
	lastSrc netip.Addr
	// oob is write's control-message buffer (the loop's only).
	oob []byte
	// hold: the socket is read by the holding reader (loop.readHold); nil
	// otherwise. Once that reader runs, rc writes to hold's dup of the
	// descriptor and conn is closed (uring_linux.go, detach).
	hold *holdFds
}

// listenUDP binds addr. An unspecified IP binds every interface; the machine still
// knows the socket by name (which may be the unspecified address).
func listenUDP(addr netip.AddrPort, name netip.AddrPort) (*socket, error) {
	network := "udp4"
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	s := &socket{conn: c, rc: rc, addr: name}
	bound := c.LocalAddr().(*net.UDPAddr).AddrPort()
	if !s.addr.IsValid() {
		s.addr = netip.AddrPortFrom(addr.Addr().Unmap(), bound.Port())
	} else if s.addr.Port() == 0 {
		s.addr = netip.AddrPortFrom(s.addr.Addr(), bound.Port())
	}
	if network == "udp4" {
		s.v4 = ipv4.NewPacketConn(c)
		s.ttl, err = s.v4.TTL()
	} else {
		s.v6 = ipv6.NewPacketConn(c)
		s.ttl, err = s.v6.HopLimit()
	}
	if err != nil || s.ttl <= 0 {
		s.ttl = 64
	}
	s.enablePktinfo(addr.Addr())
	// Bigger kernel buffers absorb bursts (a window of rudp packets, a punching
	// burst) while the loop is busy. Errors only mean the OS kept its default.
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	return s, nil
}

// write sends p to to, with IP TTL ttl when it is non-zero (TTL-limited priming
// probes, DESIGN §9). Only the event loop writes, so setting the socket's TTL around
// one write races with nothing.
func (s *socket) write(p []byte, to netip.AddrPort, ttl uint8) error {
	if ttl != 0 {
		if err := s.setTTL(int(ttl)); err != nil {
			return err
		}
		defer s.setTTL(s.ttl)
	}
	if src := s.sourceFor(to); src.IsValid() {
		s.oob = s.appendPktinfo(s.oob[:0], src)
		_, _, err := s.conn.WriteMsgUDPAddrPort(p, s.oob, to)
		return err
	}
	_, err := s.conn.WriteToUDPAddrPort(p, to)
	return err
}

func (s *socket) setTTL(ttl int) error {
	if s.v4 != nil {
		return s.v4.SetTTL(ttl)
	}
	return s.v6.SetHopLimit(ttl)
}

// readLoop reads datagrams until the socket is closed (or deliver reports the
// loop stopped) and hands each read to deliver (loop.deliver), which returns once
// the machine has had it; the reader then reads into the same buffers again. When the machine falls behind, the
// reader waits in deliver: the kernel's socket buffer then overflows and drops,
// so memory stays bounded by the reader's buffers whatever arrives.
func (s *socket) readLoop(deliver func([]*packet) bool, done <-chan struct{}, tooLong *atomic.Uint64) {
	// GRO hands the loop whole coalesced reads; an impaired socket (DropInbound)
	// drops datagram by datagram, so it reads them one by one.
	if s.batch && s.dropRate == 0 && s.enableGRO() {
		if s.readLoopBatch(groBatchLen, groBufLen, deliver, done, tooLong) {
			return
		}
	}
	if s.batch && s.readLoopBatch(recvBatchLen, maxDatagram+1, deliver, done, tooLong) {
		return
	}
	p := newPacket(maxDatagram + 1)
	one := []*packet{p}
	var oob [96]byte // a packet-information control message
	for {
		n, oobn, _, from, err := s.conn.ReadMsgUDPAddrPort(p.buf, oob[:])
		if err != nil {
			select {
			case <-done:
				return
			default:
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ICMP-induced errors (connection refused) and the like
			}
		}
		if n > maxDatagram {
			tooLong.Add(1)
			continue
		}
		if s.dropRate > 0 && s.dropRNG.Float64() < s.dropRate {
			continue
		}
		p.sock, p.from, p.n = s, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), n
		p.dst, p.stream = netip.Addr{}, false
		if s.pktinfo {
			p.dst = pktinfoDst(oob[:oobn])
		}
		if !deliver(one) {
			return
		}
	}
}
