package driver

import (
	"bufio"
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natpass/natpass/rendezvous"
	"github.com/natpass/natpass/rudp"
)

// udpRcvbufErrors reads the kernel's count of UDP datagrams dropped for a full
// socket buffer (Linux /proc/net/snmp), or -1 where there is none. Other programs'
// drops count too; they only ever add.
func udpRcvbufErrors() int64 {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return -1
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(fields) {
				v, _ := strconv.ParseInt(fields[i], 10, 64)
				return v
			}
		}
	}
	return -1
}

// garbage returns a random datagram: plain noise, noise behind the natpass v1
// prefix and a random message type (so it reaches every parser), STUN-looking
// noise, or now and then one longer than any natpass datagram.
func garbage(rng *rand.Rand) []byte {
	n := 1 + rng.IntN(1400)
	kind := rng.IntN(100)
	if kind == 0 {
		n = maxDatagram + 1 + rng.IntN(1000)
	}
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	switch {
	case kind < 40 && n >= 2:
		p[0] = 0xE1
	case kind < 60:
		p[0] &= 0x03 // RFC 7983: STUN's first-byte range
	}
	return p
}

// One million random datagrams at the server's and a node's ports are counted and
// dropped, memory stays bounded, and both still work afterwards (issue 8). Under
// the race detector 100,000 unless NATPASS_LONG=1.
func TestGarbageFlood(t *testing.T) {
	count := 1_000_000
	if raceEnabled && os.Getenv("NATPASS_LONG") == "" {
		count = 100_000
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := startServer(t)
	a := listen(t, ctx, s, "flood-a")
	b := listen(t, ctx, s, "flood-b")
	ca, cb := connectPair(t, ctx, a, b)

	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([][]byte, 4096)
	for i := range pool {
		pool[i] = garbage(rng)
	}
	flood, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	targets := append(s.Addrs(), a.LocalAddr())

	counted := func() uint64 {
		sl, nl := &s.loop.stats, &a.loop.stats
		return sl.datagramsIn.Load() + sl.tooLong.Load() + nl.rejected.Load() + nl.tooLong.Load()
	}
	before := heapInuse()
	counted0, kernel0 := counted(), udpRcvbufErrors()
	kernelDrops := func() uint64 {
		if kernel0 < 0 {
			return 0
		}
		return uint64(udpRcvbufErrors() - kernel0)
	}
	start := time.Now()
	floodPaced(flood, pool, targets, count, func() uint64 { return counted() - counted0 }, kernelDrops)
	// Let the last ones in.
	for deadline := time.Now().Add(5 * time.Second); counted()-counted0+kernelDrops() < uint64(count) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	got, drops := counted()-counted0, kernelDrops()
	growth := int64(heapInuse()) - int64(before)
	t.Logf("%d datagrams in %v: %d counted by the machines, %d dropped by the kernel (any program's), heap %+d KiB",
		count, elapsed.Round(time.Millisecond), got, drops, growth>>10)

	if got+drops < uint64(count) {
		t.Errorf("%d of %d garbage datagrams neither counted nor dropped by the kernel", uint64(count)-got-drops, count)
	}
	if got < uint64(count)*9/10 {
		t.Errorf("only %d of %d garbage datagrams reached the machines", got, count)
	}
	if growth > 32<<20 {
		t.Errorf("heap grew by %d MiB under the flood; want bounded (< 32 MiB)", growth>>20)
	}
	checkFloodCounters(t, a, s)
	// Both still work: the session carries a message, the server admits a node.
	if err := ca.Send(0, rudp.ReliableOrdered, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if m, err := cb.Recv(ctx); err != nil || string(m.Data) != "still here" {
		t.Fatalf("after the flood: %q %v", m.Data, err)
	}
	listen(t, ctx, s, "flood-late")
}

// heapInuse is runtime.MemStats.HeapInuse after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// checkFloodCounters: the node and the server counted the garbage by reason.
func checkFloodCounters(t *testing.T, a *Node, s *Server) {
	t.Helper()
	st := a.Stats()
	if st.Rejected == 0 || st.TooLong == 0 || st.Node.Malformed == 0 {
		t.Errorf("node counters after the flood: %+v; want rejected, too-long and malformed counts", st)
	}
	ss := s.Stats()
	if ss.DropNotNatpass == 0 || ss.DropMalformed+ss.DropNotForServer == 0 || ss.TooLong == 0 {
		t.Errorf("server counters after the flood: %+v; want not-natpass, malformed and too-long counts", ss)
	}
}

// floodPaced sends count datagrams from pool round the targets, paced to what
// the loops digest (counted) plus what the kernel drops, so that the test
// measures counting, not the size of socket buffers.
func floodPaced(flood *net.UDPConn, pool [][]byte, targets []netip.AddrPort, count int, counted, kernelDrops func() uint64) {
	const window = 64
	for i := range count {
		// Bounded: every datagram sent is either counted or dropped by the kernel,
		// so outstanding falls below the window once the loops catch up.
		for spins := 1; int64(i)-int64(counted()) > window; spins++ {
			if spins%512 == 0 && int64(i)-int64(counted()+kernelDrops()) <= window {
				break
			}
			if spins%64 == 0 {
				time.Sleep(50 * time.Microsecond)
			} else {
				runtime.Gosched()
			}
		}
		_, _ = flood.WriteToUDPAddrPort(pool[i%len(pool)], targets[i%len(targets)])
	}
}

// The receive and send paths allocate nothing per datagram.
func TestSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		// Instrumented builds allocate in x/net's sendmmsg path; the plain
		// `go test ./...` run measures the real counts.
		t.Skip("allocation counts are measured without the race detector")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := startServer(t)
	a := listen(t, ctx, s, "allocs")
	// A server machine and loop of their own that no goroutine runs, so the test
	// can call them directly.
	sock, srv := unrunServer(t)
	p := newPacket(maxDatagram + 1)
	p.sock, p.from = sock, a.LocalAddr()
	p.n = copy(p.buf, garbage(rand.New(rand.NewPCG(3, 4)))[:100])
	p.buf[0] = 0xE1
	// The socket without a reader: the test is the only goroutine on the loop.
	l := newLoop(srv, time.Now(), 1500)
	l.main, l.sockets[sock.addr] = sock, sock
	handle := testing.AllocsPerRun(1000, func() {
		l.m.HandleDatagram(l.now(), sock.addr, p.from, p.buf[:p.n])
		l.drain(l.now())
	})
	if handle != 0 {
		t.Errorf("handling a datagram allocates %.1f times", handle)
	}
	// The same through the path a reader takes, a plain packet and a coalesced
	// (GRO) one of four datagrams.
	q := newPacket(maxDatagram + 1)
	plain := []*packet{q}
	burst := testing.AllocsPerRun(1000, func() {
		q.sock, q.from, q.n = p.sock, p.from, copy(q.buf, p.buf[:p.n])
		l.deliver(plain)
	})
	if burst != 0 {
		t.Errorf("a burst of one datagram allocates %.1f times", burst)
	}
	g := newPacket(groBufLen)
	coalesced := []*packet{g}
	gro := testing.AllocsPerRun(1000, func() {
		g.sock, g.from, g.seg, g.n = sock, p.from, p.n, 0
		for range 4 {
			g.n += copy(g.buf[g.n:], p.buf[:p.n])
		}
		l.deliver(coalesced)
	})
	if gro != 0 {
		t.Errorf("a coalesced read of 4 datagrams allocates %.1f times", gro)
	}
	stream := testing.AllocsPerRun(1000, func() { l.deliverStream(sock, p.from, p.buf[:p.n]) })
	if stream != 0 {
		t.Errorf("a datagram from a stream allocates %.1f times", stream)
	}
	checkSendAllocs(t, l, sock, p, a.LocalAddr())
}

// checkSendAllocs: writing a datagram, and flushing batches of them, allocate
// nothing.
func checkSendAllocs(t *testing.T, l *loop, sock *socket, p *packet, to netip.AddrPort) {
	t.Helper()
	write := testing.AllocsPerRun(1000, func() { _ = sock.write(p.buf[:p.n], to, 0) })
	if write != 0 {
		t.Errorf("writing a datagram allocates %.1f times", write)
	}
	// Equal sizes go out as one GSO run where the kernel has it; rising sizes
	// (each longer than the one before) cannot, and go with sendmmsg.
	for _, c := range []struct {
		name string
		size func(i int) int
	}{{"equal sizes (GSO)", func(int) int { return p.n }}, {"rising sizes (sendmmsg)", func(i int) int { return p.n - 30 + 10*i }}} {
		batch := testing.AllocsPerRun(1000, func() {
			for i := range 4 {
				buf := l.batch.next()
				l.batch.add(sock, buf[:copy(buf, p.buf[:c.size(i)])], to)
			}
			l.flush()
		})
		if batch != 0 {
			t.Errorf("a batch of 4 datagrams, %s, allocates %.1f times", c.name, batch)
		}
	}
	ttl := testing.AllocsPerRun(100, func() { _ = sock.write(p.buf[:p.n], to, 2) })
	t.Logf("a TTL-limited write allocates %.1f times (rare: punching primers only)", ttl)
}

// unrunServer is a server machine on a loopback socket (closed when t ends) that no
// goroutine runs, so a test can call it, or a loop around it, directly.
func unrunServer(t *testing.T) (*socket, *rendezvous.Server) {
	t.Helper()
	sock, err := listenUDP(netip.MustParseAddrPort("127.0.0.1:0"), netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.conn.Close() })
	srv, err := rendezvous.NewServer(rendezvous.Config{Secret: testSecret, Primary: sock.addr})
	if err != nil {
		t.Fatal(err)
	}
	return sock, srv
}
