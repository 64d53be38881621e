//go:build !linux

package driver

import "sync/atomic"

func (s *socket) readLoopBatch(free chan *packet, in chan<- *packet, done <-chan struct{}, tooLong *atomic.Uint64) bool {
	return false
}

const recvBatchLen = 8
