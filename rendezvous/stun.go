package rendezvous

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"

	"github.com/natpass/natpass/proto"
)

// The STUN subset the server speaks (PROTOCOL.md §10 is the contract): it answers a
// Binding request (RFC 8489 §6, §7.3), the bare 20-byte one included, with a Binding
// success response carrying XOR-MAPPED-ADDRESS (RFC 8489 §14.2), and with FINGERPRINT
// (§14.7) when the request had one. A classic RFC 3489 request (no magic cookie) gets
// MAPPED-ADDRESS instead (RFC 5389 §12.2). A request with a comprehension-required
// attribute the server does not support gets a 420 error response listing it (RFC 8489
// §6.3.1.1), except an RFC 3489 request asking for a change of address: dropped. Every reply is at most stunMaxGrowth bytes larger than its request and is
// charged to the sender's source bucket.

// Sentinel errors of the STUN parser.
var (
	// ErrSTUNMalformed: not a well-formed STUN message (length, attribute framing,
	// FINGERPRINT not last).
	ErrSTUNMalformed = errors.New("rendezvous: malformed STUN message")
	// ErrSTUNNotBindingRequest: a STUN message other than a Binding request
	// (responses, indications, other methods).
	ErrSTUNNotBindingRequest = errors.New("rendezvous: STUN message is not a Binding request")
	// ErrSTUNBadFingerprint: the FINGERPRINT does not match the message.
	ErrSTUNBadFingerprint = errors.New("rendezvous: STUN FINGERPRINT mismatch")
	// ErrSTUNUnknownAttribute: the request is well formed but carries a
	// comprehension-required attribute this server does not support; the parsed
	// request lists it, and the server answers with a 420 error response.
	ErrSTUNUnknownAttribute = errors.New("rendezvous: unknown comprehension-required STUN attribute")
	// ErrSTUNChangeRequest: an RFC 3489 request asks for an answer from another
	// address or port, which this server does not have; it is dropped, not answered
	// (a 420 reads as "the change worked" to classic clients, [STUN-4]).
	ErrSTUNChangeRequest = errors.New("rendezvous: classic STUN request asks for a change of address")
)

const (
	stunHeaderLen    = 20         // RFC 8489 §5
	stunMagicCookie  = 0x2112A442 // RFC 8489 §5
	stunIDLen        = 16         // magic cookie and transaction ID; RFC 3489's 128-bit ID
	stunAttrHeader   = 4          // type and length, RFC 8489 §14
	stunFingerprintX = 0x5354554e // RFC 8489 §14.7: CRC-32 XOR "STUN"

	stunBindingRequest = 0x0001 // method Binding, class request (RFC 8489 §5, §18.2)
	stunBindingSuccess = 0x0101 // method Binding, class success response
	stunBindingError   = 0x0111 // method Binding, class error response

	// Attribute types (RFC 8489 §18.3, RFC 3489 §11.2, RFC 8445 §16.1, RFC 5780 §9.1).
	stunAttrMappedAddress     = 0x0001
	stunAttrChangeRequest     = 0x0003
	stunAttrUsername          = 0x0006
	stunAttrMessageIntegrity  = 0x0008
	stunAttrErrorCode         = 0x0009
	stunAttrUnknownAttributes = 0x000A
	stunAttrRealm             = 0x0014
	stunAttrNonce             = 0x0015
	stunAttrMIntegritySHA256  = 0x001C
	stunAttrUserhash          = 0x001E
	stunAttrXORMappedAddress  = 0x0020
	stunAttrPriority          = 0x0024
	stunAttrUseCandidate      = 0x0025
	stunAttrPadding           = 0x0026
	stunAttrFingerprint       = 0x8028

	stunFamilyIPv4 = 0x01 // RFC 8489 §14.1
	stunFamilyIPv6 = 0x02

	// stunMaxUnknown caps the attributes a 420 response lists, so that its size does
	// not grow with the request (PROTOCOL.md [STUN-3]).
	stunMaxUnknown = 4
	// stunMaxGrowth is how many bytes a reply may exceed its request by: the
	// (XOR-)MAPPED-ADDRESS of an IPv6 source, 4 + 20 bytes, answering a bare request.
	// commitReply enforces it (PROTOCOL.md [STUN-3]).
	stunMaxGrowth = stunAttrHeader + 4 + 16
)

