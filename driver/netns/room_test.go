package netns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// roomMembers are the four members of the room test, each behind its own NAT: a
// pair behind random-symmetric NATs (their link can only be relayed) and a pair
// behind port-restricted NATs.
var roomMembers = [4]struct {
	id   string
	kind sideKind
}{
	{"ra", randomFull},
	{"rb", randomFull},
	{"ma", masquerade},
	{"mb", masquerade},
}

const roomLines = 20 // lines each member sends

// roomProc is one `natpass room` process and what it was given.
type roomProc struct {
	id             string
	lines          []string
	stdout, stderr *syncBuffer
	err            error
}

// roomInput is the lines member id sends, each tagged with its id.
func roomInput(id string) []string {
	lines := make([]string, roomLines)
	for i := range lines {
		lines[i] = fmt.Sprintf("line %02d from %s", i, id)
	}
	return lines
}

// runRoom runs `natpass room --room lobby --wait 3` on host for member id and
// returns once it ended.
func (tp *topo) runRoom(ctx context.Context, host, id, secretFile string) *roomProc {
	p := &roomProc{id: id, lines: roomInput(id), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", host, natpassBin, "room", "--server", serverAt,
		"--id", id, "--room", "lobby", "--secret-file", secretFile, "--wait", "3", "--linger", "2s",
		"--timeout", "40s")
	cmd.Stdin = strings.NewReader(strings.Join(p.lines, "\n") + "\n")
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	p.err = cmd.Run()
	return p
}

// checkRoomOutput asserts that p exited 0 and its stdout holds exactly the other
// members' lines, each once as "SENDER: text", in each sender's order.
func checkRoomOutput(t *testing.T, p *roomProc, all []*roomProc) {
	t.Helper()
	if p.err != nil {
		t.Errorf("member %s: %v", p.id, p.err)
	}
	got := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(p.stdout.bytes()), "\n"), "\n") {
		sender, text, ok := strings.Cut(line, ": ")
		if !ok {
			t.Errorf("member %s printed %q, not SENDER: text", p.id, line)
			continue
		}
		got[sender] = append(got[sender], text)
	}
	for _, q := range all {
		want := q.lines
		if q.id == p.id {
			want = nil
		}
		if strings.Join(got[q.id], "\n") != strings.Join(want, "\n") {
			t.Errorf("member %s received from %s %d lines %q, want %d lines %q", p.id, q.id,
				len(got[q.id]), got[q.id], len(want), want)
		}
		delete(got, q.id)
	}
	for sender, lines := range got {
		t.Errorf("member %s received %d lines from unknown sender %q", p.id, len(lines), sender)
	}
}

// roomPathRE matches the stderr lines of `natpass room` about a link's path.
var roomPathRE = regexp.MustCompile(`(?m)^member=(\S+) (?:link-up|path) path=(\w+).*$`)

// roomPaths is, for each member p linked with, every path its stderr reported.
func roomPaths(p *roomProc) map[string][]string {
	paths := map[string][]string{}
	for _, m := range roomPathRE.FindAllStringSubmatch(string(p.stderr.bytes()), -1) {
		paths[m[1]] = append(paths[m[1]], m[2])
	}
	return paths
}

// checkRelayed asserts that p's link with other came up on the relay and never
// reported another path.
func checkRelayed(t *testing.T, p *roomProc, other string) {
	t.Helper()
	paths := roomPaths(p)[other]
	if len(paths) == 0 {
		t.Errorf("member %s reported no path for its link with %s", p.id, other)
	}
	for _, path := range paths {
		if path != "relay" {
			t.Errorf("member %s's link with %s reported path=%s; only the relay is possible", p.id, other, path)
		}
	}
}

// A room through real NAT: one `natpass server` in the core and four
// `natpass room --room lobby --wait 3`, each behind its own NAT (two behind
// random-symmetric NATs, two behind port-restricted ones), each sending 20 lines
// tagged with its id. Every member exits 0 having printed exactly the other
// three's lines, each once and in each sender's order, and the link between the
// two random-symmetric members is on the relay.
func TestNetnsRoomFourMembers(t *testing.T) {
	t.Parallel()
	need(t)
	tp := newTopo(t, "room")
	core := tp.ns("core")
	tp.sh("ip", "-n", core, "addr", "add", serverIP+"/32", "dev", "lo")
	tp.sh("ip", "-n", core, "addr", "add", serverIP2+"/32", "dev", "lo")
	var hosts [4]string
	for i, m := range roomMembers {
		hosts[i] = tp.side(core, m.id, i, m.kind)
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("netns test secret 0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tp.startServer(ctx, core, secretFile)
	procs := make([]*roomProc, len(roomMembers))
	var wg sync.WaitGroup
	for i, m := range roomMembers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			procs[i] = tp.runRoom(ctx, hosts[i], m.id, secretFile)
		}()
	}
	wg.Wait()
	for _, p := range procs {
		checkRoomOutput(t, p, procs)
	}
	checkRelayed(t, procs[0], "rb")
	checkRelayed(t, procs[1], "ra")
	for _, p := range procs {
		t.Logf("member %s paths: %v", p.id, roomPaths(p))
		if t.Failed() {
			t.Logf("member %s stderr:\n%s", p.id, p.stderr.bytes())
		}
	}
}
