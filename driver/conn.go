package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// PathKind says which way a peer's traffic goes (proto's type, which node reports).
type PathKind = proto.PathKind

// Path kinds.
const (
	PathNone   = proto.PathNone
	PathDirect = proto.PathDirect
	PathRelay  = proto.PathRelay
)

// PathEvent reports that a connection's traffic moved: Kind is where it goes now,
// Reason why ("direct confirmed", "direct timed out", ...).
type PathEvent struct {
	Kind          PathKind
	Local, Remote netip.AddrPort
	RTT           time.Duration
	Reason        string
}

// Message is one message from the peer. Data belongs to the caller.
type Message struct {
	Lane int
	Mode rudp.Mode
	Data []byte

	pool *bufferPool // Config.RecycleBuffers: where Release gives Data back
}

// pathQueue bounds a Conn's undelivered path events; when full the oldest is
// dropped (Path always has the latest).
const pathQueue = 16

// msgOverhead is what a queued message counts beyond its data: rudp charges at
// least that much of the flow-control window for each message (32 bytes per
// fragment), so a queue's bytes counted this way never exceed the credit its
// messages hold.
const msgOverhead = 32

// queued is a received message not yet read, with the flow-control credit it
// holds until Recv hands it out.
type queued struct {
	m      Message
	credit node.Credit
}

// Conn is an encrypted, reliable connection with one peer. Its methods are safe for
// concurrent use.
type Conn struct {
	n        *Node
	peer     string
	incoming bool // the peer connected to us: Accept hands it out

	up     chan struct{} // closed when the session is up
	done   chan struct{} // closed when the connection ended
	ready  chan struct{} // a message was queued (capacity 1)
	paths  chan PathEvent
	upOnce sync.Once

	mu sync.Mutex
	// q holds received messages until Recv. Its bound is the flow-control window,
	// because a message's credit goes back to the peer only when Recv takes it:
	// reliable messages hold at most max(RUDP.RecvWindow, 64 KiB) bytes (counted as
	// qBytes counts them; 64 KiB is what every receiver accepts before its first
	// window update, [FLOW-1]), and unreliable ones at most as much more, since rudp drops
	// and counts (Stats.UnreliableDropped) unreliable messages past that. A reader
	// that stops reading stops the sender; nothing is dropped and nothing closes.
	q      []queued
	head   int
	qBytes int // len(Data) + msgOverhead of every queued message
	qPeak  int // the most qBytes ever was (tests read it)
	// credit is the credit of messages Recv handed out that the loop has not yet
	// given back to the machine (creditBytes of them, counted as qBytes); queued
	// says c waits on Node.credits for the loop to take it.
	credit       node.Credit
	creditBytes  int
	creditQueued bool
	err          error // why the connection ended; nil while open
	// rooms are woken (Room.ready) when a message is queued or the connection
	// ends: the Rooms whose member this peer is read it (at most maxRooms).
	rooms     []*Room
	path      PathEvent
	strategy  string
	relayOnly bool
	// out holds what Room.Broadcast queued for this peer until the connection
	// takes it (outbox.go); outSpace (capacity 1) wakes a broadcast waiting for
	// room in it.
	out      outbox
	outSpace chan struct{}
}

func newConn(n *Node, peer string, incoming bool) *Conn {
	return &Conn{
		n: n, peer: peer, incoming: incoming,
		up:    make(chan struct{}),
		done:  make(chan struct{}),
		ready: make(chan struct{}, 1),
		paths: make(chan PathEvent, pathQueue),

		outSpace: make(chan struct{}, 1),
	}
}

// sortConns orders connections by peer ID.
func sortConns(cs []*Conn) {
	slices.SortFunc(cs, func(a, b *Conn) int { return strings.Compare(a.peer, b.peer) })
}

// Peer is the peer's ID.
func (c *Conn) Peer() string { return c.peer }

// Strategy is the punching strategy the node chose for this peer. It means
// nothing when RelayOnly: then no punching happens.
func (c *Conn) Strategy() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.strategy
}

