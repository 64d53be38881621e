package driver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/curve25519"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rendezvous"
	"github.com/natpass/natpass/rudp"
)

// Config configures a Node.
type Config struct {
	// Server is the rendezvous server's primary address, "host:port": the same as
	// a Servers list of one.
	Server string
	// Servers are the primary addresses of the servers of a cluster, in the order
	// the node tries them: it registers with the first and moves to the next,
	// round robin, when its server is lost or draining (node.Config.Servers;
	// PROTOCOL.md §5.11). Set Server or Servers (one is required), not both:
	// Listen refuses both with ErrBadConfig. The main socket's IP, when Listen
	// leaves it open, is the one the host routes to the first server from.
	Servers []string
	// ID is this node's peer ID (1–64 bytes). Required.
	ID string
	// PrivateKey is the node's static X25519 key. The zero key means: draw one
	// (only useful with Secret or InsecureDev, which mint a ticket for it).
	PrivateKey [32]byte
	// Exactly one way to get admitted: Ticket, an encoded ticket the app backend
	// minted for ID and PrivateKey's public key; Secret, the server secret, from
	// which the driver mints a ticket itself; or InsecureDev, for a server run with
	// --insecure-dev, which checks no ticket MAC.
	Ticket      []byte
	Secret      []byte
	InsecureDev bool
	// TicketTTL is the lifetime of a ticket minted from Secret or InsecureDev
	// (default 24 h).
	TicketTTL time.Duration

	// Listen is the local address of the main socket (default ":0"). With an
	// unspecified IP the driver binds the IP it would use to reach the server, so
	// the address the node announces is one peers on its network can reach.
	Listen string
	// ListenOther is the local address of the socket in the other IP family, for
	// a server name with both A and AAAA records (dual stack, PROTOCOL.md §5.12):
	// the node registers over the main socket's family (IPv4 when the name has
	// both) and binds this socket to its session too, so peers get candidates of
	// both families and a pair can go direct over IPv6 where IPv4 NATs are hard.
	// "" (default) opens it when the host routes to the server's other address,
	// on the main socket's port when free; "off" keeps the node single-stack.
	ListenOther string
	// RUDP configures every peer connection; the zero value is rudp's defaults,
	// except SendQueueBytes: 0 is rudp.SendQueueBlocking here (Send blocks until
	// packets leave; a positive value sets another bound).
	RUDP rudp.Config
	// RecycleBuffers gives the node a buffer pool (RUDP.Buffers, unless set): a
	// received message's Data comes from it and goes back with Message.Release, and
	// Node.Buffer lends buffers to fill for Conn.SendOwned, which rudp gives back
	// once acknowledged. Bulk receivers then allocate (and zero) nothing per message.
	RecycleBuffers bool
	// Relay is the relay policy for connections this node starts: node.RelayAuto
	// (default), RelayForce (the server shares no addresses), RelayNever.
	Relay node.RelayPolicy
	// RegisterTimeout bounds the first registration (default 30 s): Listen fails
	// when no answer came by then. Later, when the server is lost, the node keeps
	// trying to register again for as long as it lives, and its direct sessions
	// go on meanwhile.
	RegisterTimeout time.Duration
	// AcceptQueue bounds incoming connections not yet taken by Accept (default
	// 16); further ones are closed at once.
	AcceptQueue int
	// OnPath, when set, hears every path change of every peer, before the
	// connection is up too (Conn.PathEvents starts only with the Conn). It runs on
	// the node's goroutine: it must be quick and must not call the Node.
	OnPath func(peer string, e PathEvent)
	// OnServer, when set, hears every move of the node from one server of Servers
	// to the next (reason: "server not answering", "server moving", "no answer to
	// register", "server full"). Like OnPath it runs on the node's goroutine.
	OnServer func(from, to netip.AddrPort, reason string)
	// DropInbound is a testing aid, 0 in real use: the node discards this share of
	// the datagrams it receives, chosen at random, before the machine sees them
	// (a loss model for benchmarks and tests on loopback).
	DropInbound float64
	// MaxExtraSockets bounds the extra sockets the node may ask for, NAT
	// measurement and birthday punching together (default 600).
	MaxExtraSockets int
	// ServerTCP, when set, is "host:port" of the server's TCP listener (natpass
	// server --tcp-listen): when a register or keepalive gets no answer over UDP
	// for 3 s the node carries its datagrams to the server over TCP instead
	// (PROTOCOL.md §14), and back over UDP as soon as the server answers there
	// (the driver asks it a STUN Binding every second meanwhile). It pairs with
	// the first of Servers. With ServerTLS set the connection is TLS with that
	// configuration (ServerName defaults to ServerTCP's host).
	ServerTCP string
	ServerTLS *tls.Config
	// OnTransport, when set, hears each move between UDP and the stream
	// (TransportUDP, TransportTCP, TransportTLS). Like OnPath it runs on the
	// node's goroutine.
	OnTransport func(transport string)
	// RoomOutboxBytes bounds each room link's outbox: the messages Room.Broadcast
	// queued for one member that its connection has not taken yet (default 1 MiB,
	// each message counted as its length plus 32 bytes; one message always fits).
	// A member that stops reading holds a broadcast only once its outbox is full.
	RoomOutboxBytes int
}

