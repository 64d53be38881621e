package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/rendezvous"
)

// syncBuffer is a bytes.Buffer safe for the goroutines of one command.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func writeSecret(t *testing.T) (path string, secret []byte) {
	t.Helper()
	secret = []byte("cmd test secret, 32 bytes long..")
	path = filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, secret
}

func TestTicketCommand(t *testing.T) {
	secretFile, secret := writeSecret(t)
	keyFile := filepath.Join(t.TempDir(), "alice.key")
	for _, withKeyFile := range []bool{false, true} {
		args := []string{"--secret-file", secretFile, "--id", "alice", "--ttl", "1h"}
		if withKeyFile {
			args = append(args, "--key-file", keyFile)
		}
		var out, errb bytes.Buffer
		if code := runTicket(args, &out, &errb); code != 0 {
			t.Fatalf("ticket %v: exit %d: %s", args, code, errb.String())
		}
		fields := strings.Fields(out.String())
		if len(fields) != 4 || fields[0] != "--ticket" {
			t.Fatalf("ticket printed %q; want --ticket T --key K", out.String())
		}
		var adm admission
		adm.ticket = fields[1]
		if withKeyFile {
			adm.keyFile = fields[3]
		} else {
			adm.key = fields[3]
		}
		var cfg driver.Config
		if err := adm.apply(&cfg, false); err != nil {
			t.Fatalf("the printed flags do not parse: %v", err)
		}
		tk, err := rendezvous.VerifyTicket(secret, cfg.Ticket, uint64(time.Now().Unix()))
		if err != nil {
			t.Fatalf("minted ticket does not verify: %v", err)
		}
		pub, _ := driver.PublicKey(cfg.PrivateKey)
		if string(tk.PeerID) != "alice" || tk.PublicKey != pub {
			t.Fatalf("ticket binds %q/%x, want alice and the printed key's public key", tk.PeerID, tk.PublicKey)
		}
		if exp := time.Unix(int64(tk.ExpiryUnix), 0); time.Until(exp) > time.Hour || time.Until(exp) < 59*time.Minute {
			t.Fatalf("expiry %v is not an hour from now", exp)
		}
	}
	if code := runTicket([]string{"--id", "x"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Fatalf("ticket without --secret-file: exit %d, want 2", code)
	}
}

// startServerCmd runs `natpass server` in-process and returns its primary address
// and its log (stderr).
func startServerCmd(t *testing.T, args ...string) (addr string, log *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *driver.Server, 1)
	exited := make(chan int, 1)
	log = &syncBuffer{}
	go func() {
		exited <- serverMain(ctx, args, log, func(up serverUp) { started <- up.srv })
	}()
	var s *driver.Server
	select {
	case s = <-started:
	case code := <-exited:
		t.Fatalf("server %v exited %d", args, code)
	}
	t.Cleanup(func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("server exit %d", code)
		}
		if !strings.Contains(log.String(), "msg=stats ") {
			t.Errorf("server logged no stats at exit: %q", log.String())
		}
	})
	return s.Addr().String(), log
}

func TestNatcheckCommand(t *testing.T) {
	addr, _ := startServerCmd(t, "--listen", "127.0.0.1:0", "--listen2", "127.0.0.2:0", "--insecure-dev", "--quiet")
	var out, errb bytes.Buffer
	if code := runNatcheck([]string{"--server", addr, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("natcheck exit %d: %s", code, errb.String())
	}
	var r natReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("natcheck --json printed %q: %v", out.String(), err)
	}
	if r.Translation || r.Local != r.External || !strings.HasPrefix(r.Local, "127.0.0.1:") {
		t.Fatalf("loopback natcheck: %+v; want no translation, external = local on 127.0.0.1", r)
	}
	if r.Mapping != "endpoint-independent" || r.Filtering != "endpoint-independent" {
		t.Fatalf("loopback natcheck: %+v; want endpoint-independent mapping and filtering", r)
	}
	if r.Family != "ipv4" || r.Other != nil || r.OtherError != "" {
		t.Fatalf("natcheck of a server known by an IPv4 literal: %+v; want ipv4 only", r)
	}
}