// RelayOnly reports whether the server introduced the pair for the relay only
// (this side or the peer asked with RelayForce): the addresses stay hidden and
// nothing is punched.
func (c *Conn) RelayOnly() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.relayOnly
}

// Path is the connection's current path.
func (c *Conn) Path() PathEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.path
}

// PathEvents delivers every path change (the oldest is dropped if 16 are unread).
func (c *Conn) PathEvents() <-chan PathEvent { return c.paths }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Send queues msg for the peer on lane with mode; the bytes are copied before Send
// returns. While the send buffer is full (RUDP.SendBufferBytes of messages queued
// or unacknowledged, which is where a peer that reads slowly holds the sender), or
// the lane holds RUDP.SendQueueBytes not yet sent, it waits for room: a slow reader
// slows the sender down.
func (c *Conn) Send(lane int, mode rudp.Mode, msg []byte) error {
	return c.SendContext(context.Background(), lane, mode, msg)
}

// SendContext is Send that gives up when ctx ends, returning ctx.Err(); msg was
// then not sent.
func (c *Conn) SendContext(ctx context.Context, lane int, mode rudp.Mode, msg []byte) error {
	if err := c.closeErr(); err != nil {
		return err
	}
	cmd := getCommand()
	cmd.kind, cmd.conn, cmd.lane, cmd.mode, cmd.msg = cmdSend, c, lane, mode, msg
	return c.n.wait(ctx, cmd)
}

// SendOwned is SendContext without the copy: on success the connection takes msg
// itself (rudp.Conn.SendOwned), and the caller must neither read nor write it
// again; once the peer has acknowledged it (or, unreliable, it has left) it goes to
// Config.RUDP.Buffers' Put, so an application that fills buffers from that pool
// recycles them. On an error (ctx ended first included) msg was not taken.
func (c *Conn) SendOwned(ctx context.Context, lane int, mode rudp.Mode, msg []byte) error {
	if err := c.closeErr(); err != nil {
		return err
	}
	cmd := getCommand()
	cmd.kind, cmd.conn, cmd.lane, cmd.mode, cmd.msg = cmdSendOwned, c, lane, mode, msg
	return c.n.wait(ctx, cmd)
}

// Flush waits until everything sent so far has been acknowledged by the peer.
func (c *Conn) Flush(ctx context.Context) error {
	cmd := getCommand()
	cmd.kind, cmd.conn = cmdFlush, c
	return c.n.wait(ctx, cmd)
}