// stunIgnored reports whether the server understands the comprehension-required
// (type < 0x8000) attribute typ with value v well enough to ignore it: credentials it
// does not check (a STUN server without credentials answers as if they were absent),
// the ICE attributes of a connectivity check, RFC 5780 PADDING, and a CHANGE-REQUEST
// that asks for no change (RFC 3489 clients send one with every first test).
// Comprehension-optional attributes (≥ 0x8000) are ignored by rule (RFC 8489 §15),
// apart from FINGERPRINT.
func stunIgnored(typ uint16, v []byte) bool {
	switch typ {
	case stunAttrUsername, stunAttrMessageIntegrity, stunAttrRealm, stunAttrNonce,
		stunAttrMIntegritySHA256, stunAttrUserhash, stunAttrPriority, stunAttrUseCandidate,
		stunAttrPadding:
		return true
	case stunAttrChangeRequest:
		return len(v) == 4 && binary.BigEndian.Uint32(v) == 0
	}
	return false
}

// stunRequest is what the server needs of a Binding request.
type stunRequest struct {
	// ID is bytes 4..20 of the request, copied into the reply: the magic cookie and
	// the transaction ID, or the 128-bit transaction ID of an RFC 3489 request.
	ID             [stunIDLen]byte
	Classic        bool // RFC 3489: no magic cookie, so MAPPED-ADDRESS, not XOR-
	HasFingerprint bool // answered with FINGERPRINT too
	// Unknown lists the first NUnknown unsupported comprehension-required attributes
	// (ErrSTUNUnknownAttribute); a 420 response names them.
	Unknown  [stunMaxUnknown]uint16
	NUnknown int
	// ChangeAsked: a CHANGE-REQUEST asks for a reply from another IP or port. The
	// server cannot, and an RFC 3489 client would read any reply (a 420 too) as
	// that test passing, so such a classic request is dropped instead.
	ChangeAsked bool
}

