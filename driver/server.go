package driver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rendezvous"
)

// ServerConfig configures a rendezvous server.
type ServerConfig struct {
	// Listen is the primary socket, "host:port". Required. An unspecified IP
	// (0.0.0.0, [::]) serves every address of the host: on Linux each reply leaves
	// from the address its request was sent to (IP_PKTINFO); elsewhere give a
	// specific IP on a host with several.
	Listen string
	// AltPort is the second socket on Listen's IP, for "answer from another port"
	// (NAT filtering and mapping tests). "" means an ephemeral port; on an
	// unspecified Listen IP nodes take it on the address they reached the server
	// at (PROTOCOL §5.2). "off" disables it.
	AltPort string
	// AltAddr is a socket on another IP (natpass server --listen2), for "answer
	// from another address". Optional.
	AltAddr string
	// OtherListen is the primary socket of the other IP family (dual stack,
	// PROTOCOL.md §5.12: natpass server --listen given twice), with OtherAltPort
	// and OtherAltAddr its alternates as AltPort and AltAddr are Listen's. A node
	// registered over one family binds its socket of the other family here, and
	// its peers get candidates of both. Optional.
	OtherListen, OtherAltPort, OtherAltAddr string
	// Secret, or InsecureDev: see rendezvous.Config.
	Secret      []byte
	InsecureDev bool
	// Cluster, when set, makes the server a member of a cluster over this bus
	// (natsbus.Start gives one; DESIGN §12): peers registered on other servers are
	// introduced and relayed across it. Every server of the cluster needs the same
	// Secret (or, with InsecureDev, the same ClusterSecret). The caller closes the
	// bus after Close.
	Cluster ClusterBus
	// ClusterSecret: the shared key source of an InsecureDev cluster (ignored with a
	// Secret).
	ClusterSecret []byte
	// TCPListen, when set, is "host:port" of a TCP listener for nodes whose UDP
	// to the server is blocked (DESIGN §14, PROTOCOL.md §14): each connection
	// carries the datagrams such a node would send the primary socket, framed,
	// and the server answers and relays on it as over UDP. With TLS set, every
	// connection is TLS with that configuration (a certificate at least).
	TCPListen string
	TLS       *tls.Config
	// MaxStreams bounds the open TCP/TLS connections (default 4096); more are
	// closed at once and counted.
	MaxStreams int
	// Tune carries every other rendezvous.Config field (rates, bounds, timeouts);
	// its Secret, InsecureDev, Seed, sockets and WallClock are set by the driver.
	Tune rendezvous.Config
	// ReadHold, when > 0, is the longest a datagram may wait in a socket before
	// the server reads it (natpass server --read-hold): on Linux the server's
	// UDP sockets are read through io_uring by a thread that, while traffic
	// flows, wakes once per ReadHold and takes everything that arrived in it,
	// instead of once per datagram or two (a wake-up costs more than a relayed
	// datagram: BENCHMARKS.md, "Issue 18: the server's holding reader"). After a
	// wake-up that found no datagram, or a lone one more than a hold after the
	// wake-up before, it waits for the next arrival with no timeout: an idle
	// server does not wake, and a datagram at a low rate is read at once. Where io_uring is unavailable (kernel < 6.1,
	// kernel.io_uring_disabled, a seccomp filter) the sockets are read as with
	// 0, counted in ServerStats.Hold.Fallbacks. 0 (the default): recvmmsg woken
	// by Go's poller per arrival.
	ReadHold time.Duration
	// Log, when set, receives one line per server event (registrations,
	// introductions, expiries). It runs holding the server's lock, on whichever
	// of its goroutines moved the machine: keep it quick, and do not call the
	// Server from it.
	Log func(line string)
}

// Server is a rendezvous server on real UDP sockets.
type Server struct {
	loop    *loop
	srv     *rendezvous.Server
	cmds    chan func(now proto.Instant)
	stopped chan struct{}
	exited  chan struct{}
	once    sync.Once
	addrs   []netip.AddrPort
	log     func(string)
	streams *serverStreams // nil without ServerConfig.TCPListen

	bus           ClusterBus // nil when alone
	clusterErrors atomic.Uint64

	mu   sync.Mutex
	last rendezvous.Stats
}