// Defaults of Config.
const (
	defaultTicketTTL       = 24 * time.Hour
	defaultAcceptQueue     = 16
	defaultMaxExtraSockets = 600
	// txBufLen holds any datagram the node may emit: rudp writes whole datagrams of
	// at most RUDP.DatagramSizeMax bytes (headroom and tag included), which
	// newNode keeps within it.
	txBufLen               = maxDatagram
	defaultRegisterTimeout = 30 * time.Second
	// nodeRegisterForever is the node machine's RegisterTimeout. The machine gives
	// up re-registering after its RegisterTimeout and then closes, direct sessions
	// and all; a server that is down for a while must not end sessions that do not
	// need it (issue 8). So the driver bounds only the first registration, in
	// Listen, and lets the machine retry for as long as the Node lives.
	nodeRegisterForever = 100 * 365 * 24 * time.Hour
	// closeCodeNodeClosing: Node.Close ended the connection, which is not the
	// graceful end of a stream (Conn.Close sends code 0): the peer reads
	// ErrConnClosed, not io.EOF.
	closeCodeNodeClosing uint16 = 0xfe02
)

// devSecret mints tickets for an --insecure-dev server, which checks their layout
// and expiry but not their MAC.
var devSecret = []byte("natpass insecure development ticket")

// NewKey draws a static X25519 key pair from crypto/rand.
func NewKey() (priv, pub [32]byte, err error) {
	if _, err = rand.Read(priv[:]); err != nil {
		return priv, pub, err
	}
	p, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	copy(pub[:], p)
	return priv, pub, err
}

// PublicKey returns the public key of priv.
func PublicKey(priv [32]byte) ([32]byte, error) {
	var pub [32]byte
	p, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	copy(pub[:], p)
	return pub, err
}

// MintTicket mints a ticket for id and pub, valid for ttl from now, under secret
// (at least rendezvous.MinSecretLen bytes).
func MintTicket(secret []byte, id string, pub [32]byte, ttl time.Duration) ([]byte, error) {
	if len(secret) < rendezvous.MinSecretLen {
		return nil, fmt.Errorf("%w: secret shorter than %d bytes", ErrBadConfig, rendezvous.MinSecretLen)
	}
	if len(id) == 0 || len(id) > proto.MaxPeerIDLen {
		return nil, fmt.Errorf("%w: peer ID must be 1–%d bytes", ErrBadConfig, proto.MaxPeerIDLen)
	}
	t := proto.Ticket{PeerID: []byte(id), PublicKey: pub, ExpiryUnix: uint64(time.Now().Add(ttl).Unix())}
	return rendezvous.MintTicket(secret, t), nil
}

// Node is one device on natpass: a node.Node bound to real UDP sockets. Its methods
// are safe for concurrent use.
type Node struct {
	cfg  Config
	pool *bufferPool // Config.RecycleBuffers; nil without
	id   string
	loop *loop
	nm   *node.Node
	fb   *fallback // nil without Config.ServerTCP
	// exited is closed when the loop goroutine has stopped and every socket is
	// closed.
	exited chan struct{}
	// dead is closed when the node stopped for good (Close or EventClosed).
	dead     chan struct{}
	deadOnce sync.Once
	// pathDrops and refused count what the API's own queues turned away
	// (Stats.PathEventsDropped, Stats.IncomingRefused).
	pathDrops, refused atomic.Uint64

	registered chan struct{}
	natReady   chan struct{}
	// otherNATReady is closed when the other family's NAT report came (dual
	// stack); never without a socket in the other family.
	otherNATReady chan struct{}
	accept        chan *Conn

	mu       sync.Mutex
	err      error // why the node stopped
	observed netip.AddrPort
	nat      proto.NATBehavior
	local    netip.AddrPort
	server   netip.AddrPort // the server the node registers with now
	// otherLocal is the socket in the other family (zero: single stack);
	// otherNAT and otherObserved its family's report.
	otherLocal    netip.AddrPort
	otherNAT      proto.NATBehavior
	otherObserved netip.AddrPort

	// Credit that Recv took goes back to the machine in batches (Conn.creditTaken):
	// a Conn with credit waiting joins credits (under creditMu) and creditKick
	// (capacity 1) wakes the loop, which gives it all to node.Consumed at once.
	// A Conn is on credits at most once until the loop took its credit, so the
	// list is bounded by the connections.
	creditMu    sync.Mutex
	credits     []*Conn
	creditKick  chan struct{}
	creditBatch int // bytes of credit a Conn gathers before it wakes the loop

	// Room outboxes with messages to move (outbox.go): a Conn whose outbox was
	// empty joins outs (under outMu) and outKick (capacity 1) wakes the loop, which
	// keeps it on outPending until its outbox is empty. Each Conn is on one of the
	// two lists at most once.
	outMu   sync.Mutex
	outs    []*Conn
	outKick chan struct{}
	rudp    rudp.Config // cfg.RUDP with rudp's defaults: what checkMessage checks

	// Loop-owned.
	creditsTaken []*Conn // the other half of credits, swapped in by the loop
	outPending   []*Conn // outboxes the loop is moving into their connections
	conns        map[string]*Conn
	rooms        []*Room    // the rooms joined or joining, in join order (node.maxRooms at most)
	waiters      []*command // Flush, Send and SendContext calls waiting on the send buffer
	extras       int
	closing      bool
	natSeen      bool
	otherNATSeen bool
	regSeen      bool
	lastStat     node.Stats
}

