package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// A server alone, stopped with SIGTERM, tells its nodes it goes ([SRV-16]): a cat
// registered with it registers again with a new server on the same address before
// its next keepalive (25 s after it registered) could have told it of a silent
// restart, and the old server exits 0 after saying so. (Without the notice the cat
// came back after 22 s here: its keepalive met the new server and heard error 5.)
func TestServerAloneRestartNodesRegisterAgain(t *testing.T) {
	secretFile, _ := writeSecret(t)
	var keepalives func() uint64
	first := runClusterMemberWith(t, []string{"--listen", "127.0.0.1:0", "--secret-file", secretFile}, func(up serverUp) {
		keepalives = func() uint64 { return up.srv.Stats().Keepalives }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errB syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- catMain(ctx, []string{"--server", first.addr, "--id", "restart-b", "--secret-file", secretFile},
			bytes.NewReader(nil), &out, &errB)
	}()
	waitRegistered(t, &errB)
	// The keepalive with the cat's NAT report is repeated until acknowledged, and
	// one in flight at the restart would tell the cat at once: stop once it is in,
	// when the cat's next keepalive is one interval away.
	for deadline := time.Now().Add(10 * time.Second); keepalives() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no keepalive from the cat; stderr:\n%s", errB.String())
		}
	}
	time.Sleep(200 * time.Millisecond) // the ack's way back
	first.stop()                       // SIGTERM
	code := <-first.exited
	first.exited <- code // for the cleanup
	if code != 0 || !strings.Contains(first.stderr.String(), "stopping: telling the nodes to register again") {
		t.Fatalf("first server exit %d; stderr:\n%s", code, first.stderr.String())
	}
	var sessions func() int
	second := runClusterMemberWith(t, []string{"--listen", first.addr, "--secret-file", secretFile}, func(up serverUp) {
		sessions = func() int { return up.srv.Stats().Sessions }
	})
	// 15 s after the restart: before the cat's next keepalive could have told it.
	for deadline := time.Now().Add(15 * time.Second); sessions() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the node did not register again with the restarted server; cat stderr:\n%s\nserver:\n%s",
				errB.String(), second.stderr.String())
		}
	}
	cancel()
	<-done
}