// Serve runs a server until ctx is done; it returns ctx's error, or the error that
// kept the server from starting.
func Serve(ctx context.Context, cfg ServerConfig) error {
	s, err := ListenServer(cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	s.Close()
	return ctx.Err()
}

// ListenServer opens the server's sockets and starts serving.
func ListenServer(cfg ServerConfig) (*Server, error) {
	rc, socks, err := openServerSockets(cfg)
	if err != nil {
		return nil, err
	}
	closeAll := func() {
		for _, s := range socks {
			s.conn.Close()
		}
	}
	start := time.Now()
	rc.Secret, rc.InsecureDev = cfg.Secret, cfg.InsecureDev
	rc.Cluster, rc.ClusterSecret = cfg.Cluster != nil, cfg.ClusterSecret
	rc.WallClock = proto.WallClock{At: 0, Time: start}
	if _, err := rand.Read(rc.Seed[:]); err != nil {
		closeAll()
		return nil, err
	}
	srv, err := rendezvous.NewServer(rc)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	streams, err := listenStreams(cfg, socks[0])
	if err != nil {
		closeAll()
		return nil, err
	}
	s := &Server{
		srv: srv, loop: newLoop(srv, start, rendezvous.MaxDatagramLen),
		cmds:    make(chan func(proto.Instant)),
		stopped: make(chan struct{}),
		exited:  make(chan struct{}),
		log:     cfg.Log,
		bus:     cfg.Cluster,
		streams: streams,
	}
	s.loop.drained = s.events
	s.loop.readHold = max(cfg.ReadHold, 0)
	if streams != nil {
		s.loop.divertOut = streams.divert
	}
	// Each reader starts handing datagrams in as its socket is added.
	s.loop.mu.Lock()
	for _, so := range socks {
		s.loop.addSocket(so, true)
		s.addrs = append(s.addrs, so.addr)
	}
	s.loop.mu.Unlock()
	if streams != nil {
		s.loop.wg.Add(1)
		go func() {
			defer s.loop.wg.Done()
			streams.acceptLoop(s.loop)
		}()
	}
	go s.run()
	return s, nil
}

// openServerSockets opens the primary socket and the alternate port and address
// cfg asks for, then the other family's (OtherListen), and returns cfg.Tune with
// their addresses filled in. On an error every socket it opened is closed again.
func openServerSockets(cfg ServerConfig) (rc rendezvous.Config, socks []*socket, err error) {
	rc = cfg.Tune
	defer func() {
		if err != nil {
			for _, s := range socks {
				s.conn.Close()
			}
			socks = nil
		}
	}()
	open := func(a netip.AddrPort) (netip.AddrPort, error) {
		s, err := listenUDP(a, netip.AddrPort{})
		if err != nil {
			return netip.AddrPort{}, err
		}
		if a.Addr().IsUnspecified() {
			s.addr = netip.AddrPortFrom(a.Addr(), s.addr.Port())
		}
		socks = append(socks, s)
		return s.addr, nil
	}
	if rc.Primary, rc.AltPort, rc.AltAddr, err = openFamily(open, cfg.Listen, cfg.AltPort, cfg.AltAddr); err != nil {
		return rc, socks, err
	}
	if cfg.OtherListen != "" {
		rc.OtherPrimary, rc.OtherAltPort, rc.OtherAltAddr, err = openFamily(open, cfg.OtherListen, cfg.OtherAltPort, cfg.OtherAltAddr)
	} else if cfg.OtherAltAddr != "" || cfg.OtherAltPort != "" {
		err = fmt.Errorf("%w: OtherAltPort and OtherAltAddr need OtherListen", ErrBadConfig)
	}
	return rc, socks, err
}

// openFamily opens one family's sockets with open: the primary (listen), the
// alternate port (altPort: "" an ephemeral port on listen's IP, "off" none) and
// the alternate address (altAddr, optional).
func openFamily(open func(netip.AddrPort) (netip.AddrPort, error), listen, altPort, altAddr string) (primary, port, addr netip.AddrPort, err error) {
	a, err := netip.ParseAddrPort(listen)
	if err != nil {
		return primary, port, addr, fmt.Errorf("%w: listen %q: want IP:port (%v)", ErrBadConfig, listen, err)
	}
	if primary, err = open(netip.AddrPortFrom(a.Addr().Unmap(), a.Port())); err != nil {
		return primary, port, addr, err
	}
	switch {
	case altPort == "off":
	case altPort != "":
		a, perr := netip.ParseAddrPort(altPort)
		if perr != nil {
			return primary, port, addr, fmt.Errorf("%w: alt port %q: %v", ErrBadConfig, altPort, perr)
		}
		if port, err = open(a); err != nil {
			return primary, port, addr, err
		}
	default:
		// On an unspecified primary the alt port is unspecified too: nodes take it
		// as that port on the address they reached (PROTOCOL §5.2).
		if port, err = open(netip.AddrPortFrom(primary.Addr(), 0)); err != nil {
			return primary, port, addr, err
		}
	}
	if altAddr != "" {
		a, perr := netip.ParseAddrPort(altAddr)
		if perr != nil {
			return primary, port, addr, fmt.Errorf("%w: listen2 %q: %v", ErrBadConfig, altAddr, perr)
		}
		addr, err = open(netip.AddrPortFrom(a.Addr().Unmap(), a.Port()))
	}
	return primary, port, addr, err
}

// Addr is the primary socket's address (with the port the OS chose for ":0").
func (s *Server) Addr() netip.AddrPort { return s.addrs[0] }

// Addrs are every socket: primary, then the alternate port and address if open,
// then the other family's (OtherListen) in the same order.
func (s *Server) Addrs() []netip.AddrPort { return append([]netip.AddrPort(nil), s.addrs...) }

// ServerStats are the server machine's counters and the driver's.
type ServerStats struct {
	rendezvous.Stats
	TooLong     uint64 // datagrams longer than the driver's buffers, dropped unread
	WriteErrors uint64
	// ClusterErrors: cluster messages or interest changes the bus refused.
	ClusterErrors uint64
	// SourcesForgotten: remote addresses a socket on an unspecified address forgot
	// the local address of, its table full (16 Ki remotes); each is answered from
	// the kernel's choice of address until it sends again.
	SourcesForgotten uint64
	// Streams: the TCP/TLS listener's connections (zero without TCPListen).
	Streams StreamStats
	// Hold: the holding reader's counters (ServerConfig.ReadHold; zero when off).
	Hold HoldStats
}

// HoldStats count the holding reader's work (ServerConfig.ReadHold).
type HoldStats struct {
	Readers   uint64 // sockets read through io_uring
	Fallbacks uint64 // sockets read with recvmmsg instead: io_uring unavailable
	Wakeups   uint64 // returns from io_uring_enter (one per hold while traffic flows)
	Datagrams uint64 // datagrams read through the rings
	// NoBuffers: times every provided buffer (1024 per socket) was full and the
	// kernel ended the receive; it is armed again at once and the datagrams
	// wait in the socket's buffer meanwhile (which drops what does not fit).
	NoBuffers uint64
	// Overflow: completions the kernel could not post, its completion queue full.
	Overflow    uint64
	EnterErrors uint64 // io_uring_enter failures; that socket is no longer read
}

// StreamStats count a server's TCP/TLS connections and what they turned away.
type StreamStats struct {
	Accepted          uint64 // connections served (after the TLS handshake, with TLS)
	Refused           uint64 // closed at once: MaxStreams open already
	HandshakeFailures uint64 // TLS handshakes that failed or timed out
	QueueDrops        uint64 // datagrams dropped: a connection's write queue (256 KiB) was full
	BadFrames         uint64 // connections closed for a frame length of 0 or above 1472
	NoConn            uint64 // datagrams for a connection that had closed
}

// Stats returns the counters (the last ones seen, after Close).
func (s *Server) Stats() ServerStats {
	var st rendezvous.Stats
	done := make(chan struct{})
	select {
	case s.cmds <- func(proto.Instant) { st = s.srv.Stats(); close(done) }:
		<-done
	case <-s.exited:
		s.mu.Lock()
		st = s.last
		s.mu.Unlock()
	}
	return ServerStats{Stats: st, TooLong: s.loop.stats.tooLong.Load(), WriteErrors: s.loop.stats.writeErrors.Load(),
		ClusterErrors: s.clusterErrors.Load(), SourcesForgotten: s.loop.stats.sourcesForgotten.Load(),
		Streams: s.streamStats(), Hold: s.loop.holdStats()}
}

func (s *Server) streamStats() StreamStats {
	st := s.streams
	if st == nil {
		return StreamStats{}
	}
	return StreamStats{Accepted: st.accepted.Load(), Refused: st.refused.Load(),
		HandshakeFailures: st.handshakeFailures.Load(), QueueDrops: st.stats.queueDrops.Load(),
		BadFrames: st.stats.badFrames.Load(), NoConn: st.noStream.Load()}
}

// TCPAddr is the TCP/TLS listener's address; the zero AddrPort without one.
func (s *Server) TCPAddr() netip.AddrPort {
	if s.streams == nil {
		return netip.AddrPort{}
	}
	a, _ := netip.ParseAddrPort(s.streams.ln.Addr().String())
	return a
}

// Close stops the server and closes its sockets; it returns once its goroutines
// have ended.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.stopped) })
	<-s.exited
	return nil
}

