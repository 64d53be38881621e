package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// catRead is the most one read of stdin takes. A read returns what the input
// holds, so reads are this large while input streams in (a system call per
// 256 KiB) and a line typed at a terminal still goes at once.
const catRead = 256 << 10

// catMessage is the most one message carries: rudp keeps the buffers of messages
// up to 64 KiB for the next ones (rudp's pool, poolKeepBytes), so a stream of
// them costs the sender no allocation; larger ones would be allocated and
// dropped one by one.
const catMessage = 64 << 10

// catOutBuffer is stdout's buffer. Small messages gather in it and are written
// out together once no more messages wait; a message as large as the buffer is
// written as it is, not copied.
const catOutBuffer = 256 << 10

// catLinger is how long cat keeps its node up after it finished, so that its last
// acknowledgements and close reach the peer.
const catLinger = 300 * time.Millisecond

// runCat is netcat over natpass:
//
//	natpass cat --server HOST:PORT[,HOST:PORT...] --id NAME (--ticket T --key K | --secret-file FILE | --insecure-dev)
//	            [--connect PEER] [--relay auto|force|never]
//
// Several servers (of one cluster) are tried in order: the node registers with the
// first and moves to the next when its server is lost or draining, printing a
// `server ...` line on stderr.
//
// stdin goes to the peer reliable-ordered on lane 0, the peer's bytes go to stdout.
// Without --connect it accepts one incoming peer. Each path change prints a
// `path=direct ...`, `path=relay ...` or `path=none ...` line on stderr.
//
// The stream protocol: data messages carry stdin's bytes; an empty message says
// "no more data" (a half-close). cat exits 0 once it sent its own end marker and
// the peer acknowledged everything, and it received the peer's end marker; or when
// the peer closed normally after both end markers, since a peer closes only after it
// received ours.
func runCat(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return catMain(ctx, args, os.Stdin, stdout, stderr)
}

func catMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("cat", stderr)
	server := fs.String("server", "", "rendezvous server HOST:PORT, or a comma-separated list of a cluster's servers, tried in order (required)")
	id := fs.String("id", "", "this node's peer ID (required)")
	connect := fs.String("connect", "", "peer ID to connect to (default: accept one incoming peer)")
	relay := fs.String("relay", "auto", "relay policy: auto (relay first, then direct), force (relay only, addresses stay hidden) or never (direct only)")
	listen := fs.String("listen", "", "local IP:PORT for the main socket (default: the route to the server, any port)")
	timeout := fs.Duration("timeout", 0, "give up connecting after this long (0: wait)")
	var tcp nodeTCPFlags
	tcp.register(fs)
	var adm admission
	adm.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *server == "" || *id == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: natpass cat --server HOST:PORT[,HOST:PORT...] --id NAME (--ticket T --key K | --secret-file FILE | --insecure-dev) [--connect PEER] [--relay auto|force|never]")
		return 2
	}
	servers, err := parseServers(*server)
	if err != nil {
		fmt.Fprintln(stderr, "natpass cat: --server:", err)
		return 2
	}
	policy, ok := map[string]node.RelayPolicy{"auto": node.RelayAuto, "force": node.RelayForce, "never": node.RelayNever}[*relay]
	if !ok {
		fmt.Fprintf(stderr, "natpass cat: --relay %q: want auto, force or never\n", *relay)
		return 2
	}
	// RecycleBuffers: receive releases each message once it is in stdout's buffer,
	// so received messages reuse their buffers instead of fresh zeroed ones.
	cfg := driver.Config{Servers: servers, ID: *id, Listen: *listen, Relay: policy, RecycleBuffers: true}
	if err := adm.apply(&cfg, false); err != nil {
		fmt.Fprintln(stderr, "natpass cat:", err)
		return 2
	}
	if err := tcp.apply(&cfg); err != nil {
		fmt.Fprintln(stderr, "natpass cat:", err)
		return 2
	}
	// Path lines come from the node, so that a connection that never comes up
	// still says why.
	paths := newPathPrinter(stderr, servers[0])
	defer paths.stop()
	cfg.OnPath = paths.onPath
	cfg.OnServer = paths.onServer
	cfg.OnTransport = paths.onTransport
	c, err := catConnect(ctx, cfg, *connect, *timeout, stderr)
	if c != nil {
		paths.setConn(c.conn)
	} else {
		paths.setConn(nil)
	}
	if err != nil {
		fmt.Fprintln(stderr, "natpass cat:", err)
		return 1
	}
	defer c.node.Close()
	if err := c.stream(ctx, stdin, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "natpass cat:", err)
		return 1
	}
	return 0
}

// parseServers splits a --server value: one HOST:PORT, or a comma-separated list
// of them (spaces around the commas allowed), each non-empty and given once.
func parseServers(v string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
			return nil, fmt.Errorf("empty server in %q", v)
		case slices.Contains(out, f):
			return nil, fmt.Errorf("server %s listed twice", f)
		}
		if _, _, err := net.SplitHostPort(f); err != nil {
			return nil, fmt.Errorf("server %q: want HOST:PORT", f)
		}
		out = append(out, f)
	}
	return out, nil
}

