package natsbus

import (
	"bytes"
	"errors"
	"testing"

	"github.com/natpass/natpass/rendezvous"
)

// A message published on server 1 reaches the subscriber on server 3 of a
// three-server cluster, subject and reply relative, data intact.
func TestThreeServersDeliver(t *testing.T) {
	buses := cluster(t, 3, nil)
	mustSubscribe(t, buses[2], "peer.6162")
	waitInterest(t, buses[0], "peer.6162")

	mustPublish(t, buses[0], rendezvous.ClusterMessage{Subject: "peer.6162", Reply: "srv.01", Data: []byte("hello")})
	m := recv(t, buses[2])
	if m.Subject != "peer.6162" || m.Reply != "srv.01" || string(m.Data) != "hello" || m.NoResponders {
		t.Fatalf("got %+v", m)
	}
}

// Interest is presence: before server 2 subscribes, a request from server 1 comes
// back as a NoResponders notice; once the subscription has propagated, the same
// request reaches server 2; after it unsubscribes, requests find nobody again.
func TestInterestPropagates(t *testing.T) {
	buses := cluster(t, 2, nil)
	b1, b2 := buses[0], buses[1]
	mustSubscribe(t, b1, "srv.01")
	req := rendezvous.ClusterMessage{Subject: "peer.77", Reply: "srv.01", Data: []byte("introduce")}

	mustPublish(t, b1, req)
	if m := recv(t, b1); !m.NoResponders || m.Subject != "srv.01" {
		t.Fatalf("before subscribe: got %+v, want a NoResponders notice on srv.01", m)
	}

	mustSubscribe(t, b2, "peer.77")
	waitInterest(t, b1, "peer.77")
	mustPublish(t, b1, req)
	if m := recv(t, b2); m.Subject != "peer.77" || string(m.Data) != "introduce" {
		t.Fatalf("after subscribe: got %+v", m)
	}

	// The peer leaves server 2: once server 1 has heard, requests find nobody.
	if err := b2.Unsubscribe("peer.77"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unsubscribe to reach server 1", func() bool {
		return !b1.srv.GlobalAccount().SubscriptionInterest(b1.prefix + "peer.77")
	})
	mustPublish(t, b1, req)
	if m := recv(t, b1); !m.NoResponders || m.Subject != "srv.01" {
		t.Fatalf("after unsubscribe: got %+v, want a NoResponders notice on srv.01", m)
	}
}

// nats-server answers a request nobody subscribes to with a 503 status message on
// its reply subject, to a subscription of the requesting connection only: a plain
// subscription (not a nats.go request inbox) gets it, a wildcard subscription
// matching the reply gets it, and a reply subject the requester does not subscribe
// to gets nothing.
func TestNoRespondersReachesRequester(t *testing.T) {
	b := start(t, Config{})
	mustSubscribe(t, b, "srv.aa")
	mustSubscribe(t, b, "srv.bb.>")

	// Reply not subscribed here: nats-server stays silent.
	mustPublish(t, b, rendezvous.ClusterMessage{Subject: "peer.nobody", Reply: "srv.zz", Data: []byte("x")})
	// Same connection, so nats-server handles it after the one above.
	mustPublish(t, b, rendezvous.ClusterMessage{Subject: "peer.nobody", Reply: "srv.aa", Data: []byte("x")})
	if m := recv(t, b); !m.NoResponders || m.Subject != "srv.aa" || m.Reply != "" || m.Data != nil {
		t.Fatalf("got %+v, want the notice on srv.aa", m)
	}
	mustPublish(t, b, rendezvous.ClusterMessage{Subject: "peer.nobody", Reply: "srv.bb.7", Data: []byte("x")})
	if m := recv(t, b); !m.NoResponders || m.Subject != "srv.bb.7" || m.Data != nil {
		t.Fatalf("got %+v, want the notice on srv.bb.7", m)
	}
	if s := b.Stats(); s.NoResponders != 2 || s.Published != 3 {
		t.Fatalf("stats %+v, want 2 notices for 3 requests", s)
	}
	// A publish without Reply to nobody is silent too (no notice, no error).
	mustPublish(t, b, rendezvous.ClusterMessage{Subject: "peer.nobody", Data: []byte("x")})
}

// Subscribing twice is one subscription; Unsubscribe stops delivery (a request to
// the subject then finds no responders); unsubscribing an unknown subject is a
// no-op.
func TestSubscribeIdempotentUnsubscribeStops(t *testing.T) {
	b := start(t, Config{})
	mustSubscribe(t, b, "srv.me")
	mustSubscribe(t, b, "peer.x")
	mustSubscribe(t, b, "peer.x")
	if n := b.Stats().Subscriptions; n != 2 {
		t.Fatalf("%d subscriptions, want 2", n)
	}
	mustPublish(t, b, rendezvous.ClusterMessage{Subject: "peer.x", Data: []byte("1")})
	mustPublish(t, b, rendezvous.ClusterMessage{Subject: "peer.x", Data: []byte("2")})
	// Two subscriptions would deliver 1, 1, 2, 2.
	for _, want := range []string{"1", "2"} {
		if m := recv(t, b); string(m.Data) != want {
			t.Fatalf("got %q, want %q", m.Data, want)
		}
	}

	if err := b.Unsubscribe("peer.x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Unsubscribe("peer.never"); err != nil {
		t.Fatalf("Unsubscribe of an unknown subject: %v", err)
	}
	mustPublish(t, b, rendezvous.ClusterMessage{Subject: "peer.x", Reply: "srv.me", Data: []byte("3")})
	if m := recv(t, b); !m.NoResponders {
		t.Fatalf("after Unsubscribe got %+v, want a NoResponders notice", m)
	}
}

