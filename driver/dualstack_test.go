package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/rudp"
)

// fakeNames makes lookupNetIP answer name with addrs for the test's duration.
func fakeNames(t *testing.T, name string, addrs ...string) {
	t.Helper()
	old := lookupNetIP
	t.Cleanup(func() { lookupNetIP = old })
	lookupNetIP = func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		if host != name {
			return old(ctx, network, host)
		}
		var out []netip.Addr
		for _, a := range addrs {
			out = append(out, netip.MustParseAddr(a))
		}
		return out, nil
	}
}

func TestResolveFamilies(t *testing.T) {
	fakeNames(t, "dual.example", "::1", "127.0.0.1", "127.0.0.9")
	p, o, err := resolveFamilies("dual.example:3478")
	if err != nil || p != netip.MustParseAddrPort("127.0.0.1:3478") || o != netip.MustParseAddrPort("[::1]:3478") {
		t.Fatalf("dual name: %v %v %v, want IPv4 primary, IPv6 other", p, o, err)
	}
	fakeNames(t, "six.example", "::1")
	if p, o, err = resolveFamilies("six.example:3478"); err != nil || p != netip.MustParseAddrPort("[::1]:3478") || o.IsValid() {
		t.Fatalf("IPv6-only name: %v %v %v", p, o, err)
	}
	if p, o, err = resolveFamilies("[::1]:3478"); err != nil || !p.Addr().Is6() || o.IsValid() {
		t.Fatalf("literal: %v %v %v, want one family", p, o, err)
	}
	fakeNames(t, "none.example")
	if _, _, err = resolveFamilies("none.example:3478"); err == nil {
		t.Fatal("a name without addresses resolved")
	}
}

// dualPort finds a UDP port free on both 127.0.0.1 and [::1], or skips.
func dualPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		c4, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Skipf("no IPv4 loopback: %v", err)
		}
		port := c4.LocalAddr().(*net.UDPAddr).Port
		c6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback, Port: port})
		c4.Close()
		if err == nil {
			c6.Close()
			return port
		}
		if _, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
			t.Skipf("no IPv6 loopback (::1): %v", err)
		}
	}
	t.Skip("no port free on both loopback families")
	return 0
}

// TestDualStackPairGoesDirectOverIPv6: a server on both loopback families, known
// by a name with both; each node registers over IPv4, binds its IPv6 socket to the
// session (its IPv6 report: no translation), and the pair's direct path ends on
// IPv6 while every reliable message arrives.
func TestDualStackPairGoesDirectOverIPv6(t *testing.T) {
	port := dualPort(t)
	s, err := ListenServer(ServerConfig{Listen: fmt.Sprintf("127.0.0.1:%d", port), OtherListen: fmt.Sprintf("[::1]:%d", port), Secret: testSecret})
	if err != nil {
		t.Fatalf("ListenServer: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	fakeNames(t, "natpass.test", "127.0.0.1", "::1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var nodes [2]*Node
	for i, id := range []string{"dual-a", "dual-b"} {
		n, err := Listen(ctx, Config{Server: fmt.Sprintf("natpass.test:%d", port), ID: id, Secret: testSecret, Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatalf("Listen %s: %v", id, err)
		}
		t.Cleanup(func() { n.Close() })
		if !n.LocalAddr().Addr().Is4() || !n.OtherLocalAddr().Addr().Is6() {
			t.Fatalf("%s: sockets %v and %v, want IPv4 main and IPv6 other", id, n.LocalAddr(), n.OtherLocalAddr())
		}
		r, err := n.OtherNAT(ctx)
		if err != nil {
			t.Fatalf("%s OtherNAT: %v", id, err)
		}
		if r.Observed != n.OtherLocalAddr() || !r.Behavior.NoTranslation {
			t.Fatalf("%s: IPv6 report %+v, want its own socket %v, no translation", id, r, n.OtherLocalAddr())
		}
		nodes[i] = n
	}
	ca, cb := connectPair(t, ctx, nodes[0], nodes[1])
	waitPathFamily(t, ctx, ca, true)
	sendCounted(t, ctx, ca, cb, 2000)
	if p := ca.Path(); p.Kind != PathDirect || !p.Remote.Addr().Is6() {
		t.Fatalf("path after the transfer %+v, want direct over IPv6", p)
	}
}

// waitPathFamily waits until c's path is direct over IPv6 (six) or IPv4.
func waitPathFamily(t *testing.T, ctx context.Context, c *Conn, six bool) {
	t.Helper()
	for {
		if p := c.Path(); p.Kind == PathDirect && p.Remote.Addr().Is6() == six {
			return
		}
		select {
		case <-c.PathEvents():
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("path never direct over IPv6=%v; last %+v", six, c.Path())
		}
	}
}

// TestSingleStackNodeHasNoOtherFamily: a server known by an IPv4 literal gives
// the node one family, and OtherNAT says so at once.
func TestSingleStackNodeHasNoOtherFamily(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := listen(t, ctx, startServer(t), "single")
	if n.OtherLocalAddr().IsValid() {
		t.Fatalf("other socket %v on a single-stack server", n.OtherLocalAddr())
	}
	if _, err := n.OtherNAT(ctx); !errors.Is(err, ErrNoOtherFamily) {
		t.Fatalf("OtherNAT: %v, want ErrNoOtherFamily", err)
	}
}

// TestRelayBridgesFamilies: a node registered over IPv6 and one over IPv4 (each
// knowing the dual-stack server by one literal) share no family, so only the relay
// joins them; every reliable message crosses it.
func TestRelayBridgesFamilies(t *testing.T) {
	port := dualPort(t)
	s, err := ListenServer(ServerConfig{Listen: fmt.Sprintf("127.0.0.1:%d", port), OtherListen: fmt.Sprintf("[::1]:%d", port), Secret: testSecret})
	if err != nil {
		t.Fatalf("ListenServer: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var nodes [2]*Node
	for i, server := range []string{fmt.Sprintf("[::1]:%d", port), fmt.Sprintf("127.0.0.1:%d", port)} {
		n, err := Listen(ctx, Config{Server: server, ID: fmt.Sprintf("fam-%d", i), Secret: testSecret})
		if err != nil {
			t.Fatalf("Listen over %s: %v", server, err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	if !nodes[0].LocalAddr().Addr().Is6() || !nodes[1].LocalAddr().Addr().Is4() || nodes[0].OtherLocalAddr().IsValid() {
		t.Fatalf("sockets %v and %v (other %v): want one IPv6-only and one IPv4-only node", nodes[0].LocalAddr(), nodes[1].LocalAddr(), nodes[0].OtherLocalAddr())
	}
	ca, cb := connectPair(t, ctx, nodes[0], nodes[1])
	sendCounted(t, ctx, ca, cb, 1000)
	if p := ca.Path(); p.Kind != PathRelay {
		t.Fatalf("path %+v between an IPv6-only and an IPv4-only node, want the relay", p)
	}
}

// sendCounted sends count numbered reliable messages from ca and checks that cb
// receives each once, in order.
func sendCounted(t *testing.T, ctx context.Context, ca, cb *Conn, count int) {
	t.Helper()
	go func() {
		for i := range count {
			if err := ca.SendContext(ctx, 0, rudp.ReliableOrdered, fmt.Appendf(nil, "m%d", i)); err != nil {
				return
			}
		}
	}()
	for i := range count {
		m, err := cb.Recv(ctx)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", i, count, err)
		}
		if want := fmt.Sprintf("m%d", i); string(m.Data) != want {
			t.Fatalf("message %d is %q, want %q", i, m.Data, want)
		}
	}
}
