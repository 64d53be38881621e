package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 15: standard STUN clients get their reflexive address from `natpass server`
// (PROTOCOL.md §10). The clients run against a real server on loopback, IPv4 and
// IPv6; each test skips, saying so, when its client or IPv6 loopback is missing.

// stunFamilies are the loopback servers the tests ask: one per family, since a
// server listens on one family.
var stunFamilies = []struct{ name, listen, host string }{
	{"ipv4", "127.0.0.1:0", "127.0.0.1"},
	{"ipv6", "[::1]:0", "::1"},
}

// startLoopbackServer runs `natpass server` on listen, skipping when the address
// cannot be bound (no IPv6 loopback on this host).
func startLoopbackServer(t *testing.T, listen string) netip.AddrPort {
	t.Helper()
	probe, err := net.ListenPacket("udp", listen)
	if err != nil {
		t.Skipf("cannot bind %s on this host: %v", listen, err)
	}
	probe.Close()
	addr, _ := startServerCmd(t, "--listen", listen, "--insecure-dev", "--quiet")
	return netip.MustParseAddrPort(addr)
}

// runClient runs a STUN client to completion and returns its output. turnutils_stunclient
// waits for an answer without a limit of its own, so a generous deadline stands for
// "no answer". exitCodeIsResult says the exit status is the client's verdict (the
// Debian client exits with the NAT type it found), not a failure.
func runClient(t *testing.T, exitCodeIsResult bool, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v got no answer: %s", name, args, out)
	}
	var exit *exec.ExitError
	if err != nil && !(exitCodeIsResult && errors.As(err, &exit)) {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return string(out)
}

// coturn's turnutils_stunclient sends a bare 20-byte Binding request (RFC 8489, no
// attribute) and prints the XOR-MAPPED-ADDRESS of the answer.
func TestTurnutilsSTUNClient(t *testing.T) {
	tool, err := exec.LookPath("turnutils_stunclient")
	if err != nil {
		t.Skip("turnutils_stunclient not installed (Debian package coturn; .ci/run installs it as root)")
	}
	reflexive := regexp.MustCompile(`UDP reflexive addr: (\S+)`)
	for _, f := range stunFamilies {
		t.Run(f.name, func(t *testing.T) {
			srv := startLoopbackServer(t, f.listen)
			out := runClient(t, false, tool, "-p", strconv.Itoa(int(srv.Port())), f.host)
			m := reflexive.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no reflexive address in the output:\n%s", out)
			}
			// The tool prints IPv6 as ::1:PORT, without brackets: the port follows
			// the last colon.
			i := strings.LastIndexByte(m[1], ':')
			ip, ipErr := netip.ParseAddr(m[1][:i])
			port, portErr := strconv.ParseUint(m[1][i+1:], 10, 16)
			if i < 0 || ipErr != nil || portErr != nil || ip != netip.MustParseAddr(f.host) || port == 0 || port == uint64(srv.Port()) {
				t.Fatalf("reflexive address %q, want %s and the client's port:\n%s", m[1], f.host, out)
			}
			t.Logf("turnutils_stunclient: reflexive %s", m[1])
		})
	}
}

// The Debian stun client (package stun-client) speaks RFC 3489: no magic cookie,
// a CHANGE-REQUEST asking no change, MAPPED-ADDRESS in the answer. Its source port is
// chosen with -p, so the mapped address is checked exactly. Its change tests get no
// answer (the server has no alternate address for STUN), which it reports as a
// firewall.
func TestDebianSTUNClient(t *testing.T) {
	tool, err := exec.LookPath("stun")
	if err != nil {
		t.Skip("stun not installed (Debian package stun-client; .ci/run installs it as root)")
	}
	srv := startLoopbackServer(t, stunFamilies[0].listen)
	// The client opens the port it is given and the next one: a port pair free a
	// moment ago can be taken meanwhile by the package's other tests, which the
	// client reports as "in use"; then it is asked again with another pair.
	var local int
	var out string
	for try := 0; try < 5; try++ {
		local = freeUDPPortPair(t)
		out = runClient(t, true, tool, srv.String(), "-v", "-p", strconv.Itoa(local))
		if !strings.Contains(out, "is in use") {
			break
		}
	}
	if !strings.Contains(out, "STUN client version") {
		t.Skipf("%s is not the Debian stun client:\n%s", tool, out)
	}
	if want := "MappedAddress = 127.0.0.1:" + strconv.Itoa(local); !strings.Contains(out, want) {
		t.Fatalf("no %q in the output:\n%s", want, out)
	}
}

// freeUDPPortPair returns a loopback UDP port that, with the next one, was free a
// moment ago.
func freeUDPPortPair(t *testing.T) int {
	t.Helper()
	for {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		next, err := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
		c.Close()
		if err == nil {
			next.Close()
			return port
		}
	}
}

// The request turnutils_stunclient sends, byte for byte the same form, from a socket
// whose address the test knows: the answer's XOR-MAPPED-ADDRESS is exactly that
// address, for both families.
func TestBareSTUNRequestGetsExactAddress(t *testing.T) {
	for _, f := range stunFamilies {
		t.Run(f.name, func(t *testing.T) {
			srv := startLoopbackServer(t, f.listen)
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(srv))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req := make([]byte, 20) // Binding request, length 0, magic cookie, transaction ID
			binary.BigEndian.PutUint16(req, 0x0001)
			binary.BigEndian.PutUint32(req[4:], 0x2112A442)
			rand.Read(req[8:])
			if _, err := c.Write(req); err != nil {
				t.Fatal(err)
			}
			if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
				t.Fatal(err)
			}
			resp := make([]byte, 1500)
			n, err := c.Read(resp)
			if err != nil {
				t.Fatalf("no answer to a bare Binding request: %v", err)
			}
			got, ok := xorMappedAddress(resp[:n], req)
			want := c.LocalAddr().(*net.UDPAddr).AddrPort()
			if !ok || got != netip.AddrPortFrom(want.Addr().Unmap(), want.Port()) || n > len(req)+24 {
				t.Fatalf("%d-byte answer %x: mapped %v, want %v", n, resp[:n], got, want)
			}
		})
	}
}

// xorMappedAddress reads the XOR-MAPPED-ADDRESS of a Binding success response to req
// (RFC 8489 §14.2).
func xorMappedAddress(p, req []byte) (netip.AddrPort, bool) {
	if len(p) < 20 || binary.BigEndian.Uint16(p) != 0x0101 || string(p[4:20]) != string(req[4:20]) ||
		int(binary.BigEndian.Uint16(p[2:]))+20 != len(p) {
		return netip.AddrPort{}, false
	}
	for off := 20; off+4 <= len(p); {
		typ, n := binary.BigEndian.Uint16(p[off:]), int(binary.BigEndian.Uint16(p[off+2:]))
		if off+4+n > len(p) {
			return netip.AddrPort{}, false
		}
		if v := p[off+4 : off+4+n]; typ == 0x0020 && (n == 8 || n == 20) {
			ip := make([]byte, n-4)
			for i := range ip {
				ip[i] = v[4+i] ^ p[4+i] // the cookie, then the transaction ID
			}
			a, _ := netip.AddrFromSlice(ip)
			return netip.AddrPortFrom(a, binary.BigEndian.Uint16(v[2:])^0x2112), true
		}
		off += 4 + (n+3)&^3
	}
	return netip.AddrPort{}, false
}
