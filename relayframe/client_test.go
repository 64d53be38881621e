package relayframe

import (
	"slices"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

var clientCookie = proto.Session{1, 2, 3}

// allocateAt returns the relay-allocate the client sends at now, parsed, or false.
func allocateAt(t *testing.T, c *Client, now proto.Instant) (proto.RelayAllocate, bool) {
	t.Helper()
	b := c.AppendAllocate(now, nil, clientCookie, []byte("bob"))
	if len(b) == 0 {
		return proto.RelayAllocate{}, false
	}
	var m proto.RelayAllocate
	if err := m.Parse(b); err != nil {
		t.Fatal(err)
	}
	return m, true
}

func TestClientAllocatesRetriesAndRefreshes(t *testing.T) {
	var c Client
	if c.Deadline() != proto.Never {
		t.Fatal("the zero Client has a deadline")
	}
	now := proto.Instant(time.Second)
	c.Start(now, []byte("token-1"), 77)
	m, ok := allocateAt(t, &c, now)
	if !ok || m.TxID != 77 || string(m.Token) != "token-1" || string(m.PeerID) != "bob" || m.Session != clientCookie {
		t.Fatalf("first request %+v, %v", m, ok)
	}
	if _, ok := allocateAt(t, &c, now); ok {
		t.Fatal("a second request at the same instant")
	}
	// Unanswered: repeated after 250 ms, 500 ms, 1 s, ... capped at 4 s.
	var gaps []time.Duration
	last := now
	for len(gaps) < 7 {
		now = c.Deadline()
		if _, ok := allocateAt(t, &c, now); !ok {
			t.Fatalf("nothing due at the deadline %v", now)
		}
		gaps = append(gaps, now.Sub(last))
		last = now
	}
	want := []time.Duration{250, 500, 1000, 2000, 4000, 4000, 4000}
	for i := range want {
		if gaps[i] != want[i]*time.Millisecond {
			t.Fatalf("retry gaps %v", gaps)
		}
	}
	// Answered, peer not ready: channel known; asked again after 250 ms, doubling to
	// 2 s (in case the ready notice is lost), each answer without "peer ready".
	if !c.HandleAllocated(now, &proto.RelayAllocated{TxID: c.txid, Channel: 9, LifetimeS: 600, Token: []byte("token-2")}) {
		t.Fatal("answer not taken")
	}
	if got := pollClient(&c); c.Ready() || c.Channel() != 9 || len(got) != 1 || got[0] != ClientAllocated {
		t.Fatalf("after the answer: ready %v, channel %d, events %v", c.Ready(), c.Channel(), got)
	}
	for _, want := range []time.Duration{250, 500, 1000, 2000, 2000} {
		if c.Deadline() != now.Add(want*time.Millisecond) {
			t.Fatalf("ready poll at %v, want %v later", c.Deadline(), want*time.Millisecond)
		}
		now = c.Deadline()
		allocateAt(t, &c, now)
		c.HandleAllocated(now, &proto.RelayAllocated{TxID: c.txid, Channel: 9, LifetimeS: 600, Token: []byte("token-2")})
		if got := pollClient(&c); len(got) != 0 {
			t.Fatalf("the same answer again reported %v", got)
		}
	}
	// Answers to other requests are not this client's.
	if c.HandleAllocated(now, &proto.RelayAllocated{TxID: c.txid + 1, Channel: 9, Flags: proto.RelayPeerReady, LifetimeS: 1, Token: []byte{1}}) {
		t.Fatal("took a message that is not its own")
	}
	// The server repeats its answer when the peer links: now ready.
	if !c.HandleAllocated(now, &proto.RelayAllocated{TxID: c.txid, Channel: 9, Flags: proto.RelayPeerReady, LifetimeS: 600, Token: []byte("token-2")}) || !c.Ready() {
		t.Fatal("the repeated answer did not make the channel ready")
	}
	if got := pollClient(&c); len(got) != 1 || got[0] != ClientReady || c.Deadline() != now.Add(300*time.Second) {
		t.Fatalf("ready: events %v, deadline %v (want the refresh at half the lifetime)", got, c.Deadline())
	}
	// The refresh carries the renewed token.
	now = c.Deadline()
	if m, ok := allocateAt(t, &c, now); !ok || string(m.Token) != "token-2" {
		t.Fatalf("refresh %+v, %v", m, ok)
	}
	// No answer to any refresh: the channel ends at its lifetime, allocation starts over.
	end := now.Add(300 * time.Second)
	for now = c.Deadline(); now < end; now = c.Deadline() {
		c.HandleTimeout(now)
		allocateAt(t, &c, now)
	}
	c.HandleTimeout(end)
	if c.Ready() || c.Channel() != 0 || c.Deadline() > end.Add(allocRetryMax) {
		t.Fatalf("after the lifetime: ready %v, channel %d, deadline %v", c.Ready(), c.Channel(), c.Deadline())
	}
	if got := pollClient(&c); len(got) != 1 || got[0] != ClientLost {
		t.Fatalf("after the lifetime: events %v, want ClientLost", got)
	}
}

// pollClient drains a Client's events.
func pollClient(c *Client) []ClientEvent {
	var out []ClientEvent
	for e, ok := c.PollEvent(); ok; e, ok = c.PollEvent() {
		out = append(out, e)
	}
	return out
}

func TestClientDeniedAndRestart(t *testing.T) {
	var c Client
	now := proto.Instant(0)
	c.Start(now, []byte("tok"), 5)
	allocateAt(t, &c, now)
	if c.HandleError(now, &proto.Error{TxID: 6, Code: proto.CodeRelayDenied}) {
		t.Fatal("took another request's error")
	}
	if !c.HandleError(now, &proto.Error{TxID: 5, Code: proto.CodeServerFull}) || c.Denied() != 0 || c.Deadline() == proto.Never {
		t.Fatal("code 7 should leave the retry scheduled")
	}
	if !c.HandleError(now, &proto.Error{TxID: 5, Code: proto.CodeRelayDenied}) || c.Denied() != proto.CodeRelayDenied ||
		c.Deadline() != proto.Never {
		t.Fatal("code 8 should stop the client")
	}
	if got := pollClient(&c); len(got) != 1 || got[0] != ClientDenied {
		t.Fatalf("denied: events %v", got)
	}
	if _, ok := allocateAt(t, &c, now.Add(time.Hour)); ok {
		t.Fatal("a denied client asked again")
	}
	now = now.Add(time.Hour)
	c.Restart(now)
	if c.Deadline() != proto.Never {
		t.Fatal("Restart revived a denied client")
	}
	c.Start(now, []byte("fresh"), 9) // a new introduction's token
	c.HandleAllocated(now, &proto.RelayAllocated{TxID: 9, Channel: 3, Flags: proto.RelayPeerReady, LifetimeS: 60, Token: []byte("r")})
	if got := pollClient(&c); !c.Ready() || len(got) != 2 || got[0] != ClientAllocated || got[1] != ClientReady {
		t.Fatalf("ready %v, events %v", c.Ready(), got)
	}
	c.Restart(now.Add(time.Second)) // registered again: the channel is gone
	if c.Ready() || c.Channel() != 0 || c.Deadline() != now.Add(time.Second) {
		t.Fatal("Restart kept the old channel")
	}
	if got := pollClient(&c); len(got) != 1 || got[0] != ClientLost {
		t.Fatalf("Restart: events %v", got)
	}
	if m, ok := allocateAt(t, &c, now.Add(time.Second)); !ok || string(m.Token) != "r" {
		t.Fatalf("after Restart: %+v, %v", m, ok)
	}
}

func TestClientDoesNotAllocate(t *testing.T) {
	var c Client
	c.Start(0, []byte("tok"), 5)
	buf := make([]byte, 0, 256)
	reply := &proto.RelayAllocated{TxID: 5, Channel: 3, Flags: proto.RelayPeerReady, LifetimeS: 60, Token: []byte("renewed")}
	now := proto.Instant(0)
	n := testing.AllocsPerRun(100, func() {
		now = now.Add(time.Hour)
		c.HandleTimeout(now)
		_ = c.AppendAllocate(now, buf[:0], clientCookie, []byte("bob"))
		c.HandleAllocated(now, reply)
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// Each request has its own txid, so a late answer to an older one (sent before the
// peer linked: "not ready") is not taken for the latest, and cannot undo "ready"
// (seen on real Linux NAT: a relayed pair lost its path). A current answer saying the
// peer's end is gone reports ClientLost.
func TestClientIgnoresLateAnswers(t *testing.T) {
	var c Client
	now := proto.Instant(time.Second)
	c.Start(now, []byte("tok"), 40)
	first, _ := allocateAt(t, &c, now)
	now = c.Deadline()
	second, ok := allocateAt(t, &c, now) // unanswered: repeated
	if !ok || second.TxID == first.TxID {
		t.Fatalf("the repeat reuses txid %d", first.TxID)
	}
	if !c.HandleAllocated(now, &proto.RelayAllocated{TxID: second.TxID, Channel: 4, Flags: proto.RelayPeerReady,
		LifetimeS: 600, Token: []byte("r")}) || !c.Ready() {
		t.Fatal("the answer to the latest request was not taken")
	}
	pollClient(&c)
	if c.HandleAllocated(now, &proto.RelayAllocated{TxID: first.TxID, Channel: 4, LifetimeS: 600, Token: []byte("r")}) ||
		!c.Ready() || len(pollClient(&c)) != 0 {
		t.Fatal("a late answer to the first request was taken and undid ready")
	}
	if !c.HandleAllocated(now, &proto.RelayAllocated{TxID: second.TxID, Channel: 4, LifetimeS: 600, Token: []byte("r")}) {
		t.Fatal("a current answer was refused")
	}
	if got := pollClient(&c); c.Ready() || len(got) != 1 || got[0] != ClientLost || c.Channel() != 4 {
		t.Fatalf("peer's end gone: ready %v, events %v, channel %d", c.Ready(), got, c.Channel())
	}
}

// SetRetry sets the first allocate repeat and the first ready poll (each doubling
// from there), is kept by Start, and never makes either slower than the defaults;
// 0 restores them.
func TestClientSetRetry(t *testing.T) {
	var c Client
	c.SetRetry(60 * time.Millisecond)
	now := proto.Instant(time.Second)
	c.Start(now, []byte("token-1"), 5)
	var gaps []time.Duration
	last := now
	allocateAt(t, &c, now)
	for len(gaps) < 3 {
		now = c.Deadline()
		if _, ok := allocateAt(t, &c, now); !ok {
			t.Fatalf("nothing due at the deadline %v", now)
		}
		gaps, last = append(gaps, now.Sub(last)), now
	}
	if want := []time.Duration{60 * time.Millisecond, 120 * time.Millisecond, 240 * time.Millisecond}; !slices.Equal(gaps, want) {
		t.Fatalf("retry gaps %v, want %v", gaps, want)
	}
	// Answered without "peer ready": the first poll after 60 ms.
	if !c.HandleAllocated(now, &proto.RelayAllocated{TxID: c.txid, Channel: 9, LifetimeS: 600, Token: []byte("t")}) {
		t.Fatal("answer not taken")
	}
	if got := c.Deadline().Sub(now); got != 60*time.Millisecond {
		t.Fatalf("first ready poll after %v, want 60ms", got)
	}
	// The same answer again (to a repeated copy of the request) keeps the poll's time.
	if !c.HandleAllocated(now.Add(5*time.Millisecond), &proto.RelayAllocated{TxID: c.txid, Channel: 9, LifetimeS: 600, Token: []byte("t")}) {
		t.Fatal("repeated answer not taken")
	}
	if got := c.Deadline().Sub(now); got != 60*time.Millisecond {
		t.Fatalf("after a repeated answer the first ready poll is %v after the first answer, want 60ms", got)
	}
	now = now.Add(5 * time.Millisecond)
	// Longer than the defaults: capped at them.
	c.SetRetry(time.Second)
	c.Start(now, []byte("token-1"), 9)
	allocateAt(t, &c, now)
	if got := c.Deadline().Sub(now); got != allocRetryFirst {
		t.Fatalf("first repeat after %v with a 1 s setting, want the default %v", got, allocRetryFirst)
	}
	c.SetRetry(0)
	c.Start(now, []byte("token-1"), 11)
	allocateAt(t, &c, now)
	if got := c.Deadline().Sub(now); got != allocRetryFirst {
		t.Fatalf("first repeat after %v with the default, want %v", got, allocRetryFirst)
	}
}

// The server's ready notice for our previous request, crossing our ready poll, is
// taken while the poll is unanswered: "peer ready" on the channel that request was
// given. Not after the poll was answered, not naming another channel, not after a
// Restart.
func TestClientTakesCrossedReadyNotice(t *testing.T) {
	now := proto.Instant(time.Second)
	// notReady has c allocate, be answered without "peer ready", and send its ready
	// poll (now moves to the poll's time).
	notReady := func(c *Client) (first, poll proto.RelayAllocate) {
		t.Helper()
		c.Start(now, []byte("tok"), 70)
		first, _ = allocateAt(t, c, now)
		if !c.HandleAllocated(now, &proto.RelayAllocated{TxID: first.TxID, Channel: 6, LifetimeS: 600, Token: []byte("r")}) {
			t.Fatal("answer not taken")
		}
		pollClient(c)
		now = c.Deadline()
		poll, ok := allocateAt(t, c, now)
		if !ok || poll.TxID == first.TxID {
			t.Fatalf("no ready poll with a new txid: %+v", poll)
		}
		return first, poll
	}
	notice := func(txid uint64, ch uint16) *proto.RelayAllocated {
		return &proto.RelayAllocated{TxID: txid, Channel: ch, Flags: proto.RelayPeerReady, LifetimeS: 600, Token: []byte("r")}
	}
	var c Client
	first, poll := notReady(&c)
	if !c.HandleAllocated(now, notice(first.TxID, 6)) || !c.Ready() {
		t.Fatal("the crossed ready notice was not taken")
	}
	if got := pollClient(&c); len(got) != 1 || got[0] != ClientReady {
		t.Fatalf("events %v, want ClientReady", got)
	}
	if !c.HandleAllocated(now, notice(poll.TxID, 6)) || !c.Ready() || len(pollClient(&c)) != 0 {
		t.Fatal("the poll's own answer, ready too, changed something")
	}

	var d Client
	first, poll = notReady(&d)
	if d.HandleAllocated(now, notice(first.TxID, 7)) || d.Ready() {
		t.Fatal("a notice naming another channel was taken")
	}
	if !d.HandleAllocated(now, &proto.RelayAllocated{TxID: poll.TxID, Channel: 6, LifetimeS: 600, Token: []byte("r")}) {
		t.Fatal("the poll's answer was not taken")
	}
	if d.HandleAllocated(now, notice(first.TxID, 6)) || d.Ready() {
		t.Fatal("a notice older than the poll's answer (not ready) was taken")
	}

	var e Client
	first, _ = notReady(&e)
	e.Restart(now)
	pollClient(&e)
	allocateAt(t, &e, now)
	if e.HandleAllocated(now, notice(first.TxID, 6)) || e.Ready() {
		t.Fatal("a notice from before the Restart was taken")
	}
}
