package driver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/natpass/natpass/proto"
)

// A node's fallback to TCP/TLS (DESIGN §14, PROTOCOL.md §14). The node machine
// keeps sending to its server's UDP address; while the fallback's stream is up,
// the loop diverts those datagrams into the stream and hands the stream's
// datagrams to the machine as if they came from that address on the main socket.
// The driver goes to the stream when a register or keepalive to the server has had
// no answer over UDP for fallbackAfter, and while on it asks the server a STUN
// Binding over UDP every probeEvery; the first answer over UDP moves it back. At
// each move it tells the machine its network changed (node.NetworkChanged): its
// keepalive tells the server where it is now and its peers look for paths afresh,
// so a relayed session follows and the pair punches again once UDP works.

const (
	fallbackAfter  = 3 * time.Second        // an unanswered register or keepalive this old: use the stream
	probeEvery     = time.Second            // a STUN probe over UDP this often while on the stream
	fallbackTick   = 250 * time.Millisecond // how often the loop looks at the fallback's clocks
	dialTimeout    = 10 * time.Second       // TCP connect and TLS handshake
	streamLinger   = 5 * time.Second        // a stream left for UDP still delivers this long
	stunBindingReq = 0x0001
	stunBindingOK  = 0x0101
	stunCookie     = 0x2112A442
)

// Transports a node reaches its server over (Node.ServerTransport).
const (
	TransportUDP = "udp"
	TransportTCP = "tcp"
	TransportTLS = "tls"
)

// fallback is a node's stream state; the loop owns it (under its mu), except for the
// counters and transport, which Stats reads.
type fallback struct {
	addr      string      // Config.ServerTCP
	tls       *tls.Config // Config.ServerTLS
	serverUDP netip.AddrPort

	stream     *streamConn // the stream in use; nil: on UDP
	old        *streamConn // the stream last left, lingering
	dialing    bool
	unanswered time.Time // the first register or keepalive sent over UDP since the server last answered there
	lastProbe  time.Time
	probeID    [8]byte // the random first 8 bytes of every probe's transaction ID
	probeSeq   uint32
	pending    []byte // the last datagram to the server while not registered: resent on the new stream

	events chan func(now proto.Instant) // dial results and stream ends, for the loop
	tick   *time.Ticker
	ctx    context.Context // cancelled when the node stops: a dial ends
	cancel context.CancelFunc

	stats     streamCounters
	dials     atomic.Uint64
	dialFails atomic.Uint64
	moves     atomic.Uint64 // moves between UDP and the stream, both ways
	transport atomic.Value  // string: TransportUDP, TCP or TLS
}

// newFallback prepares the fallback for cfg; nil without Config.ServerTCP.
func newFallback(cfg Config, serverUDP netip.AddrPort) *fallback {
	if cfg.ServerTCP == "" {
		return nil
	}
	f := &fallback{addr: cfg.ServerTCP, tls: cfg.ServerTLS, serverUDP: serverUDP,
		events: make(chan func(proto.Instant), 4), tick: time.NewTicker(fallbackTick)}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	_, _ = rand.Read(f.probeID[:])
	f.transport.Store(TransportUDP)
	return f
}

// divertOut takes the node's datagrams to its server while the stream is up, and
// notes the registers and keepalives that go over UDP (they expect an answer).
func (n *Node) divertOut(t proto.Transmit) bool {
	f := n.fb
	if t.To != f.serverUDP {
		return false
	}
	if f.stream != nil {
		f.stream.send(t.Payload)
		return true
	}
	if h, _, err := proto.ParseHeader(t.Payload); err == nil && (h.Type == proto.TypeRegister || h.Type == proto.TypeKeepalive) {
		if f.unanswered.IsZero() {
			f.unanswered = time.Now()
		}
		if h.Type == proto.TypeRegister {
			f.pending = append(f.pending[:0], t.Payload...)
		}
	}
	return false
}

// divertIn sees what came over UDP: anything from the server says UDP works (on
// the stream: move back); the answers to the driver's probes are the driver's.
func (n *Node) divertIn(now proto.Instant, p *packet, d []byte) bool {
	f := n.fb
	if p.from != f.serverUDP {
		return false
	}
	f.unanswered = time.Time{}
	if f.stream != nil {
		n.leaveStream(now)
	}
	return f.isProbeAnswer(d)
}

// isProbeAnswer reports whether d is a STUN Binding success to one of our probes.
func (f *fallback) isProbeAnswer(d []byte) bool {
	return len(d) >= 20 && binary.BigEndian.Uint16(d) == stunBindingOK &&
		binary.BigEndian.Uint32(d[4:]) == stunCookie && bytes.Equal(d[8:16], f.probeID[:])
}

