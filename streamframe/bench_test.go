package streamframe

import "testing"

// benchStream is n frames of 1200 bytes, a typical relayed datagram.
func benchStream(n int) []byte {
	var s []byte
	for range n {
		s, _ = AppendFrame(s, datagram(1200))
	}
	return s
}

// BenchmarkDecode feeds 64 frames in 16 KiB reads, as a TCP socket returns them: most
// frames alias the read buffer, the ones across a read boundary are copied.
func BenchmarkDecode(b *testing.B) {
	stream := benchStream(64)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		var d Decoder
		for rest := stream; len(rest) > 0; {
			n := min(16<<10, len(rest))
			d.Feed(rest[:n])
			rest = rest[n:]
			for {
				if _, ok := d.Next(); !ok {
					break
				}
			}
		}
	}
}

// BenchmarkDecodeSplit feeds the same stream 100 bytes at a time: every frame is
// assembled in the decoder's buffer.
func BenchmarkDecodeSplit(b *testing.B) {
	stream := benchStream(64)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		var d Decoder
		for rest := stream; len(rest) > 0; {
			n := min(100, len(rest))
			d.Feed(rest[:n])
			rest = rest[n:]
			for {
				if _, ok := d.Next(); !ok {
					break
				}
			}
		}
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	p := datagram(1200)
	buf := make([]byte, 0, MaxFrameLen)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendFrame(buf[:0], p)
	}
}