// Listen opens the node's socket, registers with the server and returns once the
// server admitted the node. ctx bounds only the registration; the Node lives until
// Close.
func Listen(ctx context.Context, cfg Config) (*Node, error) {
	n, err := newNode(cfg)
	if err != nil {
		return nil, err
	}
	timeout := time.NewTimer(n.cfg.RegisterTimeout)
	defer timeout.Stop()
	select {
	case <-n.registered:
		return n, nil
	case <-timeout.C:
		n.Close()
		return nil, fmt.Errorf("%w: no answer from %s within %v", ErrClosed, n.serverNames(), n.cfg.RegisterTimeout)
	case <-n.dead:
		err := n.stopErr()
		n.Close()
		return nil, err
	case <-ctx.Done():
		n.Close()
		return nil, ctx.Err()
	}
}

func newNode(cfg Config) (*Node, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	ticket, err := admission(&cfg)
	if err != nil {
		return nil, err
	}
	servers, others, err := resolveAll(cfg.Servers)
	if err != nil {
		return nil, err
	}
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	main, other, others, err := openNodeSockets(&cfg, servers[0], others)
	if err != nil {
		return nil, err
	}
	var otherAddr netip.AddrPort
	if other != nil {
		otherAddr = other.addr
	}
	pool := recyclePool(&cfg)
	start := time.Now()
	nm := node.New(node.Config{
		ID: []byte(cfg.ID), Ticket: ticket, PrivateKey: cfg.PrivateKey,
		Local: main.addr, Servers: servers, Seed: seed,
		OtherLocal: otherAddr, OtherServers: others,
		RegisterTimeout: nodeRegisterForever, Rand: rand.Reader,
		Wall: proto.WallClock{At: 0, Time: start}, RUDP: cfg.RUDP, Relay: cfg.Relay,
	})
	n := &Node{
		cfg: cfg, id: cfg.ID, nm: nm, pool: pool,
		exited:        make(chan struct{}),
		dead:          make(chan struct{}),
		registered:    make(chan struct{}),
		natReady:      make(chan struct{}),
		otherNATReady: make(chan struct{}),
		accept:        make(chan *Conn, cfg.AcceptQueue),
		creditKick:    make(chan struct{}, 1),
		outKick:       make(chan struct{}, 1),
		rudp:          cfg.RUDP.WithDefaults(),
		creditBatch:   recvWindow(cfg.RUDP) / 8,
		conns:         map[string]*Conn{},
		local:         main.addr,
		otherLocal:    otherAddr,
		server:        servers[0],
	}
	n.loop = newLoop(nm, start, txBufLen)
	n.loop.drained = n.events
	n.loop.dropInbound = cfg.DropInbound
	if n.fb = newFallback(cfg, servers[0]); n.fb != nil {
		n.loop.divertIn, n.loop.divertOut = n.divertIn, n.divertOut
	}
	n.loop.mu.Lock() // the reader starts handing datagrams in at once
	n.loop.addSocket(main, true)
	if other != nil {
		n.loop.addSocket(other, true)
	}
	n.loop.mu.Unlock()
	go n.run()
	n.do(func(now proto.Instant) { nm.Start(now) })
	return n, nil
}

