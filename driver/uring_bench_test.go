//go:build linux

package driver

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/rudp"
)

// BenchmarkHeldRelayRTT measures what the holding reader adds to a relayed
// round trip: a ping-pong of reliable messages between two nodes through a
// server with ReadHold off, 500 µs and 1 ms, alone (sparse: the reader waits per
// arrival) and beside a second pair sending 200-byte unreliable messages at
// 5 kHz (the reader holds). It reports the round trip's p50 and p99.
//
//	go test -run '^$' -bench HeldRelayRTT -benchtime 2000x ./driver/
func BenchmarkHeldRelayRTT(b *testing.B) {
	for _, c := range []struct {
		name string
		hold time.Duration
		busy bool
	}{{"off/sparse", 0, false}, {"500us/sparse", 500 * time.Microsecond, false},
		{"off/busy", 0, true}, {"500us/busy", 500 * time.Microsecond, true}, {"1ms/busy", time.Millisecond, true}} {
		b.Run(c.name, func(b *testing.B) { benchRelayRTT(b, c.hold, c.busy) })
	}
}

func benchRelayRTT(b *testing.B, hold time.Duration, busy bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := ListenServer(ServerConfig{Listen: "127.0.0.1:0", AltAddr: "127.0.0.2:0", Secret: testSecret, ReadHold: hold})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	_, _, ca, cb := relayPair(b, ctx, s, "rtt")
	if busy {
		_, _, la, lb := relayPair(b, ctx, s, "load")
		go func() {
			for {
				if _, err := lb.Recv(ctx); err != nil {
					return
				}
			}
		}()
		go func() {
			msg := make([]byte, 200)
			for tick := time.NewTicker(200 * time.Microsecond); ctx.Err() == nil; <-tick.C {
				_ = la.Send(0, rudp.Unreliable, msg)
			}
		}()
	}
	rtts := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := ca.Send(0, rudp.ReliableOrdered, []byte{byte(i)}); err != nil {
			b.Fatal(err)
		}
		m, err := cb.Recv(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := cb.Send(0, rudp.ReliableOrdered, m.Data); err != nil {
			b.Fatal(err)
		}
		if _, err := ca.Recv(ctx); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
		time.Sleep(time.Millisecond) // sparse: each ping alone
	}
	b.StopTimer()
	cancel()
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(0, "ns/op")
}
