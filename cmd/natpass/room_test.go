package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natpass/natpass/node"
)

func TestRoomFlags(t *testing.T) {
	opt, cfg, code := parseRoomFlags([]string{"--server", "127.0.0.1:1, 127.0.0.1:2", "--id", "ann", "--room", "lobby",
		"--insecure-dev", "--relay", "force", "--wait", "2", "--linger", "5s"}, &bytes.Buffer{})
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	if opt.room != "lobby" || opt.wait != 2 || opt.linger != 5*time.Second || cfg.ID != "ann" ||
		!cfg.InsecureDev || cfg.Relay != node.RelayForce || strings.Join(cfg.Servers, ",") != "127.0.0.1:1,127.0.0.1:2" {
		t.Errorf("parsed %+v %+v", opt, cfg)
	}
	if opt, _, _ := parseRoomFlags([]string{"--server", "h:1", "--id", "a", "--room", "r", "--insecure-dev"}, &bytes.Buffer{}); opt.linger != 2*time.Second {
		t.Errorf("default linger %v, want 2s", opt.linger)
	}
	for _, args := range [][]string{
		{"--id", "a", "--room", "r", "--insecure-dev"},
		{"--server", "127.0.0.1:1", "--room", "r", "--insecure-dev"},
		{"--server", "127.0.0.1:1", "--id", "a", "--insecure-dev"},
		{"--server", "127.0.0.1:1", "--id", "a", "--room", "r"},
		{"--server", "127.0.0.1:1", "--id", "a", "--room", strings.Repeat("r", 65), "--insecure-dev"},
		{"--server", "127.0.0.1:1", "--id", "a", "--room", "r", "--insecure-dev", "--relay", "sometimes"},
		{"--server", "127.0.0.1:1", "--id", "a", "--room", "r", "--insecure-dev", "--linger", "-1s"},
		{"--server", "127.0.0.1:1,127.0.0.1:1", "--id", "a", "--room", "r", "--insecure-dev"},
		{"--server", "127.0.0.1:1", "--id", "a", "--room", "r", "--insecure-dev", "extra"},
	} {
		if code := roomMain(context.Background(), args, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	var out bytes.Buffer
	if run([]string{"help"}, &bytes.Buffer{}, &out); !strings.Contains(out.String(), "room") {
		t.Errorf("room is not in the command table:\n%s", out.String())
	}
}

// Three `natpass room` in one room: each line of each reaches both others as
// "SENDER: text", and each exits 0 after its lines were acknowledged.
func TestRoomCommandThreeMembers(t *testing.T) {
	addr, _ := startServerCmd(t, "--listen", "127.0.0.1:0", "--insecure-dev", "--quiet")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ids := []string{"ann", "ben", "cat"}
	codes := make([]int, len(ids))
	outs, errs := make([]*syncBuffer, len(ids)), make([]*syncBuffer, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		outs[i], errs[i] = &syncBuffer{}, &syncBuffer{}
		in := fmt.Sprintf("first line from %s\nsecond line from %s\n", id, id)
		args := []string{"--server", addr, "--id", id, "--room", "lobby", "--insecure-dev", "--wait", "2", "--linger", "3s"}
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = roomMain(ctx, args, strings.NewReader(in), outs[i], errs[i])
		}()
	}
	wg.Wait()
	for i, id := range ids {
		if codes[i] != 0 {
			t.Errorf("%s exited %d; stderr:\n%s", id, codes[i], errs[i].String())
		}
		for _, other := range ids {
			for _, which := range []string{"first", "second"} {
				want := fmt.Sprintf("%s: %s line from %s\n", other, which, other)
				if got := strings.Contains(outs[i].String(), want); got == (other == id) {
					t.Errorf("%s: stdout has %q: %v\n%s", id, want, got, outs[i].String())
				}
			}
		}
		if !strings.Contains(errs[i].String(), "joined \"lobby\"") {
			t.Errorf("%s: stderr says nothing of the join:\n%s", id, errs[i].String())
		}
	}
}