// parseSTUNBindingRequest checks p as an RFC 8489 (or RFC 3489) message and accepts it
// only if it is a Binding request. ErrSTUNUnknownAttribute comes with a parsed request
// whose Unknown field lists the culprits. Padding bytes inside attributes may hold any
// value (RFC 8489 §14), so unlike natpass messages a STUN message has more than one
// encoding.
func parseSTUNBindingRequest(p []byte) (stunRequest, error) {
	var req stunRequest
	// RFC 8489 §6.3: the two leading bits are zero, the length field counts the bytes
	// after the header and is a multiple of four.
	if len(p) < stunHeaderLen || p[0]&0xC0 != 0 {
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
	copy(req.ID[:], p[4:stunHeaderLen])
	req.Classic = binary.BigEndian.Uint32(p[4:8]) != stunMagicCookie
	if err := req.parseAttributes(p); err != nil {
		return req, err
	}
	if req.NUnknown > 0 {
		return req, ErrSTUNUnknownAttribute
	}
	return req, nil
}

// parseAttributes walks the attributes of request p, checking their framing and the
// FINGERPRINT, and notes the unknown comprehension-required ones.
func (req *stunRequest) parseAttributes(p []byte) error {
	for off := stunHeaderLen; off < len(p); {
		if len(p)-off < stunAttrHeader {
			return ErrSTUNMalformed
		}
		typ := binary.BigEndian.Uint16(p[off:])
		vlen := int(binary.BigEndian.Uint16(p[off+2:]))
		end := off + stunAttrHeader + (vlen+3)&^3
		if end > len(p) {
			return ErrSTUNMalformed
		}
		switch {
		case typ == stunAttrFingerprint:
			if vlen != 4 || end != len(p) {
				// RFC 8489 §14.7: FINGERPRINT is four bytes and the last attribute.
				return ErrSTUNMalformed
			}
			// The CRC covers the message up to the attribute, with the header's
			// length field already counting the FINGERPRINT (RFC 8489 §14.7).
			want := crc32.ChecksumIEEE(p[:off]) ^ stunFingerprintX
			if binary.BigEndian.Uint32(p[off+stunAttrHeader:]) != want {
				return ErrSTUNBadFingerprint
			}
			req.HasFingerprint = true
		case typ < 0x8000 && !stunIgnored(typ, p[off+stunAttrHeader:off+stunAttrHeader+vlen]):
			req.ChangeAsked = req.ChangeAsked || typ == stunAttrChangeRequest
			if req.NUnknown < len(req.Unknown) {
				req.Unknown[req.NUnknown] = typ
				req.NUnknown++
			}
		}
		off = end
	}
	return nil
}

// stunSuccessLen is the size of the Binding success response appendSTUNBindingSuccess
// writes for mapped: the header, one address attribute (8 bytes of value for IPv4, 20
// for IPv6, for MAPPED-ADDRESS and XOR-MAPPED-ADDRESS alike), and FINGERPRINT.
func stunSuccessLen(mapped netip.AddrPort, fingerprint bool) int {
	n := stunHeaderLen + stunAttrHeader + 8
	if !mapped.Addr().Unmap().Is4() {
		n += 12 // IPv6 address is 16 bytes, not 4
	}
	if fingerprint {
		n += stunAttrHeader + 4
	}
	return n
}

// appendSTUNBindingSuccess appends a Binding success response to req telling the
// client its reflexive address mapped (RFC 8489 §7.3.1; RFC 5389 §12.2 for an RFC 3489
// client), then a FINGERPRINT if the request had one.
func appendSTUNBindingSuccess(b []byte, req *stunRequest, mapped netip.AddrPort) []byte {
	start := len(b)
	b = appendSTUNHeader(b, stunBindingSuccess, req)

	ip := mapped.Addr().Unmap()
	family, alen := byte(stunFamilyIPv4), 4
	if !ip.Is4() {
		family, alen = stunFamilyIPv6, 16
	}
	a16 := ip.As16()
	addr := a16[16-alen:]
	if req.Classic {
		// RFC 3489 §11.2.1: MAPPED-ADDRESS, in the clear.
		b = binary.BigEndian.AppendUint16(b, stunAttrMappedAddress)
		b = binary.BigEndian.AppendUint16(b, uint16(4+alen))
		b = append(b, 0, family)
		b = binary.BigEndian.AppendUint16(b, mapped.Port())
		b = append(b, addr...)
		return finishSTUN(b, start, req.HasFingerprint)
	}
	// RFC 8489 §14.2: port XOR the cookie's high 16 bits; an IPv4 address XOR the
	// cookie; an IPv6 address XOR the cookie followed by the transaction ID.
	b = binary.BigEndian.AppendUint16(b, stunAttrXORMappedAddress)
	b = binary.BigEndian.AppendUint16(b, uint16(4+alen))
	b = append(b, 0, family)
	b = binary.BigEndian.AppendUint16(b, mapped.Port()^uint16(stunMagicCookie>>16))
	for i := range alen {
		b = append(b, addr[i]^req.ID[i])
	}
	return finishSTUN(b, start, req.HasFingerprint)
}

// appendSTUNUnknownAttributes appends the 420 (Unknown Attribute) error response to
// req (RFC 8489 §6.3.1.1): ERROR-CODE with an empty reason phrase (a phrase would
// make the reply larger than the bound for no use: the code says it all), then
// UNKNOWN-ATTRIBUTES with req's unknown types, then FINGERPRINT if asked.
func appendSTUNUnknownAttributes(b []byte, req *stunRequest) []byte {
	start := len(b)
	b = appendSTUNHeader(b, stunBindingError, req)
	// RFC 8489 §14.8: 21 reserved bits, the class (4) in 3 bits, the number (20).
	b = binary.BigEndian.AppendUint16(b, stunAttrErrorCode)
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, 0, 0, 4, 20)

	list := req.Unknown // a copy: the repeat below must not write into req
	types := list[:req.NUnknown]
	if len(types)%2 == 1 {
		// An odd count leaves half a word: RFC 3489 §11.2.10 repeats an attribute to
		// fill it and counts it in the length; RFC 8489 §14.9 pads and does not. The
		// repeated type serves as the padding of the RFC 8489 form.
		types = append(types, types[len(types)-1])
	}
	vlen := 2 * req.NUnknown
	if req.Classic {
		vlen = 2 * len(types)
	}
	b = binary.BigEndian.AppendUint16(b, stunAttrUnknownAttributes)
	b = binary.BigEndian.AppendUint16(b, uint16(vlen))
	for _, t := range types {
		b = binary.BigEndian.AppendUint16(b, t)
	}
	return finishSTUN(b, start, req.HasFingerprint)
}