// openNodeSockets opens the main socket (Config.Listen, toward server) and, on a
// dual-stack host, the socket of the other family (listenOther), which keeps others
// only when it opened.
func openNodeSockets(cfg *Config, server netip.AddrPort, others []netip.AddrPort) (main, other *socket, otherServers []netip.AddrPort, err error) {
	bind, name, err := localFor(cfg.Listen, server)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: listen: %v", ErrBadConfig, err)
	}
	if main, err = listenUDP(bind, name); err != nil {
		return nil, nil, nil, err
	}
	other, otherServers = listenOther(cfg, main.addr, others)
	return main, other, otherServers, nil
}

// withDefaults checks cfg and fills its zero fields.
func withDefaults(cfg Config) (Config, error) {
	if cfg.ID == "" || len(cfg.ID) > proto.MaxPeerIDLen {
		return cfg, fmt.Errorf("%w: ID must be 1–%d bytes", ErrBadConfig, proto.MaxPeerIDLen)
	}
	ways := 0
	for _, b := range []bool{len(cfg.Ticket) > 0, len(cfg.Secret) > 0, cfg.InsecureDev} {
		if b {
			ways++
		}
	}
	if ways != 1 {
		return cfg, fmt.Errorf("%w: set exactly one of Ticket, Secret, InsecureDev", ErrBadConfig)
	}
	switch {
	case cfg.Server != "" && len(cfg.Servers) > 0:
		return cfg, fmt.Errorf("%w: set Server or Servers, not both", ErrBadConfig)
	case cfg.Server != "":
		cfg.Servers = []string{cfg.Server}
	case len(cfg.Servers) == 0:
		return cfg, fmt.Errorf("%w: no Server", ErrBadConfig)
	case len(cfg.Servers) > maxServers:
		return cfg, fmt.Errorf("%w: more than %d Servers", ErrBadConfig, maxServers)
	}
	if cfg.RUDP.DatagramSizeMax > txBufLen || cfg.RUDP.DatagramSizeBase > txBufLen {
		return cfg, fmt.Errorf("%w: RUDP datagram sizes above %d bytes", ErrBadConfig, txBufLen)
	}
	if cfg.RUDP.SendQueueBytes == 0 {
		// Send blocks until packets leave, so what waits to leave can stay short: a
		// bulk sender's bytes are then still in the CPU's caches when they are sealed.
		cfg.RUDP.SendQueueBytes = rudp.SendQueueBlocking
	}
	if err := checkRUDP(cfg.RUDP); err != nil {
		return cfg, err
	}
	if cfg.RegisterTimeout == 0 {
		cfg.RegisterTimeout = defaultRegisterTimeout
	}
	if cfg.TicketTTL == 0 {
		cfg.TicketTTL = defaultTicketTTL
	}
	if cfg.AcceptQueue == 0 {
		cfg.AcceptQueue = defaultAcceptQueue
	}
	if cfg.MaxExtraSockets == 0 {
		cfg.MaxExtraSockets = defaultMaxExtraSockets
	}
	if cfg.RoomOutboxBytes == 0 {
		cfg.RoomOutboxBytes = defaultRoomOutboxBytes
	}
	if cfg.RoomOutboxBytes < 0 {
		return cfg, fmt.Errorf("%w: RoomOutboxBytes is negative", ErrBadConfig)
	}
	if cfg.MaxExtraSockets < 0 || cfg.MaxExtraSockets >= maxSockets {
		return cfg, fmt.Errorf("%w: MaxExtraSockets must be below %d", ErrBadConfig, maxSockets)
	}
	return cfg, nil
}

// admission returns the ticket the node registers with: cfg.Ticket, or one minted
// from cfg.Secret (or for an --insecure-dev server). It draws cfg.PrivateKey when
// it is zero and a ticket is to be minted for it.
func admission(cfg *Config) ([]byte, error) {
	if cfg.PrivateKey == ([32]byte{}) {
		if len(cfg.Ticket) > 0 {
			return nil, fmt.Errorf("%w: a Ticket needs the PrivateKey it was minted for", ErrBadConfig)
		}
		var err error
		if cfg.PrivateKey, _, err = NewKey(); err != nil {
			return nil, err
		}
	}
	pub, err := PublicKey(cfg.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	ticket := cfg.Ticket
	if len(ticket) == 0 {
		secret := cfg.Secret
		if cfg.InsecureDev {
			secret = devSecret
		}
		if ticket, err = MintTicket(secret, cfg.ID, pub, cfg.TicketTTL); err != nil {
			return nil, err
		}
	}
	// The server admits the ticket's ID and key; catch a mix-up here, where it can
	// be named, rather than as a refusal or a peer nobody finds.
	var tk proto.Ticket
	if err := tk.Parse(ticket); err != nil {
		return nil, fmt.Errorf("%w: ticket: %v", ErrBadConfig, err)
	}
	if string(tk.PeerID) != cfg.ID || tk.PublicKey != pub {
		return nil, fmt.Errorf("%w: the ticket is for ID %q and another key than this node's (ID %q)", ErrBadConfig, tk.PeerID, cfg.ID)
	}
	return ticket, nil
}

// checkRUDP refuses a connection configuration rudp cannot run with here, at
// Listen, rather than when the first peer arrives (rudp panics on it: for rudp it
// is a programming error, for the driver a bad Config).
func checkRUDP(rc rudp.Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: RUDP: %v", ErrBadConfig, r)
		}
	}()
	rc.WithDefaults()
	return nil
}

