//go:build linux

package main

import (
	"container/heap"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
)

// The server-load generator: many node.Node machines, no driver and no goroutine
// each, driven by one loop. Each node has one non-blocking UDP socket (its own
// address or port, as the server must see distinct sources), all watched by one
// epoll instance; one heap orders the nodes' deadlines. A node's NAT measurement
// gets no extra sockets (HandleSockets with none), so it classifies from its main
// socket alone.

// loadNode is one machine and its socket.
type loadNode struct {
	m            *node.Node
	fd           int
	local        netip.AddrPort
	deadline     proto.Instant
	registeredAt time.Duration // since the generator started; 0: not yet
	closed       bool          // EventClosed came
	connected    bool          // EventConnected came (relay_raw)
	relayChannel uint16        // the channel of its last relay-send, 0 before one
	started      bool          // Start was called (startAll, or its turn of startSpread)
	// After restartMarked (-load-restart): when the node first sent a keepalive and
	// when it registered again, since the generator started; 0: not yet.
	keepaliveAfter, registeredAgain time.Duration
}

// loadGen drives the nodes.
type loadGen struct {
	epfd       int
	nodes      []*loadNode
	start      time.Time
	timers     deadlineHeap
	buf, rxBuf []byte
	registered int
	closed     int
	connected  int
	sendErrors uint64
	// restarted: restartMarked was called; registeredAgain counts the nodes
	// registered since.
	restarted       bool
	registeredAgain int
	// shared: the one socket of a generator whose nodes each have their own address
	// (newSharedLoadGen), -1 when each node has a socket of its own; byAddr finds a
	// node by the destination address of what the shared socket receives.
	shared int
	byAddr map[netip.Addr]int
	oob    []byte
}

// newLoadGen opens a socket on each of addrs (port 0: the kernel picks) and makes
// a node for it with relay policy relay, registering with server under the IDs
// prefix0, prefix1, ...; none has sent anything yet (startAll).
func newLoadGen(server netip.AddrPort, addrs []netip.Addr, prefix string, relay node.RelayPolicy) (*loadGen, error) {
	raiseFileLimit()
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	g := &loadGen{epfd: epfd, start: time.Now(), buf: make([]byte, 2048), rxBuf: make([]byte, 2048), shared: -1}
	for i, a := range addrs {
		fd, local, err := bindNodeSocket(a)
		if err != nil {
			g.close()
			return nil, fmt.Errorf("node %d on %v: %w", i, a, err)
		}
		n, err := g.newNode(server, fd, local, fmt.Sprintf("%s%d", prefix, i), relay)
		if err != nil {
			unix.Close(fd)
			g.close()
			return nil, fmt.Errorf("node %d on %v: %w", i, a, err)
		}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, n.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}); err != nil {
			unix.Close(n.fd)
			g.close()
			return nil, err
		}
		g.nodes = append(g.nodes, n)
	}
	return g, nil
}

// bindNodeSocket binds a non-blocking UDP socket on a (port 0: the kernel picks).
func bindNodeSocket(a netip.Addr) (int, netip.AddrPort, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: a.As4()}); err != nil {
		unix.Close(fd)
		return -1, netip.AddrPort{}, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, netip.AddrPort{}, err
	}
	return fd, netip.AddrPortFrom(a, uint16(sa.(*unix.SockaddrInet4).Port)), nil
}

// newNode builds a node at local, sending on fd, with a fresh key and a ticket for
// an --insecure-dev server (whose MAC it does not check).
func (g *loadGen) newNode(server netip.AddrPort, fd int, local netip.AddrPort, id string, relay node.RelayPolicy) (*loadNode, error) {
	priv, pub, err := driver.NewKey()
	if err != nil {
		return nil, err
	}
	ticket, err := driver.MintTicket([]byte("natpass insecure development ticket"), id, pub, time.Hour)
	if err != nil {
		return nil, err
	}
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	m := node.New(node.Config{
		ID: []byte(id), Ticket: ticket, PrivateKey: priv, Local: local, Server: server, Seed: seed,
		RegisterTimeout: time.Hour, Rand: rand.Reader, Wall: proto.WallClock{At: 0, Time: g.start}, Relay: relay,
	})
	return &loadNode{m: m, fd: fd, local: local, deadline: proto.Never}, nil
}

func (g *loadGen) now() proto.Instant { return proto.Instant(time.Since(g.start)) }

// startAll sends every node's first register.
func (g *loadGen) startAll() {
	for i, n := range g.nodes {
		now := g.now()
		n.started = true
		n.m.Start(now)
		g.service(i, now)
	}
}

// startSpread starts the nodes evenly over d from now (run starts them as their
// turns come), so that their keepalives are spread over the interval as a long-running
// server's are, not bunched as after one storm.
func (g *loadGen) startSpread(d time.Duration) {
	now := g.now()
	for i, n := range g.nodes {
		n.deadline = now.Add(d * time.Duration(i) / time.Duration(len(g.nodes)))
		heap.Push(&g.timers, deadlineEntry{at: n.deadline, node: i})
	}
}

