// Package streamframe carries natpass datagrams over a byte stream (TCP, or TLS on
// top of it), for a node that cannot reach its server over UDP (DESIGN §14,
// PROTOCOL.md §14). It is a pure machine like the other core packages: no sockets, no
// clock, no goroutines; the driver reads and writes the stream and hands the bytes
// through.
//
// # Framing
//
// Every datagram becomes one frame:
//
//	length (u16, big-endian, 1..MaxDatagramLen) ‖ datagram (length bytes)
//
// and frames follow each other with nothing in between. The datagrams are the same
// bytes the node and the server exchange over UDP (signalling, relay frames), so the
// machines above do not know which transport carried them. MaxDatagramLen is the
// largest datagram between a node and its server, a relay frame (1472 bytes).
//
// # Call contract
//
// Sending: AppendFrame(dst, datagram) appends one frame; it refuses an empty or
// oversized datagram (ErrEmpty, ErrTooLong) and then appends nothing.
//
// Receiving: a Decoder turns arbitrary chunks of the stream (whatever each read
// returned, split anywhere) into whole datagrams:
//
//	d.Feed(chunk)
//	for {
//		datagram, ok := d.Next()
//		if !ok {
//			break
//		}
//		// use datagram: valid until the next call to Next or Feed
//	}
//	if d.Err() != nil {
//		// close the stream
//	}
//
// Feed lends the chunk to the decoder until Next returns false; feeding again before
// that is caller misuse and panics. A frame that lies whole inside one chunk comes
// back as a slice of that chunk (no copy); a frame split across chunks is assembled
// in the decoder's own buffer of MaxDatagramLen bytes. So the decoder never holds
// more than one maximal frame besides the chunk it was lent, allocates nothing (its
// zero value is ready to use), and costs the same however the stream is split.
//
// A frame whose length field is 0 or above MaxDatagramLen is a broken or hostile
// stream: the decoder counts it (Stats.ZeroLength, Stats.TooLong), Err returns
// ErrZeroLength or ErrOversized from then on, and Next yields nothing more. The stream
// is unusable after that — there is no way to find the next frame boundary — and the
// caller closes it. Datagrams decoded before the bad length stay valid.
package streamframe
