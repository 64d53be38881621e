package driver

import "sync"

// bufferPool is the rudp.Buffers of a node started with Config.RecycleBuffers: the
// loop takes buffers for received messages and gives back those rudp is done with
// (SendOwned messages once acknowledged), the application gives back what it read
// (Message.Release) and takes buffers to fill (Node.Buffer). A LIFO free list in two
// size classes under a mutex, bounded: at most poolKeep buffers per class, none
// larger than poolBig kept.
type bufferPool struct {
	mu          sync.Mutex
	small, big  [][]byte
	gets, fresh uint64 // Stats.Buffers: Lent, Made
}

const (
	poolSmall = 4 << 10  // capacity of the small class
	poolBig   = 64 << 10 // least and largest kept capacity of the big class
	poolKeep  = 256      // buffers kept per class: ≤ 256 × 68 KiB per node
)

// Get returns a buffer of length n; its contents are an earlier message's.
func (p *bufferPool) Get(n int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gets++
	list := &p.big
	if n <= poolSmall {
		list = &p.small
	}
	if k := len(*list); k > 0 && cap((*list)[k-1]) >= n {
		b := (*list)[k-1]
		*list = (*list)[:k-1]
		return b[:n]
	}
	p.fresh++
	if n <= poolSmall {
		return make([]byte, n, poolSmall)
	}
	return make([]byte, n, max(n, poolBig))
}

// Put keeps b for a later Get unless its class is full or it is larger than
// poolBig (left to the garbage collector).
func (p *bufferPool) Put(b []byte) {
	if cap(b) > poolBig {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	list := &p.big
	if cap(b) <= poolSmall {
		list = &p.small
	}
	if len(*list) < poolKeep {
		*list = append(*list, b[:0])
	}
}

// stats are the pool's counters (zero for no pool).
func (p *bufferPool) stats() BufferStats {
	if p == nil {
		return BufferStats{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return BufferStats{Lent: p.gets, Made: p.fresh}
}

// recyclePool makes cfg.RUDP.Buffers a new pool when cfg.RecycleBuffers asks for
// one and RUDP.Buffers is not set already; nil otherwise.
func recyclePool(cfg *Config) *bufferPool {
	if !cfg.RecycleBuffers || cfg.RUDP.Buffers != nil {
		return nil
	}
	p := &bufferPool{}
	cfg.RUDP.Buffers = p
	return p
}

// Release gives m.Data back to the node's buffer pool (Config.RecycleBuffers), so a
// later message reuses it instead of a new allocation: after it neither m.Data nor
// any slice of it may be used. Without RecycleBuffers it does nothing.
func (m Message) Release() {
	if m.pool != nil && m.Data != nil {
		m.pool.Put(m.Data)
	}
}

// Buffer returns a buffer of length size from the node's pool (Config.RecycleBuffers)
// to fill and hand to Conn.SendOwned, which gives it back once the peer has
// acknowledged it; its contents are an earlier message's. Without RecycleBuffers it
// is make([]byte, size).
func (n *Node) Buffer(size int) []byte {
	if n.pool == nil {
		return make([]byte, size)
	}
	return n.pool.Get(size)
}
