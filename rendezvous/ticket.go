package rendezvous

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"

	"github.com/natpass/natpass/proto"
)

// MinSecretLen is the shortest server secret accepted: 128 bits, so that the ticket
// MAC and the relay-token key cannot be brute-forced.
const MinSecretLen = 16

// MintTicket returns the encoded ticket t with its MAC set to HMAC-SHA256(secret,
// every byte before the MAC) (PROTOCOL.md §4.4). It is what an app backend and
// `natpass ticket` call; t.MAC is ignored. It panics on a secret shorter than
// MinSecretLen or a ticket field out of its bound (caller misuse).
func MintTicket(secret []byte, t proto.Ticket) []byte {
	if len(secret) < MinSecretLen {
		panic("rendezvous: ticket secret shorter than MinSecretLen")
	}
	b := t.AppendSigned(nil)
	m := hmac.New(sha256.New, secret)
	m.Write(b)
	return m.Sum(b)
}

// VerifyTicket checks an encoded ticket p against secret at wall time nowUnix
// (seconds since the Unix epoch) and returns it. Errors: ErrBadTicket (does not
// parse, unknown version, MAC mismatch) and ErrTicketExpired (nowUnix ≥ expiry),
// which the server answers with error codes 2 and 3. The PeerID of the result aliases
// p. Servers use a ticketVerifier, which reuses its HMAC state.
func VerifyTicket(secret []byte, p []byte, nowUnix uint64) (proto.Ticket, error) {
	if len(secret) < MinSecretLen {
		panic("rendezvous: ticket secret shorter than MinSecretLen")
	}
	v := newTicketVerifier(secret)
	var t proto.Ticket
	err := v.verify(p, nowUnix, &t)
	return t, err
}

// ticketVerifier checks tickets without allocating. A nil mac is the insecure
// development mode: tickets are parsed and their version and expiry checked, but the
// MAC is not, so anyone can register under any peer ID and key.
type ticketVerifier struct {
	mac hash.Hash
	sum [sha256.Size]byte
}

func newTicketVerifier(secret []byte) *ticketVerifier {
	v := &ticketVerifier{}
	if len(secret) > 0 {
		v.mac = hmac.New(sha256.New, secret)
	}
	return v
}

// verify parses p into t and checks it. The order is fixed (layout, MAC, expiry) so
// a sender without the secret learns "bad ticket" and never whether a forged ticket
// would have been fresh. The MAC is compared in constant time.
func (v *ticketVerifier) verify(p []byte, nowUnix uint64, t *proto.Ticket) error {
	if err := t.Parse(p); err != nil {
		return ErrBadTicket
	}
	if v.mac != nil {
		// Parse accepts no bytes after the MAC, so the tag covers exactly the rest.
		signed := p[:len(p)-proto.KeyLen]
		v.mac.Reset()
		v.mac.Write(signed)
		if !hmac.Equal(v.mac.Sum(v.sum[:0]), t.MAC[:]) {
			return ErrBadTicket
		}
	}
	if nowUnix >= t.ExpiryUnix {
		return ErrTicketExpired
	}
	return nil
}
