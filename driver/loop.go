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

// maxSockets bounds the sockets of one loop. Each socket's reader owns its
// receive buffers: one datagram's (maxDatagram+1 bytes), recvBatchLen of them for
// a batch reader, or groBatchLen coalesced-read buffers of groBufLen bytes (512
// KiB) for a GRO one (at most 8 batch sockets). That is all the memory a flood can
// take, besides the kernel's socket buffers: a reader reads again only once the
// machine has had what it read, so a busy machine leaves datagrams waiting in the
// kernel, which drops (and counts) what does not fit.
const maxSockets = 1024

// counters are the loop's own statistics, readable from any goroutine.
type counters struct {
	datagramsIn, bytesIn   atomic.Uint64
	datagramsOut, bytesOut atomic.Uint64
	rejected               atomic.Uint64 // HandleDatagram returned an error: garbage, replays, strays
	tooLong                atomic.Uint64 // longer than maxDatagram, dropped before the machine
	writeErrors            atomic.Uint64 // the kernel refused a send (unreachable, no route, EPERM)
	unknownFrom            atomic.Uint64 // Transmit.From named no socket; sent from the main one
	sourcesForgotten       atomic.Uint64 // remote addresses a full source table forgot (pktinfo.go)
	gsoSends               atomic.Uint64 // GSO runs sent (each one entry of a sendmmsg)
	mmsgSends              atomic.Uint64 // sendmmsg calls (or writes, without it): send system calls but TTL-limited writes
	// The holding reader's (loop.readHold, uring_linux.go): HoldStats.
	holdReaders, holdFallbacks, holdWakeups, holdDatagrams atomic.Uint64
	holdNoBuffers, holdOverflow, holdEnterErrors           atomic.Uint64
}

// loop owns one machine and runs it. The machine is not safe for concurrent use:
// every call to it, and every field below mu, is made holding mu. One goroutine
// per socket reads and, holding mu, hands what it read to the machine itself and
// sends what that produced, so a datagram costs no hand-over between goroutines
// (no scheduler wake-up of another goroutine); the owner's goroutine (run) takes
// mu for everything else: timers, commands, cluster messages. It follows the
// drain rule after every call and keeps one timer at the machine's Deadline.
type loop struct {
	done chan struct{} // closed when the loop stops: readers exit
	wg   sync.WaitGroup

	mu sync.Mutex
	// stopped: the owner made its last machine call; readers and streams drop
	// what they read from then on.
	stopped bool

	m     machine
	start time.Time
	last  proto.Instant

	main    *socket
	sockets map[netip.AddrPort]*socket
	all     []*socket
	// lastFrom and lastSock remember drainTransmits' last look-up in sockets:
	// a transfer's datagrams all leave from one socket, and hashing a
	// netip.AddrPort per datagram cost ≈ 1 % of a bulk transfer (issue 18).
	// addSocket clears them; nothing leaves sockets.
	lastFrom netip.AddrPort
	lastSock *socket

	// streamPkt carries a datagram read from a TCP/TLS stream through handle
	// (deliverStream), so that it needs no allocation.
	streamPkt packet

	timer *time.Timer
	armed proto.Instant

	batch sendBatch
	stats counters
	// holding: handlePackets is taking a burst in; drains leave their datagrams in
	// the batch and it flushes once at the end.
	holding bool

	batchSockets int
	// readHold, when > 0, reads the batch sockets through io_uring, holding
	// datagrams up to this long while traffic flows (ServerConfig.ReadHold).
	readHold time.Duration
	// dropInbound is Config.DropInbound, applied to every socket added.
	dropInbound float64

	// drained runs after every PollTransmit drain, holding mu: the owner
	// polls the machine's events there.
	drained func(now proto.Instant)
	// divertIn, when set, sees every datagram that came over UDP before the
	// machine does, and reports whether it took it (stream.go's fallback).
	divertIn func(now proto.Instant, p *packet, d []byte) bool
	// divertOut, when set, sees every transmit before the sockets do, and reports
	// whether it took it (into a TCP/TLS stream). The payload is valid only
	// during the call.
	divertOut func(t proto.Transmit) bool
}

func newLoop(m machine, start time.Time, txBufLen int) *loop {
	l := &loop{
		m:       m,
		start:   start,
		sockets: map[netip.AddrPort]*socket{},
		done:    make(chan struct{}),
		timer:   time.NewTimer(time.Hour),
		armed:   proto.Never,
		batch:   newSendBatch(txBufLen),
	}
	l.timer.Stop()
	return l
}

