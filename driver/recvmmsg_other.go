//go:build !linux

package driver

import "sync/atomic"

func (s *socket) readLoopBatch(pool chan *packet, in chan<- *packet, done <-chan struct{}, tooLong *atomic.Uint64) bool {
	return false
}

const recvBatchLen = 8

func (s *socket) enableGRO() bool { return false }

func newGROPool() chan *packet { return nil }
