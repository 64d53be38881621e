package proto

import (
	"errors"
	"net/netip"
	"testing"
)

// Every vector, cut short at any byte, must be rejected: a parser that accepts a
// prefix would read fields the sender never wrote. The one exception is register's
// optional token ([REG-4]): without it the rest is a register of its own.
func TestTruncatedVectorsRejected(t *testing.T) {
	for _, c := range vectorCases {
		wire := c.Msg.Append(nil)
		withoutToken := -1
		if r, ok := c.Msg.(*Register); ok && len(r.Token) > 0 {
			withoutToken = len(wire) - RetryTokenLen
		}
		for n := 0; n < len(wire); n++ {
			if err := c.New().Parse(wire[:n]); err == nil && n != withoutToken {
				t.Errorf("%s: prefix of %d/%d bytes accepted", c.Name, n, len(wire))
			}
		}
	}
}

// TestTrailingByteRejected: a byte after the last field is trailing, except after
// a register without a token, where it starts a token that is then short ([REG-4]).
func TestTrailingByteRejected(t *testing.T) {
	for _, c := range vectorCases {
		wire := append(c.Msg.Append(nil), 0)
		want := ErrTrailing
		if r, ok := c.Msg.(*Register); ok && len(r.Token) == 0 {
			want = ErrShort
		}
		if err := c.New().Parse(wire); !errors.Is(err, want) {
			t.Errorf("%s: trailing byte: err = %v, want %v", c.Name, err, want)
		}
	}
}

func TestWrongTypeAndVersionRejected(t *testing.T) {
	for _, c := range vectorCases {
		wire := c.Msg.Append(nil)
		if Classify(wire) != ClassNatpass {
			continue // the ticket is not a packet
		}
		other := append([]byte(nil), wire...)
		other[1] ^= 0x80
		if err := c.New().Parse(other); !errors.Is(err, ErrWrongType) {
			t.Errorf("%s: other type: err = %v, want ErrWrongType", c.Name, err)
		}
		other[1] = wire[1]
		other[0] = 0xE2
		if err := c.New().Parse(other); !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("%s: version 2: err = %v, want ErrUnknownVersion", c.Name, err)
		}
	}
}

func TestInvalidFieldsRejected(t *testing.T) {
	keepalive := (&Keepalive{Seq: 1}).Append(nil)
	registered := (&Registered{TxID: 1, Observed: vecV4, Keepalive: 25}).Append(nil)
	probe := (&NATProbe{TxID: 1}).Append(nil)
	intro := (&Introduction{PeerID: []byte("b"), Candidates: []Candidate{{CandidateHost, vecLAN}}}).Append(nil)
	req := (&IntroduceRequest{PeerID: []byte("b")}).Append(nil)
	errMsg := (&Error{Code: CodeMalformed}).Append(nil)
	mapped := netip.AddrPortFrom(netip.AddrFrom16(netip.MustParseAddr("::ffff:192.0.2.1").As16()), 9)

	set := func(p []byte, i int, v byte) []byte {
		q := append([]byte(nil), p...)
		q[i] = v
		return q
	}
	// Offsets below follow PROTOCOL.md's layouts.
	registeredObserved := HeaderLen + 8 + SessionLen
	introNAT := HeaderLen + 8 + 2 + KeyLen
	introCand := introNAT + NATBehaviorLen + 2
	tests := []struct {
		name string
		m    message
		p    []byte
		err  error
	}{
		{"keepalive short", new(Keepalive), keepalive[:len(keepalive)-1], ErrShort},
		{"address family 5", new(Registered), set(registered, registeredObserved, 5), ErrMalformed},
		{"empty packet", new(Registered), nil, ErrShort},
		{"keepalive interval 0", new(Registered), set(set(registered, registeredObserved+7, 0), registeredObserved+8, 0), ErrMalformed},
		{"port 0", new(Registered), set(set(registered, registeredObserved+5, 0), registeredObserved+6, 0), ErrMalformed},
		{"unknown change flag", new(NATProbe), set(probe, len(probe)-1, 4), ErrMalformed},
		{"intro both policies", new(IntroduceRequest), set(req, len(req)-1, 3), ErrMalformed},
		{"intro both policies, refresh", new(IntroduceRequest), set(req, len(req)-1, 7), ErrMalformed},
		{"intro unknown flag", new(IntroduceRequest), set(req, len(req)-1, 8), ErrMalformed},
		{"peer ID empty", new(IntroduceRequest), set(req, HeaderLen+SessionLen+8, 0), ErrMalformed},
		{"peer ID too long", new(IntroduceRequest), set(req, HeaderLen+SessionLen+8, 65), ErrTooLong},
		{"mapping 4", new(Introduction), set(intro, introNAT, 4), ErrMalformed},
		{"delta without sequential", new(Introduction), set(intro, introNAT+6, 1), ErrMalformed},
		{"nat reserved flag", new(Introduction), set(intro, introNAT+4, 2), ErrMalformed},
		{"17 candidates", new(Introduction), set(intro, introCand, 17), ErrTooLong},
		{"candidate kind 0", new(Introduction), set(intro, introCand+1, 0), ErrMalformed},
		{"error code 0", new(Error), set(errMsg, HeaderLen+9, 0), ErrMalformed},
	}
	for _, tt := range tests {
		if err := tt.m.Parse(tt.p); !errors.Is(err, tt.err) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.err)
		}
	}
	// IPv4 must travel as family 4: a v4-mapped IPv6 address is not canonical.
	ack := (&KeepaliveAck{Seq: 1, Observed: netip.MustParseAddrPort("[2001:db8::1]:9")}).Append(nil)
	v := mapped.Addr().As16()
	copy(ack[HeaderLen+4+1:], v[:])
	if err := new(KeepaliveAck).Parse(ack); !errors.Is(err, ErrMalformed) {
		t.Errorf("v4-mapped address: err = %v, want ErrMalformed", err)
	}
}

