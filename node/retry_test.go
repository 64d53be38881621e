package node

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/crypto/curve25519"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rendezvous"
)

// registersIn returns the registers among txs.
func registersIn(t *testing.T, txs []proto.Transmit) []proto.Register {
	t.Helper()
	var out []proto.Register
	for _, tx := range txs {
		var m proto.Register
		if m.Parse(tx.Payload) == nil {
			m.Token = append([]byte(nil), m.Token...)
			out = append(out, m)
		}
	}
	return out
}

// [RETRY-3]: a retry answering a tokenless register makes the node repeat it at once
// with the token and the same txid; one answering a register that carried a token
// keeps the new token for the next repetition, at the register's backoff.
func TestRetryRepeatsRegisterOnce(t *testing.T) {
	n := newTestNode()
	txid := startNode(t, n)
	tok1 := proto.Retry{TxID: txid, Token: [proto.RetryTokenLen]byte{1, 2, 3}}
	if err := n.HandleDatagram(1, testLocal, testServer, tok1.Append(nil)); err != nil {
		t.Fatal(err)
	}
	regs := registersIn(t, drainTx(n, 1))
	if len(regs) != 1 || regs[0].TxID != txid || string(regs[0].Token) != string(tok1.Token[:]) {
		t.Fatalf("after a retry: %+v, want one register, txid %d, token %x", regs, txid, tok1.Token)
	}
	tok2 := proto.Retry{TxID: txid, Token: [proto.RetryTokenLen]byte{9, 9}}
	if err := n.HandleDatagram(2, testLocal, testServer, tok2.Append(nil)); err != nil {
		t.Fatal(err)
	}
	if regs := registersIn(t, drainTx(n, 2)); len(regs) != 0 {
		t.Fatalf("a retry answering a register with a token sent %d registers at once", len(regs))
	}
	if st := n.Stats(); st.Retries != 1 || st.RetriesWaited != 1 {
		t.Fatalf("stats: %d retries, %d waited", st.Retries, st.RetriesWaited)
	}
	// The timer's repetition (500 ms ± 25 % after the first register) carries the new token.
	now := n.Deadline()
	if now < proto.Instant(registerRTO*3/4) || now > proto.Instant(registerRTO*5/4) {
		t.Fatalf("register repetition at %v, want %v (the retry leaves the timer alone)", time.Duration(now), registerRTO)
	}
	n.HandleTimeout(now)
	regs = registersIn(t, drainTx(n, now))
	if len(regs) != 1 || string(regs[0].Token) != string(tok2.Token[:]) {
		t.Fatalf("repetition: %+v, want the second token", regs)
	}
}

// Retries the node did not ask for are dropped and counted: another txid, another
// sender, after registration.
func TestRetryUnexpected(t *testing.T) {
	n := newTestNode()
	txid := startNode(t, n)
	stranger := netip.MustParseAddrPort("198.51.100.9:3478")
	if err := n.HandleDatagram(1, testLocal, stranger, (&proto.Retry{TxID: txid}).Append(nil)); !errors.Is(err, ErrNotFromServer) {
		t.Fatalf("stranger's retry: %v", err)
	}
	if err := n.HandleDatagram(1, testLocal, testServer, (&proto.Retry{TxID: txid + 1}).Append(nil)); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("other txid: %v", err)
	}
	if err := n.HandleDatagram(1, testLocal, testServer, (&proto.Registered{TxID: txid, Observed: testLocal, Keepalive: 25}).Append(nil)); err != nil {
		t.Fatal(err)
	}
	drainTx(n, 1)
	if err := n.HandleDatagram(2, testLocal, testServer, (&proto.Retry{TxID: txid}).Append(nil)); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("retry after registration: %v", err)
	}
	if err := n.HandleDatagram(2, testLocal, testServer, (&proto.Retry{TxID: txid}).Append(nil)[:20]); err == nil {
		t.Fatal("a short retry accepted")
	}
	if st := n.Stats(); st.Retries != 0 || st.Unexpected != 2 || st.NotFromServer != 1 || st.Malformed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A server that answers every register with a retry never gets the node into a loop:
// over 20 s it sends its registers at the backoff's pace plus one immediate repeat.
func TestRetryNeverLoops(t *testing.T) {
	n := newTestNode()
	n.Start(0)
	sent := 0
	now := proto.Instant(0)
	for now < proto.Instant(20*time.Second) {
		for _, reg := range registersIn(t, drainTx(n, now)) {
			sent++
			_ = n.HandleDatagram(now, testLocal, testServer, (&proto.Retry{TxID: reg.TxID, Token: [proto.RetryTokenLen]byte{byte(sent)}}).Append(nil))
		}
		if n.srv.out.len() > 0 {
			continue
		}
		if n.Deadline() == proto.Never {
			break
		}
		now = n.Deadline()
		n.HandleTimeout(now)
	}
	// Without retries: 0, 0.5, 1.5, 3.5, 6.5, 9.5 s (the 10 s register timeout).
	if st := n.Stats(); sent > 7 || st.Retries != 1 {
		t.Fatalf("%d registers sent, %d immediate repeats (want at most 7 and 1)", sent, st.Retries)
	}
}

// Many nodes behind one address against a real server whose per-source bucket holds
// five: every node is admitted one round trip later with its token (virtual time,
// 10 ms each way).
func TestSharedAddressRegistersThroughChallenge(t *testing.T) {
	const nodes = 200
	secret := []byte("natpass retry test secret, long enough")
	srvAddr := netip.MustParseAddrPort("198.51.100.1:3478")
	srv, err := rendezvous.NewServer(rendezvous.Config{Secret: secret, Seed: [32]byte{5}, Primary: srvAddr,
		SourceRate: rendezvous.Rate{Interval: time.Hour, Burst: 5}, WallClock: proto.WallClock{Time: time.Unix(1798761600, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	net := machinetest.NewNet(t, 0, 10*time.Millisecond)
	net.Add("server", machinetest.Of(srv), srvAddr)
	var ns []*Node
	for i := range nodes {
		priv := [32]byte{1: byte(i), 2: byte(i >> 8), 3: 0x5a}
		pub, _ := curve25519.X25519(priv[:], curve25519.Basepoint)
		tk := proto.Ticket{PeerID: []byte(fmt.Sprint("n", i)), ExpiryUnix: 1798761600 + 3600}
		copy(tk.PublicKey[:], pub)
		local := netip.AddrPortFrom(netip.MustParseAddr("203.0.113.50"), uint16(2000+i))
		n := New(Config{ID: tk.PeerID, Ticket: rendezvous.MintTicket(secret, tk), PrivateKey: priv, Local: local,
			Server: srvAddr, Seed: [32]byte{byte(i), 1}, Rand: rand.NewChaCha8([32]byte{byte(i), 2}),
			Wall: proto.WallClock{Time: time.Unix(1798761600, 0)}})
		net.Add(fmt.Sprint("n", i), machinetest.Of(n), local)
		n.Start(0)
		ns = append(ns, n)
	}
	net.Drain()
	net.RunUntil(proto.Instant(45 * time.Millisecond)) // two round trips and a little
	retries := 0
	for i, n := range ns {
		if !n.Registered() {
			t.Fatalf("node %d not registered after two round trips (stats %+v)", i, n.Stats())
		}
		retries += n.Stats().Retries
	}
	if st := srv.Stats(); retries != nodes-5 || st.Admission.TokensValid != nodes-5 || st.Sessions != nodes {
		t.Fatalf("%d retries (want %d), server %+v, %d sessions", retries, nodes-5, st.Admission, st.Sessions)
	}
}