type catSession struct {
	node *driver.Node
	conn *driver.Conn
}

func catConnect(ctx context.Context, cfg driver.Config, peer string, timeout time.Duration, stderr io.Writer) (*catSession, error) {
	n, err := driver.Listen(ctx, cfg)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "natpass cat: registered as %q at %v with %v (observed %v)\n", cfg.ID, n.LocalAddr(), n.Server(), n.Observed())
	cctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var c *driver.Conn
	if peer != "" {
		c, err = n.Connect(cctx, peer)
	} else {
		fmt.Fprintln(stderr, "natpass cat: waiting for a peer")
		c, err = n.Accept(cctx)
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	fmt.Fprintln(stderr, "natpass cat: "+connectedLine(c.Peer(), c.Path(), c.Strategy(), c.RelayOnly(), cfg.Relay, n.Server().String()))
	return &catSession{node: n, conn: c}, nil
}

// connectedLine says how the connection to peer came up: over which path, and
// what happens next. A relay-only introduction (--relay force, here or at the
// peer) punches nothing, so it names no strategy; otherwise the strategy is the
// one the node tries (or tried) for a direct path.
func connectedLine(peer string, path driver.PathEvent, strategy string, relayOnly bool, policy node.RelayPolicy, server string) string {
	line := fmt.Sprintf("connected to %q", peer)
	switch path.Kind {
	case driver.PathRelay:
		relay := server
		if path.Remote.IsValid() {
			relay = path.Remote.String()
		}
		line += " via relay " + relay
	case driver.PathDirect:
		line += " via direct path " + path.Remote.String()
	}
	switch {
	case relayOnly && policy == node.RelayForce:
		return line + " (relay forced by --relay force: no hole punching)"
	case relayOnly:
		return line + " (relay forced by the peer: no hole punching)"
	case strategy == proto.StrategyNone.String():
		return line + " (no direct path possible between these NATs: strategy none)"
	case path.Kind == driver.PathDirect:
		return line + " (strategy " + strategy + ")"
	}
	return line + " (looking for a direct path: strategy " + strategy + ")"
}

// pathLine is the stderr line for a path change. Locals that are not valid are
// left out. A relayed path names the relay (the event's remote, or else server)
// and its RTT: the event's, or else srtt, the connection's smoothed RTT (left out
// when 0, not yet measured).
func pathLine(e driver.PathEvent, server string, srtt time.Duration) string {
	if e.Kind == driver.PathNone {
		return fmt.Sprintf("path=none reason=%q", e.Reason)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "path=%s", e.Kind)
	if e.Local.IsValid() {
		fmt.Fprintf(&b, " local=%v", e.Local)
	}
	rtt := e.RTT
	if e.Kind == driver.PathRelay {
		relay := server
		if e.Remote.IsValid() {
			relay = e.Remote.String()
		}
		fmt.Fprintf(&b, " relay=%s", relay)
		if rtt == 0 {
			rtt = srtt
		}
	} else {
		fmt.Fprintf(&b, " remote=%v", e.Remote)
	}
	if rtt > 0 || e.Kind != driver.PathRelay {
		// Loopback and LAN round trips are microseconds: keep them visible.
		prec := 100 * time.Microsecond
		if rtt < time.Millisecond {
			prec = time.Microsecond
		}
		fmt.Fprintf(&b, " rtt=%v", rtt.Round(prec))
	}
	fmt.Fprintf(&b, " reason=%q", e.Reason)
	return b.String()
}

// relayRTTWait bounds how long a relay line waits for the connection's first RTT
// sample (the relay event comes before the session is up, and rudp measures
// with its first acknowledgement).
const relayRTTWait = time.Second

// pathPrinter prints the path lines. OnPath runs on the node's goroutine, which
// must not call the Node, so the lines go through a queue to a goroutine of their
// own that may ask the connection for its RTT (Conn.Stats).
type pathPrinter struct {
	stderr io.Writer
	server string
	events chan pathItem // bounded: when full, a line is printed at once, without the RTT
	// transport is how the node reaches its server (driver.TransportUDP, TCP,
	// TLS); a relay line names a stream (via=tcp, via=tls). Node goroutine only.
	transport string
	known     chan struct{} // closed once conn is set (nil when connecting failed)
	conn      *driver.Conn
	done      chan struct{} // closed when the printer has printed everything
	mu        sync.Mutex    // one line at a time on stderr
	once      sync.Once
}

