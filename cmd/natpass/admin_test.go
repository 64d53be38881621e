package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// startAdminServer runs `natpass server` in-process with args and returns what it
// started, its log and a function that stops it and returns its exit code.
func startAdminServer(t *testing.T, args ...string) (up serverUp, log *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan serverUp, 1)
	exited := make(chan int, 1)
	log = &syncBuffer{}
	go func() { exited <- serverMain(ctx, args, log, func(up serverUp) { started <- up }) }()
	select {
	case up = <-started:
	case code := <-exited:
		cancel()
		t.Fatalf("server %v exited %d: %s", args, code, log.String())
	}
	var once sync.Once
	code := 0
	stop = func() int {
		once.Do(func() { cancel(); code = <-exited })
		return code
	}
	t.Cleanup(func() { stop() })
	return up, log, stop
}

// scrapeMetrics fetches and parses /metrics with Prometheus's text parser.
func scrapeMetrics(t *testing.T, admin net.Addr) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + admin.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s %v", resp.Status, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return families
}

// sample is the value of metric name's sample whose label (if any) is value ("":
// the metric's only sample); -1 when there is none.
func sample(families map[string]*dto.MetricFamily, name, labelValue string) float64 {
	f := families[name]
	if f == nil {
		return -1
	}
	for _, m := range f.Metric {
		if labelValue != "" && (len(m.Label) != 1 || m.Label[0].GetValue() != labelValue) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	return -1
}

// readyz is /readyz's status code (0: no answer, the endpoint is gone).
func readyz(admin net.Addr) int {
	resp, err := http.Get("http://" + admin.String() + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// stunRequest is an RFC 8489 Binding request padded (with a comprehension-optional
// SOFTWARE attribute) to be larger than its answer, which the server requires.
func stunRequest(txid byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, 0x0001)
	b = binary.BigEndian.AppendUint16(b, 4+16)
	b = binary.BigEndian.AppendUint32(b, 0x2112A442)
	b = append(b, bytes.Repeat([]byte{txid}, 12)...)
	b = binary.BigEndian.AppendUint16(b, 0x8022)
	b = binary.BigEndian.AppendUint16(b, 16)
	return append(b, "natpass ops test"...)
}

// sendRaw sends datagrams to the server from one socket, reading whatever comes
// back so that the replies are counted as sent.
func sendRaw(t *testing.T, server string, dgrams [][]byte) {
	t.Helper()
	c, err := net.Dial("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, d := range dgrams {
		if _, err := c.Write(d); err != nil {
			t.Fatal(err)
		}
	}
}

// The acceptance test of DESIGN §15's metrics: a server with --admin-listen and
// JSON logs, scraped before and during a relayed transfer between two cats, with a
// STUN flood and some garbage thrown in. Every counter the traffic touches grows,
// the gauges show the live pair, and every log line is a JSON object.
func TestServerAdminMetricsMoveWithTraffic(t *testing.T) {
	secretFile, _ := writeSecret(t)
	up, log, stop := startAdminServer(t, "--listen", "127.0.0.1:0", "--secret-file", secretFile,
		"--admin-listen", "127.0.0.1:0", "--log-format", "json")
	if readyz(up.admin) != http.StatusOK {
		t.Fatalf("/readyz not 200 once listening")
	}
	addr := up.srv.Addr().String()
	before := scrapeMetrics(t, up.admin)

	// 30 STUN requests from one source at once: the per-source bucket (burst 20)
	// answers some and refuses the rest; 5 datagrams that are not natpass at all.
	var raw [][]byte
	for i := range 30 {
		raw = append(raw, stunRequest(byte(i)))
	}
	for range 5 {
		raw = append(raw, []byte("\x7fnot natpass"))
	}
	sendRaw(t, addr, raw)

	during, outB := relayedPair(t, addr, secretFile, func() map[string]*dto.MetricFamily { return scrapeMetrics(t, up.admin) })
	if len(outB) != 256<<10 {
		t.Fatalf("b received %d bytes, want %d", len(outB), 256<<10)
	}
	grew := func(name, label string, atLeast float64) {
		t.Helper()
		b, d := sample(before, name, label), sample(during, name, label)
		if b < 0 || d-b < atLeast {
			t.Errorf("%s{%s}: %v before, %v during; want it there and grown by at least %v", name, label, b, d, atLeast)
		}
	}
	grew("natpass_server_registrations_total", "", 2)
	grew("natpass_server_introductions_total", "", 1)
	grew("natpass_server_relayed_frames_total", "", 100)
	grew("natpass_server_relayed_bytes_total", "", 256<<10)
	grew("natpass_server_relay_allocations_total", "", 2)
	grew("natpass_server_datagrams_total", "in", 100)
	grew("natpass_server_bytes_total", "out", 256<<10)
	grew("natpass_server_stun_answers_total", "", 1)
	grew("natpass_server_drops_total", "rate_limited", 1)
	grew("natpass_server_drops_total", "not_natpass", 5)
	if got := sample(during, "natpass_server_sessions", ""); got != 2 {
		t.Errorf("natpass_server_sessions = %v during the transfer, want 2", got)
	}
	if got := sample(during, "natpass_server_relay_channels", ""); got != 2 {
		t.Errorf("natpass_server_relay_channels = %v during the transfer, want 2 (one per side)", got)
	}
	if code := stop(); code != 0 {
		t.Fatalf("server exit %d", code)
	}
	checkJSONLog(t, log.String(), "natpass server listening", "admin endpoint listening", "stats")
}

// relayedPair runs two cats through the server's relay (--relay force): a sends
// 256 KiB to b, then while both are still connected scrape is called; then both
// finish. It returns the scrape and what b received.
func relayedPair(t *testing.T, addr, secretFile string, scrape func() map[string]*dto.MetricFamily) (map[string]*dto.MetricFamily, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	data := randomBytes(16, 256<<10)
	inA, feedA := io.Pipe()
	var outB, errA, errB syncBuffer
	codes := make(chan int, 2)
	go func() {
		codes <- catMain(ctx, []string{"--server", addr, "--id", "ops-b", "--secret-file", secretFile}, bytes.NewReader(nil), &outB, &errB)
	}()
	waitRegistered(t, &errB)
	go func() {
		codes <- catMain(ctx, []string{"--server", addr, "--id", "ops-a", "--connect", "ops-b", "--relay", "force",
			"--secret-file", secretFile}, inA, &syncBuffer{}, &errA)
	}()
	if _, err := feedA.Write(data); err != nil {
		t.Fatalf("writing a's input: %v; stderr a:\n%s", err, errA.String())
	}
	for len(outB.Bytes()) < len(data) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	during := scrape()
	feedA.Close()
	for range 2 {
		if code := <-codes; code != 0 {
			t.Errorf("a cat exit %d; stderr a:\n%s\nb:\n%s", code, errA.String(), errB.String())
		}
	}
	return during, outB.Bytes()
}

// checkJSONLog checks that every line of log is a JSON object with time, level and
// msg, and that the messages want are among them.
func checkJSONLog(t *testing.T, log string, want ...string) {
	t.Helper()
	msgs := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q: %v", line, err)
			continue
		}
		if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("log line lacks time, level or msg: %q", line)
		}
		msg, _ := rec["msg"].(string)
		msgs[msg] = true
	}
	for _, m := range want {
		if !msgs[m] {
			t.Errorf("no log line with msg %q in:\n%s", m, log)
		}
	}
}