// Recv returns the next message. After the peer's normal close it returns io.EOF
// once every message before the close was read. Taking a message gives its
// flow-control credit back, so the peer may send that much more.
func (c *Conn) Recv(ctx context.Context) (Message, error) {
	for {
		m, ok, err := c.take()
		if ok || err != nil {
			return m, err
		}
		select {
		case <-c.ready:
		case <-c.done:
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}

// take returns the next queued message (ok), or why the connection ended once
// nothing is queued, or neither. Its credit goes back as Recv's does.
func (c *Conn) take() (m Message, ok bool, err error) {
	c.mu.Lock()
	if c.head == len(c.q) {
		err = c.err
		c.mu.Unlock()
		return Message{}, false, err
	}
	it := c.q[c.head]
	c.q[c.head] = queued{}
	c.head++
	c.qBytes -= len(it.m.Data) + msgOverhead
	if c.head == len(c.q) {
		c.q, c.head = c.q[:0], 0
	}
	kick := c.creditTaken(it)
	c.mu.Unlock()
	if kick {
		c.n.giveCredit(c)
	}
	return it.m, true, nil
}

// creditTaken adds the credit of it, which Recv just handed out, to what waits
// for the loop, and says whether the loop must be told now. It batches: the loop
// hears of it once an eighth of the window is waiting, or when the queue became
// empty, so that a reader that read everything never leaves credit parked here
// while the sender waits for it. A Conn that ended drops the credit (the machine
// would ignore it). c.mu is held.
func (c *Conn) creditTaken(it queued) bool {
	if c.err != nil || it.credit.IsZero() {
		return false
	}
	c.credit = c.credit.Add(it.credit)
	c.creditBytes += len(it.m.Data) + msgOverhead
	if c.creditQueued || c.creditBytes < c.n.creditBatch && c.head < len(c.q) {
		return false
	}
	c.creditQueued = true
	return true
}

// takeCredit hands the loop the credit waiting in c and clears it.
func (c *Conn) takeCredit() node.Credit {
	c.mu.Lock()
	defer c.mu.Unlock()
	cr := c.credit
	c.credit, c.creditBytes, c.creditQueued = node.Credit{}, 0, false
	return cr
}

// Stats returns the connection's rudp statistics.
func (c *Conn) Stats() (rudp.Stats, error) {
	var st rudp.Stats
	err := c.n.do(func(proto.Instant) { st, _ = c.n.nm.ConnStats(c.peer) })
	return st, err
}

// Close ends the connection: queued and unacknowledged messages are dropped (Flush
// first to deliver them) and the peer is told. Recv then returns ErrConnClosed.
func (c *Conn) Close() error {
	return c.n.do(func(now proto.Instant) {
		c.fail(fmt.Errorf("%w: closed locally", ErrConnClosed))
		_ = c.n.nm.ClosePeer(now, c.peer, rudp.CodeNormal, "closed")
		c.n.unlinkConn(c)
		if c.n.conns[c.peer] == c {
			delete(c.n.conns, c.peer) // a later Connect or Accept makes a new Conn
		}
	})
}

// closeErr is why the connection ended, or nil.
func (c *Conn) closeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Conn) isUp() bool {
	select {
	case <-c.up:
		return true
	default:
		return false
	}
}

// The methods below run on the loop, holding its mu.

func (c *Conn) markUp() { c.upOnce.Do(func() { close(c.up) }) }

func (c *Conn) setStrategy(s string, relayOnly bool) {
	c.mu.Lock()
	c.strategy, c.relayOnly = s, relayOnly
	c.mu.Unlock()
}

func (c *Conn) setPath(e PathEvent) {
	c.mu.Lock()
	c.path = e
	c.mu.Unlock()
	for range 2 {
		select {
		case c.paths <- e:
			return
		default:
			select {
			case <-c.paths: // drop the oldest
				c.n.pathDrops.Add(1)
			default:
			}
		}
	}
}

// push queues m, which holds credit cr until Recv takes it. The queue needs no
// bound of its own: the flow-control window bounds it (see Conn.q).
func (c *Conn) push(m Message, cr node.Credit) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return // closed locally: drop quietly (the machine ignores its credit)
	}
	if c.head > 0 && c.head >= len(c.q)/2 {
		// Slide the unread part down so the slice does not creep forward forever.
		n := copy(c.q, c.q[c.head:])
		clear(c.q[n:])
		c.q, c.head = c.q[:n], 0
	}
	c.q = append(c.q, queued{m: m, credit: cr})
	c.qBytes += len(m.Data) + msgOverhead
	c.qPeak = max(c.qPeak, c.qBytes)
	rooms := c.rooms
	c.mu.Unlock()
	select {
	case c.ready <- struct{}{}:
	default:
	}
	for _, r := range rooms {
		r.wake()
	}
}

// setRooms sets the Rooms c wakes (the loop calls it when a room's links change).
func (c *Conn) setRooms(rooms []*Room) {
	c.mu.Lock()
	c.rooms = rooms
	c.mu.Unlock()
}

// peerClosed: the peer connection ended; a normal close by the peer is io.EOF.
func (c *Conn) peerClosed(e node.EventPeerClosed) {
	if !e.Reason.Local && e.Reason.Code == 0 {
		c.fail(io.EOF)
		return
	}
	c.fail(fmt.Errorf("%w: %s", ErrConnClosed, e.Reason))
}

// fail ends the connection with err (the first reason wins).
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	rooms := c.rooms
	c.out.drop() // lost with the link, counted; a listed outbox leaves the list when the loop finds it empty
	c.mu.Unlock()
	close(c.done)
	for _, r := range rooms {
		r.wake()
	}
}

// Commands: how API goroutines reach the loop without allocating.

type cmdKind uint8

