package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/natpass/natpass/driver"
)

// addrList is a flag given once per IP family (natpass server --listen V4
// --listen V6; a comma-separated list does the same, which is how an environment
// variable gives two): at most one IPv4 and one IPv6 address, the first given
// first.
type addrList []netip.AddrPort

func (l *addrList) String() string {
	s := make([]string, len(*l))
	for i, a := range *l {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func (l *addrList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		a, err := netip.ParseAddrPort(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("want IP:PORT (IPv6 as [IP]:PORT): %v", err)
		}
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		for _, b := range *l {
			if b.Addr().Is4() == a.Addr().Is4() {
				return fmt.Errorf("%v and %v are of one family: give one IPv4 and one IPv6 address", b, a)
			}
		}
		*l = append(*l, a)
	}
	return nil
}

// of returns the address of the family of like ("" when there is none).
func (l addrList) of(like netip.AddrPort) string {
	for _, a := range l {
		if a.Addr().Is4() == like.Addr().Is4() {
			return a.String()
		}
	}
	return ""
}

// applyListen fills cfg's sockets from --listen, --listen2 and --alt-port: the
// first --listen is the primary socket, a second one (the other family) the
// other family's primary, each --listen2 and an explicit --alt-port going with
// the --listen of its family. "" and "off" alt ports apply to both families.
func applyListen(cfg *driver.ServerConfig, listen, listen2 addrList, altPort string) error {
	if len(listen) == 0 {
		return fmt.Errorf("--listen is required")
	}
	alt := addrList{}
	if altPort != "" && altPort != "off" {
		if err := alt.Set(altPort); err != nil {
			return fmt.Errorf("--alt-port: %v", err)
		}
	}
	altFor := func(primary netip.AddrPort) string {
		if altPort == "off" {
			return "off"
		}
		return alt.of(primary)
	}
	for _, a := range listen2 {
		if listen.of(a) == "" {
			return fmt.Errorf("--listen2 %v has no --listen of its family", a)
		}
	}
	if len(alt) > 0 && listen.of(alt[0]) == "" {
		return fmt.Errorf("--alt-port %v has no --listen of its family", alt[0])
	}
	cfg.Listen, cfg.AltAddr, cfg.AltPort = listen[0].String(), listen2.of(listen[0]), altFor(listen[0])
	if len(listen) > 1 {
		cfg.OtherListen, cfg.OtherAltAddr, cfg.OtherAltPort = listen[1].String(), listen2.of(listen[1]), altFor(listen[1])
	}
	return nil
}
