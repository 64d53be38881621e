package promnode

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/rudp"
)

// gather returns the registry's samples by metric name and label values.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.Metric {
			key := f.GetName()
			for _, l := range m.Label {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// connectedPair runs a server and two nodes on loopback and connects them: it
// returns the connecting node, its connection and the accepting side's.
func connectedPair(t *testing.T, ctx context.Context) (a *driver.Node, conn, peer *driver.Conn) {
	t.Helper()
	srv, err := driver.ListenServer(driver.ServerConfig{Listen: "127.0.0.1:0", InsecureDev: true, AltPort: "off"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	listen := func(id string) *driver.Node {
		n, err := driver.Listen(ctx, driver.Config{Server: srv.Addr().String(), ID: id, InsecureDev: true, Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a, b := listen("prom-a"), listen("prom-b")
	accepted := make(chan *driver.Conn, 1)
	go func() {
		c, err := b.Accept(ctx)
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	conn, err = a.Connect(ctx, "prom-b")
	if err != nil {
		t.Fatal(err)
	}
	return a, conn, <-accepted
}

// A server and two nodes on loopback: the connecting node's collector, tracking
// its connection, shows the node's and the connection's counters grow between two
// scrapes as 200 reliable messages go through, and forgets the connection once it
// ends.
func TestCollectorCountsRealTraffic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, conn, peer := connectedPair(t, ctx)
	col := NewCollector(a)
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	if !col.Track(conn) {
		t.Fatal("Track refused the first connection")
	}
	before := gather(t, reg)

	const messages = 200
	for i := range messages {
		if err := conn.Send(0, rudp.ReliableOrdered, make([]byte, 1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	for range messages {
		if _, err := peer.Recv(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	after := gather(t, reg)
	for _, key := range []string{
		"natpass_node_datagrams_total,direction=out",
		"natpass_node_bytes_total,direction=out",
		"natpass_conn_packets_total,direction=out,peer=prom-b",
		"natpass_conn_bytes_total,direction=out,peer=prom-b",
		"natpass_conn_packets_acked_total,peer=prom-b",
	} {
		if b, ok := before[key]; !ok || after[key] <= b {
			t.Errorf("%s: %v before (present %v), %v after 200 messages; want it grown", key, b, ok, after[key])
		}
	}
	if got := after["natpass_conn_bytes_total,direction=out,peer=prom-b"]; got < messages*1000 {
		t.Errorf("natpass_conn_bytes_total out = %v, want at least the %d bytes sent", got, messages*1000)
	}
	// The IK handshake costs the initiator at least two X25519 operations (es, ss).
	if got := after["natpass_node_dh_operations_total"]; got < 2 {
		t.Errorf("natpass_node_dh_operations_total = %v after a handshake, want at least 2", got)
	}
	if _, ok := after["natpass_node_cookie_replies_total"]; !ok {
		t.Error("natpass_node_cookie_replies_total missing")
	}
	if after["natpass_conn_srtt_seconds,peer=prom-b"] <= 0 {
		t.Error("natpass_conn_srtt_seconds not measured after acknowledged traffic")
	}
	kind := conn.Path().Kind.String()
	if after["natpass_conn_path,kind="+kind+",peer=prom-b"] != 1 {
		t.Errorf("natpass_conn_path{kind=%s} missing: %v", kind, after)
	}

	conn.Close()
	<-conn.Done()
	if _, ok := gather(t, reg)["natpass_conn_srtt_seconds,peer=prom-b"]; ok {
		t.Error("a connection that ended is still reported")
	}
}
