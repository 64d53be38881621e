package streamframe

import "encoding/binary"

// Decoder turns chunks of a framed stream into whole datagrams; see the package
// documentation for the call contract. The zero value is ready to use. A Decoder is
// one stream's: it is not safe for concurrent use and is never reset (a new stream
// gets a new Decoder).
type Decoder struct {
	chunk []byte // the lent chunk's unread bytes
	// hdr collects a length field split across chunks; hdrLen is how much of it has
	// arrived.
	hdr    [HeaderLen]byte
	hdrLen int
	// need is the current frame's datagram length once its header is complete (0:
	// reading a header).
	need int
	// part holds a frame split across chunks: part[:partLen] has arrived.
	part    [MaxDatagramLen]byte
	partLen int
	err     error
	stats   Stats
}

// Stats counts what a Decoder has seen.
type Stats struct {
	Datagrams uint64 // whole datagrams yielded by Next
	Bytes     uint64 // stream bytes taken by Feed
	Copied    uint64 // datagrams assembled across chunks (the rest aliased a chunk)
	// ZeroLength and TooLong count the bad length fields that ended the stream (at
	// most one of them is ever 1).
	ZeroLength, TooLong uint64
}

// Feed lends the decoder the next chunk of the stream, any length, split anywhere.
// The chunk must stay unchanged until Next returns false. Feeding while Next still
// has bytes to read is caller misuse and panics; feeding after an error is allowed
// and ignored (the stream is unusable).
func (d *Decoder) Feed(chunk []byte) {
	if len(d.chunk) > 0 {
		panic("streamframe: Feed before Next returned false")
	}
	if d.err != nil {
		return
	}
	d.stats.Bytes += uint64(len(chunk))
	d.chunk = chunk
}

// Next returns the next whole datagram and true, or false once the lent chunk is used
// up (or the stream broke: see Err). The datagram aliases the chunk or the decoder's
// buffer and is valid until the next call to Next or Feed.
func (d *Decoder) Next() ([]byte, bool) {
	for d.err == nil && len(d.chunk) > 0 {
		if d.need == 0 && !d.readHeader() {
			continue
		}
		if d.partLen == 0 && len(d.chunk) >= d.need {
			// The whole frame is in this chunk: lend it out as is.
			p := d.chunk[:d.need:d.need]
			d.chunk = d.chunk[d.need:]
			return d.yield(p), true
		}
		n := copy(d.part[d.partLen:d.need], d.chunk)
		d.partLen += n
		d.chunk = d.chunk[n:]
		if d.partLen == d.need {
			d.stats.Copied++
			p := d.part[:d.need:d.need]
			d.partLen = 0
			return d.yield(p), true
		}
	}
	d.chunk = nil // also drops the chunk after an error, so Feed may be called again
	return nil, false
}

// readHeader takes length bytes from the chunk and reports whether a whole,
// valid length field is now in hand (then d.need is set).
func (d *Decoder) readHeader() bool {
	if d.hdrLen == 0 && len(d.chunk) >= HeaderLen {
		d.need = int(binary.BigEndian.Uint16(d.chunk))
		d.chunk = d.chunk[HeaderLen:]
	} else {
		n := copy(d.hdr[d.hdrLen:], d.chunk)
		d.hdrLen += n
		d.chunk = d.chunk[n:]
		if d.hdrLen < HeaderLen {
			return false
		}
		d.hdrLen = 0
		d.need = int(binary.BigEndian.Uint16(d.hdr[:]))
	}
	switch {
	case d.need == 0:
		d.stats.ZeroLength++
		d.err = ErrZeroLength
		return false
	case d.need > MaxDatagramLen:
		d.stats.TooLong++
		d.err = ErrOversized
		d.need = 0
		return false
	}
	return true
}

func (d *Decoder) yield(p []byte) []byte {
	d.need = 0
	d.stats.Datagrams++
	return p
}

// Err returns nil while the stream is sound, else ErrZeroLength or ErrOversized
// forever: the stream is unusable and should be closed.
func (d *Decoder) Err() error { return d.err }

// Buffered returns how many bytes of an unfinished frame the decoder holds in its
// own buffer (length field included), never more than MaxFrameLen. Bytes still in
// the lent chunk are not counted: they are the caller's.
func (d *Decoder) Buffered() int {
	if d.need == 0 {
		return d.hdrLen
	}
	return HeaderLen + d.partLen
}

// Stats returns the decoder's counters.
func (d *Decoder) Stats() Stats { return d.stats }
