package driver

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natpass/natpass/proto"
)

// The server's side of datagrams over TCP/TLS (PROTOCOL.md §14): a listener whose
// every connection stands, for the rendezvous machine, for one UDP source on the
// primary socket. The machine names a source by address, so each connection gets
// an address of its own that no UDP datagram can come from (streamSource), and
// the loop routes what the machine sends there into the connection.

const (
	// defaultMaxStreams bounds the server's open TCP/TLS connections; more are
	// closed at once and counted (ServerStats.StreamsRefused).
	defaultMaxStreams = 4096
	// streamHandshakeTimeout bounds a TLS handshake.
	streamHandshakeTimeout = 10 * time.Second
)

// streamSource makes the address by which the machine knows stream number n from
// remote. It lies in 0100::/16, reserved by the IETF (100::/64 is the discard-only
// block), so no datagram comes from it; byte 1 says the family of remote, bytes
// 2–7 hold remote's IPv4 address (or its IPv6 /48), so the machine's per-source
// limits, which key on a /64, key on the client's address; the low 64 bits number
// the connection. The port is remote's.
func streamSource(remote netip.AddrPort, n uint64) netip.AddrPort {
	var b [16]byte
	b[0] = 0x01
	ip := remote.Addr().Unmap()
	if ip.Is4() {
		a := ip.As4()
		b[1] = 4
		copy(b[2:6], a[:])
	} else {
		a := ip.As16()
		b[1] = 6
		copy(b[2:8], a[:6])
	}
	binary.BigEndian.PutUint64(b[8:], n)
	return netip.AddrPortFrom(netip.AddrFrom16(b), remote.Port())
}

// isStreamSource reports whether a was made by streamSource.
func isStreamSource(a netip.AddrPort) bool {
	ip := a.Addr()
	if !ip.Is6() || ip.Is4In6() {
		return false
	}
	b := ip.As16()
	return b[0] == 0x01 && (b[1] == 4 || b[1] == 6)
}

// serverStreams are a Server's TCP/TLS connections.
type serverStreams struct {
	ln      net.Listener
	tls     *tls.Config
	primary *socket
	max     int

	mu     sync.Mutex
	byAddr map[netip.AddrPort]*streamConn
	shut   bool

	next              atomic.Uint64
	stats             streamCounters
	accepted          atomic.Uint64
	refused           atomic.Uint64
	noStream          atomic.Uint64 // datagrams for a connection that had closed
	handshakeFailures atomic.Uint64
}

// listenStreams opens cfg's TCP listener (nil when cfg asks for none).
func listenStreams(cfg ServerConfig, primary *socket) (*serverStreams, error) {
	if cfg.TCPListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.TCPListen)
	if err != nil {
		return nil, fmt.Errorf("tcp listen %s: %w", cfg.TCPListen, err)
	}
	st := &serverStreams{ln: ln, tls: cfg.TLS, primary: primary, max: cfg.MaxStreams,
		byAddr: map[netip.AddrPort]*streamConn{}}
	if st.max == 0 {
		st.max = defaultMaxStreams
	}
	return st, nil
}

// acceptLoop takes connections until the listener closes.
func (st *serverStreams) acceptLoop(l *loop) {
	for {
		c, err := st.ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return // closed
		}
		st.mu.Lock()
		full := st.shut || len(st.byAddr) >= st.max
		st.mu.Unlock()
		if full {
			st.refused.Add(1)
			c.Close()
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			st.serve(l, c)
		}()
	}
}

// serve runs one connection: the TLS handshake if any, then its writer and its
// reader, which hands the loop each datagram as one from the connection's source
// address on the primary socket.
func (st *serverStreams) serve(l *loop, c net.Conn) {
	if st.tls != nil {
		tc := tls.Server(c, st.tls)
		tc.SetDeadline(time.Now().Add(streamHandshakeTimeout))
		if err := tc.Handshake(); err != nil {
			st.handshakeFailures.Add(1)
			tc.Close()
			return
		}
		tc.SetDeadline(time.Time{})
		c = tc
	}
	remote, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	from := streamSource(remote, st.next.Add(1))
	sc := newStreamConn(c, &st.stats)
	st.mu.Lock()
	if st.shut {
		st.mu.Unlock()
		c.Close()
		return
	}
	st.byAddr[from] = sc
	st.mu.Unlock()
	st.accepted.Add(1)
	defer func() {
		st.mu.Lock()
		delete(st.byAddr, from)
		st.mu.Unlock()
	}()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		sc.writeLoop()
	}()
	sc.readLoop(func(d []byte) bool { return l.deliverStream(st.primary, from, d) })
}

// divert takes what the machine sends to a stream's source address; it reports
// whether t was for one.
func (st *serverStreams) divert(t proto.Transmit) bool {
	if !isStreamSource(t.To) {
		return false
	}
	st.mu.Lock()
	sc := st.byAddr[t.To]
	st.mu.Unlock()
	if sc == nil {
		st.noStream.Add(1)
		return true
	}
	sc.send(t.Payload)
	return true
}

// shutdown closes the listener and every connection; their goroutines end.
func (st *serverStreams) shutdown() {
	st.ln.Close()
	st.mu.Lock()
	st.shut = true
	for _, sc := range st.byAddr {
		sc.close()
	}
	st.mu.Unlock()
}
