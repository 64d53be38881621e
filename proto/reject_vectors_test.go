package proto

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// Must-reject vectors (testdata/vectors/reject.json): inputs every implementation
// drops, each with the PROTOCOL.md rule it breaks and the error class ([WIRE-2]) it
// must report. "Accept only the canonical encoding" is the central rule of the wire
// format, and these vectors are how a port proves it follows it.

// rejectVector is one entry of reject.json.
type rejectVector struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Hex   string `json:"hex"`
	Rule  string `json:"rule"`
	Error string `json:"error"`
}

type rejectFile struct {
	Comment string         `json:"comment"`
	Vectors []rejectVector `json:"vectors"`
}

const rejectComment = "natpass must-reject vectors; regenerate with: go test ./proto -update. " +
	"Parse hex as type (Datagram: the first-byte and common-header checks of PROTOCOL.md §1-§3 alone); " +
	"the parse must fail with the error class of PROTOCOL.md [WIRE-2]; rule names the rule broken. " +
	"Format: proto/testdata/vectors/README.md."

// errorClasses maps the class names of [WIRE-2] to the parsers' sentinel errors.
var errorClasses = map[string]error{
	"short":           ErrShort,
	"trailing":        ErrTrailing,
	"malformed":       ErrMalformed,
	"too-long":        ErrTooLong,
	"not-natpass":     ErrNotNatpass,
	"unknown-version": ErrUnknownVersion,
	"unknown-type":    ErrUnknownType,
}

// datagram parses only what every natpass datagram shares: the first byte (§1) and
// the common header (§2, §3). It stands for a port's dispatcher in reject vectors.
type datagram struct{}

func (*datagram) Append([]byte) []byte { panic("datagram is parse-only") }

func (*datagram) Parse(p []byte) error {
	h, _, err := ParseHeader(p)
	if err != nil {
		return err
	}
	if int(h.Type) >= len(typeNames) || typeNames[h.Type] == "" {
		return ErrUnknownType
	}
	return nil
}

