package keyx

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkResponderHandshake measures the responder's whole path for one genuine
// initiation: parse, mac1, load meter, es DH and static decryption, timestamp and
// flood checks, ephemeral generation, ee and se DH, transport keys, the response with
// its mac1, and draining it. Target (issue 4): ≥ 3,000 handshakes/s on one core.
func BenchmarkResponderHandshake(b *testing.B) {
	p := newPair(b, 50, PresharedKey{1}, nil)
	// Initiations are made before the clock starts: each 20 ms apart in virtual time,
	// so the responder's flood rule lets every one through and the load meter (50/s)
	// stays under its threshold, as for a genuine peer.
	inits := make([][]byte, b.N)
	for i := range inits {
		p.now = t0.Add(time.Duration(i) * InitiationMinInterval)
		if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
			b.Fatal(err)
		}
		inits[i] = p.one(p.a).Payload
	}
	buf := make([]byte, proto.InitiationLen)
	b.ReportAllocs()
	b.ResetTimer()
	for i, in := range inits {
		now := t0.Add(time.Duration(i) * InitiationMinInterval)
		if err := p.b.HandleDatagram(now, addrB, addrA, in); err != nil {
			b.Fatal(err)
		}
		if _, ok := p.b.PollTransmit(now, buf); !ok {
			b.Fatal("no response")
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}

// BenchmarkResponderCookieReply measures what a spoofed initiation costs a responder
// under load: parse, mac1, the mac2 check, and a cookie reply. No DH.
func BenchmarkResponderCookieReply(b *testing.B) {
	p := newPair(b, 52, PresharedKey{}, func(c *Config) { c.LoadThreshold = 1 })
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		b.Fatal(err)
	}
	in := p.one(p.a).Payload
	p.b.loadUntil = proto.Never // under load for the whole run
	buf := make([]byte, proto.InitiationLen)
	dh := p.b.Stats().DHOps
	b.ReportAllocs()
	for b.Loop() {
		if err := p.b.HandleDatagram(p.now, addrB, addrA, in); err != nil {
			b.Fatal(err)
		}
		if _, ok := p.b.PollTransmit(p.now, buf); !ok {
			b.Fatal("no cookie reply")
		}
	}
	if p.b.Stats().DHOps != dh {
		b.Fatal("a cookie reply cost a DH")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "replies/s")
}

const benchPacketLen = 1200

