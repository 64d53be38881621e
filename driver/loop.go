package driver

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natpass/natpass/proto"
)

// machine is the state-machine contract every natpass machine keeps (DESIGN §2);
// node.Node and rendezvous.Server both satisfy it.
type machine interface {
	HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error
	HandleTimeout(now proto.Instant)
	PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool)
	Deadline() proto.Instant
}

// Bounds of the receive path: readers fill at most poolSize buffers, and the loop
// holds at most inQueue of them waiting. Together with the kernel's socket buffers
// this is all the memory a flood can take.
const (
	poolSize = 512
	inQueue  = 256
)

// counters are the loop's own statistics, readable from any goroutine.
type counters struct {
	datagramsIn, bytesIn   atomic.Uint64
	datagramsOut, bytesOut atomic.Uint64
	rejected               atomic.Uint64 // HandleDatagram returned an error: garbage, replays, strays
	tooLong                atomic.Uint64 // longer than maxDatagram, dropped before the machine
	writeErrors            atomic.Uint64 // the kernel refused a send (unreachable, no route, EPERM)
	unknownFrom            atomic.Uint64 // Transmit.From named no socket; sent from the main one
}

// loop owns one machine and runs it: one goroutine per socket reads, one goroutine
// (run) calls the machine, which is not safe for concurrent use. It follows the
// drain rule after every call and keeps one timer at the machine's Deadline.
type loop struct {
	m     machine
	start time.Time
	last  proto.Instant

	main    *socket
	sockets map[netip.AddrPort]*socket
	all     []*socket

	free chan *packet
	in   chan *packet
	done chan struct{} // closed when the loop stops: readers exit
	wg   sync.WaitGroup

	timer *time.Timer
	armed proto.Instant

	batch sendBatch
	stats counters

	// dropInbound is Config.DropInbound, applied to every socket added.
	dropInbound float64

	// drained runs after every PollTransmit drain, on the loop goroutine: the owner
	// polls the machine's events there.
	drained func(now proto.Instant)
}

func newLoop(m machine, start time.Time, txBufLen int) *loop {
	l := &loop{
		m:       m,
		start:   start,
		sockets: map[netip.AddrPort]*socket{},
		free:    make(chan *packet, poolSize),
		in:      make(chan *packet, inQueue),
		done:    make(chan struct{}),
		timer:   time.NewTimer(time.Hour),
		armed:   proto.Never,
		batch:   newSendBatch(txBufLen),
	}
	l.timer.Stop()
	for range poolSize {
		l.free <- new(packet)
	}
	return l
}

// now is the machine's clock: monotonic nanoseconds since start, never decreasing.
func (l *loop) now() proto.Instant {
	t := proto.Instant(time.Since(l.start))
	if t < l.last {
		t = l.last
	}
	l.last = t
	return t
}

// addSocket registers s under its address and starts its reader.
func (l *loop) addSocket(s *socket) {
	if l.main == nil {
		l.main = s
	}
	l.sockets[s.addr] = s
	l.all = append(l.all, s)
	if l.dropInbound > 0 {
		s.dropRate = l.dropInbound
		s.dropRNG = rand.New(rand.NewPCG(uint64(s.addr.Port()), uint64(len(l.all))))
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		s.readLoop(l.free, l.in, l.done, &l.stats.tooLong)
	}()
}

// handlePacket gives one datagram to the machine and drains.
func (l *loop) handlePacket(p *packet) {
	now := l.now()
	l.stats.datagramsIn.Add(1)
	l.stats.bytesIn.Add(uint64(p.n))
	if err := l.m.HandleDatagram(now, p.sock.addr, p.from, p.buf[:p.n]); err != nil {
		l.stats.rejected.Add(1)
	}
	l.free <- p
	l.drain(now)
}

// handleTimer runs the machine's timers if they are due and drains.
func (l *loop) handleTimer() {
	l.armed = proto.Never
	now := l.now()
	if now >= l.m.Deadline() {
		l.m.HandleTimeout(now)
	}
	l.drain(now)
}

// drain is the drain rule: every transmit, then the owner's events.
func (l *loop) drain(now proto.Instant) {
	l.drainTransmits(now)
	if l.drained != nil {
		l.drained(now)
	}
}

// drainTransmits sends every datagram the machine has queued. Consecutive
// datagrams from one socket go out together in one sendmmsg where the platform has
// it (x/net's WriteBatch; one write per datagram elsewhere).
func (l *loop) drainTransmits(now proto.Instant) {
	for {
		slot := l.batch.next()
		t, ok := l.m.PollTransmit(now, slot)
		if !ok {
			break
		}
		s := l.sockets[t.From]
		if s == nil {
			l.stats.unknownFrom.Add(1)
			s = l.main
		}
		if t.TTL != 0 {
			// TTL-limited primers are rare and set a socket option: alone.
			l.flush()
			l.count(s.write(t.Payload, t.To, t.TTL), len(t.Payload))
			continue
		}
		if l.batch.n > 0 && l.batch.sock != s {
			// Flush what queued for another socket; this datagram's bytes sit in
			// the slot that the batch hands out again first.
			pending := t.Payload
			l.flush()
			t.Payload = l.batch.adopt(pending)
		}
		l.batch.add(s, t.Payload, t.To)
		if l.batch.full() {
			l.flush()
		}
	}
	l.flush()
}

// flush sends the batched datagrams.
func (l *loop) flush() {
	b := &l.batch
	if b.n == 0 {
		return
	}
	b.sock.writeBatch(b.msgs[:b.n], &b.fail)
	for i := range b.n {
		if b.fail[i] {
			l.stats.writeErrors.Add(1)
		} else {
			l.count(nil, len(b.iov[i][0]))
		}
	}
	b.reset()
}

func (l *loop) count(err error, n int) {
	if err != nil {
		l.stats.writeErrors.Add(1)
		return
	}
	l.stats.datagramsOut.Add(1)
	l.stats.bytesOut.Add(uint64(n))
}

// arm sets the timer to the machine's deadline if it moved.
func (l *loop) arm() {
	d := l.m.Deadline()
	if d == l.armed {
		return
	}
	l.armed = d
	if d == proto.Never {
		l.timer.Stop()
		return
	}
	l.timer.Reset(time.Duration(d - proto.Instant(time.Since(l.start))))
}

// shutdown closes every socket and waits for the readers. Only the loop goroutine
// calls it, once, after its last machine call.
func (l *loop) shutdown() {
	l.timer.Stop()
	close(l.done)
	for _, s := range l.all {
		s.conn.Close()
	}
	l.wg.Wait()
}
