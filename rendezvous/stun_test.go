package rendezvous

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// unhex reads hex written the way RFCs print it (whitespace between bytes).
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 5769 §2.1, "Sample Request": a Binding request with SOFTWARE, PRIORITY,
// ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY and FINGERPRINT.
const rfc5769Request = `
	00 01 00 58  21 12 a4 42  b7 e7 a7 01  bc 34 d6 86
	fa 87 df ae  80 22 00 10  53 54 55 4e  20 74 65 73
	74 20 63 6c  69 65 6e 74  00 24 00 04  6e 00 01 ff
	80 29 00 08  93 2f f9 b1  51 26 3b 36  00 06 00 09
	65 76 74 6a  3a 68 36 76  59 20 20 20  00 08 00 14
	9a ea a7 0c  bf d8 cb 56  78 1e f2 b5  b2 d3 f2 49
	c1 b5 71 a2  80 28 00 04  e5 7a 3b cf`

// RFC 5769 §2.2, "Sample IPv4 Response": XOR-MAPPED-ADDRESS 192.0.2.1:32853.
const rfc5769ResponseV4 = `
	01 01 00 3c  21 12 a4 42  b7 e7 a7 01  bc 34 d6 86
	fa 87 df ae  80 22 00 0b  74 65 73 74  20 76 65 63
	74 6f 72 20  00 20 00 08  00 01 a1 47  e1 12 a6 43
	00 08 00 14  2b 91 f5 99  fd 9e 90 c3  8c 74 89 f9
	2a f9 ba 53  f0 6b e7 d7  80 28 00 04  c0 7d 4c 96`

// RFC 5769 §2.3, "Sample IPv6 Response", its XOR-MAPPED-ADDRESS attribute only:
// 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
const rfc5769XORMappedV6 = `
	00 20 00 14  00 02 a1 47  01 13 a9 fa  a5 d3 f1 79
	bc 25 f4 b5  be d2 b9 d9`

var rfc5769TxID = [12]byte{0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae}

// rfc5769ID is bytes 4..20 of the RFC 5769 messages: the magic cookie, then the
// transaction ID.
var rfc5769ID = [stunIDLen]byte{0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae}

func TestSTUNParsesRFC5769Request(t *testing.T) {
	p := unhex(t, rfc5769Request)
	req, err := parseSTUNBindingRequest(p)
	if err != nil {
		t.Fatalf("RFC 5769 §2.1 sample request: %v", err)
	}
	if req.ID != rfc5769ID || !req.HasFingerprint || req.Classic || req.NUnknown != 0 {
		t.Fatalf("parsed %+v", req)
	}
	// RFC 8489 §14.7: a FINGERPRINT that does not match the message means it is not
	// STUN (or was damaged). Flip a bit in the SOFTWARE text.
	p[30] ^= 0x20
	if _, err := parseSTUNBindingRequest(p); !errors.Is(err, ErrSTUNBadFingerprint) {
		t.Fatalf("damaged request: %v, want ErrSTUNBadFingerprint", err)
	}
}

// The XOR-MAPPED-ADDRESS the server writes must be byte for byte the attribute of
// RFC 5769 §2.2 (IPv4) and §2.3 (IPv6) for the same transaction and address.
func TestSTUNXORMappedAddressMatchesRFC5769(t *testing.T) {
	cases := []struct {
		name, mapped string
		attr         []byte
	}{
		// Bytes 36..48 of the §2.2 response are its XOR-MAPPED-ADDRESS attribute.
		{"ipv4 §2.2", "192.0.2.1:32853", unhex(t, rfc5769ResponseV4)[36:48]},
		{"ipv6 §2.3", "[2001:db8:1234:5678:11:2233:4455:6677]:32853", unhex(t, rfc5769XORMappedV6)},
	}
	for _, c := range cases {
		want := c.attr
		mapped := netip.MustParseAddrPort(c.mapped)
		got := appendSTUNBindingSuccess(nil, &stunRequest{ID: rfc5769ID}, mapped)
		if !bytes.Equal(got[stunHeaderLen:], want) {
			t.Errorf("%s: attribute\n got %x\nwant %x", c.name, got[stunHeaderLen:], want)
		}
		if len(got) != stunSuccessLen(mapped, false) {
			t.Errorf("%s: stunSuccessLen %d, wrote %d", c.name, stunSuccessLen(mapped, false), len(got))
		}
	}
}