// BenchmarkSealOpen1200 seals and opens one 1200-byte packet on an established
// session pair: header, counter, AEAD, replay window. Target (issue 4): within 1.15x
// of BenchmarkSealOpen1200Raw, 0 allocations.
func BenchmarkSealOpen1200(b *testing.B) {
	sa, sb := sessionPair(b)
	plain := make([]byte, benchPacketLen)
	pkt := make([]byte, 0, benchPacketLen+proto.TransportOverhead)
	out := make([]byte, 0, benchPacketLen)
	b.SetBytes(benchPacketLen)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if pkt, err = sa.Seal(t0, pkt[:0], plain); err != nil {
			b.Fatal(err)
		}
		if out, err = sb.Open(t0, out[:0], pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealOpen1200Raw is the baseline: x/crypto's ChaCha20-Poly1305 sealing and
// opening the same 1200 bytes in the same buffers, behind the same 14-byte header and
// with the same counter nonces, and nothing else.
func BenchmarkSealOpen1200Raw(b *testing.B) {
	key := make([]byte, chacha20poly1305.KeySize)
	aead, _ := chacha20poly1305.New(key)
	plain := make([]byte, benchPacketLen)
	pkt := make([]byte, 0, benchPacketLen+proto.TransportOverhead)
	out := make([]byte, 0, benchPacketLen)
	var nonce [chacha20poly1305.NonceSize]byte
	var counter uint64
	b.SetBytes(benchPacketLen)
	b.ReportAllocs()
	for b.Loop() {
		counter++
		binary.LittleEndian.PutUint64(nonce[4:], counter)
		pkt = proto.AppendTransportHeader(pkt[:0], 1, counter)
		pkt = aead.Seal(pkt, nonce[:], plain, nil)
		var err error
		if out, err = aead.Open(out[:0], nonce[:], pkt[proto.TransportHeaderLen:], nil); err != nil {
			b.Fatal(err)
		}
	}
}

// Steady-state transport allocates nothing (DESIGN §2).
func TestSealOpenAllocatesNothing(t *testing.T) {
	p := newPair(t, 51, PresharedKey{}, nil)
	sa, _ := p.handshake()
	plain := make([]byte, benchPacketLen)
	pkt := make([]byte, 0, benchPacketLen+proto.TransportOverhead)
	out := make([]byte, 0, benchPacketLen)
	allocs := testing.AllocsPerRun(200, func() {
		var err error
		if pkt, err = sa.Seal(p.now, pkt[:0], plain); err != nil {
			t.Fatal(err)
		}
		if _, out, err = p.b.Open(p.now, out[:0], pkt); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Seal+Open allocates %v times per packet, want 0", allocs)
	}
}

// benchSizes are the payloads of the per-suite benchmarks: a datagram that fits any
// path's MTU, and the largest transport payload (a GSO-sized bulk write).
var benchSizes = []int{benchPacketLen, proto.MaxTransportLen - proto.TransportOverhead}

// BenchmarkSessionSealOpen seals and opens one packet per iteration on an established
// session pair of each suite (issue 18): what one packet costs its two ends.
func BenchmarkSessionSealOpen(b *testing.B) {
	for _, s := range []Suite{SuiteChaChaPoly, SuiteAESGCM} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", s, n), func(b *testing.B) {
				p := suitePair(b, 53, bothSuites, bothSuites, proto.SuitesOf(s))
				sa, sb := p.handshake()
				plain := make([]byte, n)
				pkt := make([]byte, 0, n+proto.TransportOverhead)
				out := make([]byte, 0, n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if pkt, err = sa.Seal(p.now, pkt[:0], plain); err != nil {
						b.Fatal(err)
					}
					if out, err = sb.Open(p.now, out[:0], pkt); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkSessionSeal is the sender's half alone, per suite and size.
func BenchmarkSessionSeal(b *testing.B) {
	for _, s := range []Suite{SuiteChaChaPoly, SuiteAESGCM} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", s, n), func(b *testing.B) {
				p := suitePair(b, 54, bothSuites, bothSuites, proto.SuitesOf(s))
				sa, _ := p.handshake()
				plain := make([]byte, n)
				pkt := make([]byte, 0, n+proto.TransportOverhead)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if pkt, err = sa.Seal(p.now, pkt[:0], plain); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkSessionSealOpenRaw is each suite's baseline: the bare AEAD sealing and
// opening the same payload behind the same header with counter nonces, nothing else.
func BenchmarkSessionSealOpenRaw(b *testing.B) {
	for _, s := range []Suite{SuiteChaChaPoly, SuiteAESGCM} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", s, n), func(b *testing.B) {
				aead := newAEAD(s, make([]byte, KeyLen))
				plain := make([]byte, n)
				pkt := make([]byte, 0, n+proto.TransportOverhead)
				out := make([]byte, 0, n)
				var nonce [nonceLen]byte
				var counter uint64
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					counter++
					putNonce(s, &nonce, counter)
					pkt = proto.AppendTransportHeader(pkt[:0], 1, counter)
					pkt = aead.Seal(pkt, nonce[:], plain, nil)
					var err error
					if out, err = aead.Open(out[:0], nonce[:], pkt[proto.TransportHeaderLen:], nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkEndpointSealOpen is one bulk packet as a node handles it (issue 18): the
// sender finds its session with Current, seals; the receiver opens through the
// Endpoint, which finds the session by receiver index. Against
// BenchmarkSessionSealOpen, the difference is the two look-ups.
func BenchmarkEndpointSealOpen(b *testing.B) {
	p := suitePair(b, 55, bothSuites, bothSuites, proto.SuitesOf(SuiteAESGCM))
	p.handshake()
	pubB := p.b.PublicKey()
	plain := make([]byte, benchPacketLen)
	pkt := make([]byte, 0, benchPacketLen+proto.TransportOverhead)
	out := make([]byte, 0, benchPacketLen)
	b.SetBytes(benchPacketLen)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if pkt, err = p.a.Current(pubB).Seal(p.now, pkt[:0], plain); err != nil {
			b.Fatal(err)
		}
		if _, out, err = p.b.Open(p.now, out[:0], pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEndpointCurrent is the sender's look-up alone.
func BenchmarkEndpointCurrent(b *testing.B) {
	p := suitePair(b, 56, bothSuites, bothSuites, proto.SuitesOf(SuiteAESGCM))
	p.handshake()
	pubB := p.b.PublicKey()
	for b.Loop() {
		if p.a.Current(pubB) == nil {
			b.Fatal("no session")
		}
	}
}
