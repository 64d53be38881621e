package relayframe

import (
	"testing"
	"unsafe"
)

// A relayed frame reads its channel and the pair's other one; at game rates across
// many sessions each is a likely cache miss, so each must be one cache line.
func TestChannelIsOneCacheLine(t *testing.T) {
	if n := unsafe.Sizeof(channel{}); n != 64 {
		t.Errorf("channel is %d bytes, want 64 (one cache line): order its fields by size", n)
	}
}
