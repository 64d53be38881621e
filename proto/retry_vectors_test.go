package proto

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
)

// vecRetryToken is a recognisable admission token: a node echoes whatever bytes the
// server sent, so the vectors need no real MAC.
var vecRetryToken = [RetryTokenLen]byte{0: 0x70, 1: 0x6b, 14: 0x0e, 15: 0xff}

func init() {
	newRetry := func() message { return new(Retry) }
	newRegister := func() message { return new(Register) }
	vectorCases = append(vectorCases,
		vectorCase{File: "retry", Name: "retry", Msg: &Retry{TxID: 0x0102030405060708, Token: vecRetryToken}, New: newRetry},
		vectorCase{File: "retry", Name: "retry-txid-0-token-zero", Msg: &Retry{}, New: newRetry},
		// [REG-4]: the register repeated with the retry's token after the suites byte.
		vectorCase{File: "register", Name: "register-with-token", Msg: &Register{TxID: 0x0102030405060708, Ticket: vecTicket,
			Hosts: []netip.AddrPort{vecLAN}, Suites: SuitesOf(SuiteChaChaPoly), Token: vecRetryToken[:]}, New: newRegister})
}

// retryRejectVectors are the must-reject inputs of retry (§5.13) and of register's
// token ([REG-4]).
func retryRejectVectors() []rejectVector {
	var out []rejectVector
	add := func(typ, name, rule, class string, p []byte) {
		out = append(out, rejectVector{Name: kebab(typ) + "-" + name, Type: typ, Hex: hex.EncodeToString(p), Rule: rule, Error: class})
	}
	tok := vecRetryToken[:]
	retry := func(token []byte) []byte { return cat(hdr(TypeRetry), be64(7), token) }
	add("Retry", "25-bytes", "RETRY-1", "short", retry(tok[1:]))
	add("Retry", "no-token", "RETRY-1", "short", retry(nil))
	add("Retry", "txid-cut-short", "RETRY-1", "short", cat(hdr(TypeRetry), []byte{0, 0, 0}))
	add("Retry", "27-bytes", "WIRE-1", "trailing", retry(append(bytes.Clone(tok), 0)))

	reg := cat(hdr(TypeRegister), be64(1), vec16(vecTicket), []byte{0}, []byte{0x01})
	add("Register", "token-1-byte", "REG-4", "short", cat(reg, tok[:1]))
	add("Register", "token-15-bytes", "REG-4", "short", cat(reg, tok[:15]))
	add("Register", "byte-after-token", "WIRE-1", "trailing", cat(reg, tok, []byte{0}))
	add("Register", "two-tokens", "WIRE-1", "trailing", cat(reg, tok, tok))
	return out
}

// TestRetrySize: every retry is RetryLen bytes, no larger than the smallest register
// whose ticket parses, so answering one with a challenge never amplifies ([AMP-1]).
func TestRetrySize(t *testing.T) {
	m := Retry{TxID: ^uint64(0), Token: vecRetryToken}
	if n := len(m.Append(nil)); n != RetryLen {
		t.Fatalf("retry is %d bytes, want %d", n, RetryLen)
	}
	shortestTicket := (&Ticket{PeerID: []byte("a")}).Append(nil)
	smallest := (&Register{Ticket: shortestTicket}).Append(nil)
	if RetryLen > len(smallest) {
		t.Fatalf("retry (%d bytes) is larger than the smallest register with a ticket (%d)", RetryLen, len(smallest))
	}
	with := (&Register{Ticket: shortestTicket, Token: vecRetryToken[:]}).Append(nil)
	if len(with) != len(smallest)+RetryTokenLen {
		t.Fatalf("a token adds %d bytes, want %d", len(with)-len(smallest), RetryTokenLen)
	}
}

// TestRegisterTokenReset: parsing a register without a token into a value that held
// one clears it (the server reuses one Register for every datagram).
func TestRegisterTokenReset(t *testing.T) {
	var m Register
	if err := m.Parse((&Register{TxID: 1, Ticket: vecTicket, Token: vecRetryToken[:]}).Append(nil)); err != nil || len(m.Token) != RetryTokenLen {
		t.Fatalf("with token: err %v, token %x", err, m.Token)
	}
	if err := m.Parse((&Register{TxID: 1, Ticket: vecTicket}).Append(nil)); err != nil || m.Token != nil {
		t.Fatalf("without token: err %v, token %x (want none)", err, m.Token)
	}
}

// TestRegisterTokenLengthPanics: the encoder refuses a token of a length no parser
// accepts.
func TestRegisterTokenLengthPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a 15-byte token encoded")
		}
	}()
	(&Register{Ticket: vecTicket, Token: make([]byte, 15)}).Append(nil)
}
