package driver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/relayframe"
	"github.com/natpass/natpass/rendezvous"
	"github.com/natpass/natpass/rudp"
)

// udpGate stands between nodes and the server's primary UDP socket: shut, it
// drops every datagram both ways (UDP blocked); open, it forwards them, from a
// socket per client, and brings the answers back.
type udpGate struct {
	conn     *net.UDPConn
	upstream netip.AddrPort
	open     atomic.Bool
	mu       sync.Mutex
	clients  map[netip.AddrPort]*net.UDPConn
}

func newUDPGate(t *testing.T, upstream netip.AddrPort) *udpGate {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	g := &udpGate{conn: c, upstream: upstream, clients: map[netip.AddrPort]*net.UDPConn{}}
	t.Cleanup(g.close)
	go g.run()
	return g
}

func (g *udpGate) addr() netip.AddrPort { return g.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (g *udpGate) run() {
	buf := make([]byte, 4096)
	for {
		n, from, err := g.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if !g.open.Load() {
			continue
		}
		up := g.client(from)
		if up != nil {
			up.WriteToUDPAddrPort(buf[:n], g.upstream)
		}
	}
}

// client is from's socket toward the server, made on first use with a reader
// that carries the server's answers back while the gate is open.
func (g *udpGate) client(from netip.AddrPort) *net.UDPConn {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.clients[from]; c != nil {
		return c
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil
	}
	g.clients[from] = c
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if g.open.Load() {
				g.conn.WriteToUDPAddrPort(buf[:n], from)
			}
		}
	}()
	return c
}

func (g *udpGate) close() {
	g.conn.Close()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.clients {
		c.Close()
	}
}

// streamFixture is a server with a TCP listener and two nodes that know its UDP
// address only through a shut gate, with the listener as their ServerTCP.
type streamFixture struct {
	srv    *Server
	gate   *udpGate
	nodes  [2]*Node
	ca, cb *Conn
}

func newStreamFixture(t *testing.T, ctx context.Context, tlsServer *tls.Config, tlsClient *tls.Config) *streamFixture {
	t.Helper()
	unlimited := relayframe.ByteRate{BytesPerSecond: 1 << 30, Burst: 64 << 20}
	s, err := ListenServer(ServerConfig{Listen: "127.0.0.1:0", AltPort: "off", Secret: testSecret,
		TCPListen: "127.0.0.1:0", TLS: tlsServer,
		Tune: rendezvous.Config{RelaySessionRate: unlimited, RelayServerRate: unlimited}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := &streamFixture{srv: s, gate: newUDPGate(t, s.Addr())}
	for i, id := range []string{"stream-a", "stream-b"} {
		n, err := Listen(ctx, Config{Server: f.gate.addr().String(), ServerTCP: s.TCPAddr().String(), ServerTLS: tlsClient,
			ID: id, Secret: testSecret, Listen: "127.0.0.1:0", Relay: node.RelayForce})
		if err != nil {
			t.Fatalf("Listen %s with UDP to the server blocked: %v", id, err)
		}
		t.Cleanup(func() { n.Close() })
		f.nodes[i] = n
	}
	f.ca, f.cb = connectPair(t, ctx, f.nodes[0], f.nodes[1])
	return f
}

// transfer sends size bytes from → to in 16 KiB reliable-ordered messages and
// checks that every byte arrived in order; once at bytes have arrived it calls
// midway (when set). It returns the sender's error to the caller's goroutine.
func transfer(ctx context.Context, from, to *Conn, size, seed int, at int, midway func()) error {
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*7>>3 + seed)
	}
	errc := make(chan error, 1)
	go func() {
		for off := 0; off < len(want); off += 16 << 10 {
			if err := from.SendContext(ctx, 0, rudp.ReliableOrdered, want[off:min(off+16<<10, len(want))]); err != nil {
				errc <- err
				return
			}
		}
		errc <- from.Flush(ctx)
	}()
	got := make([]byte, 0, size)
	for len(got) < len(want) {
		m, err := to.Recv(ctx)
		if err != nil {
			return err
		}
		if midway != nil && len(got) < at && len(got)+len(m.Data) >= at {
			midway()
		}
		got = append(got, m.Data...)
	}
	if err := <-errc; err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return errDiffer
	}
	return nil
}

var errDiffer = &PeerError{Text: "received bytes differ from sent"}

// bothWays runs transfer a → b and b → a at once.
func bothWays(t *testing.T, ctx context.Context, ca, cb *Conn, size, at int, midway func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- transfer(ctx, cb, ca, size, 1, 0, nil) }()
	if err := transfer(ctx, ca, cb, size, 0, at, midway); err != nil {
		t.Fatalf("a → b: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("b → a: %v", err)
	}
}

// Two nodes whose UDP to the server gets no answer register over TCP and move
// 4 MiB each way through the relay, every byte intact.
func TestStreamFallbackRelaysOverTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := newStreamFixture(t, ctx, nil, nil)
	for _, n := range f.nodes {
		if tr := n.ServerTransport(); tr != TransportTCP {
			t.Fatalf("%s reaches its server over %s, want tcp", n.ID(), tr)
		}
	}
	bothWays(t, ctx, f.ca, f.cb, 4<<20, 0, nil)
	if st := f.srv.Stats().Streams; st.Accepted != 2 || st.BadFrames != 0 {
		t.Fatalf("server streams %+v; want 2 accepted, no bad frames", st)
	}
	for _, n := range f.nodes {
		if tr, st := n.ServerTransport(), n.Stats().Stream; tr != TransportTCP || st.Moves != 1 {
			t.Fatalf("%s after the transfer: over %s, %+v; want tcp after one move", n.ID(), tr, st)
		}
	}
}

// The gate opens mid-transfer: both nodes move back to UDP and the relayed
// transfer ends with every byte intact.
func TestStreamFallbackMovesBackToUDP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := newStreamFixture(t, ctx, nil, nil)
	bothWays(t, ctx, f.ca, f.cb, 8<<20, 2<<20, func() { f.gate.open.Store(true) })
	for _, n := range f.nodes {
		for n.ServerTransport() != TransportUDP {
			select {
			case <-ctx.Done():
				t.Fatalf("%s still on %s after UDP opened: %+v", n.ID(), n.ServerTransport(), n.Stats().Stream)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	// And the session goes on over UDP.
	bothWays(t, ctx, f.ca, f.cb, 1<<20, 0, nil)
	for _, n := range f.nodes {
		if st := n.Stats().Stream; st.Moves != 2 {
			t.Fatalf("%s: %+v; want two moves (to the stream and back)", n.ID(), st)
		}
	}
}

// Over TLS: the node verifies the server's certificate against the CA it was
// given.
func TestStreamFallbackOverTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cert, pool := selfSigned(t)
	f := newStreamFixture(t, ctx, &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{RootCAs: pool, ServerName: "natpass.test"})
	for _, n := range f.nodes {
		if tr := n.ServerTransport(); tr != TransportTLS {
			t.Fatalf("%s reaches its server over %s, want tls", n.ID(), tr)
		}
	}
	bothWays(t, ctx, f.ca, f.cb, 1<<20, 0, nil)
}

// selfSigned makes a certificate for natpass.test and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "natpass.test"},
		DNSNames: []string{"natpass.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