// lock takes mu and returns the machine's clock.
func (l *loop) lock() proto.Instant {
	l.mu.Lock()
	return l.now()
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

// addSocket registers s under its address and starts its reader; batch readers
// (recvmmsg) are for the few busy sockets: main sockets, the server's. The caller
// holds mu.
func (l *loop) addSocket(s *socket, batch bool) {
	s.batch = batch && l.batchSockets < 8
	if s.batch {
		l.batchSockets++
	}
	if l.main == nil {
		l.main = s
	}
	l.sockets[s.addr] = s
	l.lastFrom, l.lastSock = netip.AddrPort{}, nil
	l.all = append(l.all, s)
	if l.dropInbound > 0 {
		s.dropRate = l.dropInbound
		s.dropRNG = rand.New(rand.NewPCG(uint64(s.addr.Port()), uint64(len(l.all))))
	}
	held := l.readHold > 0 && s.batch && s.prepareHold()
	if l.readHold > 0 && s.batch && !held {
		l.stats.holdFallbacks.Add(1)
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if held && l.readHeld(s) {
			return
		}
		s.readLoop(l.deliver, l.done, &l.stats.tooLong)
	}()
}

// holdStats reads the holding reader's counters.
func (l *loop) holdStats() HoldStats {
	c := &l.stats
	return HoldStats{Readers: c.holdReaders.Load(), Fallbacks: c.holdFallbacks.Load(), Wakeups: c.holdWakeups.Load(),
		Datagrams: c.holdDatagrams.Load(), NoBuffers: c.holdNoBuffers.Load(), Overflow: c.holdOverflow.Load(),
		EnterErrors: c.holdEnterErrors.Load()}
}

// inBurst is how many cluster messages the server takes in one go (handleCluster).
const inBurst = 64

// deliver gives the machine what one read of a socket brought (pkts, in order; one
// recvmmsg's worth at most), following the drain rule after every datagram. The
// transmits those drains produce wait in the send batch (until it fills) and go
// to the kernel together at the end: a run of received datagrams costs one send
// system call, and the acks and data it released leave as one GSO run or sendmmsg
// batch. The reader's goroutine does all of it, holding mu: no other goroutine is
// woken for a datagram. The buffers are the reader's again when deliver returns;
// once the loop stopped they are dropped unread, and deliver returns false.
func (l *loop) deliver(pkts []*packet) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.holding = true
	l.touch(pkts)
	for _, p := range pkts {
		l.handle(p)
	}
	l.holding = false
	l.flush()
	l.arm()
	return true
}

// toucher is a machine that can read ahead what handling a datagram will read
// (rendezvous.Server.Touch), changing nothing.
type toucher interface{ Touch(p []byte) }

// touch lets a machine read ahead for every datagram of a batch of more than one
// before any is handled: the cache misses of different datagrams then overlap
// instead of each waiting for the last (a relay at game rates, issue 18).
func (l *loop) touch(pkts []*packet) {
	t, ok := l.m.(toucher)
	if !ok || len(pkts) < 2 { // one read's coalesced datagrams share one flow
		return
	}
	for _, p := range pkts {
		for k := 0; ; k++ {
			d, ok := p.datagram(k)
			if !ok {
				break
			}
			t.Touch(d)
		}
	}
}

// handle gives the packet's datagrams to the machine, draining after each. They
// share one reading of the clock: a coalesced read's datagrams arrived together,
// and a clock read per datagram was 2 % of a bulk transfer (issue 18).
func (l *loop) handle(p *packet) {
	if p.dst.IsValid() && p.sock.noteSource(p.from, p.dst) {
		l.stats.sourcesForgotten.Add(1)
	}
	now := l.now()
	var datagrams, bytes uint64
	for k := 0; ; k++ {
		d, ok := p.datagram(k)
		if !ok {
			break
		}
		datagrams++
		bytes += uint64(len(d))
		if l.divertIn != nil && !p.stream && l.divertIn(now, p, d) {
			l.drain(now)
			continue
		}
		if err := l.m.HandleDatagram(now, p.sock.addr, p.from, d); err != nil {
			l.stats.rejected.Add(1)
		}
		l.drain(now)
	}
	l.stats.datagramsIn.Add(datagrams)
	l.stats.bytesIn.Add(bytes)
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
		if l.divertOut != nil && t.TTL == 0 && l.divertOut(t) {
			l.count(nil, len(t.Payload))
			continue
		}
		s := l.socketFor(t.From)
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
			l.flushFull()
		}
	}
	if !l.holding {
		l.flush()
	}
}

// socketFor is the socket a transmit leaves from: the one bound to from, else
// (counted) the main one.
func (l *loop) socketFor(from netip.AddrPort) *socket {
	if l.lastSock != nil && from == l.lastFrom {
		return l.lastSock
	}
	s := l.sockets[from]
	if s == nil {
		l.stats.unknownFrom.Add(1)
		return l.main
	}
	l.lastFrom, l.lastSock = from, s
	return s
}