// appendSTUNHeader appends a STUN header of type typ answering req; finishSTUN fills
// in its length.
func appendSTUNHeader(b []byte, typ uint16, req *stunRequest) []byte {
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, 0)
	return append(b, req.ID[:]...)
}

// finishSTUN sets the length of the message that starts at b[start] and appends a
// FINGERPRINT if asked; the CRC covers the header with its final length (RFC 8489
// §14.7).
func finishSTUN(b []byte, start int, fingerprint bool) []byte {
	n := len(b) - start - stunHeaderLen
	if fingerprint {
		n += stunAttrHeader + 4
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	if fingerprint {
		crc := crc32.ChecksumIEEE(b[start:]) ^ stunFingerprintX
		b = binary.BigEndian.AppendUint16(b, stunAttrFingerprint)
		b = binary.BigEndian.AppendUint16(b, 4)
		b = binary.BigEndian.AppendUint32(b, crc)
	}
	return b
}

// handleSTUN answers one STUN datagram p from an unauthenticated sender: a Binding
// success response, or a 420 for unknown attributes (an RFC 3489 request that asks
// for a change of address is dropped: see ChangeAsked), charged to the sender's source
// bucket and the server-wide budget like any unauthenticated request, and never more
// than stunMaxGrowth bytes larger than p (PROTOCOL.md §10).
func (s *Server) handleSTUN(now proto.Instant, sock int, from netip.AddrPort, p []byte) error {
	req, err := parseSTUNBindingRequest(p)
	switch err {
	case nil, ErrSTUNUnknownAttribute:
	case ErrSTUNNotBindingRequest:
		s.stats.DropSTUNNotRequest++
		return err
	case ErrSTUNBadFingerprint:
		s.stats.DropSTUNBadFingerprint++
		return err
	default:
		s.stats.DropSTUNMalformed++
		return err
	}
	if req.Classic && req.ChangeAsked {
		s.stats.DropSTUNChangeRequest++
		return ErrSTUNChangeRequest
	}
	unknown := err == ErrSTUNUnknownAttribute
	if err := s.admitUnauthenticated(now, from); err != nil {
		return err
	}
	b := s.tx.begin()
	if unknown {
		b = appendSTUNUnknownAttributes(b, &req)
	} else {
		b = appendSTUNBindingSuccess(b, &req, from)
	}
	if err := s.commitReply(sock, from, b, len(p)+stunMaxGrowth); err != nil {
		return err
	}
	if unknown {
		s.stats.STUNUnknownAttr++
	} else {
		s.stats.STUNBindings++
	}
	return nil
}