// The FINGERPRINT computation, checked on the RFC 5769 §2.2 response: the CRC-32 of
// everything before the attribute, XOR 0x5354554e, is the last four bytes.
func TestSTUNFingerprintMatchesRFC5769(t *testing.T) {
	p := unhex(t, rfc5769ResponseV4)
	got := crc32.ChecksumIEEE(p[:len(p)-8]) ^ stunFingerprintX
	if want := binary.BigEndian.Uint32(p[len(p)-4:]); got != want {
		t.Fatalf("fingerprint %08x, RFC 5769 says %08x", got, want)
	}
	// The same response is not a request: the server must never answer it.
	if _, err := parseSTUNBindingRequest(p); !errors.Is(err, ErrSTUNNotBindingRequest) {
		t.Fatalf("response parsed as request: %v", err)
	}
}

// stunReply is a STUN response as a client reads it, for tests.
type stunReply struct {
	Type        uint16
	ID          [stunIDLen]byte
	Mapped      netip.AddrPort // XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS when there is no XOR one
	XOR         bool           // Mapped came from XOR-MAPPED-ADDRESS
	Code        int            // ERROR-CODE class·100 + number, 0 if absent
	Unknown     []uint16       // UNKNOWN-ATTRIBUTES as its length field counts them
	Fingerprint bool
}

// decodeSTUNReply is the client side, for tests: it checks the framing and the
// FINGERPRINT of a response and reads its address, error code and unknown attributes.
func decodeSTUNReply(t testing.TB, p []byte) stunReply {
	t.Helper()
	var r stunReply
	if len(p) < stunHeaderLen || int(binary.BigEndian.Uint16(p[2:]))+stunHeaderLen != len(p) {
		t.Fatalf("not a STUN message: %x", p)
	}
	r.Type = binary.BigEndian.Uint16(p)
	copy(r.ID[:], p[4:20])
	for off := stunHeaderLen; off < len(p); {
		if r.Fingerprint {
			t.Fatalf("attribute after FINGERPRINT in %x", p)
		}
		typ, n := binary.BigEndian.Uint16(p[off:]), int(binary.BigEndian.Uint16(p[off+2:]))
		if off+4+(n+3)&^3 > len(p) {
			t.Fatalf("attribute past the end in %x", p)
		}
		v := p[off+4 : off+4+n]
		switch typ {
		case stunAttrXORMappedAddress:
			ip := make([]byte, n-4)
			for i := range ip {
				ip[i] = v[4+i] ^ p[4+i]
			}
			a, _ := netip.AddrFromSlice(ip)
			r.Mapped, r.XOR = netip.AddrPortFrom(a, binary.BigEndian.Uint16(v[2:])^uint16(stunMagicCookie>>16)), true
		case stunAttrMappedAddress:
			if !r.XOR {
				a, _ := netip.AddrFromSlice(v[4:])
				r.Mapped = netip.AddrPortFrom(a, binary.BigEndian.Uint16(v[2:]))
			}
		case stunAttrErrorCode:
			r.Code = int(v[2]&7)*100 + int(v[3])
		case stunAttrUnknownAttributes:
			for i := 0; i+2 <= n; i += 2 {
				r.Unknown = append(r.Unknown, binary.BigEndian.Uint16(v[i:]))
			}
		case stunAttrFingerprint:
			if binary.BigEndian.Uint32(v) != crc32.ChecksumIEEE(p[:off])^stunFingerprintX {
				t.Fatalf("bad FINGERPRINT in %x", p)
			}
			r.Fingerprint = true
		}
		off += 4 + (n+3)&^3
	}
	return r
}

// decodeSTUNResponse reads a Binding success response with XOR-MAPPED-ADDRESS: its
// transaction ID, the address, and whether it had a FINGERPRINT.
func decodeSTUNResponse(t testing.TB, p []byte) ([12]byte, netip.AddrPort, bool) {
	t.Helper()
	r := decodeSTUNReply(t, p)
	if r.Type != stunBindingSuccess || binary.BigEndian.Uint32(r.ID[:]) != stunMagicCookie || !r.XOR {
		t.Fatalf("not a Binding success response with XOR-MAPPED-ADDRESS: %x", p)
	}
	return [12]byte(r.ID[4:]), r.Mapped, r.Fingerprint
}

func TestSTUNResponseRoundTrip(t *testing.T) {
	for _, s := range []string{"203.0.113.7:40001", "[2001:db8::1]:51820", "[::ffff:198.51.100.1]:9"} {
		mapped := netip.MustParseAddrPort(s)
		for _, fp := range []bool{false, true} {
			p := appendSTUNBindingSuccess(nil, &stunRequest{ID: rfc5769ID, HasFingerprint: fp}, mapped)
			txid, got, hasFP := decodeSTUNResponse(t, p)
			want := netip.AddrPortFrom(mapped.Addr().Unmap(), mapped.Port())
			if txid != rfc5769TxID || got != want || hasFP != fp || len(p) != stunSuccessLen(mapped, fp) {
				t.Errorf("%s fp=%v: decoded %x %v %v from %d bytes", s, fp, txid, got, hasFP, len(p))
			}
		}
	}
}

