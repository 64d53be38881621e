package proto

import (
	"bytes"
	"testing"
)

// fuzzMessage checks one parser: no input panics it, and every input it accepts is
// canonical, so re-encoding the parsed message gives back exactly the input bytes.
// Seeds are every golden vector (of every type, so the fuzzer starts from near
// misses too) plus the committed corpus in testdata/fuzz/<target>.
func fuzzMessage(f *testing.F, fresh func() message) {
	for _, c := range vectorCases {
		f.Add(c.Msg.Append(nil))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		m := fresh()
		if err := m.Parse(p); err != nil {
			return
		}
		if got := m.Append(nil); !bytes.Equal(got, p) {
			t.Fatalf("accepted input is not canonical:\n  in %x\n out %x", p, got)
		}
		// A second parse into the same value (reused slices) must agree.
		if err := m.Parse(p); err != nil {
			t.Fatalf("reparse failed: %v", err)
		}
		if got := m.Append(nil); !bytes.Equal(got, p) {
			t.Fatalf("reparse into a reused value differs:\n  in %x\n out %x", p, got)
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	for _, c := range vectorCases {
		f.Add(c.Msg.Append(nil))
	}
	f.Add([]byte{0x00, 0x01, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, p []byte) {
		h, rest, err := ParseHeader(p)
		if err != nil {
			return
		}
		if Classify(p) != ClassNatpass || h.Version != Version {
			t.Fatalf("accepted %x as %+v", p, h)
		}
		if got := append(AppendHeader(nil, h.Type), rest...); !bytes.Equal(got, p) {
			t.Fatalf("header round trip: in %x out %x", p, got)
		}
	})
}

func FuzzTicket(f *testing.F)        { fuzzMessage(f, func() message { return new(Ticket) }) }
func FuzzRegister(f *testing.F)      { fuzzMessage(f, func() message { return new(Register) }) }
func FuzzRegistered(f *testing.F)    { fuzzMessage(f, func() message { return new(Registered) }) }
func FuzzKeepalive(f *testing.F)     { fuzzMessage(f, func() message { return new(Keepalive) }) }
func FuzzKeepaliveAck(f *testing.F)  { fuzzMessage(f, func() message { return new(KeepaliveAck) }) }
func FuzzNATProbe(f *testing.F)      { fuzzMessage(f, func() message { return new(NATProbe) }) }
func FuzzNATProbeReply(f *testing.F) { fuzzMessage(f, func() message { return new(NATProbeReply) }) }
func FuzzIntroduceRequest(f *testing.F) {
	fuzzMessage(f, func() message { return new(IntroduceRequest) })
}
func FuzzIntroduction(f *testing.F) { fuzzMessage(f, func() message { return new(Introduction) }) }
func FuzzError(f *testing.F)        { fuzzMessage(f, func() message { return new(Error) }) }
func FuzzIntroductionAck(f *testing.F) {
	fuzzMessage(f, func() message { return new(IntroductionAck) })
}

func FuzzRegisterFamily(f *testing.F) {
	fuzzMessage(f, func() message { return new(RegisterFamily) })
}

func FuzzRetry(f *testing.F) { fuzzMessage(f, func() message { return new(Retry) }) }
