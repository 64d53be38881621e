package natsbus

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/relayframe"
	"github.com/natpass/natpass/rudp"
)

// The cluster side by side with one server (issue 13's benchmarks): the same relayed
// transfer and the same connection set-up through one server, and through two
// servers of a cluster joined by embedded NATS routes. Loopback, real sockets.
//
//	go test -run '^$' -bench 'Relay|Connect' ./natsbus

// benchBuses maps a benchmark's servers to their buses, for their drop counters.
var benchBuses = map[*driver.Server]*Bus{}

var benchTicketSecret = []byte("natsbus benchmark ticket secret, loopback only")

// benchServers starts n driver servers; with cluster they are joined by a bus each,
// routed to one another.
func benchServers(tb testing.TB, n int, cluster bool) []*driver.Server {
	tb.Helper()
	var servers []*driver.Server
	var buses []*Bus
	for i := range n {
		cfg := driver.ServerConfig{Listen: "127.0.0.1:0", Secret: benchTicketSecret}
		// Budgets out of the way: the benchmark measures the relay, not its limits.
		cfg.Tune.RelaySessionRate = relayframe.ByteRate{BytesPerSecond: 1 << 40, Burst: 1 << 30}
		cfg.Tune.RelayServerRate = cfg.Tune.RelaySessionRate
		if cluster {
			bc := Config{ClusterName: "bench", ClusterListen: "127.0.0.1:0", Secret: secretA}
			for _, b := range buses {
				bc.ClusterPeers = append(bc.ClusterPeers, "nats://"+b.ClusterAddr())
			}
			b, err := Start(bc)
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { b.Close() })
			buses = append(buses, b)
			cfg.Cluster = b
		}
		s, err := driver.ListenServer(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		servers = append(servers, s)
		if cluster {
			benchBuses[s] = buses[i]
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for _, b := range buses {
		if err := b.WaitPeers(ctx, n-1); err != nil {
			tb.Fatal(err)
		}
	}
	return servers
}

// benchNode registers id on server s, relaying only.
func benchNode(tb testing.TB, ctx context.Context, s *driver.Server, id string) *driver.Node {
	tb.Helper()
	n, err := driver.Listen(ctx, driver.Config{Server: s.Addr().String(), ID: id, Secret: benchTicketSecret,
		Listen: "127.0.0.1:0", Relay: node.RelayForce})
	if err != nil {
		tb.Fatalf("Listen %s: %v", id, err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

// waitPresence waits until server s knows where peer id is registered: at once on
// a lone server, when the peer's subject interest has reached its bus in a cluster.
func waitPresence(tb testing.TB, ctx context.Context, s *driver.Server, id string) {
	tb.Helper()
	if bus, ok := benchBuses[s]; ok {
		if err := bus.WaitInterest(ctx, "peer."+hex.EncodeToString([]byte(id))); err != nil {
			tb.Fatalf("presence of %s: %v", id, err)
		}
	}
}

// connectRelayed connects a to b (registered where they are) and returns both ends
// once the first message has crossed, and how long that took from Connect.
func connectRelayed(tb testing.TB, ctx context.Context, a, b *driver.Node) (ca, cb *driver.Conn, first time.Duration) {
	tb.Helper()
	accepted := make(chan *driver.Conn, 1)
	go func() {
		c, err := b.Accept(ctx)
		if err != nil {
			tb.Error(err)
		}
		accepted <- c
	}()
	t0 := time.Now()
	ca, err := a.Connect(ctx, b.ID())
	if err != nil {
		tb.Fatalf("Connect: %v", err)
	}
	if err := ca.Send(0, rudp.ReliableOrdered, []byte("hello")); err != nil {
		tb.Fatal(err)
	}
	cb = <-accepted
	if cb == nil {
		tb.FailNow()
	}
	if _, err := cb.Recv(ctx); err != nil {
		tb.Fatal(err)
	}
	return ca, cb, time.Since(t0)
}

// benchRelay moves b.N 16 KiB reliable messages one way over the relay, with A and
// B on servers[0] and servers[len-1] (the same server, or two of a cluster).
func benchRelay(b *testing.B, servers []*driver.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	na := benchNode(b, ctx, servers[0], "bench-a")
	nb := benchNode(b, ctx, servers[len(servers)-1], "bench-b")
	waitPresence(b, ctx, servers[0], "bench-b")
	ca, cb, _ := connectRelayed(b, ctx, na, nb)
	msg := bytes.Repeat([]byte{0x5a}, 16<<10)
	done := make(chan error, 1)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	go func() {
		for range b.N {
			if _, err := cb.Recv(ctx); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if err := ca.SendContext(ctx, 0, rudp.ReliableOrdered, msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if st := servers[0].Stats(); st.Relay.DropServerRate+st.Relay.DropSessionRate > 0 {
		b.ReportMetric(float64(st.Relay.DropServerRate+st.Relay.DropSessionRate), "budget-drops")
	}
	var busDrops uint64
	for _, s := range servers {
		st := s.Stats()
		busDrops += st.Cluster.DropQueueFull + st.Cluster.DropRelayTxFull + st.ClusterErrors
	}
	if bs, ok := benchBuses[servers[len(servers)-1]]; ok {
		st := bs.Stats()
		busDrops += st.DroppedInboxFull + st.DroppedSlowConsumer
	}
	b.ReportMetric(float64(busDrops), "bus-drops")
	if st, err := ca.Stats(); err == nil && st.PacketsSent > 0 {
		b.ReportMetric(100*float64(st.PacketsLost)/float64(st.PacketsSent), "%lost")
		b.ReportMetric(float64(st.SRTT.Microseconds()), "srtt-µs")
		b.ReportMetric(float64(st.Cwnd>>10), "cwnd-KiB")
	}
}

// BenchmarkRelaySameServer: both nodes on one server.
func BenchmarkRelaySameServer(b *testing.B) { benchRelay(b, benchServers(b, 1, false)) }

// BenchmarkRelayCrossServer: the nodes on two servers of a cluster; every frame
// crosses one NATS route.
func BenchmarkRelayCrossServer(b *testing.B) { benchRelay(b, benchServers(b, 2, true)) }

// benchConnect measures Connect → first relayed message delivered for fresh pairs
// (introduction, relay allocation, handshake, one message), reporting p50 and p95.
func benchConnect(b *testing.B, servers []*driver.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var ds []time.Duration
	for i := range b.N {
		na := benchNode(b, ctx, servers[0], fmt.Sprintf("conn-a-%d", i))
		nb := benchNode(b, ctx, servers[len(servers)-1], fmt.Sprintf("conn-b-%d", i))
		waitPresence(b, ctx, servers[0], nb.ID())
		ca, cb, d := connectRelayed(b, ctx, na, nb)
		ds = append(ds, d)
		ca.Close()
		cb.Close()
		na.Close()
		nb.Close()
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(ds[(len(ds)*95+99)/100-1])/1e6, "p95-ms")
}

// BenchmarkConnectSameServer: both nodes on one server.
func BenchmarkConnectSameServer(b *testing.B) { benchConnect(b, benchServers(b, 1, false)) }

// BenchmarkConnectCrossServer: the nodes on two servers of a cluster (the
// introduction and the relay binding each cross the bus once and back).
func BenchmarkConnectCrossServer(b *testing.B) { benchConnect(b, benchServers(b, 2, true)) }