// stunRequest builds a Binding request with the given attributes (type, value) and an
// optional FINGERPRINT.
func stunRequestBytes(txid byte, fingerprint bool, attrs ...[]byte) []byte {
	b := []byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42}
	b = append(b, bytes.Repeat([]byte{txid}, 12)...)
	for _, a := range attrs {
		b = append(b, a...)
	}
	if fingerprint {
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)-stunHeaderLen+8))
		crc := crc32.ChecksumIEEE(b) ^ stunFingerprintX
		b = binary.BigEndian.AppendUint16(b, stunAttrFingerprint)
		b = binary.BigEndian.AppendUint16(b, 4)
		b = binary.BigEndian.AppendUint32(b, crc)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)-stunHeaderLen))
	return b
}

// stunAttr encodes one attribute with zero padding.
func stunAttr(typ uint16, v []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// classicRequestBytes builds an RFC 3489 Binding request: no magic cookie, a 128-bit
// transaction ID of bytes txid, then the attributes.
func classicRequestBytes(txid byte, attrs ...[]byte) []byte {
	b := []byte{0, 1, 0, 0}
	b = append(b, bytes.Repeat([]byte{txid}, stunIDLen)...)
	for _, a := range attrs {
		b = append(b, a...)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)-stunHeaderLen))
	return b
}

