package driver

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natpass/natpass/streamframe"
)

// Datagrams over a TCP or TLS stream (DESIGN §14, PROTOCOL.md §14). A streamConn is
// one connection between a node and its server: the loop hands it datagrams to
// frame and send (send), a writer goroutine writes the framed bytes, and a reader
// goroutine decodes the frames it reads and gives each datagram to the loop as if
// it had arrived on a UDP socket (loop.deliverStream). The machines above see
// datagrams only; which transport carried them is the driver's business.

const (
	// streamQueueBytes bounds the framed bytes waiting for one stream's writer: a
	// datagram that finds it full is dropped and counted, as a full socket buffer
	// drops a UDP datagram (the machines retransmit what matters).
	streamQueueBytes = 256 << 10
	// streamReadLen is the reader's buffer: one read takes up to this much of the
	// stream, and the decoder lends out the frames that lie whole inside it.
	streamReadLen = 32 << 10
	// streamIdle closes a stream that brought nothing for this long: a node on a
	// stream sends a keepalive to its server well within it (PROTOCOL.md §5).
	streamIdle = 3 * time.Minute
)

// streamCounters are what the streams of a Node or Server turned away.
type streamCounters struct {
	queueDrops atomic.Uint64 // datagrams dropped: the stream's write queue was full
	badFrames  atomic.Uint64 // streams closed for a bad frame length (PROTOCOL [STREAM-2])
}

// streamConn is one framed stream. send runs on the loop (holding its mu); writeLoop and
// readLoop each on a goroutine of their own; close on any.
type streamConn struct {
	conn  net.Conn
	stats *streamCounters

	mu      sync.Mutex
	out     []byte // framed datagrams waiting for the writer
	kick    chan struct{}
	done    chan struct{} // closed by close: both goroutines end
	closeMu sync.Once
}

func newStreamConn(c net.Conn, stats *streamCounters) *streamConn {
	return &streamConn{conn: c, stats: stats, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// send queues datagram p as one frame; false when it was dropped (queue full, too
// long for a frame, or the stream closed).
func (c *streamConn) send(p []byte) bool {
	c.mu.Lock()
	if len(c.out)+streamframe.HeaderLen+len(p) > streamQueueBytes {
		c.mu.Unlock()
		c.stats.queueDrops.Add(1)
		return false
	}
	var err error
	c.out, err = streamframe.AppendFrame(c.out, p)
	c.mu.Unlock()
	if err != nil {
		c.stats.queueDrops.Add(1)
		return false
	}
	select {
	case c.kick <- struct{}{}:
	default: // the writer is awake already
	}
	return true
}

// writeLoop writes queued frames until the stream closes or a write fails (which
// closes it).
func (c *streamConn) writeLoop() {
	var spare []byte
	for {
		select {
		case <-c.kick:
		case <-c.done:
			return
		}
		c.mu.Lock()
		if len(c.out) == 0 {
			c.mu.Unlock()
			continue // a kick for bytes an earlier round wrote
		}
		batch := c.out
		c.out = spare[:0] // spare is no longer the writer's: batch now is
		c.mu.Unlock()
		if _, err := c.conn.Write(batch); err != nil {
			c.close()
			return
		}
		spare = batch
	}
}

// readLoop reads the stream and hands each datagram to deliver until the stream
// ends, breaks (a bad frame length), idles past streamIdle or deliver refuses (the
// loop stopped); then it closes the stream.
func (c *streamConn) readLoop(deliver func(d []byte) bool) {
	defer c.close()
	buf := make([]byte, streamReadLen)
	var dec streamframe.Decoder
	for {
		c.conn.SetReadDeadline(time.Now().Add(streamIdle))
		n, err := c.conn.Read(buf)
		if n > 0 {
			dec.Feed(buf[:n])
			for {
				d, ok := dec.Next()
				if !ok {
					break
				}
				if !deliver(d) {
					return
				}
			}
			if dec.Err() != nil {
				c.stats.badFrames.Add(1)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// close ends the stream; safe to call more than once, from any goroutine.
func (c *streamConn) close() {
	c.closeMu.Do(func() {
		close(c.done)
		c.conn.Close()
	})
}

// deliverStream gives datagram d, read from a stream, to the machine as a
// datagram that arrived on sock from from. The stream's reader does it itself,
// holding mu (so a busy loop holds the stream's reader and, through TCP, the
// sender), and d is not kept; false once the loop stopped.
func (l *loop) deliverStream(sock *socket, from netip.AddrPort, d []byte) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	p := &l.streamPkt
	*p = packet{sock: sock, from: from, stream: true, buf: d, n: len(d)}
	l.handle(p)
	p.buf = nil
	l.arm()
	return true
}