// cat concatenates byte strings: the reject vectors are built field by field so each
// one shows which field it breaks.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func hdr(t MsgType) []byte      { return []byte{0xe1, byte(t)} }
func be16(v uint16) []byte      { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte      { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte      { return binary.BigEndian.AppendUint64(nil, v) }
func addrBytes(a string) []byte { return appendAddr(nil, netip.MustParseAddrPort(a)) }
func vec8(v []byte) []byte      { return append([]byte{byte(len(v))}, v...) }
func vec16(v []byte) []byte     { return append(be16(uint16(len(v))), v...) }
func plusByte(b []byte) []byte  { return append(slices.Clip(b), 0) }
func minusByte(b []byte) []byte { return b[:len(b)-1] }
func natRaw(m, f, a, h, flags byte, delta uint16) []byte {
	return append([]byte{m, f, a, h, flags}, be16(delta)...)
}

// Fields that break a rule, in their wire form.
var (
	v4         = addrBytes("203.0.113.7:40001")
	v6         = addrBytes("[2001:db8::1]:51820")
	noAddr     = []byte{0}
	badFamily  = []byte{5, 203, 0, 113, 7, 0x9c, 0x41}
	mapped     = cat([]byte{6}, netip.MustParseAddr("::ffff:203.0.113.7").AsSlice(), be16(40001))
	port0      = []byte{4, 203, 0, 113, 7, 0, 0}
	natZero    = natRaw(0, 0, 0, 0, 0, 0)
	sess       = vecSession[:]
	key32      = vecKey[:]
	bob        = []byte("bob")
	id65       = bytes.Repeat([]byte{'x'}, MaxPeerIDLen+1)
	mac16      = bytes.Repeat([]byte{0x4d}, ProbeMACLen)
	ticketBody = vecTicket[:len(vecTicket)-KeyLen]
)

func rejectVectors() []rejectVector {
	var out []rejectVector
	add := func(typ, name, rule, class string, p []byte) {
		out = append(out, rejectVector{Name: kebab(typ) + "-" + name, Type: typ, Hex: hex.EncodeToString(p), Rule: rule, Error: class})
	}

	// §1-§3: the first byte and the common header, whatever the message.
	add("Datagram", "empty", "DEMUX-1", "short", []byte{})
	add("Datagram", "dtls-first-byte", "DEMUX-1", "not-natpass", []byte{0x16, 0xfe, 0xfd})
	add("Datagram", "turn-channel-first-byte", "DEMUX-1", "not-natpass", []byte{0x40, 0x00, 0x00, 0x00})
	add("Datagram", "stun-first-byte-is-not-natpass", "DEMUX-1", "not-natpass", []byte{0x00, 0x01})
	add("Datagram", "version-2-one-byte", "HDR-1", "unknown-version", []byte{0xe2})
	add("Datagram", "version-0", "HDR-1", "unknown-version", []byte{0xe0, 0x01})
	add("Datagram", "version-15", "HDR-1", "unknown-version", []byte{0xef, 0x01})
	add("Datagram", "version-1-one-byte", "HDR-1", "short", []byte{0xe1})
	for _, typ := range []byte{0x00, 0x15, 0x1f, 0x24, 0x2f, 0x32, 0x3f, 0x4f, 0x50, 0xff} {
		add("Datagram", "type-0x"+hex.EncodeToString([]byte{typ}), "HDR-2", "unknown-type", []byte{0xe1, typ})
	}

	// §4.4 ticket (it travels inside register; parsed by the server).
	add("Ticket", "version-2", "TICKET-1", "unknown-version", cat([]byte{2}, vecTicket[1:]))
	add("Ticket", "version-0", "TICKET-1", "unknown-version", cat([]byte{0}, vecTicket[1:]))
	add("Ticket", "peer-id-empty", "TICKET-1", "malformed", cat([]byte{1, 0}, key32, be64(1798761600), bytes.Repeat([]byte{0xaa}, KeyLen)))
	add("Ticket", "peer-id-65-bytes", "TICKET-1", "too-long", cat([]byte{1}, vec8(id65), key32, be64(1798761600), bytes.Repeat([]byte{0xaa}, KeyLen)))
	add("Ticket", "mac-cut-short", "TICKET-1", "short", minusByte(vecTicket))
	add("Ticket", "byte-after-mac", "TICKET-1", "trailing", plusByte(vecTicket))
	add("Ticket", "no-mac", "TICKET-1", "short", ticketBody)

	// §5.1 register.
	regNoSuites := func(ticket []byte, hosts ...[]byte) []byte {
		return cat(hdr(TypeRegister), be64(1), vec16(ticket), []byte{byte(len(hosts))}, cat(hosts...))
	}
	reg := func(ticket []byte, hosts ...[]byte) []byte { return cat(regNoSuites(ticket, hosts...), []byte{0x03}) }
	add("Register", "ticket-empty", "REG-1", "malformed", reg(nil))
	add("Register", "ticket-257-bytes", "REG-1", "too-long", reg(make([]byte, MaxTicketLen+1)))
	add("Register", "ticket-length-past-end", "WIRE-2", "short", cat(hdr(TypeRegister), be64(1), be16(79), vecTicket[:40]))
	add("Register", "nine-hosts", "REG-2", "too-long", cat(hdr(TypeRegister), be64(1), vec16(vecTicket), []byte{9}, bytes.Repeat(v4, 9)))
	add("Register", "host-family-none", "ADDR-1", "malformed", reg(vecTicket, noAddr))
	add("Register", "host-family-5", "ADDR-1", "malformed", reg(vecTicket, badFamily))
	add("Register", "host-v4-mapped-v6", "ADDR-2", "malformed", reg(vecTicket, mapped))
	add("Register", "host-port-0", "ADDR-3", "malformed", reg(vecTicket, port0))
	add("Register", "host-cut-short", "WIRE-2", "short", minusByte(regNoSuites(vecTicket, v6)))
	add("Register", "suites-missing", "WIRE-2", "short", regNoSuites(vecTicket, v4))
	// [REG-4]: a byte after the suites byte starts a token, which is then cut short.
	add("Register", "byte-after-suites", "REG-4", "short", plusByte(reg(vecTicket, v4)))

	// §5.2 registered.
	regd := func(observed []byte, keepalive uint16, alts ...[]byte) []byte {
		return cat(hdr(TypeRegistered), be64(1), sess, observed, be16(keepalive), cat(alts...))
	}
	add("Registered", "keepalive-0", "REGD-1", "malformed", regd(v4, 0, noAddr, noAddr))
	add("Registered", "keepalive-3601", "REGD-1", "malformed", regd(v4, 3601, noAddr, noAddr))
	add("Registered", "observed-none", "ADDR-1", "malformed", regd(noAddr, 25, noAddr, noAddr))
	add("Registered", "alt-port-family-5", "ADDR-1", "malformed", regd(v4, 25, badFamily, noAddr))
	add("Registered", "alt-address-port-0", "ADDR-3", "malformed", regd(v4, 25, noAddr, port0))
	add("Registered", "alt-address-missing", "WIRE-2", "short", regd(v4, 25, noAddr))
	add("Registered", "byte-after-alt-address", "WIRE-1", "trailing", plusByte(regd(v4, 25, noAddr, noAddr)))

	// §5.3 keepalive: the NAT behaviour rules live here and in introduction.
	ka := func(nat, predicted []byte) []byte {
		return cat(hdr(TypeKeepalive), sess, be32(7), nat, predicted)
	}
	add("Keepalive", "mapping-4", "NAT-1", "malformed", ka(natRaw(4, 0, 0, 0, 0, 0), noAddr))
	add("Keepalive", "filtering-4", "NAT-1", "malformed", ka(natRaw(1, 4, 0, 0, 0, 0), noAddr))
	add("Keepalive", "allocation-4", "NAT-1", "malformed", ka(natRaw(1, 1, 4, 0, 0, 0), noAddr))
	add("Keepalive", "hairpin-3", "NAT-1", "malformed", ka(natRaw(1, 1, 1, 3, 0, 0), noAddr))
	add("Keepalive", "nat-flag-bit-1", "NAT-1", "malformed", ka(natRaw(1, 1, 1, 1, 0x02, 0), noAddr))
	add("Keepalive", "delta-with-preserving", "NAT-2", "malformed", ka(natRaw(1, 3, 1, 1, 0, 1), noAddr))
	add("Keepalive", "delta-with-random", "NAT-2", "malformed", ka(natRaw(3, 3, 3, 2, 0, 0xfffe), noAddr))
	add("Keepalive", "predicted-v4-mapped", "ADDR-2", "malformed", ka(natZero, mapped))
	add("Keepalive", "predicted-missing", "WIRE-2", "short", ka(natZero, nil))
	add("Keepalive", "byte-after-predicted", "WIRE-1", "trailing", plusByte(ka(natZero, noAddr)))

	// §5.4 keepalive-ack.
	add("KeepaliveAck", "observed-none", "KAACK-1", "malformed", cat(hdr(TypeKeepaliveAck), be32(7), noAddr))
	add("KeepaliveAck", "observed-v6-port-0", "ADDR-3", "malformed",
		cat(hdr(TypeKeepaliveAck), be32(7), []byte{6}, netip.MustParseAddr("2001:db8::1").AsSlice(), be16(0)))
	add("KeepaliveAck", "observed-cut-short", "WIRE-2", "short", minusByte(cat(hdr(TypeKeepaliveAck), be32(7), v6)))
	add("KeepaliveAck", "byte-after-observed", "WIRE-1", "trailing", plusByte(cat(hdr(TypeKeepaliveAck), be32(7), v4)))

	// §5.5 nat-probe, §5.6 nat-probe-reply.
	add("NATProbe", "change-bit-2", "NATP-1", "malformed", cat(hdr(TypeNATProbe), sess, be64(9), []byte{0x04}))
	add("NATProbe", "change-missing", "WIRE-2", "short", cat(hdr(TypeNATProbe), sess, be64(9)))
	add("NATProbe", "byte-after-change", "WIRE-1", "trailing", cat(hdr(TypeNATProbe), sess, be64(9), []byte{0, 0}))
	add("NATProbeReply", "observed-none", "NATPR-1", "malformed", cat(hdr(TypeNATProbeReply), be64(9), noAddr))
	add("NATProbeReply", "byte-after-observed", "WIRE-1", "trailing", plusByte(cat(hdr(TypeNATProbeReply), be64(9), v6)))
	add("NATProbeReply", "txid-cut-short", "WIRE-2", "short", cat(hdr(TypeNATProbeReply), be32(9)))

	// §5.7 introduce-request.
	irq := func(id []byte, flags byte) []byte {
		return cat(hdr(TypeIntroduceRequest), sess, be64(11), vec8(id), []byte{flags})
	}
	add("IntroduceRequest", "peer-id-empty", "INTRQ-1", "malformed", irq(nil, 0))
	add("IntroduceRequest", "peer-id-65-bytes", "INTRQ-1", "too-long", irq(id65, 0))
	add("IntroduceRequest", "never-relay-and-relay-only", "FLAGS-1", "malformed", irq(bob, 0x03))
	add("IntroduceRequest", "flag-bit-4", "FLAGS-1", "malformed", irq(bob, 0x10))
	// Bit 3 (rebound) needs bit 2 (refresh) and a required address after the flags.
	add("IntroduceRequest", "rebound-without-refresh", "FLAGS-1", "malformed", cat(irq(bob, 0x08), v4))
	add("IntroduceRequest", "rebound-address-none", "INTRQ-2", "malformed", cat(irq(bob, 0x0c), noAddr))
	add("IntroduceRequest", "rebound-address-missing", "WIRE-2", "short", irq(bob, 0x0c))
	add("IntroduceRequest", "rebound-port-0", "ADDR-3", "malformed", cat(irq(bob, 0x0c), minusByte(minusByte(v4)), be16(0)))
	add("IntroduceRequest", "byte-after-rebound", "WIRE-1", "trailing", plusByte(cat(irq(bob, 0x0c), v4)))
	add("IntroduceRequest", "flags-missing", "WIRE-2", "short", minusByte(irq(bob, 0)))
	add("IntroduceRequest", "byte-after-flags", "WIRE-1", "trailing", plusByte(irq(bob, 0)))

	// §5.8 introduction.
	introNoSuites := func(id, nat []byte, cands [][]byte, token []byte, flags byte) []byte {
		return cat(hdr(TypeIntroduction), be64(11), vec8(id), key32, nat, be16(500),
			[]byte{byte(len(cands))}, cat(cands...), vec16(token), vecPSK[:], []byte{flags})
	}
	intro := func(id, nat []byte, cands [][]byte, token []byte, flags byte) []byte {
		return cat(introNoSuites(id, nat, cands, token, flags), []byte{0x03})
	}
	cand := func(kind byte, a []byte) []byte { return cat([]byte{kind}, a) }
	add("Introduction", "peer-id-empty", "INTRO-1", "malformed", intro(nil, natZero, nil, nil, 0))
	add("Introduction", "nat-delta-with-unknown-allocation", "NAT-2", "malformed", intro(bob, natRaw(0, 0, 0, 0, 0, 1), nil, nil, 0))
	add("Introduction", "seventeen-candidates", "INTRO-1", "too-long",
		intro(bob, natZero, slices.Repeat([][]byte{cand(1, v4)}, 17), nil, 0))
	add("Introduction", "candidate-kind-0", "CAND-1", "malformed", intro(bob, natZero, [][]byte{cand(0, v4)}, nil, 0))
	add("Introduction", "candidate-kind-4", "CAND-1", "malformed", intro(bob, natZero, [][]byte{cand(4, v4)}, nil, 0))
	add("Introduction", "candidate-address-none", "ADDR-1", "malformed", intro(bob, natZero, [][]byte{cand(2, noAddr)}, nil, 0))
	add("Introduction", "relay-token-129-bytes", "INTRO-1", "too-long", intro(bob, natZero, nil, make([]byte, MaxRelayTokenLen+1), 0))
	add("Introduction", "never-relay-and-relay-only", "FLAGS-1", "malformed", intro(bob, natZero, nil, nil, 0x03))
	add("Introduction", "flags-missing", "WIRE-2", "short", minusByte(introNoSuites(bob, natZero, nil, nil, 0)))
	add("Introduction", "peer-suites-missing", "WIRE-2", "short", introNoSuites(bob, natZero, nil, nil, 0))
	add("Introduction", "byte-after-peer-suites", "WIRE-1", "trailing", plusByte(intro(bob, natZero, nil, nil, 0)))

	// §5.8.1 introduction-ack, §5.9 error.
	add("IntroductionAck", "peer-id-empty", "INTROACK-1", "malformed", cat(hdr(TypeIntroductionAck), sess, vec8(nil)))
	add("IntroductionAck", "peer-id-65-bytes", "INTROACK-1", "too-long", cat(hdr(TypeIntroductionAck), sess, vec8(id65)))
	add("IntroductionAck", "peer-id-cut-short", "WIRE-2", "short", minusByte(cat(hdr(TypeIntroductionAck), sess, vec8(bob))))
	add("IntroductionAck", "byte-after-peer-id", "WIRE-1", "trailing", plusByte(cat(hdr(TypeIntroductionAck), sess, vec8(bob))))
	add("Error", "code-0", "ERR-1", "malformed", cat(hdr(TypeError), be64(1), be16(0), vec8(nil)))
	add("Error", "text-129-bytes", "ERR-1", "too-long", cat(hdr(TypeError), be64(1), be16(4), vec8(make([]byte, MaxErrorTextLen+1))))
	add("Error", "text-missing", "WIRE-2", "short", cat(hdr(TypeError), be64(1), be16(4)))
	add("Error", "byte-after-text", "WIRE-1", "trailing", plusByte(cat(hdr(TypeError), be64(1), be16(4), vec8([]byte("x")))))

	// §6.3 keyx messages: fixed sizes, transport data bounded.
	for _, m := range []struct {
		typ, prefix string
		t           MsgType
		size        int
	}{{"Initiation", "", TypeInitiation, InitiationLen}, {"Initiation", "aesgcm-", TypeInitiationAESGCM, InitiationLen},
		{"Response", "", TypeResponse, ResponseLen}, {"CookieReply", "", TypeCookieReply, CookieReplyLen}} {
		full := cat(hdr(m.t), pattern(1, m.size-HeaderLen))
		add(m.typ, m.prefix+"one-byte-short", "KX-1", "short", minusByte(full))
		add(m.typ, m.prefix+"one-byte-long", "KX-1", "trailing", plusByte(full))
	}
	td := cat(hdr(TypeTransportData), be32(1), be64(0), pattern(0xd0, TagLen))
	add("TransportData", "tag-cut-short", "KX-2", "short", minusByte(td))
	add("TransportData", "header-only", "KX-2", "short", td[:TransportHeaderLen])
	add("TransportData", "65508-bytes", "KX-2", "too-long", cat(td, make([]byte, MaxTransportLen+1-len(td))))

	// §7 rudp.
	add("RUDPHeader", "non-minimal-2-byte", "VARINT-1", "malformed", []byte{0x40, 0x25})
	add("RUDPHeader", "non-minimal-8-byte", "VARINT-1", "malformed", []byte{0xc0, 0, 0, 0, 0, 0, 0x12, 0x34})
	add("RUDPHeader", "varint-cut-short", "WIRE-2", "short", []byte{0x80, 0x01, 0x11})
	ack := func(parts ...uint64) []byte {
		b := []byte{byte(RUDPAckType)}
		for _, v := range parts {
			b = AppendVarint(b, v)
		}
		return b
	}
	add("RUDPAck", "32-extra-ranges", "ACK-1", "too-long", ack(100, 0, 32, 0))
	add("RUDPAck", "first-range-above-largest", "ACK-1", "malformed", ack(5, 0, 0, 6))
	add("RUDPAck", "range-below-zero", "ACK-1", "malformed", ack(10, 0, 1, 2, 5, 3))
	add("RUDPAck", "non-minimal-delay", "VARINT-1", "malformed", cat(ack(10), []byte{0x40, 0x01}, ack(0, 0)[1:]))
	add("RUDPAck", "range-missing", "WIRE-2", "short", ack(10, 0, 1, 2))
	add("RUDPAck", "byte-after-ranges", "WIRE-1", "trailing", plusByte(ack(10, 0, 0, 2)))
	add("RUDPMaxData", "non-minimal-limit", "VARINT-1", "malformed", []byte{byte(RUDPMaxDataType), 0x80, 0, 0, 0x10})
	add("RUDPMaxData", "limit-missing", "WIRE-2", "short", []byte{byte(RUDPMaxDataType)})
	add("RUDPMaxData", "byte-after-limit", "WIRE-1", "trailing", []byte{byte(RUDPMaxDataType), 0x10, 0})
	closeFrame := func(code uint16, text []byte) []byte { return cat([]byte{byte(RUDPCloseType)}, be16(code), vec8(text)) }
	add("RUDPClose", "reason-129-bytes", "CLOSE-1", "too-long", closeFrame(0, make([]byte, RUDPMaxCloseText+1)))
	add("RUDPClose", "code-cut-short", "WIRE-2", "short", []byte{byte(RUDPCloseType), 0xff})
	add("RUDPClose", "byte-after-reason", "WIRE-1", "trailing", plusByte(closeFrame(0xff01, []byte("x"))))
	ackFreq := func(fields ...uint64) []byte {
		b := []byte{byte(RUDPAckFrequencyType)}
		for _, v := range fields {
			b = AppendVarint(b, v)
		}
		return b
	}
	add("RUDPAckFrequency", "threshold-256", "ACKFREQ-1", "malformed", ackFreq(0, 256, 1000, 1))
	add("RUDPAckFrequency", "delay-over-1s", "ACKFREQ-1", "malformed", ackFreq(0, 1, 1_000_001, 1))
	add("RUDPAckFrequency", "reorder-256", "ACKFREQ-1", "malformed", ackFreq(0, 1, 1000, 256))
	// [WIRE-3]: the bad threshold decides, although the frame also ends early.
	add("RUDPAckFrequency", "threshold-256-then-cut", "ACKFREQ-1", "malformed", ackFreq(0, 256))
	add("RUDPAckFrequency", "reorder-missing", "WIRE-2", "short", ackFreq(0, 1, 1000))
	add("RUDPAckFrequency", "non-minimal-threshold", "VARINT-1", "malformed", []byte{byte(RUDPAckFrequencyType), 0, 0x40, 0x01, 0x00, 0x01})
	add("RUDPAckFrequency", "byte-after-reorder", "WIRE-1", "trailing", plusByte(ackFreq(0, 1, 1000, 1)))
	data := func(t byte, lane byte, varints ...uint64) []byte {
		b := []byte{t, lane}
		for _, v := range varints {
			b = AppendVarint(b, v)
		}
		return b
	}
	add("RUDPData", "lane-16", "DATA-1", "malformed", cat(data(0x10, 16, 0, 1), []byte{7}))
	add("RUDPData", "fragment-count-1", "DATA-2", "malformed", cat(data(0x11, 0, 0, 4, 1, 0, 4), []byte{1, 2, 3, 4}))
	add("RUDPData", "fragment-index-equals-count", "DATA-2", "malformed", cat(data(0x11, 0, 0, 4, 2, 2, 2), []byte{1, 2}))
	add("RUDPData", "fragment-length-wrong", "DATA-2", "malformed", cat(data(0x11, 0, 0, 10, 3, 2, 3), []byte{1, 2, 3}))
	add("RUDPData", "fragment-last-empty", "DATA-2", "malformed", cat(data(0x11, 0, 0, 4, 3, 0, 2), []byte{1, 2}))
	add("RUDPData", "fragment-total-over-2^30", "DATA-2", "malformed", data(0x17, 0, 0, 1<<30+1, 2, 0, 1<<29+1))
	add("RUDPData", "whole-length-over-2^30", "DATA-3", "too-long", data(0x10, 0, 0, 1<<30+1))
	add("RUDPData", "data-cut-short", "DATA-4", "short", cat(data(0x10, 0, 0, 5), []byte("hell")))
	add("RUDPData", "non-minimal-seq", "VARINT-1", "malformed", cat([]byte{0x10, 0, 0x40, 0x07}, AppendVarint(nil, 1), []byte{9}))
	add("RUDPData", "byte-after-data", "WIRE-1", "trailing", plusByte(cat(data(0x10, 0, 0, 2), []byte("hi"))))
	add("RUDPPacket", "packet-number-only", "RUDP-1", "short", []byte{0x07})
	add("RUDPPacket", "empty", "RUDP-1", "short", []byte{})
	add("RUDPPacket", "frame-type-0x06", "RUDP-1", "malformed", []byte{0x07, 0x06})
	add("RUDPPacket", "frame-type-0x18", "RUDP-1", "malformed", cat([]byte{0x07}, data(0x18, 0, 0, 0)))
	add("RUDPPacket", "padding-not-zero", "RUDP-2", "malformed", []byte{0x07, byte(RUDPPing), 0, 0, 0, 1})
	add("RUDPPacket", "garbage-after-close", "RUDP-1", "malformed", cat([]byte{0x07}, closeFrame(0, nil), []byte{0x06}))
	add("RUDPPacket", "bad-frame-after-good", "DATA-1", "malformed", cat([]byte{0x07, byte(RUDPPing)}, data(0x10, 16, 0, 0)))
	add("RUDPPacket", "non-minimal-packet-number", "VARINT-1", "malformed", []byte{0x40, 0x07, byte(RUDPPing)})

	// §8 relay frames.
	alloc := func(id, token []byte) []byte {
		return cat(hdr(TypeRelayAllocate), sess, be64(1), vec8(id), vec16(token))
	}
	add("RelayAllocate", "peer-id-empty", "RALLOC-1", "malformed", alloc(nil, vecRelayToken))
	add("RelayAllocate", "token-empty", "RALLOC-1", "malformed", alloc(bob, nil))
	add("RelayAllocate", "token-129-bytes", "RALLOC-1", "too-long", alloc(bob, make([]byte, MaxRelayTokenLen+1)))
	add("RelayAllocate", "token-cut-short", "WIRE-2", "short", minusByte(alloc(bob, vecRelayToken)))
	add("RelayAllocate", "byte-after-token", "WIRE-1", "trailing", plusByte(alloc(bob, vecRelayToken)))
	allocd := func(channel uint16, flags byte, lifetime uint32, token []byte) []byte {
		return cat(hdr(TypeRelayAllocated), be64(1), be16(channel), []byte{flags}, be32(lifetime), vec16(token))
	}
	add("RelayAllocated", "channel-0", "RALLOCD-1", "malformed", allocd(0, 0, 600, vecRelayToken))
	add("RelayAllocated", "flag-bit-1", "RALLOCD-1", "malformed", allocd(1, 0x02, 600, vecRelayToken))
	add("RelayAllocated", "lifetime-0", "RALLOCD-1", "malformed", allocd(1, 1, 0, vecRelayToken))
	add("RelayAllocated", "token-empty", "RALLOCD-1", "malformed", allocd(1, 1, 600, nil))
	add("RelayAllocated", "token-cut-short", "WIRE-2", "short", minusByte(allocd(1, 1, 600, vecRelayToken)))
	add("RelayAllocated", "byte-after-token", "WIRE-1", "trailing", plusByte(allocd(1, 1, 600, vecRelayToken)))
	add("RelayData", "send-channel-0", "RDATA-1", "malformed", cat(hdr(TypeRelaySend), be16(0), []byte{0xe1}))
	add("RelayData", "send-no-packet", "RDATA-1", "short", cat(hdr(TypeRelaySend), be16(1)))
	add("RelayData", "send-1473-bytes", "RDATA-1", "too-long", cat(hdr(TypeRelaySend), be16(1), make([]byte, MaxRelayPacketLen+1)))
	add("RelayData", "deliver-channel-0", "RDATA-1", "malformed", cat(hdr(TypeRelayDeliver), be16(0), []byte{0xe1}))
	add("RelayData", "deliver-channel-cut-short", "RDATA-1", "short", cat(hdr(TypeRelayDeliver), []byte{0}))
	add("RelayData", "deliver-1473-bytes", "RDATA-1", "too-long", cat(hdr(TypeRelayDeliver), be16(1), make([]byte, MaxRelayPacketLen+1)))

	// §9 probes.
	probe := func(flags byte) []byte { return cat(hdr(TypeProbe), be64(0x70a1), be64(42), []byte{flags}, mac16) }
	add("Probe", "flag-bit-2", "PROBE-5", "malformed", probe(0x04))
	add("Probe", "tag-cut-short", "WIRE-2", "short", minusByte(probe(1)))
	add("Probe", "byte-after-tag", "WIRE-1", "trailing", plusByte(probe(1)))
	reply := func(flags byte, observed []byte) []byte {
		return cat(hdr(TypeProbeReply), be64(0x70a1), be64(42), []byte{flags}, observed, mac16)
	}
	add("ProbeReply", "flag-bit-7", "PROBE-5", "malformed", reply(0x80, v4))
	add("ProbeReply", "observed-none", "PROBE-5", "malformed", reply(0, noAddr))
	add("ProbeReply", "observed-v4-mapped", "ADDR-2", "malformed", reply(0, mapped))
	add("ProbeReply", "tag-cut-short", "WIRE-2", "short", minusByte(reply(0, v6)))
	add("ProbeReply", "byte-after-tag", "WIRE-1", "trailing", plusByte(reply(0, v6)))
	out = append(out, familyRejectVectors()...)
	out = append(out, retryRejectVectors()...)
	return append(append(append(out, clusterRejectVectors()...), roomRejectVectors()...), roomClusterRejectVectors()...)
}

// kebab spells a Go type name as the vector names do: NATProbeReply → nat-probe-reply.
func kebab(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		upper := c >= 'A' && c <= 'Z'
		if upper && i > 0 {
			prevLower := s[i-1] >= 'a' && s[i-1] <= 'z'
			nextLower := i+1 < len(s) && s[i+1] >= 'a' && s[i+1] <= 'z'
			if prevLower || nextLower {
				b = append(b, '-')
			}
		}
		if upper {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

// parserRegistry maps the type names of the vector files to fresh parse targets.
func parserRegistry() map[string]func() message {
	reg := map[string]func() message{"Datagram": func() message { return new(datagram) }}
	for _, list := range [][]vectorCase{vectorCases, openEndedVectorCases, relayDataVectorCases, rudpPacketVectorCases, clusterRelayDataVectorCases} {
		for _, c := range list {
			reg[reflect.TypeOf(c.Msg).Elem().Name()] = c.New
		}
	}
	return reg
}

// TestRejectVectors: reject.json matches the cases above, and every Go parser
// refuses each input with the class the file names.
func TestRejectVectors(t *testing.T) {
	want := rejectFile{Comment: rejectComment, Vectors: rejectVectors()}
	path := filepath.Join("testdata", "vectors", "reject.json")
	b, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if file, err := os.ReadFile(path); err != nil {
		t.Fatalf("%v (run go test ./proto -update to create it)", err)
	} else if !bytes.Equal(file, b) {
		t.Errorf("%s differs from the cases in reject_vectors_test.go; run go test ./proto -update and review the diff", path)
	}

	reg := parserRegistry()
	seen := map[string]bool{}
	for _, v := range want.Vectors {
		if seen[v.Type+"/"+v.Name] {
			t.Errorf("%s/%s: duplicate name", v.Type, v.Name)
		}
		seen[v.Type+"/"+v.Name] = true
		fresh, ok := reg[v.Type]
		class, okClass := errorClasses[v.Error]
		if !ok || !okClass || v.Rule == "" {
			t.Errorf("%s/%s: unknown type %q, class %q or no rule", v.Type, v.Name, v.Type, v.Error)
			continue
		}
		p, _ := hex.DecodeString(v.Hex)
		if err := fresh().Parse(p); !errors.Is(err, class) {
			t.Errorf("%s/%s (%s): err = %v, want %s", v.Type, v.Name, v.Rule, err, v.Error)
		}
	}
}

// TestRejectVectorsCoverEveryType: every type that has layout vectors, and every
// message type of §3, has must-reject vectors too; every rule a vector cites is
// stated in PROTOCOL.md.
func TestRejectVectorsCoverEveryType(t *testing.T) {
	byType := map[string]bool{}
	byMsgType := map[MsgType]bool{}
	var rules []string
	for _, v := range rejectVectors() {
		byType[v.Type] = true
		rules = append(rules, v.Rule)
		if v.Type == "Datagram" || v.Type == "Ticket" || v.Type[:4] == "RUDP" {
			continue
		}
		p, _ := hex.DecodeString(v.Hex)
		if len(p) >= 2 {
			byMsgType[MsgType(p[1])] = true
		}
	}
	for name := range parserRegistry() {
		if !byType[name] {
			t.Errorf("%s has layout vectors but no must-reject vector", name)
		}
	}
	for typ, name := range typeNames {
		if name != "" && !byMsgType[MsgType(typ)] {
			t.Errorf("message type %s has no must-reject vector", name)
		}
	}
	spec, err := os.ReadFile(filepath.Join("..", "PROTOCOL.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if !bytes.Contains(spec, []byte("**["+r+"]")) {
			t.Errorf("rule %s is cited by a vector but not stated (as **[%s]**) in PROTOCOL.md", r, r)
		}
	}
}

// TestVectorFilesLoad: every file in testdata/vectors is JSON of the documented shape
// (a comment and a non-empty vectors array of uniquely named entries) and is listed
// in the folder's README, which documents the format.
func TestVectorFilesLoad(t *testing.T) {
	dir := filepath.Join("testdata", "vectors")
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vector files (%v)", err)
	}
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Comment string `json:"comment"`
			Vectors []struct {
				Name string `json:"name"`
			} `json:"vectors"`
		}
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if f.Comment == "" || len(f.Vectors) == 0 {
			t.Errorf("%s: no comment or no vectors", path)
		}
		names := map[string]bool{}
		for _, v := range f.Vectors {
			if v.Name == "" || names[v.Name] {
				t.Errorf("%s: empty or duplicate vector name %q", path, v.Name)
			}
			names[v.Name] = true
		}
		if base := filepath.Base(path); !bytes.Contains(readme, []byte("`"+base+"`")) {
			t.Errorf("%s is not described in %s/README.md", base, dir)
		}
	}
}
