package keyx

// replayWindow is the sliding window of RFC 6479: a ring of 64-bit blocks, of which
// all but one are the window, so that moving the window forward clears whole blocks
// instead of shifting bits. With 128 blocks the window is (128−1)·64 = 8128 counters,
// WireGuard's size (whitepaper §5.4.6).
//
// It is split into check and accept because a counter may only move the window after
// the packet authenticated: a forged packet with a huge counter must not slide the
// window past every genuine packet still in flight.
type replayWindow struct {
	greatest uint64 // the greatest accepted counter; meaningful once any is accepted
	started  bool
	blocks   [replayBlocks]uint64
}

const (
	replayBlockBits = 64
	replayBlocks    = 128 // a power of two: the ring index is a mask
	// ReplayWindow is how far behind the greatest accepted counter a counter may be
	// and still be accepted once.
	ReplayWindow = (replayBlocks - 1) * replayBlockBits
)

// check reports whether counter is new and inside the window. It changes nothing.
func (w *replayWindow) check(counter uint64) bool {
	if !w.started || counter > w.greatest {
		return true
	}
	if w.greatest-counter >= ReplayWindow {
		return false
	}
	block := (counter / replayBlockBits) % replayBlocks
	return w.blocks[block]&(1<<(counter%replayBlockBits)) == 0
}

// accept records counter, which check approved and which authenticated.
func (w *replayWindow) accept(counter uint64) {
	if !w.started || counter > w.greatest {
		// Clear every block the window slides over, at most the whole ring.
		from := uint64(0)
		if w.started {
			from = w.greatest/replayBlockBits + 1
		}
		to := counter / replayBlockBits
		if to >= from && to-from >= replayBlocks {
			from = to - replayBlocks + 1
		}
		// Within the greatest counter's own block to < from and nothing is cleared.
		for b := from; b <= to; b++ {
			w.blocks[b%replayBlocks] = 0
		}
		w.greatest, w.started = counter, true
	}
	w.blocks[(counter/replayBlockBits)%replayBlocks] |= 1 << (counter % replayBlockBits)
}
