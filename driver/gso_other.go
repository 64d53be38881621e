//go:build !linux

package driver

import (
	"errors"
	"net/netip"
)

const (
	gsoMaxSegments = 64
	gsoMaxBytes    = 65507
)

type gsoWriter struct{}

func (s *socket) writeGSO(w *gsoWriter, segs [][1][]byte, seg int, to netip.AddrPort) error {
	return errors.ErrUnsupported
}

const gsoSupported = false

func gsoUnsupported(error) bool { return true }