func TestAppendUnmapsAddresses(t *testing.T) {
	mapped := netip.AddrPortFrom(netip.MustParseAddr("::ffff:203.0.113.7"), 40001)
	a := (&KeepaliveAck{Seq: 1, Observed: mapped}).Append(nil)
	b := (&KeepaliveAck{Seq: 1, Observed: vecV4}).Append(nil)
	if string(a) != string(b) {
		t.Errorf("mapped address encoded as %x, want %x", a, b)
	}
	if AddrLen(mapped) != 7 || AddrLen(vecV6) != 19 || AddrLen(netip.AddrPort{}) != 1 {
		t.Error("AddrLen disagrees with the encoding")
	}
}

func TestAppendPanicsOnUnencodable(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	mustPanic("long peer ID", func() { (&IntroduceRequest{PeerID: make([]byte, 65)}).Append(nil) })
	mustPanic("9 hosts", func() { (&Register{Ticket: []byte{1}, Hosts: make([]netip.AddrPort, 9)}).Append(nil) })
	mustPanic("zero keepalive", func() { (&Registered{Observed: vecV4}).Append(nil) })
	mustPanic("error code 0", func() { (&Error{}).Append(nil) })
}

func TestErrorLen(t *testing.T) {
	m := Error{TxID: 1, Code: CodeBadTicket, Text: []byte("bad ticket")}
	if got := len(m.Append(nil)); got != ErrorLen(len(m.Text)) {
		t.Errorf("ErrorLen = %d, encoded %d", ErrorLen(len(m.Text)), got)
	}
}

// [AMP-1] for registration (PROTOCOL.md §5.1): the smallest register whose ticket
// parses is larger than the largest registered, so the server may answer every such
// register without a size check; the numbers are those of the §5 size table.
func TestRegisterOutsizesRegistered(t *testing.T) {
	shortestTicket := (&Ticket{PeerID: []byte("a")}).Append(nil)
	smallest := (&Register{Ticket: shortestTicket}).Append(nil)
	v6 := vecV6
	largest := (&Registered{Observed: v6, Keepalive: 25, AltPort: v6, AltAddr: v6}).Append(nil)
	if len(shortestTicket) != 75 || len(smallest) != 89 || len(largest) != 85 {
		t.Fatalf("ticket %d, register %d, registered %d bytes; PROTOCOL.md §5 says 75, 89, 85",
			len(shortestTicket), len(smallest), len(largest))
	}
	if len(smallest) <= len(largest) {
		t.Fatalf("a %d-byte register can be answered by a %d-byte registered", len(smallest), len(largest))
	}
	bare := (&Register{Ticket: []byte{1}}).Append(nil)
	most := (&Register{Ticket: make([]byte, MaxTicketLen), Hosts: []netip.AddrPort{v6, v6, v6, v6, v6, v6, v6, v6}}).Append(nil)
	if len(bare) != 15 || len(most) != 422 {
		t.Fatalf("register spans %d–%d bytes; PROTOCOL.md §5 says 15–422", len(bare), len(most))
	}
}