func newPathPrinter(stderr io.Writer, server string) *pathPrinter {
	p := &pathPrinter{stderr: stderr, server: server, events: make(chan pathItem, 64), transport: driver.TransportUDP,
		known: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

// pathItem is a path event and the transport to the server when it came.
type pathItem struct {
	e   driver.PathEvent
	via string
}

func (p *pathPrinter) onPath(_ string, e driver.PathEvent) {
	select {
	case p.events <- pathItem{e, p.transport}:
	default:
		p.print(viaLine(pathLine(e, p.server, 0), e, p.transport))
	}
}

// onTransport prints a move between UDP and the TCP/TLS fallback at once.
func (p *pathPrinter) onTransport(transport string) {
	p.transport = transport
	p.print("server transport=" + transport)
}

// viaLine appends to a relay path's line the stream the relay is reached over.
func viaLine(line string, e driver.PathEvent, transport string) string {
	if e.Kind != driver.PathRelay || transport == driver.TransportUDP {
		return line
	}
	return line + " via=" + transport
}

// onServer prints a move to another server at once (it runs on the node's
// goroutine, and the line needs nothing from the Node).
func (p *pathPrinter) onServer(from, to netip.AddrPort, reason string) {
	p.print(fmt.Sprintf("server from=%v to=%v reason=%q", from, to, reason))
}

// setConn tells the printer the session's connection (nil: there is none).
func (p *pathPrinter) setConn(c *driver.Conn) {
	p.once.Do(func() {
		p.conn = c
		close(p.known)
	})
}

// stop prints what is queued and returns when it has.
func (p *pathPrinter) stop() {
	p.setConn(nil)
	close(p.events)
	<-p.done
}

func (p *pathPrinter) print(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.stderr, line)
}

func (p *pathPrinter) run() {
	defer close(p.done)
	for it := range p.events {
		var srtt time.Duration
		if it.e.Kind == driver.PathRelay && it.e.RTT == 0 {
			<-p.known
			srtt = p.srtt()
		}
		p.print(viaLine(pathLine(it.e, p.server, srtt), it.e, it.via))
	}
}

// srtt is the connection's smoothed RTT once rudp measured it, waiting for the
// first sample up to relayRTTWait (less when more lines wait); 0 if none came.
func (p *pathPrinter) srtt() time.Duration {
	if p.conn == nil {
		return 0
	}
	for deadline := time.Now().Add(relayRTTWait); ; {
		st, err := p.conn.Stats()
		if err != nil {
			return 0
		}
		if st.LatestRTT > 0 {
			return st.SRTT
		}
		if time.Now().After(deadline) || len(p.events) > 0 {
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stream runs the two directions until both ended.
func (s *catSession) stream(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	c := s.conn
	growPipe(stdin)
	growPipe(stdout)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Sending: stdin, then the end marker, then wait for every acknowledgement.
	// Not waited for when receiving fails: a read of a terminal's stdin cannot
	// be interrupted, and an error on the receiving side must not wait for it.
	sent := make(chan error, 1)
	go func() { sent <- sendAll(ctx, c, stdin) }()
	// Receiving, here: the peer's bytes until its end marker.
	if err := receive(ctx, c, stdout); err != nil {
		return err
	}
	// The peer finished; wait for our side. A peer's normal close while our flush
	// waited ends it with io.EOF: a peer closes only after it received our end
	// marker, so everything arrived.
	err := <-sent
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	c.Close()
	time.Sleep(catLinger)
	return nil
}

// expired is a context that has ended: Recv with it takes a message only if one
// is queued.
var expired = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// receive writes the peer's bytes to stdout until the peer's end marker. Stdout
// is written when no further message is queued (and before an error returns), so
// nothing received waits in the buffer while cat waits for the network.
func receive(ctx context.Context, c *driver.Conn, stdout io.Writer) error {
	w := bufio.NewWriterSize(stdout, catOutBuffer)
	for {
		m, err := c.Recv(expired)
		if errors.Is(err, context.Canceled) && ctx.Err() == nil {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("writing stdout: %w", err)
			}
			m, err = c.Recv(ctx)
		}
		if err != nil {
			_ = w.Flush() // what came before the error is the peer's
			return fmt.Errorf("receiving: %w", err)
		}
		if len(m.Data) == 0 {
			break
		}
		_, err = w.Write(m.Data)
		m.Release() // Write copied it or wrote it out: the buffer is free again
		if err != nil {
			return fmt.Errorf("writing stdout: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing stdout: %w", err)
	}
	return nil
}

// sendAll sends stdin in messages of at most catMessage, then the end marker,
// and waits until the peer acknowledged all of it. A peer's normal close after our
// end marker left returns io.EOF.
func sendAll(ctx context.Context, c *driver.Conn, stdin io.Reader) error {
	buf := make([]byte, catRead)
	for {
		n, rerr := stdin.Read(buf)
		for off := 0; off < n; off += catMessage {
			// Send copies the bytes before it returns: buf is free again after.
			if err := c.SendContext(ctx, 0, rudp.ReliableOrdered, buf[off:min(off+catMessage, n)]); err != nil {
				// %v, not %w: a close before our end marker is never success.
				return fmt.Errorf("before the end of input: %v", err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("reading stdin: %w", rerr)
		}
	}
	if err := c.SendContext(ctx, 0, rudp.ReliableOrdered, nil); err != nil {
		return fmt.Errorf("sending the end marker: %v", err)
	}
	return c.Flush(ctx)
}