// fallbackTick dials when UDP has gone unanswered too long and probes UDP while on
// the stream.
func (n *Node) fallbackTick(now proto.Instant) {
	f := n.fb
	switch {
	case f.stream == nil && !f.dialing && !f.unanswered.IsZero() && time.Since(f.unanswered) >= fallbackAfter:
		f.dialing = true
		f.dials.Add(1)
		n.loop.wg.Add(1)
		go func() {
			defer n.loop.wg.Done()
			n.dial()
		}()
	case f.stream != nil && time.Since(f.lastProbe) >= probeEvery:
		f.lastProbe = time.Now()
		f.probeSeq++
		var req [20]byte // a Binding request with no attributes (RFC 8489)
		binary.BigEndian.PutUint16(req[0:], stunBindingReq)
		binary.BigEndian.PutUint32(req[4:], stunCookie)
		copy(req[8:16], f.probeID[:])
		binary.BigEndian.PutUint32(req[16:], f.probeSeq)
		n.loop.count(n.loop.main.write(req[:], f.serverUDP, 0), len(req))
	}
}

// dial connects to Config.ServerTCP (with TLS when configured) and hands the
// result to the loop. It runs on a goroutine of its own.
func (n *Node) dial() {
	f := n.fb
	ctx, cancel := context.WithTimeout(f.ctx, dialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", f.addr)
	if err == nil && f.tls != nil {
		cfg := f.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(f.addr)
		}
		tc := tls.Client(c, cfg)
		if err = tc.HandshakeContext(ctx); err != nil {
			c.Close()
		}
		c = tc
	}
	if err != nil {
		f.dialFails.Add(1)
		c = nil
	}
	select {
	case f.events <- func(now proto.Instant) { n.enterStream(now, c) }:
	case <-f.ctx.Done():
		if c != nil {
			c.Close()
		}
	}
}

// enterStream puts the node on the dialled stream c (nil: the dial failed; try
// again after fallbackAfter), unless UDP answered meanwhile.
func (n *Node) enterStream(now proto.Instant, c net.Conn) {
	f := n.fb
	f.dialing = false
	switch {
	case c == nil:
		f.unanswered = time.Now()
		return
	case f.unanswered.IsZero() || n.closing:
		c.Close() // UDP answered while dialling
		return
	}
	sc := newStreamConn(c, &f.stats)
	f.stream, f.lastProbe = sc, time.Time{}
	n.loop.wg.Add(2)
	go func() {
		defer n.loop.wg.Done()
		sc.writeLoop()
	}()
	go func() {
		defer n.loop.wg.Done()
		sc.readLoop(func(d []byte) bool { return n.loop.deliverStream(n.loop.main, f.serverUDP, d) })
		select {
		case f.events <- func(now proto.Instant) { n.streamEnded(now, sc) }:
		case <-f.ctx.Done():
		}
	}()
	name := TransportTCP
	if f.tls != nil {
		name = TransportTLS
	}
	n.moved(now, name)
	if !n.regSeen && len(f.pending) > 0 {
		sc.send(f.pending) // the register UDP did not carry, at once
	}
}

// leaveStream moves the node back to UDP; the stream lingers a moment for what
// the server sent on it before it heard the node over UDP. The move is told once:
// a peer that lost UDP with us gets it back within its own probe period, and until
// it has moved, introductions carry its stream's address, which no punch reaches.
// Its own move asks for a refreshed introduction, which the server makes anew when
// a side moved since the last (rendezvous introEntry), so both sides then get each
// other's UDP addresses and punch. Telling our change again later would make us
// forget the direct path that search found.
func (n *Node) leaveStream(now proto.Instant) {
	f := n.fb
	sc := f.stream
	f.stream, f.old = nil, sc
	time.AfterFunc(streamLinger, sc.close)
	n.moved(now, TransportUDP)
}

// streamEnded: the stream sc closed (the server or the network ended it). If it
// was the one in use, the node is on UDP again until that goes unanswered.
func (n *Node) streamEnded(now proto.Instant, sc *streamConn) {
	f := n.fb
	if f.stream != sc {
		return
	}
	f.stream = nil
	f.unanswered = time.Now()
	n.moved(now, TransportUDP)
}

// moved records a move to transport and tells the machine its network changed.
func (n *Node) moved(now proto.Instant, transport string) {
	f := n.fb
	f.moves.Add(1)
	f.transport.Store(transport)
	if n.cfg.OnTransport != nil {
		n.cfg.OnTransport(transport)
	}
	n.nm.NetworkChanged(now)
}

// stopFallback ends the fallback's dial and stream; the loop calls it as it
// stops, before it waits for its goroutines.
func (n *Node) stopFallback() {
	f := n.fb
	if f == nil {
		return
	}
	f.cancel()
	f.tick.Stop()
	for _, sc := range []*streamConn{f.stream, f.old} {
		if sc != nil {
			sc.close()
		}
	}
}
