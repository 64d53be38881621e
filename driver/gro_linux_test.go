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

// A GSO run sent to a GRO socket arrives as one datagram per segment, in order,
// from the sender, whatever the kernel coalesced; an empty datagram still reaches
// the loop and an over-long one is counted.
func TestGROSplitsCoalescedReads(t *testing.T) {
	loop := netip.MustParseAddrPort("127.0.0.1:0")
	rx, err := listenUDP(loop, netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.conn.Close()
	if !rx.enableGRO() {
		t.Skip("this kernel has no UDP_GRO (Linux < 5.0)")
	}
	tx, err := listenUDP(loop, netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.conn.Close()

	free := make(chan *packet, 16)
	for range cap(free) {
		free <- new(packet)
	}
	in := make(chan *packet, 64)
	done := make(chan struct{})
	var tooLong atomic.Uint64
	exited := make(chan bool)
	go func() { exited <- rx.readLoopGRO(free, in, done, &tooLong) }()
	defer func() {
		close(done)
		rx.conn.Close()
		<-exited
	}()

	// Ten 1000-byte segments and a 300-byte tail, each filled with its index.
	const seg, segs = 1000, 11
	var run []byte
	for i := range segs {
		n := seg
		if i == segs-1 {
			n = 300
		}
		run = append(run, bytes.Repeat([]byte{byte(i)}, n)...)
	}
	var segments [][1][]byte
	for off := 0; off < len(run); off += seg {
		segments = append(segments, [1][]byte{run[off:min(off+seg, len(run))]})
	}
	var w gsoWriter
	if err := tx.writeGSO(&w, segments, seg, rx.addr); err != nil {
		if gsoUnsupported(err) {
			t.Skipf("this kernel cannot send with UDP_SEGMENT: %v", err)
		}
		t.Fatal(err)
	}
	if err := tx.write(nil, rx.addr, 0); err != nil {
		t.Fatal(err)
	}
	if err := tx.write(make([]byte, maxDatagram+1), rx.addr, 0); err != nil {
		t.Fatal(err)
	}
	if err := tx.write([]byte("last"), rx.addr, 0); err != nil {
		t.Fatal(err)
	}

	next := func() *packet {
		select {
		case p := <-in:
			return p
		case <-time.After(5 * time.Second):
			t.Fatal("no datagram from the GRO reader within 5 s")
			return nil
		}
	}
	for i := range segs {
		p := next()
		want := bytes.Repeat([]byte{byte(i)}, len(run[i*seg:min((i+1)*seg, len(run))]))
		if !bytes.Equal(p.buf[:p.n], want) || p.from != tx.addr || p.sock != rx {
			t.Fatalf("segment %d: %d bytes starting %v from %v, want %d bytes of %d from %v", i, p.n, p.buf[:min(p.n, 4)], p.from, len(want), i, tx.addr)
		}
		free <- p
	}
	if p := next(); p.n != 0 {
		t.Fatalf("after the run: %d bytes, want the empty datagram", p.n)
	}
	if p := next(); string(p.buf[:p.n]) != "last" {
		t.Fatalf("after the empty datagram: %q, want \"last\" (the over-long one dropped)", p.buf[:p.n])
	}
	if got := tooLong.Load(); got != 1 {
		t.Fatalf("tooLong = %d, want 1", got)
	}
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
