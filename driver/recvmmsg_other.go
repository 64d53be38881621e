//go:build !linux

package driver

import "sync/atomic"

func (s *socket) readLoopBatch(batchLen, bufLen int, deliver func([]*packet) bool, done <-chan struct{}, tooLong *atomic.Uint64) bool {
	return false
}

const recvBatchLen = 8

func (s *socket) enableGRO() bool { return false }

// groBatchLen and groBufLen: see gro_linux.go; no GRO here.
const groBatchLen, groBufLen = 1, maxDatagram + 1
