package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Dual stack (DESIGN §14, PROTOCOL.md §5.12): a server name with A and AAAA
// records gives the node a primary address (IPv4 when there is one: the family
// most networks route) and the same server's address in the other family. When
// the host can reach some server over the other family, the node gets a second
// socket there (node.Config.OtherLocal), binds it to its session with
// register-family, and its peers learn candidates of both families; a pair
// prefers IPv6 direct, then IPv4 direct, then the relay.

// resolveTimeout bounds the name lookups of Listen.
const resolveTimeout = 10 * time.Second

// lookupNetIP resolves a server name; tests give names both families on loopback,
// which the machine's hosts file may not.
var lookupNetIP = net.DefaultResolver.LookupNetIP

// resolveAll resolves every server: servers are the primary addresses (one family
// per server, IPv4 preferred), others the same servers in the other family (zero
// where a server has none, or was given as an IP literal).
func resolveAll(hostports []string) (servers, others []netip.AddrPort, err error) {
	servers = make([]netip.AddrPort, len(hostports))
	others = make([]netip.AddrPort, len(hostports))
	for i, hp := range hostports {
		servers[i], others[i], err = resolveFamilies(hp)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: server %q: %v", ErrBadConfig, hp, err)
		}
	}
	return servers, others, nil
}

// resolveFamilies turns "host:port" into the server's primary address and its
// address in the other family (zero when the name has none). An IP literal has
// one family only.
func resolveFamilies(hostport string) (primary, other netip.AddrPort, err error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), other, nil
	}
	host, portName, err := net.SplitHostPort(hostport)
	if err != nil {
		return primary, other, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	port, err := net.DefaultResolver.LookupPort(ctx, "udp", portName)
	if err != nil {
		return primary, other, err
	}
	ips, err := lookupNetIP(ctx, "ip", host)
	if err != nil {
		return primary, other, err
	}
	var v4, v6 netip.Addr
	for _, ip := range ips {
		switch ip = ip.Unmap(); {
		case ip.Is4() && !v4.IsValid():
			v4 = ip
		case ip.Is6() && !v6.IsValid():
			v6 = ip
		}
	}
	switch {
	case v4.IsValid() && v6.IsValid():
		return netip.AddrPortFrom(v4, uint16(port)), netip.AddrPortFrom(v6, uint16(port)), nil
	case v4.IsValid():
		return netip.AddrPortFrom(v4, uint16(port)), other, nil
	case v6.IsValid():
		return netip.AddrPortFrom(v6, uint16(port)), other, nil
	}
	return primary, other, fmt.Errorf("no address for %q", host)
}

// listenOther opens the node's socket in the other family, or returns nil when
// there is none to open: ListenOther is "off", no server has an address in the
// other family, or the host has no route to it (an IPv4-only host). It binds
// ListenOther ("" means an unspecified IP and, when free, the main socket's port,
// so that both families' mappings share a port where NATs preserve it) and keeps
// others only when the socket exists.
func listenOther(cfg *Config, main netip.AddrPort, others []netip.AddrPort) (*socket, []netip.AddrPort) {
	if cfg.ListenOther == "off" {
		return nil, nil
	}
	var server netip.AddrPort
	for _, o := range others {
		if o.IsValid() && o.Addr().Is4() != main.Addr().Is4() {
			server = o
			break
		}
	}
	if !server.IsValid() {
		return nil, nil
	}
	listen := cfg.ListenOther
	if listen == "" {
		listen = fmt.Sprintf(":%d", main.Port())
	}
	s, err := openOther(listen, server)
	if errors.Is(err, syscall.EADDRINUSE) && cfg.ListenOther == "" {
		s, err = openOther(":0", server)
	}
	if err != nil {
		return nil, nil
	}
	return s, others
}

// openOther binds listen for reaching server; an unspecified IP becomes the
// source address the host would use toward server (localFor).
func openOther(listen string, server netip.AddrPort) (*socket, error) {
	bind, name, err := localFor(listen, server)
	if err != nil {
		return nil, err
	}
	if bind.Addr().Is4() != server.Addr().Is4() {
		return nil, fmt.Errorf("%w: ListenOther %q is not of %v's family", ErrBadConfig, listen, server)
	}
	return listenUDP(bind, name)
}
