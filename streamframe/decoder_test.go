package streamframe

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"
)

// datagram returns n bytes that differ from every other size's and position's.
func datagram(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + n)
	}
	return p
}

// Every size from 1 to MaxDatagramLen, the stream split at every point (the length
// field included): one datagram out, equal to the one put in, and nothing held after.
func TestRoundTripEverySizeEverySplit(t *testing.T) {
	var frame []byte
	for n := 1; n <= MaxDatagramLen; n++ {
		want := datagram(n)
		frame, _ = AppendFrame(frame[:0], want)
		if len(frame) != HeaderLen+n {
			t.Fatalf("frame of %d bytes is %d long", n, len(frame))
		}
		for split := 0; split <= len(frame); split++ {
			var d Decoder
			got := drain(&d, frame[:split], nil)
			got = drain(&d, frame[split:], got)
			if len(got) != 1 || !bytes.Equal(got[0], want) || d.Buffered() != 0 || d.Err() != nil {
				t.Fatalf("size %d split at %d: got %d datagrams, buffered %d, err %v",
					n, split, len(got), d.Buffered(), d.Err())
			}
		}
	}
}

// Several frames back to back, the stream cut at every pair of points: the chunk
// boundaries never change the datagrams.
func TestRoundTripEveryTwoSplits(t *testing.T) {
	sizes := []int{1, 2, 3, 40, 1}
	var stream []byte
	for _, n := range sizes {
		stream, _ = AppendFrame(stream, datagram(n))
	}
	for i := 0; i <= len(stream); i++ {
		for j := i; j <= len(stream); j++ {
			var d Decoder
			got := drain(&d, stream[:i], nil)
			got = drain(&d, stream[i:j], got)
			got = drain(&d, stream[j:], got)
			if len(got) != len(sizes) {
				t.Fatalf("splits %d,%d: %d datagrams, want %d", i, j, len(got), len(sizes))
			}
			for k, n := range sizes {
				if !bytes.Equal(got[k], datagram(n)) {
					t.Fatalf("splits %d,%d: datagram %d = %x", i, j, k, got[k])
				}
			}
		}
	}
}

// Random datagrams, random chunking (rapid): the datagrams come out in order and
// whole, the decoder never holds more than one frame, and frames inside one chunk are
// not copied.
func TestPropertyRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sizes := rapid.SliceOfN(rapid.IntRange(1, MaxDatagramLen), 1, 20).Draw(t, "sizes")
		var stream []byte
		for _, n := range sizes {
			stream, _ = AppendFrame(stream, datagram(n))
		}
		var d Decoder
		var got [][]byte
		for rest := stream; len(rest) > 0; {
			n := rapid.IntRange(1, len(rest)).Draw(t, "chunk")
			got = drain(&d, rest[:n], got)
			rest = rest[n:]
		}
		if len(got) != len(sizes) {
			t.Fatalf("%d datagrams, want %d", len(got), len(sizes))
		}
		for i, n := range sizes {
			if !bytes.Equal(got[i], datagram(n)) {
				t.Fatalf("datagram %d differs", i)
			}
		}
		st := d.Stats()
		if st.Datagrams != uint64(len(sizes)) || st.Bytes != uint64(len(stream)) || d.Buffered() != 0 {
			t.Fatalf("stats %+v, buffered %d", st, d.Buffered())
		}
	})
}

// A bad length ends the stream: counted, sticky, nothing after it comes out, what
// came before stays, and feeding more is harmless.
func TestBadLengthEndsTheStream(t *testing.T) {
	for _, c := range []struct {
		name   string
		length []byte
		want   error
	}{{"zero", []byte{0, 0}, ErrZeroLength}, {"max+1", []byte{0x05, 0xc1}, ErrOversized}, {"ffff", []byte{0xff, 0xff}, ErrOversized}} {
		good, _ := AppendFrame(nil, []byte("ok"))
		stream := append(append(append([]byte(nil), good...), c.length...), good...)
		for chunk := 1; chunk <= len(stream); chunk++ {
			var d Decoder
			got, err := decodeAll(&d, stream, chunk)
			if err != c.want || len(got) != 1 || string(got[0]) != "ok" {
				t.Fatalf("%s, chunks of %d: %q, %v", c.name, chunk, got, err)
			}
			if got = drain(&d, good, nil); len(got) != 0 || d.Err() != c.want {
				t.Fatalf("%s: decoder yields %q after the error", c.name, got)
			}
			st := d.Stats()
			if st.ZeroLength+st.TooLong != 1 || (c.want == ErrZeroLength) != (st.ZeroLength == 1) {
				t.Fatalf("%s: stats %+v", c.name, st)
			}
		}
	}
}

// A frame inside one chunk aliases it (no copy); a split one is assembled, and the
// decoder's buffer holds exactly the bytes that arrived.
func TestAliasAndCopy(t *testing.T) {
	frame, _ := AppendFrame(nil, datagram(100))
	var d Decoder
	d.Feed(frame)
	p, ok := d.Next()
	if !ok || &p[0] != &frame[HeaderLen] || cap(p) != 100 {
		t.Fatal("a whole frame in one chunk was copied (or its slice can grow into the next frame)")
	}
	if _, ok := d.Next(); ok {
		t.Fatal("one frame yielded twice")
	}
	d.Feed(frame[:50])
	if _, ok := d.Next(); ok || d.Buffered() != 50 {
		t.Fatalf("half a frame: buffered %d, want 50", d.Buffered())
	}
	d.Feed(frame[50:])
	if p, ok := d.Next(); !ok || !bytes.Equal(p, datagram(100)) || d.Stats().Copied != 1 {
		t.Fatalf("the split frame came out as %x (stats %+v)", p, d.Stats())
	}
}

func TestFeedBeforeDrainPanics(t *testing.T) {
	frame, _ := AppendFrame(nil, []byte{1})
	var d Decoder
	d.Feed(append(frame, frame...))
	d.Next()
	defer func() {
		if recover() == nil {
			t.Fatal("Feed with a datagram still unread did not panic")
		}
	}()
	d.Feed(frame)
}

// Steady state allocates nothing, whole or split.
func TestDecodeAllocatesNothing(t *testing.T) {
	stream := benchStream(16)
	var d Decoder
	allocs := testing.AllocsPerRun(100, func() {
		for _, chunk := range [][]byte{stream[:1000], stream[1000:1001], stream[1001:]} {
			d.Feed(chunk)
			for {
				if _, ok := d.Next(); !ok {
					break
				}
			}
		}
	})
	if allocs != 0 || d.Err() != nil {
		t.Fatalf("%v allocations per stream (err %v)", allocs, d.Err())
	}
	buf := make([]byte, 0, MaxFrameLen)
	p := datagram(MaxDatagramLen)
	if a := testing.AllocsPerRun(100, func() { buf, _ = AppendFrame(buf[:0], p) }); a != 0 {
		t.Fatalf("AppendFrame: %v allocations", a)
	}
}
