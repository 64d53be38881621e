package streamframe

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzDecoder feeds any stream, cut into chunks whose sizes come from cuts, and checks
// the decoder against a reference that reads the whole stream at once: the same
// datagrams, the same error, never more than one frame held, never a panic.
func FuzzDecoder(f *testing.F) {
	two, _ := AppendFrame(nil, []byte{0xe1, 0x01})
	two, _ = AppendFrame(two, datagram(300))
	f.Add(two, []byte{1, 3, 255})
	f.Add([]byte{0, 0}, []byte{1})
	f.Add([]byte{0xff, 0xff, 1, 2}, []byte{})
	f.Add([]byte{0x05, 0xc0, 1}, []byte{2, 0})
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		want, wantErr := reference(stream)
		var d Decoder
		var got [][]byte
		rest := stream
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if i < len(cuts) {
				n = min(int(cuts[i])+1, n)
			}
			got = drain(&d, rest[:n], got)
			rest = rest[n:]
		}
		if d.Err() != wantErr || len(got) != len(want) {
			t.Fatalf("%d datagrams, err %v; reference %d, %v", len(got), d.Err(), len(want), wantErr)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("datagram %d differs", i)
			}
		}
	})
}

// reference decodes a whole stream the obvious way.
func reference(s []byte) ([][]byte, error) {
	var out [][]byte
	for len(s) >= HeaderLen {
		n := int(binary.BigEndian.Uint16(s))
		switch {
		case n == 0:
			return out, ErrZeroLength
		case n > MaxDatagramLen:
			return out, ErrOversized
		case len(s) < HeaderLen+n:
			return out, nil
		}
		out = append(out, s[HeaderLen:HeaderLen+n])
		s = s[HeaderLen+n:]
	}
	return out, nil
}
