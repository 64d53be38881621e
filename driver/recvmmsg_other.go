//go:build !linux

package driver

import "sync/atomic"

func (s *socket) readLoopBatch(free chan *packet, in chan<- *packet, done <-chan struct{}, tooLong *atomic.Uint64) bool {
	return false
}

const recvBatchLen = 8

func (s *socket) enableGRO() bool { return false }

func (s *socket) readLoopGRO(free chan *packet, in chan<- *packet, done <-chan struct{}, tooLong *atomic.Uint64) bool {
	return false
}
