package proto

import (
	"errors"
	"testing"
)

// Vectors for the keyx wire formats. The field bytes here are recognisable patterns,
// not real cryptography: these vectors pin the layout. keyx/testdata/vectors holds a
// whole handshake computed from fixed keys, which pins the cryptography.

// pattern returns n bytes start, start+1, ... so that every field is recognisable in
// the hex of a vector and a field that moves by one byte shows.
func pattern(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func init() {
	add := func(file, name string, m message, fresh func() message) {
		vectorCases = append(vectorCases, vectorCase{File: file, Name: name, Msg: m, New: fresh})
	}

	ini := &Initiation{Sender: 0x1a2b3c4d}
	copy(ini.Ephemeral[:], pattern(0x20, PointLen))
	copy(ini.Static[:], pattern(0x40, len(ini.Static)))
	copy(ini.Timestamp[:], pattern(0x80, len(ini.Timestamp)))
	copy(ini.MAC1[:], pattern(0xa0, MACLen))
	add("initiation", "initiation-no-mac2", ini, func() message { return new(Initiation) })
	ini2 := *ini
	copy(ini2.MAC2[:], pattern(0xc0, MACLen))
	add("initiation", "initiation-with-mac2", &ini2, func() message { return new(Initiation) })
	ini3 := ini2
	ini3.Suite = SuiteAESGCM
	add("initiation", "initiation-aesgcm-with-mac2", &ini3, func() message { return new(Initiation) })

	resp := &Response{Sender: 0x5e5e0001, Receiver: 0x1a2b3c4d}
	copy(resp.Ephemeral[:], pattern(0x30, PointLen))
	copy(resp.Empty[:], pattern(0x60, TagLen))
	copy(resp.MAC1[:], pattern(0xb0, MACLen))
	add("response", "response-no-mac2", resp, func() message { return new(Response) })

	cr := &CookieReply{Receiver: 0x1a2b3c4d}
	copy(cr.Nonce[:], pattern(0x10, CookieNonceLen))
	copy(cr.Cookie[:], pattern(0x70, len(cr.Cookie)))
	add("cookie-reply", "cookie-reply", cr, func() message { return new(CookieReply) })

	// Transport data has no trailing-byte rule (the ciphertext runs to the end of the
	// datagram), so its vectors live in a list of their own that TestTransportVectors
	// checks; the generic tests assume a message ends at a fixed field.
	addOpen := func(name string, m *TransportData) {
		openEndedVectorCases = append(openEndedVectorCases, vectorCase{File: "transport-data", Name: name,
			Msg: m, New: func() message { return new(TransportData) }})
	}
	addOpen("transport-keepalive", &TransportData{Receiver: 0x5e5e0001, Counter: 0, Ciphertext: pattern(0xd0, TagLen)})
	addOpen("transport-data-high-counter", &TransportData{Receiver: 0x1a2b3c4d, Counter: 1<<60 + 7,
		Ciphertext: pattern(0x01, TagLen+5)})
}

// openEndedVectorCases are vectors of messages whose last field takes the rest of the
// datagram.
var openEndedVectorCases []vectorCase

func TestTransportVectors(t *testing.T) {
	checkOpenEndedVectors(t, "transport-data", "TransportData", openEndedVectorCases, TransportOverhead-1)
}

func TestTransportDataBounds(t *testing.T) {
	big := make([]byte, MaxTransportLen+1)
	copy(big, AppendTransportHeader(nil, 1, 1))
	if err := new(TransportData).Parse(big); !errors.Is(err, ErrTooLong) {
		t.Errorf("oversized transport data: err = %v, want ErrTooLong", err)
	}
	if err := new(TransportData).Parse(big[:MaxTransportLen]); err != nil {
		t.Errorf("largest transport data: %v", err)
	}
	if err := new(TransportData).Parse(big[:TransportOverhead-1]); !errors.Is(err, ErrShort) {
		t.Errorf("transport data without a whole tag: err = %v, want ErrShort", err)
	}
}

func TestKeyxTypeNames(t *testing.T) {
	for typ, want := range map[MsgType]string{TypeInitiation: "initiation", TypeResponse: "response",
		TypeCookieReply: "cookie-reply", TypeTransportData: "transport-data",
		TypeInitiationAESGCM: "initiation-aesgcm", 0x15: "type-0x15"} {
		if got := typ.String(); got != want {
			t.Errorf("%#x.String() = %q, want %q", uint8(typ), got, want)
		}
	}
	if InitiationLen != 146 || ResponseLen != 90 || CookieReplyLen != 62 || TransportOverhead != 30 {
		t.Errorf("sizes %d/%d/%d/%d differ from PROTOCOL.md §6.3 (146/90/62/30)",
			InitiationLen, ResponseLen, CookieReplyLen, TransportOverhead)
	}
}

func TestSuites(t *testing.T) {
	set := SuitesOf(SuiteChaChaPoly, SuiteAESGCM)
	if set != 0x03 || !set.Has(SuiteAESGCM) || SuitesOf(SuiteChaChaPoly).Has(SuiteAESGCM) || set.Has(7) || set.Has(200) {
		t.Errorf("SuiteSet encoding differs from PROTOCOL.md §6.1: %#x", set)
	}
	for s, want := range map[Suite]string{SuiteChaChaPoly: "ChaChaPoly", SuiteAESGCM: "AESGCM", 9: "suite-09"} {
		if got := s.String(); got != want {
			t.Errorf("Suite(%d).String() = %q, want %q", s, got, want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Append of an initiation with an undefined suite did not panic")
		}
	}()
	(&Initiation{Suite: 2}).Append(nil)
}
