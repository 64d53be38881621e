package rudp

// Buffers lends a Conn the memory of the messages it carries, so that an embedder
// can recycle it instead of the Conn allocating (and zeroing) a fresh buffer for
// every message the application takes with TakeData, or copying every message at
// Send. Set it in Config.Buffers; nil keeps the Conn's own bounded free list.
//
// The Conn calls Get and Put only from inside its own methods, on the goroutine
// that calls them. An implementation that the application also uses from other
// goroutines (handing buffers back after reading a message, taking buffers to
// fill for SendOwned) does its own locking.
//
// Put is an offer: a Conn that closes drops the buffers of messages still queued,
// in flight or being reassembled instead of handing each back, so an
// implementation must not count on getting every buffer back.
type Buffers interface {
	// Get returns a slice of length n (any capacity) to receive a message into. Its
	// contents need not be zero: the Conn writes every byte of it before the
	// message is handed out. The Conn owns it until it gives it back with Put or
	// hands it to the application with TakeData.
	Get(n int) []byte
	// Put takes back a buffer the Conn is done with: a received message's that
	// TakeData did not take, one dropped before delivery, and the buffer of a
	// SendOwned message once it is acknowledged (reliable modes) or has left
	// (unreliable ones). len(b) is the message's length; b[:cap(b)] is all of it.
	Put(b []byte)
}
