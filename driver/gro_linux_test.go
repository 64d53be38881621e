//go:build linux

package driver

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A GSO run arrives as one datagram per segment, in order, from the sender,
// whether the socket reads coalesced (GRO: the run in one read) or one datagram
// per buffer (recvmmsg into the reader's buffers); an empty datagram still reaches the
// loop and an over-long one is counted.
func TestBatchReadSplitsGSORuns(t *testing.T) {
	for _, gro := range []bool{true, false} {
		t.Run(map[bool]string{true: "gro", false: "plain"}[gro], func(t *testing.T) { testBatchRead(t, gro) })
	}
}

func testBatchRead(t *testing.T, gro bool) {
	loop := netip.MustParseAddrPort("127.0.0.1:0")
	rx, err := listenUDP(loop, netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.conn.Close()
	batchLen, bufLen := recvBatchLen, maxDatagram+1
	if gro {
		if !rx.enableGRO() {
			t.Skip("this kernel has no UDP_GRO (Linux < 5.0)")
		}
		batchLen, bufLen = groBatchLen, groBufLen
	}
	tx, err := listenUDP(loop, netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.conn.Close()

	in := make(chan read, 64)
	deliver := copyReads(in)
	done := make(chan struct{})
	var tooLong atomic.Uint64
	exited := make(chan struct{})
	go func() { rx.readLoopBatch(batchLen, bufLen, deliver, done, &tooLong); close(exited) }()
	defer func() {
		close(done)
		rx.conn.Close()
		<-exited
	}()

	run := sendGSORun(t, tx, rx.addr)
	const seg, segs = gsoRunSeg, gsoRunSegs
	got, reads := collectReads(t, in, rx, tx.addr, gro, segs+2)
	for i := range segs {
		want := bytes.Repeat([]byte{byte(i)}, len(run[i*seg:min((i+1)*seg, len(run))]))
		if !bytes.Equal(got[i], want) {
			t.Fatalf("segment %d: %d bytes starting %v, want %d bytes of %d", i, len(got[i]), got[i][:min(len(got[i]), 4)], len(want), i)
		}
	}
	if len(got[segs]) != 0 {
		t.Fatalf("after the run: %d bytes, want the empty datagram", len(got[segs]))
	}
	if string(got[segs+1]) != "last" {
		t.Fatalf("after the empty datagram: %q, want \"last\" (the over-long one dropped)", got[segs+1])
	}
	// The kernel hands a GSO run to a GRO socket unsegmented (udp(7)): the eleven
	// segments take one read, the two single datagrams one each. Without GRO the
	// kernel cuts the run: one read per datagram.
	if want := map[bool]int{true: 3, false: segs + 2}[gro]; reads != want {
		t.Fatalf("%d datagrams in %d reads, want %d", len(got), reads, want)
	}
	if got := tooLong.Load(); got != 1 {
		t.Fatalf("tooLong = %d, want 1", got)
	}
}

// The GSO run sendGSORun sends: ten segments of gsoRunSeg bytes and a 300-byte tail.
const gsoRunSeg, gsoRunSegs = 1000, 11

// sendGSORun sends to to: a GSO run of ten 1000-byte segments and a 300-byte
// tail, each filled with its index, then an empty datagram, an over-long one and
// "last". It returns the run.
func sendGSORun(t *testing.T, tx *socket, to netip.AddrPort) []byte {
	t.Helper()
	const seg, segs = gsoRunSeg, gsoRunSegs
	var run []byte
	for i := range segs {
		n := seg
		if i == segs-1 {
			n = 300
		}
		run = append(run, bytes.Repeat([]byte{byte(i)}, n)...)
	}
	l := &loop{batch: newSendBatch(maxDatagram)}
	for off := 0; off < len(run); off += seg {
		p := l.batch.next()
		l.batch.add(tx, p[:copy(p, run[off:min(off+seg, len(run))])], to)
	}
	l.flush()
	if tx.noGSO {
		t.Skip("this kernel cannot send with UDP_SEGMENT")
	}
	if l.stats.gsoSends.Load() != 1 || l.stats.datagramsOut.Load() != segs {
		t.Fatalf("%d GSO sends of %d datagrams, want 1 of %d", l.stats.gsoSends.Load(), l.stats.datagramsOut.Load(), segs)
	}
	if err := tx.write(nil, to, 0); err != nil {
		t.Fatal(err)
	}
	if err := tx.write(make([]byte, maxDatagram+1), to, 0); err != nil {
		t.Fatal(err)
	}
	if err := tx.write([]byte("last"), to, 0); err != nil {
		t.Fatal(err)
	}
	return run
}

// read is what the reader handed on in one packet.
type read struct {
	coalesced bool
	sock      *socket
	from      netip.AddrPort
	datagrams [][]byte
}

// copyReads is a deliver that copies each read out, as the machine would take
// it, before the reader reuses the buffers, and passes it to in.
func copyReads(in chan<- read) func([]*packet) bool {
	return func(pkts []*packet) bool {
		for _, p := range pkts {
			r := read{coalesced: len(p.buf) == groBufLen, sock: p.sock, from: p.from}
			for k := 0; ; k++ {
				d, ok := p.datagram(k)
				if !ok {
					break
				}
				r.datagrams = append(r.datagrams, bytes.Clone(d))
			}
			in <- r
		}
		return true
	}
}

// collectReads takes want datagrams from in, checking each read came from from
// on rx (coalesced if gro), and returns them and how many reads carried them.
func collectReads(t *testing.T, in <-chan read, rx *socket, from netip.AddrPort, gro bool, want int) (got [][]byte, reads int) {
	t.Helper()
	for len(got) < want {
		select {
		case r := <-in:
			if r.coalesced != gro || r.sock != rx || r.from != from {
				t.Fatalf("a read from %v on %p (coalesced %t), want one from %v on %p (coalesced %t)", r.from, r.sock, r.coalesced, from, rx, gro)
			}
			got = append(got, r.datagrams...)
			reads++
		case <-time.After(5 * time.Second):
			t.Fatalf("%d datagrams from the GRO reader after 5 s, want %d", len(got), want)
		}
	}
	return got, reads
}

// The segment size comes from the UDP_GRO control message; without one the read
// is one datagram; a malformed control area is ignored.
func TestGROSegmentSize(t *testing.T) {
	msg := func(level, typ int32, data []byte) []byte {
		b := make([]byte, unix.CmsgSpace(len(data)))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(len(data)))
		copy(b[unix.CmsgLen(0):], data)
		return b
	}
	le32 := func(v uint32) []byte {
		b := make([]byte, 4)
		binary.NativeEndian.PutUint32(b, v)
		return b
	}
	tos := msg(unix.SOL_IP, unix.IP_TOS, le32(0))
	gro := msg(unix.SOL_UDP, unix.UDP_GRO, le32(1452))
	for _, c := range []struct {
		name string
		oob  []byte
		n    int
		want int
	}{
		{"none", nil, 900, 900},
		{"gro", gro, 14520, 1452},
		{"other then gro", append(append([]byte{}, tos...), gro...), 14520, 1452},
		{"other only", tos, 700, 700},
		{"truncated header", gro[:4], 700, 700},
		{"length past the end", func() []byte { b := append([]byte{}, gro...); b[0] = 0xff; return b }(), 700, 700},
		{"zero size", msg(unix.SOL_UDP, unix.UDP_GRO, le32(0)), 700, 700},
		{"empty datagram", nil, 0, 1},
	} {
		if got := groSegmentSize(c.oob, c.n); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}
