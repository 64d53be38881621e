//go:build !linux

package driver

import "net/netip"

const (
	gsoMaxSegments = 64
	gsoMaxBytes    = 65507
)

// Without GSO, sendSlots sends every flush with sendmmsg (or writes): these are
// never called.
func (w *mmsgWriter) setEntry(e, i, j int, s *socket, to netip.AddrPort) {}

func (l *loop) sendEntries(n int) { panic("driver: GSO entries without GSO") }

const gsoSupported = false

func gsoUnsupported(error) bool { return true }