// run is the owner's goroutine: timers, commands and cluster messages, each
// holding the loop's mu (the sockets' readers hand datagrams to the machine
// themselves, loop.deliver).
func (s *Server) run() {
	l := s.loop
	defer close(s.exited)
	defer func() {
		l.mu.Lock()
		s.mu.Lock()
		s.last = s.srv.Stats()
		s.mu.Unlock()
		l.stopped = true
		l.mu.Unlock()
		if s.streams != nil {
			s.streams.shutdown()
		}
		l.shutdown()
	}()
	var inbox <-chan rendezvous.ClusterMessage
	if s.bus != nil {
		inbox = s.bus.Inbox()
		l.mu.Lock()
		l.drain(l.now()) // the server's own subject first
		l.arm()
		l.mu.Unlock()
	}
	for {
		select {
		case m, ok := <-inbox:
			l.mu.Lock()
			if !s.handleCluster(m, ok, inbox) {
				inbox = nil // the bus closed: the server carries on alone
				s.logf("cluster bus closed")
			}
		case <-l.timer.C:
			l.mu.Lock()
			l.handleTimer()
		case f := <-s.cmds:
			l.mu.Lock()
			now := l.now()
			f(now)
			l.drain(now)
		case <-s.stopped:
			return
		}
		l.arm()
		l.mu.Unlock()
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.log != nil {
		s.log(fmt.Sprintf(format, args...))
	}
}

// events drains the server's cluster output to the bus and its events into the log.
func (s *Server) events(proto.Instant) {
	s.drainCluster()
	for {
		e, ok := s.srv.PollEvent()
		if !ok {
			return
		}
		if s.log == nil {
			continue
		}
		switch e := e.(type) {
		case rendezvous.EventRegistered:
			s.log(fmt.Sprintf("registered %q from %v (replaced %v)", e.Peer.String(), e.Addr, e.Replaced))
		case rendezvous.EventRebound:
			s.log(fmt.Sprintf("rebound %q %v -> %v", e.Peer.String(), e.Old, e.New))
		case rendezvous.EventExpired:
			s.log(fmt.Sprintf("expired %q (%v)", e.Peer.String(), e.Reason))
		case rendezvous.EventIntroduced:
			s.log(fmt.Sprintf("introduced %q to %q", e.Requester.String(), e.Target.String()))
		}
	}
}

// drainCluster hands the server's interest changes and cluster messages to the bus.
func (s *Server) drainCluster() {
	if s.bus == nil {
		return
	}
	for {
		in, ok := s.srv.PollInterest()
		if !ok {
			break
		}
		var err error
		if in.Subscribe {
			err = s.bus.Subscribe(in.Subject)
		} else {
			err = s.bus.Unsubscribe(in.Subject)
		}
		if err != nil {
			s.clusterErrors.Add(1)
			s.logf("cluster interest %q: %v", in.Subject, err)
		}
	}
	for {
		m, ok := s.srv.PollCluster()
		if !ok {
			return
		}
		if err := s.bus.Publish(m); err != nil {
			s.clusterErrors.Add(1)
		}
	}
}

// Drain tells every node registered here to move to another server of the cluster
// (PROTOCOL.md §12.6), then waits until none is left (or those left have been silent
// through every round of notices: their nodes are gone) or ctx is done. The server
// keeps relaying meanwhile; call Close afterwards. It returns ctx's error when ctx
// ended first.
func (s *Server) Drain(ctx context.Context) error {
	select {
	case s.cmds <- func(now proto.Instant) { s.srv.Drain(now) }:
	case <-s.exited:
		return nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !s.drainSettled() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// drainSettled asks the machine whether its drain is over.
func (s *Server) drainSettled() bool {
	settled := make(chan bool, 1)
	select {
	case s.cmds <- func(now proto.Instant) { settled <- s.srv.DrainSettled(now) }:
		return <-settled
	case <-s.exited:
		return true
	}
}

// handleCluster gives the machine m (ok: the inbox is still open) and then the
// messages already waiting in inbox (up to inBurst), draining after each; what they
// released goes to the kernel in one batch at the end, as for a burst of
// datagrams. It reports false once the inbox has closed.
func (s *Server) handleCluster(m rendezvous.ClusterMessage, ok bool, inbox <-chan rendezvous.ClusterMessage) bool {
	l := s.loop
	l.holding = true
	defer func() { l.holding = false; l.flush() }()
	for n := 0; ok; n++ {
		now := l.now()
		_ = s.srv.HandleCluster(now, m)
		l.drain(now)
		if n+1 == inBurst {
			return true
		}
		select {
		case m, ok = <-inbox:
		default:
			return true
		}
	}
	return false
}
