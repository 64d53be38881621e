package relayframe

import (
	"bytes"
	"errors"
	"testing"

	"github.com/natpass/natpass/proto"
)

// The node's send path: a packet sealed at buf[4:] becomes a relay-send by writing
// four bytes in front of it, and the frame parses back to the same channel and the
// same bytes, aliasing the buffer (no copy anywhere).
func TestSendHeaderInPlace(t *testing.T) {
	buf := make([]byte, DataHeaderLen+5)
	copy(buf[DataHeaderLen:], "\xe1\x13abc")
	PutSendHeader(buf, 0xbeef)
	if !bytes.Equal(buf[:4], []byte{0xe1, 0x22, 0xbe, 0xef}) {
		t.Fatalf("header %x", buf[:4])
	}
	ch, pkt, err := ParseSend(buf)
	if err != nil || ch != 0xbeef || &pkt[0] != &buf[4] || string(pkt) != "\xe1\x13abc" {
		t.Fatalf("ParseSend: ch %x, %x, %v", ch, pkt, err)
	}
	if got := append(AppendSendHeader(nil, 0xbeef), pkt...); !bytes.Equal(got, buf) {
		t.Fatalf("AppendSendHeader differs: %x vs %x", got, buf)
	}
	// The server turns it into a relay-deliver by rewriting the first four bytes.
	PutDeliverHeader(buf, 7)
	ch, pkt, err = ParseDeliver(buf)
	if err != nil || ch != 7 || string(pkt) != "\xe1\x13abc" {
		t.Fatalf("ParseDeliver: ch %d, %x, %v", ch, pkt, err)
	}
	// The reference encoder in proto agrees.
	want := (&proto.RelayData{Deliver: true, Channel: 7, Packet: pkt}).Append(nil)
	if !bytes.Equal(want, buf) {
		t.Fatalf("proto.RelayData gives %x, helpers %x", want, buf)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("PutSendHeader on a 3-byte buffer did not panic")
		}
	}()
	PutSendHeader(make([]byte, 3), 1)
}

func TestParseDataRejects(t *testing.T) {
	send := append(AppendSendHeader(nil, 1), 0xaa)
	cases := []struct {
		name string
		p    []byte
		want error
	}{
		{"empty", nil, proto.ErrShort},
		{"header only", send[:2], proto.ErrShort},
		{"no packet", send[:4], proto.ErrShort},
		{"channel 0", []byte{0xe1, 0x22, 0, 0, 1}, proto.ErrMalformed},
		{"deliver as send", []byte{0xe1, 0x23, 0, 1, 1}, proto.ErrWrongType},
		{"version 2", []byte{0xe2, 0x22, 0, 1, 1}, proto.ErrUnknownVersion},
		{"STUN", []byte{0x00, 0x01, 0, 1, 1}, proto.ErrNotNatpass},
		{"too long", append(AppendSendHeader(nil, 1), make([]byte, MaxPacketLen+1)...), proto.ErrTooLong},
	}
	for _, c := range cases {
		if _, _, err := ParseSend(c.p); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, _, err := ParseDeliver(send); !errors.Is(err, proto.ErrWrongType) {
		t.Errorf("send as deliver: %v", err)
	}
}

func TestDataHelpersDoNotAllocate(t *testing.T) {
	buf := make([]byte, 1200)
	PutSendHeader(buf, 9)
	n := testing.AllocsPerRun(100, func() {
		PutSendHeader(buf, 9)
		if _, _, err := ParseSend(buf); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// fuzzData: no input panics a data-frame parser, and an accepted frame is exactly
// its header re-encoded plus the packet it returned (one encoding, nothing dropped).
func fuzzData(f *testing.F, parse func([]byte) (uint16, []byte, error), put func([]byte, uint16)) {
	f.Add(append(AppendSendHeader(nil, 1), 0xe1, 0x13))
	f.Add([]byte{0xe1, 0x23, 0xff, 0xff, 0})
	f.Add([]byte{0xe1, 0x22, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		ch, pkt, err := parse(p)
		if err != nil {
			return
		}
		if ch == 0 || len(pkt) == 0 || len(p) > MaxFrameLen {
			t.Fatalf("accepted channel %d, %d-byte packet, %d-byte frame", ch, len(pkt), len(p))
		}
		again := make([]byte, DataHeaderLen, DataHeaderLen+len(pkt))
		put(again, ch)
		if again = append(again, pkt...); !bytes.Equal(again, p) {
			t.Fatalf("not canonical:\n in %x\nout %x", p, again)
		}
	})
}

func FuzzParseSend(f *testing.F)    { fuzzData(f, ParseSend, PutSendHeader) }
func FuzzParseDeliver(f *testing.F) { fuzzData(f, ParseDeliver, PutDeliverHeader) }
