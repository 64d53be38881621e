package node

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// A member whose link ended is linked again at a backoff that doubles (1 s, 2 s,
// ... up to 16 s) for at most relinkTries attempts while links keep ending; a link
// that comes up starts the backoff afresh, and a peer that is no member is never
// linked again.
func TestRelinkBacksOffAndStops(t *testing.T) {
	n, _ := roomNode(t)
	txid := joinTxID(t, n, 2, "lobby")
	if err := n.HandleDatagram(3, testLocal, testServer, roomState(txid, "lobby", 1, "alice", "bob")); err != nil {
		t.Fatal(err)
	}
	events(n)
	now := proto.Instant(3)
	var gaps []time.Duration
	for range relinkTries + 2 {
		n.srv.linkEnded(now, "bob")
		before := n.stats.Relinks
		ended := now
		for n.stats.Relinks == before && now < ended.Add(time.Minute) {
			now = n.Deadline()
			n.HandleTimeout(now)
			drainTx(n, now)
		}
		if n.stats.Relinks == before {
			break
		}
		gaps = append(gaps, now.Sub(ended))
		n.srv.intros = nil // the introduction is not what this test follows
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second}
	if len(gaps) != len(want) {
		t.Fatalf("re-links after %v, want %v", gaps, want)
	}
	for i := range want {
		if gaps[i] != want[i] {
			t.Fatalf("re-links after %v, want %v", gaps, want)
		}
	}
	n.srv.linkUp("bob")
	n.srv.linkEnded(now, "bob")
	if len(n.srv.relinks) != 1 || n.srv.relinks[0].next != now.Add(relinkFirst) {
		t.Errorf("after the link was up: %+v, want one due in %v", n.srv.relinks, relinkFirst)
	}
	n.srv.linkEnded(now, "mallory")
	if len(n.srv.relinks) != 1 {
		t.Errorf("a stranger's link is linked again: %+v", n.srv.relinks)
	}
}
