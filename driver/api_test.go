package driver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

func TestListenBadTicket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := startServer(t)
	_, err := Listen(ctx, Config{Server: s.Addr().String(), ID: "mallory", Secret: []byte("not the server's secret at all"), Listen: "127.0.0.1:0"})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Listen with a ticket under the wrong secret: %v, want ErrClosed", err)
	}
	if st := s.Stats(); st.BadTicket == 0 {
		t.Errorf("server counted no bad ticket: %+v", st.Stats)
	}
}

func TestListenContextBoundsRegistration(t *testing.T) {
	// A bound socket nobody answers on stands in for a dead server.
	dead, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = Listen(ctx, Config{Server: dead.LocalAddr().String(), ID: "x", InsecureDev: true, Listen: "127.0.0.1:0"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Listen to a silent server: %v, want context.DeadlineExceeded", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no id":          {Server: "127.0.0.1:1", InsecureDev: true},
		"no admission":   {Server: "127.0.0.1:1", ID: "a"},
		"two admissions": {Server: "127.0.0.1:1", ID: "a", InsecureDev: true, Secret: testSecret},
		"ticket no key":  {Server: "127.0.0.1:1", ID: "a", Ticket: []byte{1}},
		"bad server":     {Server: "nowhere", ID: "a", InsecureDev: true},
		"no server":      {ID: "a", InsecureDev: true},
		"both servers":   {Server: "127.0.0.1:1", Servers: []string{"127.0.0.1:2"}, ID: "a", InsecureDev: true},
		"a bad server":   {Servers: []string{"127.0.0.1:1", "nowhere"}, ID: "a", InsecureDev: true},
		"ticket for another ID": func() Config {
			priv, pub, _ := NewKey()
			tk, _ := MintTicket(testSecret, "b", pub, time.Hour)
			return Config{Server: "127.0.0.1:1", ID: "a", Ticket: tk, PrivateKey: priv}
		}(),
		"ticket for another key": func() Config {
			priv, _, _ := NewKey()
			_, pub, _ := NewKey()
			tk, _ := MintTicket(testSecret, "a", pub, time.Hour)
			return Config{Server: "127.0.0.1:1", ID: "a", Ticket: tk, PrivateKey: priv}
		}(),
	} {
		if _, err := Listen(context.Background(), cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: %v, want ErrBadConfig", name, err)
		}
	}
	if _, err := ListenServer(ServerConfig{Listen: "127.0.0.1:0"}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("server without secret: %v, want ErrBadConfig", err)
	}
}

func TestConnectUnknownPeerIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := startServer(t)
	a := listen(t, ctx, s, "lonely")
	_, err := a.Connect(ctx, "nobody")
	var pe *PeerError
	if !errors.Is(err, ErrPeerRefused) || !errors.As(err, &pe) || pe.Peer != "nobody" {
		t.Fatalf("Connect to an unregistered peer: %v, want a *PeerError for it", err)
	}
}

func TestContextCancelsConnectAndRecv(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := startServer(t)
	a := listen(t, ctx, s, "c-a")
	b := listen(t, ctx, s, "c-b")
	short, cancelShort := context.WithCancel(ctx)
	cancelShort()
	if _, err := a.Connect(short, "c-b"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Connect with a cancelled context: %v", err)
	}
	if _, err := b.Accept(short); !errors.Is(err, context.Canceled) {
		t.Fatalf("Accept with a cancelled context: %v", err)
	}
	ca, _ := connectPair(t, ctx, a, b)
	wait, cancelWait := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelWait()
	if _, err := ca.Recv(wait); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv with nothing to read: %v, want DeadlineExceeded", err)
	}
}