// recvWindow is the flow-control window rudp uses for rc.
func recvWindow(rc rudp.Config) int { return rc.WithDefaults().RecvWindow }

// maxServers bounds Config.Servers (the node machine's bound).
const maxServers = 64

// resolveAll resolves every server address.
// serverNames names the configured servers, for messages.
func (n *Node) serverNames() string {
	if len(n.cfg.Servers) == 1 {
		return "the server " + n.cfg.Servers[0]
	}
	return "any of the servers " + strings.Join(n.cfg.Servers, ", ")
}

// localFor picks the address to bind and the name the node gives its main socket.
// An unspecified listen IP becomes the source IP the kernel would route to the
// server from (a connected UDP socket sends nothing), so that Local and the host
// candidate are addresses peers on the same network can reach.
func localFor(listen string, server netip.AddrPort) (bind, name netip.AddrPort, err error) {
	if listen == "" {
		listen = ":0"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return bind, name, err
	}
	var p uint16
	if port != "" {
		ap, err := netip.ParseAddrPort("0.0.0.0:" + port)
		if err != nil {
			return bind, name, err
		}
		p = ap.Port()
	}
	if host != "" {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return bind, name, err
		}
		if !ip.IsUnspecified() {
			bind = netip.AddrPortFrom(ip.Unmap(), p)
			return bind, bind, nil
		}
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return bind, name, err
	}
	ip := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	c.Close()
	bind = netip.AddrPortFrom(ip, p)
	return bind, bind, nil
}

// LocalAddr is the node's main socket.
func (n *Node) LocalAddr() netip.AddrPort { return n.local }

// ID is the node's peer ID.
func (n *Node) ID() string { return n.id }

// Server is the server the node is registered with, or registering with: the
// first of Config.Servers until the node moves to another.
func (n *Node) Server() netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.server
}

// Observed is the node's address as the server sees it.
func (n *Node) Observed() netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.observed
}

// NATReport is what the node measured about the NAT in front of it.
type NATReport struct {
	Behavior proto.NATBehavior
	Observed netip.AddrPort // the external (server-reflexive) address
	Local    netip.AddrPort // the node's own socket
}

// NAT waits for the node's NAT measurement (a few round trips to the server, and
// the timeouts of answers a filtering NAT never lets through: up to ~10 s).
func (n *Node) NAT(ctx context.Context) (NATReport, error) {
	return n.waitReport(ctx, n.natReady, func() NATReport {
		return NATReport{Behavior: n.nat, Observed: n.observed, Local: n.local}
	})
}

