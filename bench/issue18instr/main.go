// Command issue18instr runs one of keyx's or proto's per-packet operations n times, so
// that cachegrind can count its instructions (issue 18). On the shared 2-core machine
// wall-clock micro-benchmarks scatter 2x with the load; instruction counts do not.
// Per operation, the difference of two runs divided by the difference of their n:
//
//	cd bench && go build -o /tmp/instr ./issue18instr
//	ir() { GOMAXPROCS=1 GOGC=off GODEBUG=asyncpreemptoff=1 valgrind --tool=cachegrind \
//	    --cache-sim=no --cachegrind-out-file=/dev/null /tmp/instr $1 $2 2>&1 |
//	    awk '/I *refs/{gsub(",","",$4); print $4}'; }
//	echo $(( ($(ir data-decode 300000) - $(ir data-decode 100000)) / 200000 ))
//
// Operations: data-decode (a bulk data frame, fragment 37 of 56 of a 64 KiB message),
// data-append (the same frame written, its 1,171 data bytes included), ack-decode (an
// ACK with three ranges), varint (a 4-byte packet number), keyx-current (the sender's
// session look-up) and keyx-sealopen (Current, Seal and Endpoint.Open of a
// 1,200-byte packet on an AES-GCM session pair).
package main

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/proto"
)

// keyxPair is two endpoints with an AES-GCM session pair, a's current session confirmed.
func keyxPair() (a, b *keyx.Endpoint, pubB keyx.PublicKey) {
	now := proto.Instant(1)
	ka, _ := keyx.NewPrivateKey(rand.Reader)
	kb, _ := keyx.NewPrivateKey(rand.Reader)
	both := proto.SuitesOf(keyx.SuiteAESGCM) | proto.SuitesOf(keyx.SuiteChaChaPoly)
	a = keyx.New(keyx.Config{PrivateKey: ka, Rand: rand.Reader, Suites: both}, now)
	b = keyx.New(keyx.Config{PrivateKey: kb, Rand: rand.Reader, Suites: both}, now)
	for _, err := range []error{
		a.AddPeer(kb.Public(), keyx.PresharedKey{}), b.AddPeer(ka.Public(), keyx.PresharedKey{}),
		a.SetPeerSuites(kb.Public(), both), b.SetPeerSuites(ka.Public(), both),
	} {
		if err != nil {
			panic(err)
		}
	}
	pa, pb := netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2")
	if err := a.Initiate(now, time.Now(), kb.Public(), pa, pb); err != nil {
		panic(err)
	}
	buf := make([]byte, 2048)
	tx, _ := a.PollTransmit(now, buf)
	if err := b.HandleDatagram(now, pb, pa, tx.Payload); err != nil {
		panic(err)
	}
	tx, _ = b.PollTransmit(now, buf)
	if err := a.HandleDatagram(now, pa, pb, tx.Payload); err != nil {
		panic(err)
	}
	s := a.Current(kb.Public())
	pkt, err := s.Seal(now, nil, nil)
	if err != nil {
		panic(err)
	}
	if _, _, err := b.Open(now, nil, pkt); err != nil {
		panic(err)
	}
	return a, b, kb.Public()
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: issue18instr operation n")
		os.Exit(2)
	}
	op := os.Args[1]
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	const total, count, index = 65536, 56, 37
	_, fl, _ := proto.FragmentBounds(total, count, index)
	d := proto.RUDPData{Mode: proto.RUDPReliableOrdered, Seq: 4711, Total: total, Count: count, Index: index, Data: make([]byte, fl)}
	frame := d.Append(nil)
	a := proto.RUDPAck{DelayMicros: 1500, Ranges: []proto.RUDPAckRange{{Smallest: 90200, Largest: 90310}, {Smallest: 90100, Largest: 90190}, {Smallest: 89000, Largest: 90050}}}
	ack := a.Append(nil)
	pn := proto.AppendVarint(nil, 1_000_000)
	buf := make([]byte, 0, 2048)
	var sink uint64
	switch op {
	case "data-decode":
		var f proto.RUDPData
		for range n {
			k, _ := f.Decode(frame)
			sink += uint64(k)
		}
	case "ack-decode":
		var f proto.RUDPAck
		for range n {
			k, _ := f.Decode(ack)
			sink += uint64(k)
		}
	case "varint":
		for range n {
			v, _, _ := proto.ConsumeVarint(pn)
			sink += v
		}
	case "keyx-current":
		a, _, pubB := keyxPair()
		for range n {
			if a.Current(pubB) != nil {
				sink++
			}
		}
	case "keyx-sealopen":
		a, b, pubB := keyxPair()
		plain := make([]byte, 1200)
		pkt := make([]byte, 0, 1300)
		out := make([]byte, 0, 1300)
		for range n {
			pkt, _ = a.Current(pubB).Seal(1, pkt[:0], plain)
			_, out, _ = b.Open(1, out[:0], pkt)
			sink += uint64(len(out))
		}
	case "data-append":
		for range n {
			buf = d.Append(buf[:0])
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown operation", op)
		os.Exit(2)
	}
	fmt.Println(sink, len(buf))
}