// restartMarked notes that the server restarts now: from here on each node's first
// keepalive and its next registration are recorded.
func (g *loadGen) restartMarked() {
	g.restarted = true
	for _, n := range g.nodes {
		n.keepaliveAfter, n.registeredAgain = 0, 0
	}
	g.registeredAgain = 0
}

// service sends what node i has to send, takes its events and files its deadline.
func (g *loadGen) service(i int, now proto.Instant) {
	n := g.nodes[i]
	for {
		for {
			t, ok := n.m.PollTransmit(now, g.buf)
			if !ok {
				break
			}
			if p := t.Payload; len(p) >= 4 && p[0] == 0xE1 && p[1] == 0x22 { // relay-send (PROTOCOL.md §8.3)
				n.relayChannel = uint16(p[2])<<8 | uint16(p[3])
			}
			if p := t.Payload; g.restarted && n.keepaliveAfter == 0 && len(p) >= 2 && p[0] == 0xE1 && p[1] == byte(proto.TypeKeepalive) {
				n.keepaliveAfter = max(time.Since(g.start), 1)
			}
			if err := g.send(n, t.To, t.Payload); err != nil {
				g.sendErrors++
			}
		}
		e, ok := n.m.PollEvent()
		if !ok {
			break
		}
		g.event(n, now, e)
	}
	if d := n.m.Deadline(); d != n.deadline {
		n.deadline = d
		if d != proto.Never {
			heap.Push(&g.timers, deadlineEntry{at: d, node: i})
		}
	}
}

// event acts on one node event (and may queue transmits: service loops).
func (g *loadGen) event(n *loadNode, now proto.Instant, e node.Event) {
	switch e := e.(type) {
	case node.EventRegistered:
		if n.registeredAt == 0 {
			n.registeredAt = max(time.Since(g.start), 1)
			g.registered++
		}
		if g.restarted && n.registeredAgain == 0 {
			n.registeredAgain = max(time.Since(g.start), 1)
			g.registeredAgain++
		}
	case node.EventOpenSockets:
		n.m.HandleSockets(now, e.Tag, nil)
	case node.EventConnected:
		if !n.connected {
			n.connected = true
			g.connected++
		}
	case node.EventClosed:
		if !n.closed {
			n.closed = true
			g.closed++
		}
	}
}

// run drives the nodes until done() holds or for at most d.
func (g *loadGen) run(d time.Duration, done func() bool) error {
	events := make([]unix.EpollEvent, 256)
	end := time.Now().Add(d)
	for !done() && time.Now().Before(end) {
		wait := min(time.Until(end), 100*time.Millisecond)
		if len(g.timers) > 0 {
			wait = min(wait, max(g.timers[0].at.Sub(g.now()), 0))
		}
		k, err := unix.EpollWait(g.epfd, events, int(wait.Milliseconds()))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		for _, ev := range events[:max(k, 0)] {
			g.receive(int(ev.Fd))
		}
		g.timersDue()
	}
	return nil
}

// send sends p from node n to to: on its own socket, or on the shared one with n's
// address as the source (IP_PKTINFO).
func (g *loadGen) send(n *loadNode, to netip.AddrPort, p []byte) error {
	sa := &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().Unmap().As4()}
	if n.fd != g.shared {
		return unix.Sendto(n.fd, p, 0, sa)
	}
	return unix.Sendmsg(g.shared, p, sourceCmsg(n.local.Addr()), sa, 0)
}

// receive hands node i every datagram waiting on its socket (i < 0: the shared
// socket, each datagram to the node it is addressed to).
func (g *loadGen) receive(i int) {
	if i < 0 {
		g.receiveShared()
		return
	}
	n := g.nodes[i]
	for {
		k, from, err := unix.Recvfrom(n.fd, g.rxBuf, 0)
		if err != nil {
			break // EAGAIN: drained
		}
		sa, ok := from.(*unix.SockaddrInet4)
		if !ok {
			continue
		}
		now := g.now()
		_ = n.m.HandleDatagram(now, n.local, netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), g.rxBuf[:k])
		g.service(i, now)
	}
}

// timersDue runs the nodes whose deadline has passed (heap entries a later
// deadline replaced are dropped as they come up).
func (g *loadGen) timersDue() {
	for len(g.timers) > 0 {
		now := g.now()
		top := g.timers[0]
		if top.at > now {
			return
		}
		heap.Pop(&g.timers)
		n := g.nodes[top.node]
		if top.at != n.deadline {
			continue
		}
		n.deadline = proto.Never
		if !n.started {
			n.started = true
			n.m.Start(now)
		} else {
			n.m.HandleTimeout(now)
		}
		g.service(top.node, now)
	}
}

func (g *loadGen) close() {
	for _, n := range g.nodes {
		if n.fd != g.shared {
			unix.Close(n.fd)
		}
	}
	if g.shared >= 0 {
		unix.Close(g.shared)
	}
	unix.Close(g.epfd)
}

// raiseFileLimit lifts the soft descriptor limit to the hard one: one socket per
// node (newSharedLoadGen needs one in all).
func raiseFileLimit() {
	var l unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &l)
	}
}

// deadlineEntry is node's deadline at the time it was filed.
type deadlineEntry struct {
	at   proto.Instant
	node int
}

type deadlineHeap []deadlineEntry

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadlineEntry)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
