package netns

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Issue 15: a server bound to 0.0.0.0 on a host with two addresses on one
// interface, asked on the second, answers from the second. The kernel's own
// choice would be the interface's primary address, which a NAT or firewall in
// front of the client drops as a stranger's.
func TestNetnsUnspecifiedServerAnswersFromAddressAsked(t *testing.T) {
	answersFromAddressAsked(t, "pkti", pktinfoFamily{
		listen: "0.0.0.0:3478", network: "udp4", primary: "203.0.113.1/24", secondary: "203.0.113.2/24",
		client: "203.0.113.10/24", asked: "203.0.113.2:3478",
	})
}

// The same on [::] (IPV6_RECVPKTINFO): the second address asked, every answer
// from it.
func TestNetnsUnspecifiedIPv6ServerAnswersFromAddressAsked(t *testing.T) {
	answersFromAddressAsked(t, "pkt6", pktinfoFamily{
		listen: "[::]:3478", network: "udp6", primary: "2001:db8:5::1/64", secondary: "2001:db8:5::2/64",
		client: "2001:db8:5::10/64", asked: "[2001:db8:5::2]:3478", six: true,
	})
}

// pktinfoFamily is one family's addresses for answersFromAddressAsked.
type pktinfoFamily struct {
	listen, network, primary, secondary, client, asked string
	six                                                bool
}

func answersFromAddressAsked(t *testing.T, cell string, f pktinfoFamily) {
	need(t)
	tp := newTopo(t, cell)
	srv, cli := tp.ns("srv"), tp.ns("cli")
	if f.six {
		tp.sh("ip", "-n", srv, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", cli)
		tp.sh("ip", "-n", srv, "link", "set", "eth0", "up")
		tp.sh("ip", "-n", cli, "link", "set", "eth0", "up")
		tp.addr6(srv, "eth0", f.primary)
		tp.addr6(cli, "eth0", f.client)
		tp.addr6(srv, "eth0", f.secondary)
	} else {
		tp.link(srv, "eth0", f.primary, cli, "eth0", f.client)
		tp.sh("ip", "-n", srv, "addr", "add", f.secondary, "dev", "eth0") // secondary
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tp.runServer(ctx, srv, "--listen", f.listen, "--insecure-dev", "--quiet")

	asked := netip.MustParseAddrPort(f.asked)
	c := udpIn(t, cli, f.network)
	defer c.Close()
	buf := make([]byte, 1500)
	for i := range 5 {
		req := bindingRequest()
		if _, err := c.WriteToUDPAddrPort(req, asked); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("request %d to %v: no answer: %v", i, asked, err)
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if from != asked || n < 20 || string(buf[8:20]) != string(req[8:20]) {
			t.Fatalf("request %d to %v: %d-byte answer from %v; want the answer to it from %v", i, asked, n, from, asked)
		}
	}

	// A node registers through the second address and measures its NAT (none):
	// every answer, the alternate port's included, must come from where it asked.
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", cli, natpassBin, "natcheck",
		"--server", asked.String(), "--insecure-dev", "--timeout", "30s").CombinedOutput()
	if err != nil {
		t.Fatalf("natcheck through %v: %v\n%s", asked, err, out)
	}
}

// bindingRequest is a plain RFC 8489 Binding request: no attributes, a random
// transaction ID.
func bindingRequest() []byte {
	req := make([]byte, 20)
	binary.BigEndian.PutUint16(req[0:], 0x0001)
	binary.BigEndian.PutUint32(req[4:], 0x2112A442)
	rand.Read(req[8:])
	return req
}

// udpIn opens a UDP socket (network udp4 or udp6) on an ephemeral port inside namespace ns: the socket
// is made on a thread that entered ns and stays in ns after the thread leaves it.
func udpIn(t *testing.T, ns, network string) *net.UDPConn {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		t.Fatal(err)
	}
	defer home.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatalf("entering %s: %v", ns, err)
	}
	c, lerr := net.ListenUDP(network, &net.UDPAddr{})
	if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is in the wrong namespace: it must not run anything else.
		panic(fmt.Sprintf("leaving %s: %v", ns, err))
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	return c
}
