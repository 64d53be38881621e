package rendezvous

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
)

// The STUN subset the server speaks: it answers a Binding request (RFC 8489 §6, §7.3)
// with a Binding success response carrying XOR-MAPPED-ADDRESS (RFC 8489 §14.2), and
// with FINGERPRINT (§14.7) when the request had one. It sends no error responses, so
// a request it cannot answer is dropped and counted. PROTOCOL.md §10 is the contract.

// Sentinel errors of the STUN parser.
var (
	// ErrSTUNMalformed: not a well-formed RFC 8489 message (length, magic cookie,
	// attribute framing, FINGERPRINT not last).
	ErrSTUNMalformed = errors.New("rendezvous: malformed STUN message")
	// ErrSTUNNotBindingRequest: a STUN message other than a Binding request
	// (responses, indications, other methods).
	ErrSTUNNotBindingRequest = errors.New("rendezvous: STUN message is not a Binding request")
	// ErrSTUNBadFingerprint: the FINGERPRINT does not match the message.
	ErrSTUNBadFingerprint = errors.New("rendezvous: STUN FINGERPRINT mismatch")
	// ErrSTUNUnknownAttribute: a comprehension-required attribute this server does not
	// know. RFC 8489 §6.3.1 asks for a 420 error response; this server drops instead,
	// because an error response to an unauthenticated sender is an amplifier.
	ErrSTUNUnknownAttribute = errors.New("rendezvous: unknown comprehension-required STUN attribute")
	// ErrSTUNTooSmall: the request is smaller than the response it would get
	// (PROTOCOL.md §10: a client pads with PADDING or SOFTWARE).
	ErrSTUNTooSmall = errors.New("rendezvous: STUN request smaller than its response")
)

const (
	stunHeaderLen    = 20         // RFC 8489 §5
	stunMagicCookie  = 0x2112A442 // RFC 8489 §5
	stunTxIDLen      = 12         // RFC 8489 §5
	stunAttrHeader   = 4          // type and length, RFC 8489 §14
	stunFingerprintX = 0x5354554e // RFC 8489 §14.7: CRC-32 XOR "STUN"

	stunBindingRequest = 0x0001 // method Binding, class request (RFC 8489 §5, §18.2)
	stunBindingSuccess = 0x0101 // method Binding, class success response

	// Attribute types (RFC 8489 §18.3, RFC 8445 §16.1, RFC 5780 §9.1).
	stunAttrUsername         = 0x0006
	stunAttrMessageIntegrity = 0x0008
	stunAttrRealm            = 0x0014
	stunAttrNonce            = 0x0015
	stunAttrMIntegritySHA256 = 0x001C
	stunAttrUserhash         = 0x001E
	stunAttrXORMappedAddress = 0x0020
	stunAttrPriority         = 0x0024
	stunAttrUseCandidate     = 0x0025
	stunAttrPadding          = 0x0026
	stunAttrFingerprint      = 0x8028

	stunFamilyIPv4 = 0x01 // RFC 8489 §14.1
	stunFamilyIPv6 = 0x02
)

// stunKnownRequired lists the comprehension-required attributes (type < 0x8000) the
// server understands well enough to ignore: credentials it does not check (a STUN
// server without credentials answers as if they were absent), the ICE attributes of
// a connectivity check, and RFC 5780 PADDING, which is how a client makes its request
// large enough to be answered. Comprehension-optional attributes (≥ 0x8000) are
// ignored by rule (RFC 8489 §15), apart from FINGERPRINT.
func stunKnownRequired(t uint16) bool {
	switch t {
	case stunAttrUsername, stunAttrMessageIntegrity, stunAttrRealm, stunAttrNonce,
		stunAttrMIntegritySHA256, stunAttrUserhash, stunAttrPriority, stunAttrUseCandidate,
		stunAttrPadding:
		return true
	}
	return false
}

// stunRequest is what the server needs of a Binding request.
type stunRequest struct {
	TxID           [stunTxIDLen]byte
	HasFingerprint bool // answered with FINGERPRINT too, when the size allows
}