func TestNodeCloseEndsEverything(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := startServer(t)
	a := listen(t, ctx, s, "x-a")
	b := listen(t, ctx, s, "x-b")
	ca, cb := connectPair(t, ctx, a, b)
	recvErr := make(chan error, 1)
	go func() {
		_, err := ca.Recv(ctx)
		recvErr <- err
	}()
	a.Close()
	if err := <-recvErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv blocked across Close: %v, want ErrClosed", err)
	}
	if _, err := a.Accept(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if err := ca.Send(0, rudp.ReliableOrdered, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	// The peer was told: its side reads a normal close.
	if _, err := cb.Recv(ctx); err == nil {
		t.Fatal("peer's Recv after our Close returned a message")
	}
	a.Close() // twice is fine
}

// Killing the server must not interrupt an established direct session (issue 8).
func TestServerLossKeepsDirectSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := startServer(t)
	a := listen(t, ctx, s, "k-a")
	b := listen(t, ctx, s, "k-b")
	ca, cb := connectPair(t, ctx, a, b)
	s.Close()
	for i := range 50 {
		if err := ca.Send(0, rudp.ReliableOrdered, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		m, err := cb.Recv(ctx)
		if err != nil || len(m.Data) != 1 || m.Data[0] != byte(i) {
			t.Fatalf("message %d after the server died: %v %v", i, m.Data, err)
		}
	}
	waitDirect(t, ctx, ca)
	waitDirect(t, ctx, cb)
}

func TestNATReportOnLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := startServer(t)
	a := listen(t, ctx, s, "nat")
	r, err := a.NAT(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Behavior.NoTranslation || r.Observed != a.LocalAddr() {
		t.Fatalf("loopback NAT report %+v; want no translation, observed = local %v", r, a.LocalAddr())
	}
	if st := a.Stats(); st.Sockets < 2 || st.DatagramsIn == 0 || st.DatagramsOut == 0 {
		t.Fatalf("stats after NAT measurement: %+v; want extra sockets and traffic", st)
	}
}

// A server bound to every address still has an alt port; it names it by port
// alone and the node takes it on the address it reached, so filtering is measured
// (without it the report said "unknown").
func TestNATReportFromUnspecifiedServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := ListenServer(ServerConfig{Listen: "0.0.0.0:0", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addrs := s.Addrs()
	if len(addrs) != 2 || !addrs[1].Addr().IsUnspecified() || addrs[1].Port() == addrs[0].Port() {
		t.Fatalf("server sockets %v; want the primary and an alt port, both on the unspecified address", addrs)
	}
	server := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), s.Addr().Port())
	n, err := Listen(ctx, Config{Server: server.String(), ID: "any-addr", Secret: testSecret, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	r, err := n.NAT(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Behavior.Filtering == proto.DependenceUnknown || r.Behavior.Mapping == proto.DependenceUnknown {
		t.Fatalf("NAT report through a server on %v: %+v; want mapping and filtering measured", s.Addr(), r.Behavior)
	}
}

// A Transmit with TTL set leaves with that IP TTL; the next one with the default.
func TestSocketPerPacketTTL(t *testing.T) {
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r := ipv4.NewPacketConn(rc)
	if err := r.SetControlMessage(ipv4.FlagTTL, true); err != nil {
		t.Skipf("platform cannot report received TTL: %v", err)
	}
	s, err := listenUDP(netip.MustParseAddrPort("127.0.0.1:0"), netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.conn.Close()
	to := rc.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 64)
	for _, ttl := range []uint8{3, 0, 2} {
		if err := s.write([]byte("probe"), to, ttl); err != nil {
			t.Fatal(err)
		}
		rc.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, cm, _, err := r.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		want := int(ttl)
		if ttl == 0 {
			want = s.ttl
		}
		if cm == nil || cm.TTL != want {
			t.Fatalf("sent with TTL %d: received control message %v, want TTL %d", ttl, cm, want)
		}
	}
}

// With the server gone past the node's server-lost timeout, a direct session goes
// on; the node keeps trying to register and is back once a server answers again.
func TestDirectSessionOutlivesServerAndReregisters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cfg := fastServerConfig()
	s, err := ListenServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A short first-registration bound: were it the machine's too, the nodes would
	// give up (and close their sessions) one second after they start registering
	// again.
	nodes := [2]*Node{}
	for i, id := range []string{"outlive-a", "outlive-b"} {
		n, err := Listen(ctx, Config{Server: s.Addr().String(), ID: id, Secret: testSecret, Listen: "127.0.0.1:0", RegisterTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes[i] = n
	}
	ca, cb := connectPair(t, ctx, nodes[0], nodes[1])
	addrs := s.Addrs()
	s.Close()
	// Three missed keepalives (3 s) make the nodes register again; 6 s is well
	// past their 1 s first-registration bound.
	for i := range 60 {
		if err := ca.Send(0, rudp.ReliableOrdered, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if m, err := cb.Recv(ctx); err != nil || m.Data[0] != byte(i) {
			t.Fatalf("message %d without the server: %v %v", i, m.Data, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitDirect(t, ctx, ca)
	s2 := restartServer(t, cfg, addrs)
	for s2.Stats().Sessions < 2 {
		select {
		case <-ctx.Done():
			t.Fatalf("the nodes did not register with the restarted server: %+v", s2.Stats().Stats)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := cb.Send(0, rudp.ReliableOrdered, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if m, err := ca.Recv(ctx); err != nil || string(m.Data) != "after" {
		t.Fatalf("after the server came back: %q %v", m.Data, err)
	}
}

// A connection configuration rudp cannot run with is a bad Config at Listen, not a
// panic when the first peer arrives.
func TestListenRefusesBadRUDPConfig(t *testing.T) {
	_, err := Listen(context.Background(), Config{Server: "127.0.0.1:9", ID: "x", InsecureDev: true,
		RUDP: rudp.Config{MaxMessageSize: 8 << 20, RecvWindow: 1 << 20}})
	if !errors.Is(err, ErrBadConfig) {
		t.Fatalf("err %v, want ErrBadConfig", err)
	}
}