// A full Inbox drops and counts; nothing is lost silently. (A burst faster than
// the forwarder is dropped by nats.go instead and counted as DroppedSlowConsumer.)
func TestInboxOverflowCounted(t *testing.T) {
	const sent = 50
	b := start(t, Config{InboxSize: 4})
	mustSubscribe(t, b, "peer.x")
	// One at a time, so the forwarder keeps up with nats.go and every drop is the
	// full Inbox's.
	for i := range uint64(sent) {
		mustPublish(t, b, rendezvous.ClusterMessage{Subject: "peer.x", Data: []byte("m")})
		waitFor(t, "the message accounted for", func() bool {
			s := b.Stats()
			return s.Delivered+s.DroppedInboxFull+s.DroppedSlowConsumer == i+1
		})
	}
	if s := b.Stats(); s.Delivered != 4 || s.DroppedInboxFull != sent-4 || s.DroppedSlowConsumer != 0 {
		t.Fatalf("stats %+v: want 4 delivered (the Inbox bound), %d dropped for a full Inbox", s, sent-4)
	}
	// Nothing else arrived on Inbox.
	for range 4 {
		recv(t, b)
	}
	select {
	case m := <-b.Inbox():
		t.Fatalf("a fifth message: %+v", m)
	default:
	}
}

// Close closes Inbox exactly once; later calls are harmless and the bus refuses
// work.
func TestCloseClosesInboxOnce(t *testing.T) {
	b, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	mustSubscribe(t, b, "peer.x")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-b.Inbox(); ok {
		t.Fatal("Inbox still open after Close")
	}
	if err := b.Publish(rendezvous.ClusterMessage{Subject: "peer.x"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if err := b.Subscribe("peer.y"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if err := b.Unsubscribe("peer.x"); err != nil {
		t.Fatalf("Unsubscribe after Close: %v", err)
	}
}

// Subjects are checked before they reach NATS: no empty tokens, no whitespace, no
// wildcards in what is published.
func TestBadSubjects(t *testing.T) {
	b := start(t, Config{})
	for _, s := range []string{"", "peer.", ".peer", "peer..x", "peer x", "peer.*", "peer.>", "peer.a*"} {
		if err := b.Publish(rendezvous.ClusterMessage{Subject: s}); !errors.Is(err, ErrSubject) {
			t.Errorf("Publish(%q): %v, want ErrSubject", s, err)
		}
	}
	if err := b.Publish(rendezvous.ClusterMessage{Subject: "peer.x", Reply: "srv.*"}); !errors.Is(err, ErrSubject) {
		t.Errorf("wildcard reply: %v, want ErrSubject", err)
	}
	for _, s := range []string{"", "srv.>.x", "srv.a>"} {
		if err := b.Subscribe(s); !errors.Is(err, ErrSubject) {
			t.Errorf("Subscribe(%q): %v, want ErrSubject", s, err)
		}
	}
	for _, s := range []string{"srv.*", "srv.aa.>"} {
		mustSubscribe(t, b, s)
	}
}

// Ten thousand messages from server 1 to server 2 all arrive, in order, when the
// Inbox has room for them.
func TestBurst10000(t *testing.T) {
	const n = 10000
	buses := cluster(t, 2, func(i int, c *Config) { c.InboxSize = 2 * n })
	b1, b2 := buses[0], buses[1]
	mustSubscribe(t, b2, "peer.burst")
	waitInterest(t, b1, "peer.burst")
	for i := range n {
		mustPublish(t, b1, rendezvous.ClusterMessage{Subject: "peer.burst", Data: []byte{byte(i >> 8), byte(i)}})
	}
	for i := range n {
		m := recv(t, b2)
		if want := []byte{byte(i >> 8), byte(i)}; !bytes.Equal(m.Data, want) {
			t.Fatalf("message %d: got %x, want %x; stats %+v", i, m.Data, want, b2.Stats())
		}
	}
	if s := b2.Stats(); s.Delivered != n || s.DroppedInboxFull+s.DroppedSlowConsumer != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Publish's subject check allocates nothing (it runs for every cluster message).
func TestValidSubjectAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { validSubject("peer.6162636465", false) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
	for s, want := range map[string]bool{"a": true, "a.b.c": true, "a.*.c": true, "a.>": true, ">": true,
		"a.>.c": false, "a.b*": false, "a..b": false, "a.": false, ".a": false, "a b": false, "a\tb": false} {
		if got := validSubject(s, true); got != want {
			t.Errorf("validSubject(%q, wild) = %v", s, got)
		}
	}
}