func TestSTUNParseRejects(t *testing.T) {
	good := stunRequestBytes(1, true, stunAttr(stunAttrPadding, make([]byte, 12)))
	if _, err := parseSTUNBindingRequest(good); err != nil {
		t.Fatalf("padded request: %v", err)
	}
	mut := func(f func(p []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name string
		p    []byte
		want error
	}{
		{"short header", good[:19], ErrSTUNMalformed},
		{"top bits set", mut(func(p []byte) []byte { p[0] |= 0x40; return p }), ErrSTUNMalformed},
		{"length not /4", mut(func(p []byte) []byte { p[3]++; return p }), ErrSTUNMalformed},
		{"length past end", mut(func(p []byte) []byte { p[3] += 4; return p }), ErrSTUNMalformed},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrSTUNMalformed},
		{"attribute past end", stunRequestBytes(2, false, []byte{0x80, 0x22, 0x00, 0x09, 1, 2, 3, 4}), ErrSTUNMalformed},
		{"attribute after fingerprint", mut(func(p []byte) []byte {
			p = append(p, stunAttr(0x8022, []byte("x"))...)
			binary.BigEndian.PutUint16(p[2:], uint16(len(p)-stunHeaderLen))
			return p
		}), ErrSTUNMalformed},
		{"fingerprint wrong size", stunRequestBytes(3, false, stunAttr(stunAttrFingerprint, []byte{1, 2})), ErrSTUNMalformed},
		{"bad fingerprint", mut(func(p []byte) []byte { p[len(p)-1] ^= 1; return p }), ErrSTUNBadFingerprint},
		// A different cookie is an RFC 3489 request: its FINGERPRINT no longer matches.
		{"cookie changed under fingerprint", mut(func(p []byte) []byte { p[4] ^= 1; return p }), ErrSTUNBadFingerprint},
		{"indication", mut(func(p []byte) []byte { p[1] = 0x11; return p }), ErrSTUNNotBindingRequest},
		{"success response", mut(func(p []byte) []byte { p[0] = 1; return p }), ErrSTUNNotBindingRequest},
		{"allocate request", mut(func(p []byte) []byte { p[1] = 3; return p }), ErrSTUNNotBindingRequest},
		{"classic indication", func() []byte { p := classicRequestBytes(9); p[1] = 0x11; return p }(), ErrSTUNNotBindingRequest},
		{"classic trailing byte", append(classicRequestBytes(9), 0), ErrSTUNMalformed},
	}
	for _, c := range cases {
		if _, err := parseSTUNBindingRequest(c.p); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// What the parser accepts, and the unknown attributes it lists for a 420.
func TestSTUNParseAccepts(t *testing.T) {
	change := func(flags uint32) []byte {
		return stunAttr(stunAttrChangeRequest, binary.BigEndian.AppendUint32(nil, flags))
	}
	cases := []struct {
		name    string
		p       []byte
		classic bool
		fp      bool
		unknown []uint16
	}{
		{"bare 20 bytes", stunRequestBytes(1, false), false, false, nil},
		{"bare with FINGERPRINT", stunRequestBytes(1, true), false, true, nil},
		{"unknown optional attribute", stunRequestBytes(5, false, stunAttr(0xC001, []byte("opt"))), false, false, nil},
		{"CHANGE-REQUEST asking no change", stunRequestBytes(6, false, change(0)), false, false, nil},
		{"CHANGE-REQUEST change IP and port", stunRequestBytes(6, true, change(6)), false, true, []uint16{3}},
		{"RFC 5780 RESPONSE-PORT", stunRequestBytes(7, false, stunAttr(0x0027, []byte{0x12, 0x34})), false, false, []uint16{0x27}},
		{"five unknown, four listed", stunRequestBytes(8, false, stunAttr(0x7001, nil), stunAttr(0x7002, nil),
			stunAttr(0x7003, nil), stunAttr(0x7004, nil), stunAttr(0x7005, nil)), false, false, []uint16{0x7001, 0x7002, 0x7003, 0x7004}},
		{"classic bare", classicRequestBytes(9), true, false, nil},
		{"classic CHANGE-REQUEST 0 (stun client test I)", classicRequestBytes(9, change(0)), true, false, nil},
		{"classic RESPONSE-ADDRESS", classicRequestBytes(9, stunAttr(0x0002, make([]byte, 8))), true, false, []uint16{2}},
		{"classic CHANGE-REQUEST change port", classicRequestBytes(9, change(2)), true, false, []uint16{3}},
	}
	for _, c := range cases {
		req, err := parseSTUNBindingRequest(c.p)
		wantErr := error(nil)
		if c.unknown != nil {
			wantErr = ErrSTUNUnknownAttribute
		}
		changeAsked := slices.Contains(c.unknown, stunAttrChangeRequest)
		if err != wantErr || req.Classic != c.classic || req.HasFingerprint != c.fp || req.ChangeAsked != changeAsked ||
			!slices.Equal(req.Unknown[:req.NUnknown], c.unknown) || !bytes.Equal(req.ID[:], c.p[4:20]) {
			t.Errorf("%s: %v, %+v", c.name, err, req)
		}
	}
}

// FuzzSTUNBindingRequest: no input panics the parser; an accepted request has its
// ID at bytes 4..20, and the reply to it (success, or 420 for unknown attributes)
// decodes to what it was built for, carries FINGERPRINT exactly when the request had
// one, and is at most stunMaxGrowth bytes larger than the request (PROTOCOL.md
// [STUN-3]).
func FuzzSTUNBindingRequest(f *testing.F) {
	f.Add(unhex(f, rfc5769Request))
	f.Add(unhex(f, rfc5769ResponseV4))
	f.Add(stunRequestBytes(1, true, stunAttr(stunAttrPadding, make([]byte, 12))))
	f.Add(stunRequestBytes(2, false))
	f.Add(stunRequestBytes(3, true, stunAttr(stunAttrChangeRequest, []byte{0, 0, 0, 6})))
	f.Add(classicRequestBytes(4, stunAttr(stunAttrChangeRequest, []byte{0, 0, 0, 0})))
	mapped := netip.MustParseAddrPort("[2001:db8::7]:3478")
	f.Fuzz(func(t *testing.T, p []byte) {
		req, err := parseSTUNBindingRequest(p)
		var resp []byte
		switch err {
		case nil:
			resp = appendSTUNBindingSuccess(nil, &req, mapped)
		case ErrSTUNUnknownAttribute:
			resp = appendSTUNUnknownAttributes(nil, &req)
		default:
			return
		}
		if !bytes.Equal(req.ID[:], p[4:20]) {
			t.Fatalf("ID %x, packet %x", req.ID, p)
		}
		if len(resp) > len(p)+stunMaxGrowth {
			t.Fatalf("%d-byte reply to a %d-byte request", len(resp), len(p))
		}
		r := decodeSTUNReply(t, resp)
		if r.ID != req.ID || r.Fingerprint != req.HasFingerprint {
			t.Fatalf("reply %+v to %+v", r, req)
		}
		if err == nil && (r.Type != stunBindingSuccess || r.Mapped != mapped || r.XOR == req.Classic) {
			t.Fatalf("success %+v to %+v", r, req)
		}
		if err != nil && (r.Type != stunBindingError || r.Code != 420 || len(r.Unknown) == 0 || r.Unknown[0] != req.Unknown[0]) {
			t.Fatalf("error %+v to %+v", r, req)
		}
	})
}
