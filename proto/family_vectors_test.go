package proto

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func init() {
	fresh := func() message { return new(RegisterFamily) }
	vectorCases = append(vectorCases,
		vectorCase{File: "register-family", Name: "register-family", Msg: &RegisterFamily{Session: vecSession, TxID: 0x0102030405060708}, New: fresh},
		vectorCase{File: "register-family", Name: "register-family-txid-0", Msg: &RegisterFamily{Session: vecSession}, New: fresh})
}

// familyRejectVectors are the must-reject inputs of register-family (§5.12): the
// size is exact and the padding zero, so the request always pays for its reply.
func familyRejectVectors() []rejectVector {
	var out []rejectVector
	add := func(name, rule, class string, p []byte) {
		out = append(out, rejectVector{Name: "register-family-" + name, Type: "RegisterFamily", Hex: hex.EncodeToString(p), Rule: rule, Error: class})
	}
	regf := func(pad []byte) []byte { return cat(hdr(TypeRegisterFamily), sess, be64(7), pad) }
	zero := make([]byte, registerFamilyPadding)
	add("87-bytes", "REGF-1", "short", regf(zero[1:]))
	add("no-padding", "REGF-1", "short", regf(nil))
	add("txid-cut-short", "REGF-1", "short", cat(hdr(TypeRegisterFamily), sess, []byte{0, 0, 0}))
	add("89-bytes", "WIRE-1", "trailing", regf(append(bytes.Clone(zero), 0)))
	first := bytes.Clone(zero)
	first[0] = 1
	add("padding-first-byte-1", "REGF-1", "malformed", regf(first))
	last := bytes.Clone(zero)
	last[len(last)-1] = 0x80
	add("padding-last-byte-0x80", "REGF-1", "malformed", regf(last))
	// [WIRE-3]: the padding decides before the length does.
	add("padding-nonzero-then-byte-after", "REGF-1", "malformed", regf(append(last, 0)))
	return out
}

// TestRegisterFamilySize: every register-family is RegisterFamilyLen bytes, larger
// than the largest registered that answers it ([AMP-1]).
func TestRegisterFamilySize(t *testing.T) {
	m := RegisterFamily{Session: vecSession, TxID: ^uint64(0)}
	if n := len(m.Append(nil)); n != RegisterFamilyLen {
		t.Fatalf("register-family is %d bytes, want %d", n, RegisterFamilyLen)
	}
	largest := Registered{TxID: 1, Session: vecSession, Observed: vecV6, Keepalive: 25, AltPort: vecV6, AltAddr: vecV6}
	if n := len(largest.Append(nil)); n >= RegisterFamilyLen {
		t.Fatalf("the largest registered is %d bytes, not below register-family's %d", n, RegisterFamilyLen)
	}
}
