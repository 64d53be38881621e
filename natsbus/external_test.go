package natsbus

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/natpass/natpass/rendezvous"
)

// startTokenServer starts a standalone nats-server on a loopback port that wants
// token, and returns its client URL.
func startTokenServer(t *testing.T, token string) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true, Authorization: token,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(waitLimit) {
		t.Fatal("nats-server not ready")
	}
	return s.ClientURL()
}

// Two servers on one external NATS talk, requests to nobody come back as
// NoResponders, a second natpass cluster on the same NATS (another ClusterName)
// sees nothing of the first, and a wrong token is refused.
func TestExternalURL(t *testing.T) {
	url := startTokenServer(t, "s3cret-token")
	b1 := start(t, Config{URL: url, Token: "s3cret-token", ClusterName: "one"})
	b2 := start(t, Config{URL: url, Token: "s3cret-token", ClusterName: "one"})
	other := start(t, Config{URL: url, Token: "s3cret-token", ClusterName: "two"})
	if err := b1.WaitInterest(t.Context(), "peer.x"); err != ErrExternal {
		t.Fatalf("WaitInterest on an external NATS: %v", err)
	}

	mustSubscribe(t, b1, "srv.01")
	mustSubscribe(t, b2, "peer.x")
	// Subscribe does not wait for the server; Flush does (one NATS server, so
	// there is no route to propagate over).
	if err := b2.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, b1, rendezvous.ClusterMessage{Subject: "peer.x", Reply: "srv.01", Data: []byte("hi")})
	if m := recv(t, b2); m.Subject != "peer.x" || m.Reply != "srv.01" || string(m.Data) != "hi" {
		t.Fatalf("got %+v", m)
	}

	mustSubscribe(t, other, "srv.02")
	if err := other.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, other, rendezvous.ClusterMessage{Subject: "peer.x", Reply: "srv.02", Data: []byte("hi")})
	if m := recv(t, other); !m.NoResponders || m.Subject != "srv.02" {
		t.Fatalf("cluster two reached cluster one: got %+v", m)
	}

	if b, err := Start(Config{URL: url, Token: "wrong"}); err == nil {
		b.Close()
		t.Fatal("wrong token accepted")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("wrong token: %v", err)
	}
}

// driver/ and the core packages compile no NATS and no Prometheus: an app embedding
// the client pulls in neither (DESIGN §10); metrics come from admin/ and promnode/,
// packages an app may skip.
func TestDriverImportsNoNATSNorPrometheus(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	pkgs := []string{"driver", "node", "rendezvous", "proto", "keyx", "rudp", "punch", "relayframe", "sim", "lab"}
	args := []string{"list", "-deps"}
	for _, p := range pkgs {
		args = append(args, "github.com/natpass/natpass/"+p)
	}
	out, err := exec.Command(gobin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "nats-io") || strings.HasSuffix(dep, "/natsbus") || strings.Contains(dep, "prometheus") ||
			strings.HasSuffix(dep, "natpass/admin") || strings.HasSuffix(dep, "natpass/promnode") {
			t.Errorf("core imports %s", dep)
		}
	}
}
