package rudp

// ring is a FIFO queue over a power-of-two slice, indexed by absolute position so that
// records (sent packets, fragment references) can be addressed by a counter that only
// grows. It doubles when full and never shrinks, so a connection in steady state
// allocates nothing. Callers bound it: each use documents its limit.
type ring[T any] struct {
	buf  []T
	head uint64 // absolute index of the first element
	tail uint64 // absolute index one past the last element
}

func (r *ring[T]) len() int { return int(r.tail - r.head) }

// at returns a pointer to the element at absolute index i (head <= i < tail).
func (r *ring[T]) at(i uint64) *T { return &r.buf[i&uint64(len(r.buf)-1)] }

func (r *ring[T]) front() *T { return r.at(r.head) }

func (r *ring[T]) push(v T) {
	if r.len() == len(r.buf) {
		r.grow()
	}
	*r.at(r.tail) = v
	r.tail++
}

func (r *ring[T]) pop() T {
	p := r.at(r.head)
	v := *p
	var zero T
	*p = zero // drop references so released messages can be collected
	r.head++
	return v
}

// discard is pop for a caller that does not want the element: it is cleared in
// place, not copied out first.
func (r *ring[T]) discard() {
	var zero T
	*r.at(r.head) = zero
	r.head++
}

func (r *ring[T]) grow() {
	n := max(8, 2*len(r.buf))
	buf := make([]T, n)
	for i := r.head; i < r.tail; i++ {
		buf[i&uint64(n-1)] = *r.at(i)
	}
	r.buf = buf
}

// reset empties the ring and starts its indexes at base.
func (r *ring[T]) reset(base uint64) {
	clear(r.buf)
	r.head, r.tail = base, base
}
