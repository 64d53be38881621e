package punch

// fifo is a bounded first-in, first-out queue that reuses its memory (DESIGN §2: no
// allocation per packet in steady state; §11: every queue has a bound and a full
// queue drops with a counter).
//
// Items are appended at the tail and read from head. When the last item is read both
// go back to the start of the array, so a queue emptied by the drain rule never
// creeps along its array (q = q[1:] did, and append then reallocated every few
// packets). An owner that reads only part of the queue before the next push is
// served too: the live items move to the front before the array would grow, so the
// array never holds more than about twice the bound.
type fifo[T any] struct {
	items []T
	head  int // items[head:] are queued
	max   int // the bound: at most this many queued
	drops int // pushes refused because the queue was full
}

func newFIFO[T any](max int) fifo[T] { return fifo[T]{max: max} }

// len is how many items are queued.
func (q *fifo[T]) len() int { return len(q.items) - q.head }

// push queues v, or counts a drop and returns false when the queue is full.
func (q *fifo[T]) push(v T) bool {
	if q.len() >= q.max {
		q.drops++
		return false
	}
	if len(q.items) == cap(q.items) && q.head > 0 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:]) // let what the items point to go
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, v)
	return true
}

// pop returns the oldest item.
func (q *fifo[T]) pop() (T, bool) {
	var zero T
	if q.head == len(q.items) {
		return zero, false
	}
	v := q.items[q.head]
	q.items[q.head] = zero
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return v, true
}

// reset empties the queue, keeping its memory and its drop count.
func (q *fifo[T]) reset() {
	clear(q.items)
	q.items, q.head = q.items[:0], 0
}
