package proto

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	// RFC 7983 §7: 0–3 STUN, 16–19 ZRTP, 20–63 DTLS, 64–79 TURN channel, 128–191 RTP/RTCP.
	for b := 0; b < 256; b++ {
		want := ClassUnknown
		switch {
		case b <= 3:
			want = ClassSTUN
		case b >= 0xE0 && b <= 0xEF:
			want = ClassNatpass
		}
		if got := Classify([]byte{byte(b)}); got != want {
			t.Errorf("Classify(%#02x) = %v, want %v", b, got, want)
		}
		if want == ClassNatpass && (b >= 16 && b <= 79 || b >= 128 && b <= 191) {
			t.Errorf("natpass range overlaps an RFC 7983 range at %#02x", b)
		}
	}
	if Classify(nil) != ClassUnknown {
		t.Error("empty datagram must classify as unknown")
	}
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Header
		rest int
		err  error
	}{
		{"register", []byte{0xE1, 0x01, 9, 9}, Header{Version: 1, Type: TypeRegister}, 2, nil},
		{"header only", []byte{0xE1, 0x09}, Header{Version: 1, Type: TypeError}, 0, nil},
		{"empty", nil, Header{}, 0, ErrShort},
		{"version byte only", []byte{0xE1}, Header{Version: 1}, 0, ErrShort},
		{"version 0", []byte{0xE0, 0x01}, Header{Version: 0}, 0, ErrUnknownVersion},
		{"version 2", []byte{0xE2, 0x01}, Header{Version: 2}, 0, ErrUnknownVersion},
		{"version 15", []byte{0xEF, 0x01}, Header{Version: 15}, 0, ErrUnknownVersion},
		{"stun binding request", []byte{0x00, 0x01, 0x00, 0x00}, Header{}, 0, ErrNotNatpass},
		{"dtls", []byte{0x16, 0xfe}, Header{}, 0, ErrNotNatpass},
		{"reserved high range", []byte{0xF1, 0x01}, Header{}, 0, ErrNotNatpass},
	}
	for _, tt := range tests {
		h, rest, err := ParseHeader(tt.in)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.err)
		}
		if h != tt.want || len(rest) != tt.rest {
			t.Errorf("%s: got %+v rest %d, want %+v rest %d", tt.name, h, len(rest), tt.want, tt.rest)
		}
	}
}

func TestParseHeaderAllocatesNothing(t *testing.T) {
	p := (&Keepalive{Seq: 1}).Append(nil)
	bad := []byte{0xE7, 0x01}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, _, err := ParseHeader(p); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ParseHeader(bad); err == nil {
			t.Fatal("want error")
		}
	})
	if allocs != 0 {
		t.Errorf("ParseHeader allocates %v times per call, want 0", allocs)
	}
}

func TestParseReusedMessageAllocatesNothing(t *testing.T) {
	reg := (&Register{TxID: 5, Ticket: vecTicket, Hosts: []netip.AddrPort{vecLAN, vecV6}}).Append(nil)
	ka := (&Keepalive{Session: vecSession, Seq: 3}).Append(nil)
	var m Register
	var k Keepalive
	_ = m.Parse(reg) // first parse sizes the Hosts slice
	allocs := testing.AllocsPerRun(1000, func() {
		if m.Parse(reg) != nil || k.Parse(ka) != nil {
			t.Fatal("parse failed")
		}
	})
	if allocs != 0 {
		t.Errorf("parsing into reused messages allocates %v times, want 0", allocs)
	}
}

func TestMsgTypeString(t *testing.T) {
	if got := TypeIntroduction.String(); got != "introduction" {
		t.Errorf("got %q", got)
	}
	if got := MsgType(0x4a).String(); got != "type-0x4a" {
		t.Errorf("got %q", got)
	}
}

func TestInstantAddSaturates(t *testing.T) {
	if got := Instant(5).Add(time.Second); got != Instant(5+time.Second) {
		t.Errorf("5ns + 1s = %d", got)
	}
	if got := Instant(Never - 10).Add(time.Hour); got != Never {
		t.Errorf("near-Never + 1h = %d, want Never", got)
	}
	if got := Never.Add(-time.Hour); got != Never {
		t.Errorf("Never - 1h = %d, want Never", got)
	}
	if got := Min(3, 2); got != 2 {
		t.Errorf("Min(3,2) = %d", got)
	}
	if got := Instant(3 * time.Second).Sub(Instant(time.Second)); got != 2*time.Second {
		t.Errorf("Sub = %v", got)
	}
}