// waitReport waits for ready, then returns report() read under the lock.
func (n *Node) waitReport(ctx context.Context, ready <-chan struct{}, report func() NATReport) (NATReport, error) {
	select {
	case <-ready:
	case <-n.dead:
		return NATReport{}, n.stopErr()
	case <-ctx.Done():
		return NATReport{}, ctx.Err()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return report(), nil
}

// OtherLocalAddr is the node's socket in the other IP family (Config.ListenOther),
// or the zero address when the node is single-stack.
func (n *Node) OtherLocalAddr() netip.AddrPort { return n.otherLocal }

// OtherNAT waits for the measurement of the NAT (or firewall) in front of the
// node's socket in the other family: it comes once the server bound that socket
// to the session (PROTOCOL.md §5.12). A single-stack node gets ErrNoOtherFamily
// at once; a server that never answers over the other family leaves it to ctx.
func (n *Node) OtherNAT(ctx context.Context) (NATReport, error) {
	if !n.otherLocal.IsValid() {
		return NATReport{}, ErrNoOtherFamily
	}
	return n.waitReport(ctx, n.otherNATReady, func() NATReport {
		return NATReport{Behavior: n.otherNAT, Observed: n.otherObserved, Local: n.otherLocal}
	})
}

// Stats are a node's counters.
type Stats struct {
	DatagramsIn, BytesIn   uint64
	DatagramsOut, BytesOut uint64
	// Rejected counts datagrams the node machine refused (garbage, forged or
	// replayed packets, strays); Node breaks them down by reason.
	Rejected    uint64
	TooLong     uint64 // longer than any natpass datagram; dropped unread
	WriteErrors uint64 // sends the kernel refused
	// PathEventsDropped counts path events a Conn's PathEvents channel could not
	// hold (16 unread: the oldest goes; Conn.Path always has the latest).
	PathEventsDropped uint64
	// IncomingRefused counts peers that connected while the accept queue
	// (Config.AcceptQueue) was full: their connections were closed at once.
	IncomingRefused uint64
	Sockets         int // open UDP sockets
	// Stream: the fallback to the server's TCP/TLS listener (Config.ServerTCP).
	Stream NodeStreamStats
	// Buffers: the pool of Config.RecycleBuffers (zero without it).
	Buffers BufferStats
	Node    node.Stats
}

// BufferStats count the message buffers of Config.RecycleBuffers' pool.
type BufferStats struct {
	Lent uint64 // buffers handed out, to received messages and by Node.Buffer
	Made uint64 // of them, newly allocated: none was free (Made ≪ Lent when reused)
}

// NodeStreamStats count a node's fallback to TCP/TLS.
type NodeStreamStats struct {
	Transport  string // how the node reaches its server now: TransportUDP, TCP or TLS
	Dials      uint64 // connections tried
	DialFails  uint64 // of them, failed (refused, timed out, TLS handshake)
	Moves      uint64 // moves between UDP and a stream, both ways
	QueueDrops uint64 // datagrams dropped: the stream's write queue (256 KiB) was full
	BadFrames  uint64 // streams closed for a frame length of 0 or above 1472
}

// ServerTransport is how the node reaches its server now: TransportUDP, or
// TransportTCP / TransportTLS while on its fallback stream.
func (n *Node) ServerTransport() string {
	if n.fb == nil {
		return TransportUDP
	}
	return n.fb.transport.Load().(string)
}

// Stats returns the counters. After Close they are the last ones seen.
func (n *Node) Stats() Stats {
	st := Stats{
		DatagramsIn: n.loop.stats.datagramsIn.Load(), BytesIn: n.loop.stats.bytesIn.Load(),
		DatagramsOut: n.loop.stats.datagramsOut.Load(), BytesOut: n.loop.stats.bytesOut.Load(),
		Rejected: n.loop.stats.rejected.Load(), TooLong: n.loop.stats.tooLong.Load(),
		WriteErrors:       n.loop.stats.writeErrors.Load(),
		PathEventsDropped: n.pathDrops.Load(), IncomingRefused: n.refused.Load(),
	}
	var ns node.Stats
	var socks int
	if n.do(func(proto.Instant) { ns, socks = n.nm.Stats(), len(n.loop.all) }) != nil {
		n.mu.Lock()
		ns = n.lastStat
		n.mu.Unlock()
	}
	st.Node, st.Sockets = ns, socks
	st.Buffers = n.pool.stats()
	st.Stream.Transport = n.ServerTransport()
	if f := n.fb; f != nil {
		st.Stream.Dials, st.Stream.DialFails, st.Stream.Moves = f.dials.Load(), f.dialFails.Load(), f.moves.Load()
		st.Stream.QueueDrops, st.Stream.BadFrames = f.stats.queueDrops.Load(), f.stats.badFrames.Load()
	}
	return st
}

// Close closes every connection (telling each peer), stops the node and closes its
// sockets. It returns once every goroutine of the node has ended.
func (n *Node) Close() error {
	n.do(func(now proto.Instant) {
		if n.closing {
			return
		}
		n.closing = true
		for _, c := range n.connList() {
			_ = n.nm.ClosePeer(now, c.peer, closeCodeNodeClosing, "node closing")
		}
	})
	n.stop(ErrClosed)
	<-n.exited
	return nil
}

// stop marks the node dead with err (the first reason wins) and wakes everyone.
func (n *Node) stop(err error) {
	n.deadOnce.Do(func() {
		n.mu.Lock()
		n.err = err
		n.mu.Unlock()
		close(n.dead)
	})
}

func (n *Node) stopErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// run is the owner's goroutine: timers, credit, outboxes and the fallback, each
// holding the loop's mu (the sockets' readers hand datagrams to the machine
// themselves, loop.deliver; API calls run their commands themselves, send).
func (n *Node) run() {
	l := n.loop
	defer close(n.exited)
	defer n.finish()
	var fbEvents <-chan func(proto.Instant)
	var fbTick <-chan time.Time
	if n.fb != nil {
		fbEvents, fbTick = n.fb.events, n.fb.tick.C
	}
	for {
		select {
		case <-l.timer.C:
			l.mu.Lock()
			l.handleTimer()
		case ev := <-fbEvents:
			now := l.lock()
			ev(now)
			l.drain(now)
		case <-fbTick:
			now := l.lock()
			n.fallbackTick(now)
			l.drain(now)
		case <-n.creditKick:
			now := l.lock()
			n.returnCredit(now)
			l.drain(now)
		case <-n.outKick:
			now := l.lock()
			n.drainOutboxes(now)
			l.drain(now)
		case <-n.dead:
			// Send what Close queued (the peers' close frames) before the sockets go.
			l.mu.Lock()
			l.drain(l.now())
			l.mu.Unlock()
			return
		}
		l.arm()
		l.mu.Unlock()
	}
}

// finish ends the loop: everything waiting on the node learns it stopped, the
// readers stop calling the machine, the sockets close.
func (n *Node) finish() {
	l := n.loop
	l.mu.Lock()
	n.mu.Lock()
	n.lastStat = n.nm.Stats()
	err := n.err
	n.mu.Unlock()
	for _, c := range n.connList() {
		c.fail(err)
	}
	for _, r := range n.rooms {
		r.fail(err)
	}
	for _, w := range n.waiters {
		w.finish(err)
	}
	n.stopFallback()
	l.stopped = true
	l.mu.Unlock()
	l.shutdown()
}

// giveCredit puts c, which has credit waiting, on the loop's list and wakes the
// loop. Recv calls it, at most once until the loop took c's credit.
func (n *Node) giveCredit(c *Conn) {
	n.creditMu.Lock()
	n.credits = append(n.credits, c)
	n.creditMu.Unlock()
	select {
	case n.creditKick <- struct{}{}:
	default: // the loop is woken already and will see c
	}
}

// returnCredit gives the machine the credit of every Conn on the list (a command:
// the caller drains). It runs holding the loop's mu.
func (n *Node) returnCredit(now proto.Instant) {
	n.creditMu.Lock()
	n.credits, n.creditsTaken = n.creditsTaken[:0], n.credits
	n.creditMu.Unlock()
	for i, c := range n.creditsTaken {
		n.nm.Consumed(now, c.takeCredit())
		n.creditsTaken[i] = nil
	}
}

// connList returns the connections in a stable order (peer ID), so that nothing
// depends on map order.
func (n *Node) connList() []*Conn {
	out := make([]*Conn, 0, len(n.conns))
	for _, c := range n.conns {
		out = append(out, c)
	}
	sortConns(out)
	return out
}

// events polls the node's events after a drain and turns them into API effects.
func (n *Node) events(now proto.Instant) {
	for {
		e, ok := n.nm.PollEvent()
		if !ok {
			break
		}
		n.event(now, e)
		// An event may have led to a command (HandleSockets, ClosePeer): its
		// datagrams go out before the next event is polled.
		n.loop.drainTransmits(now)
	}
	// The machine moved (acknowledgements free send buffers): outboxes first,
	// so that a Send parked behind one goes after it.
	if len(n.outPending) > 0 && n.drainOutboxes(now) {
		n.loop.drainTransmits(now)
	}
	if len(n.waiters) > 0 {
		n.checkWaiters(now)
	}
}

// serverEvent takes the events about the node's server session; it reports
// whether e was one.
func (n *Node) serverEvent(e node.Event) bool {
	switch e := e.(type) {
	case node.EventRegistered:
		n.mu.Lock()
		n.observed, n.server = e.Observed, e.Server
		n.mu.Unlock()
		if !n.regSeen {
			n.regSeen = true
			close(n.registered)
		}
	case node.EventServerChanged:
		n.mu.Lock()
		n.server = e.To
		n.mu.Unlock()
		if n.cfg.OnServer != nil {
			n.cfg.OnServer(e.From, e.To, e.Reason)
		}
	case node.EventNATReport:
		n.mu.Lock()
		n.nat, n.observed = e.Behavior, e.Observed
		n.otherNAT, n.otherObserved = e.OtherBehavior, e.OtherObserved
		n.mu.Unlock()
		if !n.natSeen {
			n.natSeen = true
			close(n.natReady)
		}
		if !n.otherNATSeen && e.OtherObserved.IsValid() && e.OtherBehavior != (proto.NATBehavior{}) {
			n.otherNATSeen = true
			close(n.otherNATReady)
		}
	case node.EventClosed:
		if e.Code == proto.CodeReplaced {
			n.stop(fmt.Errorf("%w: %w", ErrClosed, ErrReplaced)) // the machine's reason says no more
			return true
		}
		n.stop(fmt.Errorf("%w: %s", ErrClosed, e.Reason))
	default:
		return false
	}
	return true
}

func (n *Node) event(now proto.Instant, e node.Event) {
	if n.serverEvent(e) || n.roomEvent(e) {
		return
	}
	switch e := e.(type) {
	case node.EventOpenSockets:
		n.nm.HandleSockets(now, e.Tag, n.openSockets(e.N))
	case node.EventIntroduced:
		if _, ok := n.conns[e.Peer]; !ok {
			c := newConn(n, e.Peer, true)
			n.conns[e.Peer] = c
		}
		n.conns[e.Peer].setStrategy(e.Strategy.String(), e.RelayOnly)
		n.relinkConn(n.conns[e.Peer])
	case node.EventPathChanged:
		pe := PathEvent{Kind: e.Kind, Local: e.Local, Remote: e.Remote, RTT: e.RTT, Reason: e.Reason}
		if c := n.conns[e.Peer]; c != nil {
			c.setPath(pe)
		}
		if n.cfg.OnPath != nil {
			n.cfg.OnPath(e.Peer, pe)
		}
		n.roomPath(e.Peer, RoomPathChanged, pe)
	case node.EventConnected:
		c := n.conns[e.Peer]
		if c == nil {
			return
		}
		c.markUp()
		if rooms := n.roomsOf(c.peer); len(rooms) > 0 {
			// A room member's link is the room's, not Accept's.
			n.relinkConn(c)
			n.roomPath(c.peer, RoomLinkUp, c.Path())
		} else if c.incoming {
			select {
			case n.accept <- c:
			default:
				// Nobody is accepting: refuse rather than hold the peer's state.
				n.refused.Add(1)
				_ = n.nm.ClosePeer(now, c.peer, rudp.CodeNormal, "not accepting connections")
			}
		}
	case node.EventMessage:
		c := n.conns[e.Peer]
		if c == nil {
			return
		}
		// The credit goes back when Recv takes the message (DESIGN §11).
		c.push(Message{Lane: e.Lane, Mode: e.Mode, Data: e.Data, pool: n.pool}, e.Credit)
	case node.EventPeerClosed:
		if c := n.conns[e.Peer]; c != nil {
			c.peerClosed(e)
			n.unlinkConn(c)
			delete(n.conns, e.Peer) // a later Connect or Accept makes a new Conn
		}
	case node.EventPeerError:
		if c := n.conns[e.Peer]; c != nil && !c.isUp() {
			c.fail(&PeerError{Peer: e.Peer, Code: e.Code, Text: e.Text})
			delete(n.conns, e.Peer) // a later Connect starts afresh
		}
	}
}

// openSockets opens up to count extra sockets on the main socket's IP.
func (n *Node) openSockets(count int) []netip.AddrPort {
	count = min(count, n.cfg.MaxExtraSockets-n.extras)
	addrs := make([]netip.AddrPort, 0, max(count, 0))
	for range count {
		s, err := listenUDP(netip.AddrPortFrom(n.local.Addr(), 0), netip.AddrPort{})
		if err != nil {
			break // out of descriptors or ports: the node works with fewer
		}
		n.extras++
		n.loop.addSocket(s, false)
		addrs = append(addrs, s.addr)
	}
	return addrs
}

// Connect asks the server to introduce peerID and returns the connection once the
// encrypted session is up. Calling it again for the same peer returns the same Conn.
func (n *Node) Connect(ctx context.Context, peerID string) (*Conn, error) {
	if peerID == "" || len(peerID) > proto.MaxPeerIDLen {
		return nil, fmt.Errorf("%w: peer ID must be 1–%d bytes", ErrBadConfig, proto.MaxPeerIDLen)
	}
	var c *Conn
	err := n.do(func(now proto.Instant) {
		c = n.conns[peerID]
		if c == nil {
			c = newConn(n, peerID, false)
			n.conns[peerID] = c
		}
		n.nm.Connect(now, peerID)
	})
	if err != nil {
		return nil, err
	}
	select {
	case <-c.up:
		return c, nil
	case <-c.done:
		return nil, c.closeErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Accept returns the next connection a peer opened to this node.
func (n *Node) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-n.accept:
		return c, nil
	case <-n.dead:
		return nil, n.stopErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// do runs f holding the loop's mu and waits for it; ErrClosed (wrapped) if the node
// stopped first.
func (n *Node) do(f func(now proto.Instant)) error {
	c := getCommand()
	c.fn = f
	return n.wait(context.Background(), c)
}

// send runs c on the caller's goroutine, holding the loop's mu, and drains: an
// API call wakes no other goroutine. A command that cannot complete yet parks
// among the waiters, which whoever holds mu next retries after the machine moved
// (events). It fails when the node is gone.
func (n *Node) send(c *command) error {
	select {
	case <-n.dead:
		return n.refuse(c)
	default:
	}
	l := n.loop
	now := l.lock()
	if l.stopped {
		l.mu.Unlock()
		return n.refuse(c)
	}
	c.run(n, now)
	l.drain(now)
	l.arm()
	l.mu.Unlock()
	return nil
}

// refuse gives c back to the pool and says why the node cannot run it.
func (n *Node) refuse(c *command) error {
	err := n.stopErr()
	putCommand(c)
	return err
}
