package proto

import (
	"bytes"
	"testing"
)

func FuzzRUDPHeader(f *testing.F)  { fuzzMessage(f, func() message { return new(RUDPHeader) }) }
func FuzzRUDPAck(f *testing.F)     { fuzzMessage(f, func() message { return new(RUDPAck) }) }
func FuzzRUDPMaxData(f *testing.F) { fuzzMessage(f, func() message { return new(RUDPMaxData) }) }
func FuzzRUDPClose(f *testing.F)   { fuzzMessage(f, func() message { return new(RUDPClose) }) }
func FuzzRUDPData(f *testing.F)    { fuzzMessage(f, func() message { return new(RUDPData) }) }
func FuzzRUDPAckFrequency(f *testing.F) {
	fuzzMessage(f, func() message { return new(RUDPAckFrequency) })
}
func FuzzRUDPPacket(f *testing.F) { fuzzMessage(f, func() message { return new(RUDPPacket) }) }

// FuzzVarint: every accepted varint is minimal and re-encodes to the bytes it used.
func FuzzVarint(f *testing.F) {
	f.Add([]byte{0x25})
	f.Add([]byte{0x40, 0x25})
	f.Add([]byte{0xc0, 0, 0, 0, 0, 0, 0, 0x25})
	f.Fuzz(func(t *testing.T, p []byte) {
		v, n, err := ConsumeVarint(p)
		if err != nil {
			return
		}
		if got := AppendVarint(nil, v); !bytes.Equal(got, p[:n]) {
			t.Fatalf("varint %x decoded to %d re-encodes as %x", p[:n], v, got)
		}
	})
}
