package proto

import "encoding/binary"

// Bounds of identity fields.
const (
	MaxPeerIDLen = 64 // bytes of a peer ID
	KeyLen       = 32 // X25519 public key, PSK, HMAC-SHA256 tag
	MaxTicketLen = 256
)

// TicketVersion is the only ticket layout this code mints and accepts.
const TicketVersion = 1

// Ticket is the app backend's authorisation of a node (DESIGN §4): a peer ID bound to
// a static public key until an expiry, with an HMAC-SHA256 tag under the server secret
// over every byte before the tag. proto only encodes it; rendezvous mints and checks.
type Ticket struct {
	PeerID    []byte
	PublicKey [KeyLen]byte
	// ExpiryUnix is the expiry in seconds since the Unix epoch (wall time).
	ExpiryUnix uint64
	MAC        [KeyLen]byte
}

// AppendSigned appends the bytes the MAC covers.
func (t *Ticket) AppendSigned(b []byte) []byte {
	b = append(b, TicketVersion)
	b = appendVec8(b, "ticket peer ID", t.PeerID, 1, MaxPeerIDLen)
	b = append(b, t.PublicKey[:]...)
	return binary.BigEndian.AppendUint64(b, t.ExpiryUnix)
}

// Append appends the whole ticket, tag included.
func (t *Ticket) Append(b []byte) []byte {
	b = t.AppendSigned(b)
	return append(b, t.MAC[:]...)
}

// Parse reads a whole ticket. Parse accepts no trailing bytes, so the MAC of a ticket
// that parsed covers exactly p[:len(p)-KeyLen]; a verifier needs no re-encoding.
func (t *Ticket) Parse(p []byte) error {
	r := reader{b: p}
	if v := r.u8(); r.err == nil && v != TicketVersion {
		r.fail(ErrUnknownVersion)
	}
	t.PeerID = r.vec8(1, MaxPeerIDLen)
	r.array(t.PublicKey[:])
	t.ExpiryUnix = r.u64()
	r.array(t.MAC[:])
	return r.done()
}
