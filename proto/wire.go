package proto

import (
	"encoding/binary"
	"net/netip"
)

// reader consumes a message body field by field. The first failure sticks, so a
// parser reads every field and checks err once; it lives on the caller's stack and
// allocates nothing.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail(ErrShort)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.bytes(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.bytes(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.bytes(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// array fills dst with the next len(dst) bytes.
func (r *reader) array(dst []byte) {
	copy(dst, r.bytes(len(dst)))
}

// vec8 reads a byte string with a one-byte length in [lo, hi].
func (r *reader) vec8(lo, hi int) []byte {
	n := int(r.u8())
	return r.bounded(n, lo, hi)
}

// vec16 reads a byte string with a two-byte length in [lo, hi].
func (r *reader) vec16(lo, hi int) []byte {
	n := int(r.u16())
	return r.bounded(n, lo, hi)
}

func (r *reader) bounded(n, lo, hi int) []byte {
	if r.err != nil {
		return nil
	}
	if n > hi {
		r.fail(ErrTooLong)
		return nil
	}
	if n < lo {
		r.fail(ErrMalformed)
		return nil
	}
	if n == 0 {
		return nil // empty and absent encode alike; nil keeps round trips exact
	}
	return r.bytes(n)
}

// Address families on the wire.
const (
	familyNone = 0
	familyIPv4 = 4
	familyIPv6 = 6
)

// addrOpt reads an optional address: family 0 is "none" and yields the zero AddrPort.
func (r *reader) addrOpt() netip.AddrPort {
	switch r.u8() {
	case familyNone:
		return netip.AddrPort{}
	case familyIPv4:
		var a [4]byte
		r.array(a[:])
		return r.port(netip.AddrFrom4(a))
	case familyIPv6:
		var a [16]byte
		r.array(a[:])
		ip := netip.AddrFrom16(a)
		if ip.Is4In6() {
			// Canonical form carries IPv4 as family 4, never as a mapped address.
			r.fail(ErrMalformed)
		}
		return r.port(ip)
	}
	r.fail(ErrMalformed)
	return netip.AddrPort{}
}

// addr reads a required address.
func (r *reader) addr() netip.AddrPort {
	a := r.addrOpt()
	if r.err == nil && !a.IsValid() {
		r.fail(ErrMalformed)
	}
	return a
}

func (r *reader) port(ip netip.Addr) netip.AddrPort {
	p := r.u16()
	if r.err == nil && p == 0 {
		r.fail(ErrMalformed)
	}
	return netip.AddrPortFrom(ip, p)
}

// done reports the sticky error, or ErrTrailing if bytes remain.
func (r *reader) done() error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return ErrTrailing
	}
	return nil
}

// AddrLen is the encoded size of an address: 7 bytes for IPv4, 19 for IPv6, 1 for none.
func AddrLen(a netip.AddrPort) int {
	switch {
	case !a.IsValid():
		return 1
	case a.Addr().Unmap().Is4():
		return 1 + 4 + 2
	}
	return 1 + 16 + 2
}

// appendAddr encodes a (or "none" for the zero AddrPort). IPv4-mapped addresses are
// written as IPv4 and zones are dropped, which is the canonical form Parse accepts.
func appendAddr(b []byte, a netip.AddrPort) []byte {
	if !a.IsValid() {
		return append(b, familyNone)
	}
	ip := a.Addr().Unmap()
	if ip.Is4() {
		v := ip.As4()
		b = append(b, familyIPv4)
		b = append(b, v[:]...)
	} else {
		v := ip.As16()
		b = append(b, familyIPv6)
		b = append(b, v[:]...)
	}
	return binary.BigEndian.AppendUint16(b, a.Port())
}

// mustLen panics when a caller hands Append a field over its bound: encoding it would
// produce a packet every peer rejects.
func mustLen(field string, n, lo, hi int) {
	if n < lo || n > hi {
		panic("proto: " + field + " length out of range")
	}
}

func appendVec8(b []byte, field string, v []byte, lo, hi int) []byte {
	mustLen(field, len(v), lo, hi)
	b = append(b, byte(len(v)))
	return append(b, v...)
}

func appendVec16(b []byte, field string, v []byte, lo, hi int) []byte {
	mustLen(field, len(v), lo, hi)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}
