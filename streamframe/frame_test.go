package streamframe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// The framing's vectors: a stream (hex) and what a decoder must make of it. Ports
// check themselves against these (PROTOCOL.md §14).
var streamVectors = []struct {
	name, stream string
	datagrams    []string
	err          error // nil: the stream is sound
}{
	{name: "one byte", stream: "0001ab", datagrams: []string{"ab"}},
	{name: "two frames", stream: "0002e101" + "0003e10203", datagrams: []string{"e101", "e10203"}},
	{name: "unfinished frame", stream: "0003e102", datagrams: nil},
	{name: "unfinished length", stream: "0001ab00", datagrams: []string{"ab"}},
	{name: "max length", stream: "05c0" + hex.EncodeToString(make([]byte, 1472)), datagrams: []string{hex.EncodeToString(make([]byte, 1472))}},
	// must reject
	{name: "zero length", stream: "0000", err: ErrZeroLength},
	{name: "zero length after a frame", stream: "0001ab" + "0000" + "0001cd", datagrams: []string{"ab"}, err: ErrZeroLength},
	{name: "max+1", stream: "05c1" + hex.EncodeToString(make([]byte, 1473)), err: ErrOversized},
	{name: "u16 max", stream: "ffff", err: ErrOversized},
}

func TestVectors(t *testing.T) {
	for _, v := range streamVectors {
		stream, err := hex.DecodeString(v.stream)
		if err != nil {
			t.Fatal(err)
		}
		var d Decoder
		got, gotErr := decodeAll(&d, stream, 1)
		if gotErr != v.err {
			t.Errorf("%s: err %v, want %v", v.name, gotErr, v.err)
		}
		if len(got) != len(v.datagrams) {
			t.Fatalf("%s: %d datagrams, want %d", v.name, len(got), len(v.datagrams))
		}
		for i, g := range got {
			if hex.EncodeToString(g) != v.datagrams[i] {
				t.Errorf("%s: datagram %d = %x, want %s", v.name, i, g, v.datagrams[i])
			}
		}
		// Every sound vector is also what AppendFrame makes of its datagrams.
		if v.err == nil && v.name != "unfinished frame" && v.name != "unfinished length" {
			var enc []byte
			for _, g := range got {
				if enc, err = AppendFrame(enc, g); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(enc, stream) {
				t.Errorf("%s: AppendFrame gives %x, want %x", v.name, enc, stream)
			}
		}
	}
}

func TestAppendFrameRefuses(t *testing.T) {
	dst := []byte{1, 2, 3}
	for _, c := range []struct {
		n    int
		want error
	}{{0, ErrEmpty}, {MaxDatagramLen + 1, ErrTooLong}, {65536, ErrTooLong}} {
		got, err := AppendFrame(dst, make([]byte, c.n))
		if !errors.Is(err, c.want) || !bytes.Equal(got, dst) {
			t.Errorf("AppendFrame(%d bytes) = %x, %v; want dst unchanged, %v", c.n, got, err, c.want)
		}
	}
}

// decodeAll feeds stream in chunks of chunkLen bytes (the last shorter) and returns
// copies of the datagrams and the decoder's error, checking the buffer bound after
// every call.
func decodeAll(d *Decoder, stream []byte, chunkLen int) ([][]byte, error) {
	var out [][]byte
	for len(stream) > 0 {
		n := min(chunkLen, len(stream))
		out = drain(d, stream[:n], out)
		stream = stream[n:]
	}
	return out, d.Err()
}

func drain(d *Decoder, chunk []byte, out [][]byte) [][]byte {
	d.Feed(chunk)
	for {
		p, ok := d.Next()
		if d.Buffered() > MaxFrameLen {
			panic("decoder holds more than one frame")
		}
		if !ok {
			return out
		}
		out = append(out, append([]byte(nil), p...))
	}
}