func TestNatcheckRefusedWithoutTicket(t *testing.T) {
	secretFile, _ := writeSecret(t)
	addr, _ := startServerCmd(t, "--listen", "127.0.0.1:0", "--secret-file", secretFile, "--quiet")
	var errb bytes.Buffer
	if code := runNatcheck([]string{"--server", addr, "--timeout", "5s"}, &bytes.Buffer{}, &errb); code != 1 {
		t.Fatalf("natcheck without a ticket against a secret server: exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "--secret-file") {
		t.Fatalf("natcheck did not say which flag to add: %q", errb.String())
	}
	if code := runNatcheck([]string{"--server", addr, "--secret-file", secretFile}, &bytes.Buffer{}, &errb); code != 0 {
		t.Fatalf("natcheck with the secret: exit %d: %s", code, errb.String())
	}
	// With the flags `natpass ticket` prints, the ID comes from the ticket.
	var flags bytes.Buffer
	if code := runTicket([]string{"--secret-file", secretFile, "--id", "probe"}, &flags, &errb); code != 0 {
		t.Fatalf("ticket: exit %d", code)
	}
	if code := runNatcheck(append([]string{"--server", addr}, strings.Fields(flags.String())...), &bytes.Buffer{}, &errb); code != 0 {
		t.Fatalf("natcheck with ticket flags: exit %d: %s", code, errb.String())
	}
}

// catPair runs two `natpass cat` in-process, one accepting and one connecting,
// with the given stdins; it returns their exit codes, stdouts and stderrs.
func catPair(t *testing.T, addr string, admit []string, inA, inB []byte) (codes [2]int, outs, errs [2]*syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := [2][]string{
		append([]string{"--server", addr, "--id", "cat-a", "--connect", "cat-b"}, admit...),
		append([]string{"--server", addr, "--id", "cat-b"}, admit...),
	}
	ins := [2][]byte{inA, inB}
	var wg sync.WaitGroup
	for i := range 2 {
		outs[i], errs[i] = &syncBuffer{}, &syncBuffer{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 0 {
				time.Sleep(100 * time.Millisecond) // let b register first
			}
			codes[i] = catMain(ctx, args[i], holdOpen(ctx, ins[i], errs[i], "path=direct"), outs[i], errs[i])
		}()
	}
	wg.Wait()
	return codes, outs, errs
}

// holdOpen is an input that gives data, then stays open until stderr shows want (at
// most 20 s): traffic starts on the relay, so a test that asserts the direct path lets
// punching finish before cat ends.
func holdOpen(ctx context.Context, data []byte, stderr *syncBuffer, want string) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(data)
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
			if strings.Contains(stderr.String(), want) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		pw.Close()
	}()
	return pr
}

func TestCatMovesBytesBothWays(t *testing.T) {
	secretFile, _ := writeSecret(t)
	addr, _ := startServerCmd(t, "--listen", "127.0.0.1:0", "--listen2", "127.0.0.2:0", "--secret-file", secretFile, "--quiet")
	rng := rand.New(rand.NewPCG(8, 8))
	inA, inB := make([]byte, 1<<20), make([]byte, 1<<20+12345)
	for i := range inA {
		inA[i] = byte(rng.Uint32())
	}
	for i := range inB {
		inB[i] = byte(rng.Uint32())
	}
	codes, outs, errs := catPair(t, addr, []string{"--secret-file", secretFile}, inA, inB)
	for i := range 2 {
		if codes[i] != 0 {
			t.Errorf("cat %d exit %d; stderr:\n%s", i, codes[i], errs[i].String())
		}
		if !strings.Contains(errs[i].String(), "path=direct") {
			t.Errorf("cat %d printed no path=direct line; stderr:\n%s", i, errs[i].String())
		}
	}
	if !bytes.Equal(outs[1].Bytes(), inA) {
		t.Errorf("b received %d bytes, a sent %d (equal: false)", len(outs[1].Bytes()), len(inA))
	}
	if !bytes.Equal(outs[0].Bytes(), inB) {
		t.Errorf("a received %d bytes, b sent %d (equal: false)", len(outs[0].Bytes()), len(inB))
	}
}

func TestCatOneWayAndEmpty(t *testing.T) {
	addr, _ := startServerCmd(t, "--listen", "127.0.0.1:0", "--insecure-dev", "--quiet")
	codes, outs, errs := catPair(t, addr, []string{"--insecure-dev"}, []byte("hello over natpass\n"), nil)
	for i := range 2 {
		if codes[i] != 0 {
			t.Fatalf("cat %d exit %d; stderr:\n%s", i, codes[i], errs[i].String())
		}
	}
	if got := outs[1].String(); got != "hello over natpass\n" {
		t.Fatalf("b got %q", got)
	}
	if got := outs[0].String(); got != "" {
		t.Fatalf("a got %q from an empty stdin", got)
	}
}

func TestCatUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--id", "a", "--insecure-dev"},
		{"--server", "127.0.0.1:1", "--id", "a"},
		{"--server", "127.0.0.1:1", "--id", "a", "--insecure-dev", "--relay", "sometimes"},
	} {
		if code := catMain(context.Background(), args, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
			t.Errorf("cat %v: exit %d, want 2", args, code)
		}
	}
}

// --relay force: every byte goes through the server's relay, and no direct path is
// ever reported (the server shares no addresses).
func TestCatRelayForce(t *testing.T) {
	secretFile, _ := writeSecret(t)
	addr, _ := startServerCmd(t, "--listen", "127.0.0.1:0", "--listen2", "127.0.0.2:0", "--secret-file", secretFile, "--quiet")
	inA, inB := bytes.Repeat([]byte("natpass relay "), 20000), bytes.Repeat([]byte("relayed back "), 10000)
	codes, outs, errs := runCats(t,
		[]string{"--server", addr, "--id", "cat-a", "--connect", "cat-b", "--relay", "force", "--secret-file", secretFile}, inA,
		[]string{"--server", addr, "--id", "cat-b", "--secret-file", secretFile}, inB, nil)
	for i := range 2 {
		if codes[i] != 0 {
			t.Errorf("cat %d exit %d; stderr:\n%s", i, codes[i], errs[i].String())
		}
		if !strings.Contains(errs[i].String(), "path=relay") || strings.Contains(errs[i].String(), "path=direct") {
			t.Errorf("cat %d: want path=relay and never path=direct; stderr:\n%s", i, errs[i].String())
		}
		// The relay line names the relay, the server, and the RTT rudp measured
		// (the data it carried was acknowledged), never an invalid local address.
		if !regexp.MustCompile(`(?m)^path=relay (local=\S+ )?relay=`+regexp.QuoteMeta(addr)+` rtt=[1-9]`).MatchString(errs[i].String()) ||
			strings.Contains(errs[i].String(), "invalid") {
			t.Errorf("cat %d: want a line path=relay relay=%s rtt=<measured>; stderr:\n%s", i, addr, errs[i].String())
		}
	}
	if !bytes.Equal(outs[1].Bytes(), inA) || !bytes.Equal(outs[0].Bytes(), inB) {
		t.Errorf("bytes differ: b got %d of %d, a got %d of %d", len(outs[1].Bytes()), len(inA), len(outs[0].Bytes()), len(inB))
	}
	// The connected lines say the relay carries it and nothing is punched, on the
	// side that forced it and on the other; no strategy is named.
	for i, want := range []string{
		`natpass cat: connected to "cat-b" via relay ` + addr + ` (relay forced by --relay force: no hole punching)`,
		`natpass cat: connected to "cat-a" via relay ` + addr + ` (relay forced by the peer: no hole punching)`,
	} {
		if !strings.Contains(errs[i].String(), want+"\n") || strings.Contains(errs[i].String(), "strategy") {
			t.Errorf("cat %d: want the line %q and no strategy; stderr:\n%s", i, want, errs[i].String())
		}
	}
}

func TestDemoCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runDemo([]string{"--messages", "100", "--bulk", "1048576", "--pings", "20"}, &out, &errb); code != 0 {
		t.Fatalf("demo exit %d: %s\n%s", code, errb.String(), out.String())
	}
	for _, want := range []string{"path=direct", "100 each way", "natpass demo: ok"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// --relay-session-mbps sets each session's relay budget: with 1 Mbit/s a relayed
// transfer still arrives whole (rudp repairs what the budget drops) and the stats
// line at exit counts frames dropped over the budget; a bad rate is refused.
func TestServerRelayBudget(t *testing.T) {
	secretFile, _ := writeSecret(t)
	for _, bad := range []string{"-1", "NaN", "+Inf", "100001"} {
		if code := serverMain(context.Background(), []string{"--listen", "127.0.0.1:0", "--secret-file", secretFile, "--relay-session-mbps", bad},
			&syncBuffer{}, nil); code != 2 {
			t.Errorf("--relay-session-mbps %s: exit %d, want 2", bad, code)
		}
	}
	// The largest rate accepted is a working budget (its burst window does not
	// overflow).
	if r, ok := relayBudget(maxRelayMbps); !ok || r.Burst <= 0 || r.Burst > math.MaxInt64/int64(time.Second) {
		t.Fatalf("relayBudget(%g) = %+v, %v", maxRelayMbps, r, ok)
	}
	var serverLog *syncBuffer
	t.Run("policed", func(t *testing.T) {
		var addr string
		addr, serverLog = startServerCmd(t, "--listen", "127.0.0.1:0", "--listen2", "127.0.0.2:0", "--secret-file", secretFile,
			"--quiet", "--relay-session-mbps", "1")
		in := bytes.Repeat([]byte("over budget "), 10000) // 120 kB, about a second at 1 Mbit/s
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var out, errA, errB syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- catMain(ctx, []string{"--server", addr, "--id", "budget-b", "--secret-file", secretFile}, bytes.NewReader(nil), &out, &errB)
		}()
		time.Sleep(100 * time.Millisecond)
		if code := catMain(ctx, []string{"--server", addr, "--id", "budget-a", "--connect", "budget-b", "--relay", "force",
			"--secret-file", secretFile}, bytes.NewReader(in), &syncBuffer{}, &errA); code != 0 {
			t.Fatalf("cat a exit %d; stderr:\n%s", code, errA.String())
		}
		if code := <-done; code != 0 || !bytes.Equal(out.Bytes(), in) {
			t.Fatalf("cat b exit %d with %d of %d bytes; stderr:\n%s", code, len(out.Bytes()), len(in), errB.String())
		}
	})
	// The server logged its stats when the subtest's cleanup stopped it.
	var dropped int
	if i := strings.LastIndex(serverLog.String(), "relay_over_budget="); i < 0 {
		t.Fatalf("no relay counters in the server's stats: %q", serverLog.String())
	} else if _, err := fmt.Sscanf(serverLog.String()[i:], "relay_over_budget=%d", &dropped); err != nil || dropped == 0 {
		t.Fatalf("relay over budget %d (%v) after 120 kB at 1 Mbit/s; want frames dropped", dropped, err)
	}
}

// --server A,B: with the first server silent, both cats register with the second
// (after the register's 3 s bound), say so, and the transfer goes through.
func TestCatServerList(t *testing.T) {
	secretFile, _ := writeSecret(t)
	addr, _ := startServerCmd(t, "--listen", "127.0.0.1:0", "--listen2", "127.0.0.2:0", "--secret-file", secretFile, "--quiet")
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}) // takes datagrams, answers none
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	list := silent.LocalAddr().String() + "," + addr
	in := bytes.Repeat([]byte("listed "), 1000)
	codes, outs, errs := runCats(t,
		[]string{"--server", list, "--id", "list-a", "--connect", "list-b", "--relay", "force", "--secret-file", secretFile}, in,
		[]string{"--server", list, "--id", "list-b", "--secret-file", secretFile}, nil, nil)
	moved := fmt.Sprintf("server from=%s to=%s reason=%q", silent.LocalAddr(), addr, "no answer to register")
	for i := range 2 {
		if codes[i] != 0 || !strings.Contains(errs[i].String(), moved) || !strings.Contains(errs[i].String(), "with "+addr) {
			t.Errorf("cat %d exit %d; want exit 0, %q and registration with %s; stderr:\n%s", i, codes[i], moved, addr, errs[i].String())
		}
	}
	if !bytes.Equal(outs[1].Bytes(), in) {
		t.Errorf("b got %d of %d bytes", len(outs[1].Bytes()), len(in))
	}
}

// runCats runs two `natpass cat` in-process: b (accepting) first, then a
// (connecting) once ready returns (nil: after 100 ms, so b has registered), each
// with its stdin; it returns their exit codes, stdouts and stderrs.
func runCats(t *testing.T, argsA []string, inA []byte, argsB []string, inB []byte, ready func(errB *syncBuffer)) (codes [2]int, outs, errs [2]*syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	outs, errs = [2]*syncBuffer{{}, {}}, [2]*syncBuffer{{}, {}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		codes[1] = catMain(ctx, argsB, bytes.NewReader(inB), outs[1], errs[1])
	}()
	if ready == nil {
		time.Sleep(100 * time.Millisecond)
	} else {
		ready(errs[1])
	}
	codes[0] = catMain(ctx, argsA, bytes.NewReader(inA), outs[0], errs[0])
	wg.Wait()
	return codes, outs, errs
}