// parseSTUNBindingRequest checks p as an RFC 8489 message and accepts it only if it
// is a Binding request. Padding bytes inside attributes may hold any value (RFC 8489
// §14), so unlike natpass messages a STUN message has more than one encoding.
func parseSTUNBindingRequest(p []byte) (stunRequest, error) {
	var req stunRequest
	// RFC 8489 §6.3: the two leading bits are zero, the cookie is fixed, the length
	// field counts the bytes after the header and is a multiple of four.
	if len(p) < stunHeaderLen || p[0]&0xC0 != 0 ||
		binary.BigEndian.Uint32(p[4:8]) != stunMagicCookie {
		return req, ErrSTUNMalformed
	}
	n := int(binary.BigEndian.Uint16(p[2:4]))
	if n%4 != 0 || stunHeaderLen+n != len(p) {
		return req, ErrSTUNMalformed
	}
	if binary.BigEndian.Uint16(p[0:2]) != stunBindingRequest {
		// Responses and indications are never answered (RFC 8489 §6.3.2, §6.3.3 say
		// what a client does with them; a server has no use for them).
		return req, ErrSTUNNotBindingRequest
	}
	copy(req.TxID[:], p[8:stunHeaderLen])
	for off := stunHeaderLen; off < len(p); {
		if len(p)-off < stunAttrHeader {
			return req, ErrSTUNMalformed
		}
		typ := binary.BigEndian.Uint16(p[off:])
		vlen := int(binary.BigEndian.Uint16(p[off+2:]))
		end := off + stunAttrHeader + (vlen+3)&^3
		if end > len(p) {
			return req, ErrSTUNMalformed
		}
		switch {
		case typ == stunAttrFingerprint:
			if vlen != 4 || end != len(p) {
				// RFC 8489 §14.7: FINGERPRINT is four bytes and the last attribute.
				return req, ErrSTUNMalformed
			}
			// The CRC covers the message up to the attribute, with the header's
			// length field already counting the FINGERPRINT (RFC 8489 §14.7).
			want := crc32.ChecksumIEEE(p[:off]) ^ stunFingerprintX
			if binary.BigEndian.Uint32(p[off+stunAttrHeader:]) != want {
				return req, ErrSTUNBadFingerprint
			}
			req.HasFingerprint = true
		case typ < 0x8000 && !stunKnownRequired(typ):
			return req, ErrSTUNUnknownAttribute
		}
		off = end
	}
	return req, nil
}

// stunResponseLen is the size of the Binding success response appendSTUNBindingSuccess
// writes for mapped.
func stunResponseLen(mapped netip.AddrPort, fingerprint bool) int {
	n := stunHeaderLen + stunAttrHeader + 8 // XOR-MAPPED-ADDRESS, IPv4
	if !mapped.Addr().Unmap().Is4() {
		n += 12 // IPv6 address is 16 bytes, not 4
	}
	if fingerprint {
		n += stunAttrHeader + 4
	}
	return n
}

// appendSTUNBindingSuccess appends a Binding success response for txid telling the
// client its reflexive address mapped (RFC 8489 §7.3.1), then a FINGERPRINT if asked.
func appendSTUNBindingSuccess(b []byte, txid *[stunTxIDLen]byte, mapped netip.AddrPort, fingerprint bool) []byte {
	start := len(b)
	total := stunResponseLen(mapped, fingerprint)
	b = binary.BigEndian.AppendUint16(b, stunBindingSuccess)
	b = binary.BigEndian.AppendUint16(b, uint16(total-stunHeaderLen))
	b = binary.BigEndian.AppendUint32(b, stunMagicCookie)
	b = append(b, txid[:]...)

	// RFC 8489 §14.2: port XOR the cookie's high 16 bits; an IPv4 address XOR the
	// cookie; an IPv6 address XOR the cookie followed by the transaction ID.
	ip := mapped.Addr().Unmap()
	family, alen := byte(stunFamilyIPv4), 4
	if !ip.Is4() {
		family, alen = stunFamilyIPv6, 16
	}
	b = binary.BigEndian.AppendUint16(b, stunAttrXORMappedAddress)
	b = binary.BigEndian.AppendUint16(b, uint16(4+alen))
	b = append(b, 0, family)
	b = binary.BigEndian.AppendUint16(b, mapped.Port()^uint16(stunMagicCookie>>16))
	a16 := ip.As16()
	addr := a16[16-alen:]
	// The cookie and transaction ID sit at bytes 4..20 of the header just written.
	key := b[start+4 : start+stunHeaderLen]
	for i := range alen {
		b = append(b, addr[i]^key[i])
	}

	if fingerprint {
		crc := crc32.ChecksumIEEE(b[start:]) ^ stunFingerprintX
		b = binary.BigEndian.AppendUint16(b, stunAttrFingerprint)
		b = binary.BigEndian.AppendUint16(b, 4)
		b = binary.BigEndian.AppendUint32(b, crc)
	}
	return b
}
