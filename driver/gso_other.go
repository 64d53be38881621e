//go:build !linux

package driver

import (
	"errors"
	"net/netip"
)

const gsoMaxSegments = sendBatchLen

func (s *socket) writeGSO(buf []byte, seg int, to netip.AddrPort, oob []byte) error {
	return errors.ErrUnsupported
}

const gsoSupported = false

func gsoUnsupported(error) bool { return true }
