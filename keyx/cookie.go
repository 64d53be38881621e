package keyx

import (
	"crypto/cipher"
	"encoding/binary"
	"io"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
	"golang.org/x/crypto/chacha20poly1305"
)

// Cookie timing (whitepaper §5.4.7, §6.1).
const (
	// CookieSecretLifetime: the responder's cookie secret changes this often, so a
	// cookie stops working at most this long after it was issued.
	CookieSecretLifetime = 120 * time.Second
	// cookieLifetime: an initiator stops sending mac2 under a cookie this long after
	// receiving it; past it the responder's secret has surely changed.
	cookieLifetime = 120 * time.Second
)

// cookieAddrLen bounds the encoded source address a cookie covers: 16 bytes of IPv6
// and 2 of port.
const cookieAddrLen = 18

// appendCookieAddr encodes Am, the source a cookie is bound to: the IP (4 or 16 bytes)
// then the port, big-endian.
func appendCookieAddr(b []byte, src netip.AddrPort) []byte {
	ip := src.Addr().Unmap()
	b = append(b, ip.AsSlice()...)
	return binary.BigEndian.AppendUint16(b, src.Port())
}

// cookieIssuer is the responder's half of the cookie mechanism: a random secret that
// changes every CookieSecretLifetime, the cookie τ = MAC(secret, source) it hands out,
// and the check of mac2 = MAC(τ, message up to mac2).
type cookieIssuer struct {
	secret     [KeyLen]byte
	secretBorn proto.Instant
	haveSecret bool
	// seal encrypts cookie replies under HASH(LABEL_COOKIE ‖ our public key),
	// created once.
	seal cipher.AEAD
}

func newCookieIssuer(id *Identity) cookieIssuer {
	a, _ := chacha20poly1305.NewX(id.cookieKey[:])
	return cookieIssuer{seal: a}
}

func (c *cookieIssuer) fresh(now proto.Instant) bool {
	return c.haveSecret && now.Before(c.secretBorn.Add(CookieSecretLifetime))
}

// cookie computes τ for src under the current secret; ok is false if no secret is
// current.
func (c *cookieIssuer) cookie(now proto.Instant, src netip.AddrPort) (tau [proto.CookieLen]byte, ok bool) {
	if !c.fresh(now) {
		return tau, false
	}
	var addr [cookieAddrLen]byte
	return mac(c.secret[:], appendCookieAddr(addr[:0], src)), true
}

// checkMAC2 reports whether msg (a whole handshake message, mac2 last) carries the
// mac2 of a cookie this responder issued to src within the secret's lifetime.
func (c *cookieIssuer) checkMAC2(now proto.Instant, src netip.AddrPort, msg []byte) bool {
	tau, ok := c.cookie(now, src)
	if !ok {
		return false
	}
	off := len(msg) - proto.MACLen
	want := mac(tau[:], msg[:off])
	return equalMAC(want[:], msg[off:])
}

// reply fills a cookie reply to the handshake message whose sender index is sender and
// whose mac1 is mac1 (the reply's associated data, which binds it to that message).
// It rotates the secret first if it is stale; it fails only if rand does.
func (c *cookieIssuer) reply(now proto.Instant, rand io.Reader, src netip.AddrPort, sender uint32, mac1 []byte, out *proto.CookieReply) error {
	if !c.fresh(now) {
		var s [KeyLen]byte
		if _, err := io.ReadFull(rand, s[:]); err != nil {
			return err
		}
		c.secret, c.secretBorn, c.haveSecret = s, now, true
	}
	var nonce [proto.CookieNonceLen]byte
	if _, err := io.ReadFull(rand, nonce[:]); err != nil {
		return err
	}
	tau, _ := c.cookie(now, src)
	out.Receiver = sender
	out.Nonce = nonce
	c.seal.Seal(out.Cookie[:0], nonce[:], tau[:], mac1)
	return nil
}

// openCookieReply decrypts a cookie reply from peer, sent in answer to our message
// whose mac1 was mac1.
func openCookieReply(peer *PeerKey, m *proto.CookieReply, mac1 []byte) ([proto.CookieLen]byte, error) {
	var tau [proto.CookieLen]byte
	a, _ := chacha20poly1305.NewX(peer.cookieKey[:])
	if _, err := a.Open(tau[:0], m.Nonce[:], m.Cookie[:], mac1); err != nil {
		return tau, ErrBadMAC
	}
	return tau, nil
}

// writeMACs fills the last two MACs of an encoded handshake message: mac1 under the
// receiver's mac1 key, and mac2 under cookie if one is given (else zero).
func writeMACs(msg []byte, mac1Key *[KeyLen]byte, cookie *[proto.CookieLen]byte) {
	off1 := len(msg) - 2*proto.MACLen
	off2 := len(msg) - proto.MACLen
	m1 := mac(mac1Key[:], msg[:off1])
	copy(msg[off1:off2], m1[:])
	if cookie == nil {
		clear(msg[off2:])
		return
	}
	m2 := mac(cookie[:], msg[:off2])
	copy(msg[off2:], m2[:])
}

// checkMAC1 verifies mac1 of an encoded handshake message sent to the holder of key.
func checkMAC1(msg []byte, mac1Key *[KeyLen]byte) bool {
	off1 := len(msg) - 2*proto.MACLen
	want := mac(mac1Key[:], msg[:off1])
	return equalMAC(want[:], msg[off1:off1+proto.MACLen])
}