const (
	cmdFunc      cmdKind = iota // run fn
	cmdSend                     // node.Send; a full buffer parks the command
	cmdFlush                    // wait until nothing sent is unacknowledged
	cmdSendOwned                // node.SendOwned; parks like cmdSend
)

// command is one request to the loop. Parked commands (a send waiting for buffer
// room, a flush) stay in Node.waiters; mu guards finished and cancelled, so that a
// caller whose context ended and the loop agree on who owns the command.
type command struct {
	kind cmdKind
	fn   func(now proto.Instant)
	conn *Conn
	lane int
	mode rudp.Mode
	msg  []byte

	mu        sync.Mutex
	finished  bool
	cancelled bool
	err       error
	done      chan struct{} // capacity 1: signalled once by finish
}

var commandPool = sync.Pool{New: func() any { return &command{done: make(chan struct{}, 1)} }}

func getCommand() *command { return commandPool.Get().(*command) }

func putCommand(c *command) {
	c.kind, c.fn, c.conn, c.msg, c.err = cmdFunc, nil, nil, nil, nil
	c.finished, c.cancelled = false, false
	select {
	case <-c.done:
	default:
	}
	commandPool.Put(c)
}

// finish completes c with err, unless its caller gave up on it.
func (c *command) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finishLocked(err)
}

func (c *command) finishLocked(err error) {
	if c.finished || c.cancelled {
		return
	}
	c.finished = true
	c.err = err
	c.done <- struct{}{}
}

// run executes c holding the loop's mu; a command that cannot complete yet parks.
func (c *command) run(n *Node, now proto.Instant) {
	if c.kind == cmdFunc {
		c.fn(now)
		c.finish(nil)
		return
	}
	if !c.attempt(n, now) {
		n.waiters = append(n.waiters, c)
	}
}

// attempt tries a send or flush; true when c is finished (or cancelled). It holds
// c.mu throughout, so a caller cannot give up (and reuse msg) while its bytes are
// being copied.
func (c *command) attempt(n *Node, now proto.Instant) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancelled {
		return true
	}
	if err := c.conn.closeErr(); err != nil {
		c.finishLocked(err)
		return true
	}
	if c.conn.outboxBusy() {
		return false // behind the room messages queued before it
	}
	switch c.kind {
	case cmdFlush:
		st, ok := n.nm.ConnStats(c.conn.peer)
		if ok && st.SendBuffered > 0 {
			return false
		}
		c.finishLocked(nil)
	default:
		var err error
		if c.kind == cmdSendOwned {
			err = n.nm.SendOwned(now, c.conn.peer, c.lane, c.mode, c.msg)
		} else {
			err = n.nm.Send(now, c.conn.peer, c.lane, c.mode, c.msg)
		}
		if errors.Is(err, rudp.ErrSendBufferFull) {
			return false
		}
		c.finishLocked(err)
	}
	return true
}

// checkWaiters retries parked commands after the machine moved.
func (n *Node) checkWaiters(now proto.Instant) {
	keep := n.waiters[:0]
	for _, c := range n.waiters {
		if !c.attempt(n, now) {
			keep = append(keep, c)
		}
	}
	clear(n.waiters[len(keep):])
	n.waiters = keep
}

// wait sends cmd to the loop and waits for it, for ctx, or for the node to stop.
func (n *Node) wait(ctx context.Context, cmd *command) error {
	if err := n.send(cmd); err != nil {
		return err
	}
	select {
	case <-cmd.done:
	case <-ctx.Done():
		cmd.mu.Lock()
		if !cmd.finished {
			// The loop may still hold cmd among its waiters: it sees cancelled and
			// drops it. cmd goes to the garbage collector, not back to the pool.
			cmd.cancelled = true
			cmd.mu.Unlock()
			return ctx.Err()
		}
		cmd.mu.Unlock()
		<-cmd.done
	case <-n.exited:
		cmd.mu.Lock()
		if !cmd.finished {
			cmd.cancelled = true
			cmd.mu.Unlock()
			return n.stopErr()
		}
		cmd.mu.Unlock()
		<-cmd.done
	}
	err := cmd.err
	putCommand(cmd)
	return err
}
