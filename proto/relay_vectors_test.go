package proto

import (
	"encoding/hex"
	"errors"
	"testing"
)

// vecRelayToken is the relay token of relayframe's TestTokenGoldenVector and of relay-token.json (pair
// 0x0102030405060708, expiry 2027-01-01, two patterned keys), so the relay vectors
// carry a token a server with that vector's secret accepts until its expiry.
var vecRelayToken, _ = hex.DecodeString("01" + "0102030405060708" + "000000006b36ec80" +
	"01000000000000000000000000000000000000000000000000000000000000aa" +
	"f0000000000000000000000000000000000000000000000000000000000000bb" +
	"567e3ecb1e615472a3068221f4946f363ab06be7fbf2b174d7b71c7bac21d42f")

// relayDataVectorCases are the relay-send and relay-deliver vectors. Like transport
// data, their last field runs to the end of the datagram, so they are checked by
// TestRelayDataVectors rather than by the fixed-end tests of vectorCases.
var relayDataVectorCases []vectorCase

func init() {
	add := func(file, name string, m message, fresh func() message) {
		vectorCases = append(vectorCases, vectorCase{File: file, Name: name, Msg: m, New: fresh})
	}
	newAlloc := func() message { return new(RelayAllocate) }
	add("relay-allocate", "relay-allocate", &RelayAllocate{Session: vecSession, TxID: 0x0a0b0c0d0e0f1011,
		PeerID: []byte("bob"), Token: vecRelayToken}, newAlloc)
	add("relay-allocate", "relay-allocate-short-token", &RelayAllocate{Session: vecSession, TxID: 1,
		PeerID: []byte("b"), Token: []byte{0x01}}, newAlloc)

	newAllocated := func() message { return new(RelayAllocated) }
	add("relay-allocated", "relay-allocated-peer-ready", &RelayAllocated{TxID: 0x0a0b0c0d0e0f1011, Channel: 0x1234,
		Flags: RelayPeerReady, LifetimeS: 600, Token: vecRelayToken}, newAllocated)
	add("relay-allocated", "relay-allocated-waiting", &RelayAllocated{TxID: 2, Channel: 0xfffe,
		LifetimeS: 1, Token: vecRelayToken}, newAllocated)

	addData := func(name string, m *RelayData) {
		relayDataVectorCases = append(relayDataVectorCases, vectorCase{File: "relay-data", Name: name, Msg: m,
			New: func() message { return new(RelayData) }})
	}
	// The packets are transport-data vectors (§6.3): what a node actually relays.
	keepalive := (&TransportData{Receiver: 0x5e5e0001, Counter: 0, Ciphertext: pattern(0xd0, TagLen)}).Append(nil)
	addData("relay-send-transport-keepalive", &RelayData{Channel: 0x1234, Packet: keepalive})
	addData("relay-deliver-transport-keepalive", &RelayData{Deliver: true, Channel: 0x0077, Packet: keepalive})
	addData("relay-send-one-byte", &RelayData{Channel: 1, Packet: []byte{0xe1}})
}

// TestRelayDataVectors pins relay-send and relay-deliver: encoder against the file,
// parser against the encoder, and every proper prefix that loses the channel or the
// whole packet rejected.
func TestRelayDataVectors(t *testing.T) {
	checkOpenEndedVectors(t, "relay-data", "RelayData", relayDataVectorCases, RelayDataHeaderLen)
}

// TestRelayFrameBounds: sizes and limits of PROTOCOL.md §8.
func TestRelayFrameBounds(t *testing.T) {
	big := make([]byte, MaxRelayFrameLen+1)
	copy(big, AppendRelayDataHeader(nil, false, 9))
	var m RelayData
	if err := m.Parse(big); !errors.Is(err, ErrTooLong) {
		t.Errorf("1473-byte frame: err = %v, want ErrTooLong", err)
	}
	if err := m.Parse(big[:MaxRelayFrameLen]); err != nil || len(m.Packet) != MaxRelayPacketLen {
		t.Errorf("largest frame: err = %v, packet %d bytes", err, len(m.Packet))
	}
	zero := []byte{0xe1, byte(TypeRelaySend), 0, 0, 0xff}
	if err := m.Parse(zero); !errors.Is(err, ErrMalformed) {
		t.Errorf("channel 0: err = %v, want ErrMalformed", err)
	}
	other := []byte{0xe1, byte(TypeRelayAllocated), 0, 1, 0xff}
	if err := m.Parse(other); !errors.Is(err, ErrWrongType) {
		t.Errorf("relay-allocated as data: err = %v, want ErrWrongType", err)
	}
	if RelayDataHeaderLen != 4 || MaxRelayFrameLen != 1472 {
		t.Errorf("relay data overhead %d, max frame %d; PROTOCOL.md §8.3 says 4 and 1472", RelayDataHeaderLen, MaxRelayFrameLen)
	}
	a := (&RelayAllocate{Session: vecSession, TxID: 1, PeerID: []byte("bob"), Token: vecRelayToken}).Append(nil)
	r := (&RelayAllocated{TxID: 1, Channel: 1, LifetimeS: 1, Token: vecRelayToken}).Append(nil)
	if len(a) != 145 || len(r) != 132 {
		t.Errorf("allocate %d bytes (want 145 with a 3-byte peer ID), allocated %d (want 132)", len(a), len(r))
	}
	for _, bad := range []RelayAllocated{{Channel: 1, LifetimeS: 1, Flags: 2}, {Channel: 1}, {LifetimeS: 1}} {
		bad.Token = []byte{1}
		wire := (&RelayAllocated{Channel: 1, LifetimeS: 1, Token: []byte{1}}).Append(nil)
		// Patch the fixed fields in the wire form (Append refuses to encode them).
		wire[10], wire[11] = byte(bad.Channel>>8), byte(bad.Channel)
		wire[12] = bad.Flags
		wire[13], wire[14], wire[15], wire[16] = 0, 0, 0, byte(bad.LifetimeS)
		if err := new(RelayAllocated).Parse(wire); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v: err = %v, want ErrMalformed", bad, err)
		}
	}
}

// TestRelayVectorsCoverEveryType: every relay message type has a vector.
func TestRelayVectorsCoverEveryType(t *testing.T) {
	seen := map[MsgType]bool{}
	for _, c := range append(vectorCases[:len(vectorCases):len(vectorCases)], relayDataVectorCases...) {
		if h, _, err := ParseHeader(c.Msg.Append(nil)); err == nil {
			seen[h.Type] = true
		}
	}
	for typ := TypeRelayAllocate; typ <= TypeRelayDeliver; typ++ {
		if !seen[typ] {
			t.Errorf("no golden vector for %v", typ)
		}
		if typ.String()[:6] != "relay-" {
			t.Errorf("%#x has no name: %q", uint8(typ), typ.String())
		}
	}
}

func FuzzRelayAllocate(f *testing.F)  { fuzzMessage(f, func() message { return new(RelayAllocate) }) }
func FuzzRelayAllocated(f *testing.F) { fuzzMessage(f, func() message { return new(RelayAllocated) }) }
func FuzzRelayData(f *testing.F) {
	for _, c := range relayDataVectorCases {
		f.Add(c.Msg.Append(nil))
	}
	fuzzMessage(f, func() message { return new(RelayData) })
}
