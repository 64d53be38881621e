package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/natpass/natpass/driver"
)

// fillDistinct sets every integer field of v (a pointer to a struct, nested
// structs included) to its own value, starting at next, and returns the values it
// gave by field path.
func fillDistinct(v reflect.Value, path string, next *uint64, out map[uint64]string) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fillDistinct(v.Field(i), path+"."+v.Type().Field(i).Name, next, out)
		}
	case reflect.Uint64:
		*next += 1
		v.SetUint(*next)
		out[*next] = path
	case reflect.Int:
		*next += 1
		v.SetInt(int64(*next))
		out[*next] = path
	}
}

// scrape fetches /metrics from h and parses it with Prometheus's own text parser.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return families
}

// value is the sample's value, whatever its type.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

// Every counter of driver.ServerStats and of the bus reaches /metrics: each field
// holds its own value, and each value must turn up in some sample. A field added
// to the stats without a metric fails here.
func TestEveryServerCounterExported(t *testing.T) {
	var st driver.ServerStats
	var bus BusStats
	var next uint64
	want := map[uint64]string{}
	fillDistinct(reflect.ValueOf(&st).Elem(), "ServerStats", &next, want)
	fillDistinct(reflect.ValueOf(&bus).Elem(), "BusStats", &next, want)
	if bus.NoResponders != 0 {
		// The bus's 503 count is the machine's Cluster.NoResponders seen from the
		// other side (exported as peer_not_here): not exported twice.
		delete(want, bus.NoResponders)
	}
	reg := NewRegistry()
	reg.MustRegister(NewServerCollector(Sources{
		Server: func() driver.ServerStats { return st },
		Bus:    func() BusStats { return bus },
	}))
	families := scrape(t, Handler(reg, &Health{}))
	for name, f := range families {
		if !strings.HasPrefix(name, "natpass_server_") {
			continue
		}
		for _, m := range f.Metric {
			delete(want, uint64(value(m)))
		}
	}
	for v, field := range want {
		t.Errorf("%s (set to %d) is in no natpass_server_ metric", field, v)
	}
	if f := families["natpass_server_drops_total"]; f == nil || f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("natpass_server_drops_total: %v, want a counter", f)
	}
	if f := families["natpass_server_sessions"]; f == nil || f.GetType() != dto.MetricType_GAUGE || value(f.Metric[0]) != float64(st.Sessions) {
		t.Errorf("natpass_server_sessions: %v, want the gauge %d", f, st.Sessions)
	}
	if families["go_goroutines"] == nil {
		t.Error("the Go runtime collector is missing")
	}
}

// A server alone has no bus: the bus's metrics are left out, the rest are there.
func TestServerCollectorWithoutBus(t *testing.T) {
	reg := NewRegistry()
	reg.MustRegister(NewServerCollector(Sources{Server: func() driver.ServerStats { return driver.ServerStats{} }}))
	families := scrape(t, Handler(reg, &Health{}))
	if families["natpass_server_cluster_peers"] != nil {
		t.Error("natpass_server_cluster_peers reported without a bus")
	}
	if families["natpass_server_relay_channels"] == nil || families["natpass_server_cluster_messages_total"] == nil {
		t.Errorf("server metrics missing: %v", families)
	}
}

func TestReadyz(t *testing.T) {
	var h Health
	srv := httptest.NewServer(Handler(NewRegistry(), &h))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	for _, step := range []struct {
		do         func()
		code       int
		body, when string
	}{
		{func() {}, 503, "starting", "before the sockets are up"},
		{h.SetReady, 200, "ready", "serving"},
		{h.StartDrain, 503, "draining", "draining"},
	} {
		step.do()
		if code, body := get("/readyz"); code != step.code || body != step.body {
			t.Errorf("/readyz %s: %d %q, want %d %q", step.when, code, body, step.code, step.body)
		}
		if code, _ := get("/healthz"); code != 200 {
			t.Errorf("/healthz %s: %d, want 200", step.when, code)
		}
	}
}
