package driver

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// One flush is one sendmmsg: each GSO run one entry, every datagram that is in no
// run (other destinations, a different size, an empty one) an entry of its own;
// every datagram arrives, in order, and an empty one does not turn GSO off.
func TestFlushGathersRunsAndSingles(t *testing.T) {
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	tx, err := listenUDP(lo, netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.conn.Close()
	var rx [4]*socket
	for i := range rx {
		if rx[i], err = listenUDP(lo, netip.AddrPort{}); err != nil {
			t.Fatal(err)
		}
		defer rx[i].conn.Close()
	}
	l := &loop{batch: newSendBatch(maxDatagram)}
	type dgram struct {
		to   int
		size int
	}
	// A run to 0, singles to 1 and 2, a run to 0, an empty datagram to 3.
	plan := []dgram{{0, 100}, {0, 100}, {0, 50}, {1, 80}, {2, 90}, {0, 100}, {0, 100}, {3, 0}}
	for k, d := range plan {
		buf := l.batch.next()
		p := buf[:d.size]
		for i := range p {
			p[i] = byte(k)
		}
		l.batch.add(tx, p, rx[d.to].addr)
	}
	l.flush()
	wantGSO, wantMmsg := uint64(2), uint64(1)
	if !gsoSupported || tx.noGSO {
		wantGSO, wantMmsg = 0, 1
	}
	if g, m := l.stats.gsoSends.Load(), l.stats.mmsgSends.Load(); g != wantGSO || m != wantMmsg || l.stats.datagramsOut.Load() != uint64(len(plan)) {
		t.Fatalf("%d GSO sends, %d sendmmsg calls, %d datagrams; want %d, %d, %d (GSO off: %v)",
			g, m, l.stats.datagramsOut.Load(), wantGSO, wantMmsg, len(plan), tx.noGSO)
	}
	buf := make([]byte, 4096)
	for k, d := range plan {
		if err := rx[d.to].conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, _, err := rx[d.to].conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d to socket %d: %v", k, d.to, err)
		}
		if !bytes.Equal(buf[:n], bytes.Repeat([]byte{byte(k)}, d.size)) {
			t.Fatalf("datagram %d to socket %d: %d bytes starting %v, want %d bytes of %d", k, d.to, n, buf[:min(n, 4)], d.size, k)
		}
	}
}

// A datagram the kernel refuses inside a sendmmsg batch (here: an IPv6
// destination from an IPv4 socket, then port 0) is counted as a write error and
// costs the others in the batch nothing: they arrive, in order.
func TestFlushSkipsRefusedDatagrams(t *testing.T) {
	tx, rx := loopbackSockets(t)
	l := &loop{batch: newSendBatch(maxDatagram)}
	refused := []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:9"), netip.AddrPortFrom(rx.addr.Addr(), 0)}
	// Sizes rise, so no two form a GSO run: all go in one sendmmsg.
	for k := range 5 {
		to := rx.addr
		if k == 1 || k == 3 {
			to = refused[k/2]
		}
		buf := l.batch.next()
		l.batch.add(tx, buf[:copy(buf, bytes.Repeat([]byte{byte(k)}, 10+k))], to)
	}
	l.flush()
	if e, out := l.stats.writeErrors.Load(), l.stats.datagramsOut.Load(); e != 2 || out != 3 {
		t.Fatalf("%d write errors, %d datagrams out; want 2 and 3", e, out)
	}
	buf := make([]byte, 64)
	for _, k := range []int{0, 2, 4} {
		if err := rx.conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, _, err := rx.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", k, err)
		}
		if !bytes.Equal(buf[:n], bytes.Repeat([]byte{byte(k)}, 10+k)) {
			t.Fatalf("got %d bytes of %v, want datagram %d", n, buf[:min(n, 4)], k)
		}
	}
}