// A server of a cluster: /metrics counts its route to the other server and the
// cluster messages a registration sends; on SIGTERM /readyz turns 503 while the
// drain waits for the registered node (which has no other server to go to), and
// the server exits 0 once --drain-timeout has passed.
func TestClusterServerAdminReadyzDuringDrain(t *testing.T) {
	secretFile, _ := writeSecret(t)
	ms := startCluster(t, 2, secretFile, "3s")
	before := scrapeMetrics(t, ms[0].admin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errB syncBuffer
	catDone := make(chan int, 1)
	go func() {
		catDone <- catMain(ctx, []string{"--server", ms[0].addr, "--id", "drain-b", "--secret-file", secretFile},
			bytes.NewReader(nil), &syncBuffer{}, &errB)
	}()
	waitRegistered(t, &errB)
	ms[1].waitInterest(t, "drain-b")
	after := scrapeMetrics(t, ms[0].admin)
	if got := sample(after, "natpass_server_cluster_peers", ""); got != 1 {
		t.Errorf("natpass_server_cluster_peers = %v, want 1", got)
	}
	for _, m := range []struct{ name, label string }{
		{"natpass_server_cluster_messages_total", "out"},
		{"natpass_server_cluster_bus_messages_total", "out"},
		{"natpass_server_registrations_total", ""},
	} {
		if b, a := sample(before, m.name, m.label), sample(after, m.name, m.label); b < 0 || a <= b {
			t.Errorf("%s{%s}: %v before the registration, %v after; want it grown", m.name, m.label, b, a)
		}
	}

	ms[0].stop() // SIGTERM
	saw503 := false
	for !saw503 {
		code := readyz(ms[0].admin)
		if code == 0 {
			break // the server is gone
		}
		saw503 = code == http.StatusServiceUnavailable
		time.Sleep(5 * time.Millisecond)
	}
	if !saw503 {
		t.Errorf("/readyz never answered 503 during the drain; log:\n%s", ms[0].stderr.String())
	}
	if code := <-ms[0].exited; code != 0 || !strings.Contains(ms[0].stderr.String(), "draining: telling the nodes to move") {
		t.Errorf("drained server exit %d; log:\n%s", code, ms[0].stderr.String())
	}
	ms[0].exited <- 0 // for the cleanup
	cancel()
	<-catDone
}

// NATPASS_<FLAG> sets any flag of natpass server; the command line wins; a bad
// value is refused naming its variable.
func TestServerFlagsFromEnvironment(t *testing.T) {
	t.Setenv("NATPASS_LISTEN", "127.0.0.3:0") // an address no default would give
	t.Setenv("NATPASS_INSECURE_DEV", "true")
	t.Setenv("NATPASS_ADMIN_LISTEN", "127.0.0.1:0")
	t.Setenv("NATPASS_LOG_FORMAT", "json")
	t.Setenv("NATPASS_ALT_PORT", "off")
	up, log, stop := startAdminServer(t)
	if got := up.srv.Addrs(); len(got) != 1 || got[0].Addr().String() != "127.0.0.3" {
		t.Errorf("NATPASS_LISTEN=127.0.0.3:0 NATPASS_ALT_PORT=off: listening on %v", got)
	}
	if up.admin == nil || readyz(up.admin) != http.StatusOK {
		t.Errorf("NATPASS_ADMIN_LISTEN: admin endpoint %v not ready", up.admin)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	checkJSONLog(t, log.String(), "natpass server listening")

	// The command line wins over the environment.
	up, _, _ = startAdminServer(t, "--listen", "127.0.0.4:0", "--log-format", "text")
	if got := up.srv.Addr().Addr().String(); got != "127.0.0.4" {
		t.Errorf("--listen 127.0.0.4:0 with NATPASS_LISTEN set: listening on %v", got)
	}

	t.Setenv("NATPASS_STATS", "often")
	var stderr syncBuffer
	if code := serverMain(context.Background(), nil, &stderr, nil); code != 2 || !strings.Contains(stderr.String(), `NATPASS_STATS="often"`) {
		t.Errorf("NATPASS_STATS=often: exit %d, stderr %q; want 2 and the variable named", code, stderr.String())
	}
}

// The other commands read NATPASS_<COMMAND>_<FLAG>, never the server's variables.
func TestCommandEnvPrefix(t *testing.T) {
	for _, c := range []struct{ cmd, flag, want string }{
		{"server", "listen", "NATPASS_LISTEN"},
		{"server", "drain-timeout", "NATPASS_DRAIN_TIMEOUT"},
		{"cat", "server", "NATPASS_CAT_SERVER"},
		{"ticket", "secret-file", "NATPASS_TICKET_SECRET_FILE"},
	} {
		if got := envName(commandEnvPrefix(c.cmd), c.flag); got != c.want {
			t.Errorf("%s --%s: %s, want %s", c.cmd, c.flag, got, c.want)
		}
	}
	t.Setenv("NATPASS_LISTEN", "127.0.0.1:1") // a server's: cat must not take it
	t.Setenv("NATPASS_CAT_ID", "from-env")
	fs := newFlagSet("cat", io.Discard)
	listen, id := fs.String("listen", "", ""), fs.String("id", "", "")
	if err := parseFlags(fs, nil); err != nil || *listen != "" || *id != "from-env" {
		t.Errorf("cat from the environment: listen %q id %q (%v); want listen unset, id from-env", *listen, *id, err)
	}
}
