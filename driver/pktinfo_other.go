//go:build !linux

package driver

import "net/netip"

// enablePktinfo: not built on this platform; sends leave from the kernel's choice.
func (s *socket) enablePktinfo(netip.Addr) bool { return false }

func pktinfoDst([]byte) netip.Addr { return netip.Addr{} }

func (s *socket) appendPktinfo(b []byte, _ netip.Addr) []byte { return b }