// flush sends the batched datagrams (sendSlots): one sendmmsg, runs of
// equal-size datagrams to one destination as GSO entries where the kernel can.
func (l *loop) flush() {
	l.sendSlots(l.batch.n)
	l.batch.reset()
}

// flushFull makes room in a full batch. It sends everything but a last GSO run
// that could still grow, which stays (moved to the front) to take the datagrams
// that follow: bulk data then leaves in runs as long as the kernel takes (45 full
// packets) rather than cut wherever the 64 slots ended. The drain's final flush
// sends what stayed, so nothing waits past the drain that produced it.
func (l *loop) flushFull() {
	k := l.batch.openRun()
	if k == 0 {
		l.flush()
		return
	}
	l.sendSlots(k)
	l.batch.keepFrom(k)
}

// sendSlots sends batch slots [0, end) (flush, flushFull). Where the kernel
// has GSO, every run of equal-size datagrams to one destination is one entry of a
// sendmmsg and every other datagram an entry of its own: a flush costs one system
// call however its runs and singles fall (issue 18: a bulk sender's flushes were
// a full run and a short one, two calls, and a receiver's acknowledgements of a
// few sizes one call per size). Elsewhere it is a sendmmsg of the datagrams.
func (l *loop) sendSlots(end int) {
	b := &l.batch
	if end == 0 {
		return
	}
	if !gsoSupported || b.sock.noGSO {
		l.sendmmsg(0, end)
		return
	}
	n := 0
	for i := 0; i < end; n++ {
		j := min(b.runEnd(i), end)
		b.mmsg.setEntry(n, i, j, b.sock, b.to[i])
		i = j
	}
	l.sendEntries(n)
}

// sendmmsg sends batch slots [i, j) with sendmmsg, one entry per datagram;
// nothing when the range is empty.
func (l *loop) sendmmsg(i, j int) {
	if i >= j {
		return
	}
	b := &l.batch
	l.stats.mmsgSends.Add(1)
	b.mmsg.write(b.sock, i, j, b.fail[:])
	for k := i; k < j; k++ {
		if b.fail[k] {
			l.stats.writeErrors.Add(1)
		} else {
			l.count(nil, len(b.iov[k][0]))
		}
	}
}

func (l *loop) count(err error, n int) {
	if err != nil {
		l.stats.writeErrors.Add(1)
		return
	}
	l.countSent(1, n)
}

// countSent counts datagrams sent, bytes in all.
func (l *loop) countSent(datagrams, bytes int) {
	l.stats.datagramsOut.Add(uint64(datagrams))
	l.stats.bytesOut.Add(uint64(bytes))
}

// arm sets the timer to the machine's deadline if it moved. Whoever holds mu
// calls it after the machine moved; the owner's goroutine receives from the
// timer, and handleTimer checks the deadline again (a Reset after the timer fired
// leaves no stale tick, Go ≥ 1.23, and a tick that raced a Reset finds nothing due).
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
	l.timer.Reset(timerDelay(d, l.last, proto.Instant(time.Since(l.start))))
}

// timerGranularity is the soonest the loop's timer fires for a deadline that is
// not yet due (RFC 9002's kGranularity; quic-go paces and arms its timers no
// finer). rudp's pacer asks to be woken when one more packet may leave, a few
// microseconds ahead at bulk rates; waking that often cost a wake-up, a timer and
// a system call per 3 datagrams (issue 18). Woken a millisecond later, it lets
// out what the millisecond earned (its bucket holds 2 ms of sending) as one GSO
// run. Other timers (acknowledgement delay, loss, keepalives) are milliseconds
// or more anyway.
const timerGranularity = time.Millisecond

// timerDelay is how long the loop's timer waits at clock for the machine's
// deadline d: none when d was due at the machine's last now (it asked to be called
// again at once), else at least timerGranularity. A deadline that fell due only
// between that call and this one (a pacer's few microseconds) is not yet due for
// this purpose.
func timerDelay(d, last, clock proto.Instant) time.Duration {
	if d <= last {
		return 0
	}
	wait := time.Duration(d - clock)
	return max(wait, timerGranularity)
}

// shutdown closes every socket and waits for the readers. The owner calls it
// once, not holding mu, after it set stopped (holding mu) with its last machine
// call: no socket is added after that.
func (l *loop) shutdown() {
	l.mu.Lock()
	l.timer.Stop()
	all := l.all
	l.mu.Unlock()
	close(l.done)
	for _, s := range all {
		s.conn.Close()
		s.wakeHold()
	}
	l.wg.Wait()
	for _, s := range all {
		s.closeHold()
	}
}