// A batch that fills in the middle of bulk data keeps back the GSO run that could
// still grow, so the runs are as long as the kernel takes (45 datagrams of 1452
// bytes) rather than cut where the slots ended: an acknowledgement to another
// peer, 250 full packets and a shorter last one leave in six GSO runs (45 × 5,
// then 25 and the short one) and six sendmmsg calls, one per flush (the
// acknowledgement rides in the first), every datagram once and in order.
func TestFullBatchKeepsOpenRun(t *testing.T) {
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	tx, err := listenUDP(lo, netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.conn.Close()
	var rx [2]*socket
	for i := range rx {
		if rx[i], err = listenUDP(lo, netip.AddrPort{}); err != nil {
			t.Fatal(err)
		}
		defer rx[i].conn.Close()
	}
	l := &loop{batch: newSendBatch(maxDatagram)}
	type dgram struct{ to, size int }
	plan := []dgram{{1, 50}}
	for range 250 {
		plan = append(plan, dgram{0, 1452})
	}
	plan = append(plan, dgram{0, 700})
	for k, d := range plan {
		p := l.batch.next()[:d.size]
		for i := range p {
			p[i] = byte(k)
		}
		l.batch.add(tx, p, rx[d.to].addr)
		if l.batch.full() {
			l.flushFull()
		}
	}
	l.flush()
	if out := l.stats.datagramsOut.Load(); out != uint64(len(plan)) {
		t.Fatalf("%d datagrams out, want %d", out, len(plan))
	}
	if g, m := l.stats.gsoSends.Load(), l.stats.mmsgSends.Load(); gsoSupported && !tx.noGSO && (g != 6 || m != 6) {
		t.Fatalf("%d GSO sends and %d sendmmsg calls, want 6 and 6", g, m)
	}
	buf := make([]byte, 2048)
	for k, d := range plan {
		if err := rx[d.to].conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, _, err := rx[d.to].conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d to socket %d: %v", k, d.to, err)
		}
		if n != d.size || buf[0] != byte(k) || buf[n-1] != byte(k) {
			t.Fatalf("datagram %d to socket %d: %d bytes of %d, want %d bytes of %d", k, d.to, n, buf[0], d.size, k)
		}
	}
}

// A GSO run the kernel refuses (an IPv6 destination from an IPv4 socket) counts
// its datagrams as write errors, leaves GSO on and costs the entries after it in
// the same flush nothing: they arrive, in order.
func TestFlushSkipsRefusedRun(t *testing.T) {
	tx, rx := loopbackSockets(t)
	l := &loop{batch: newSendBatch(maxDatagram)}
	refused := netip.MustParseAddrPort("[2001:db8::1]:9")
	type dgram struct {
		to   netip.AddrPort
		size int
	}
	plan := []dgram{{rx.addr, 20}, {refused, 100}, {refused, 100}, {refused, 100}, {rx.addr, 100}, {rx.addr, 100}, {rx.addr, 30}}
	for k, d := range plan {
		p := l.batch.next()[:d.size]
		for i := range p {
			p[i] = byte(k)
		}
		l.batch.add(tx, p, d.to)
	}
	l.flush()
	if e, out := l.stats.writeErrors.Load(), l.stats.datagramsOut.Load(); e != 3 || out != 4 || tx.noGSO {
		t.Fatalf("%d write errors, %d datagrams out, GSO off: %v; want 3, 4, false", e, out, tx.noGSO)
	}
	buf := make([]byte, 256)
	for _, k := range []int{0, 4, 5, 6} {
		if err := rx.conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, _, err := rx.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", k, err)
		}
		if !bytes.Equal(buf[:n], bytes.Repeat([]byte{byte(k)}, plan[k].size)) {
			t.Fatalf("got %d bytes of %v, want datagram %d", n, buf[:min(n, 4)], k)
		}
	}
}

// loopbackSockets opens two sockets on 127.0.0.1, closed when t ends.
func loopbackSockets(t *testing.T) (tx, rx *socket) {
	t.Helper()
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	var err error
	if tx, err = listenUDP(lo, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.conn.Close() })
	if rx, err = listenUDP(lo, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.conn.Close() })
	return tx, rx
}
