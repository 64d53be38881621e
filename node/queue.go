package node

// queue is a FIFO that reuses its memory: popping moves a head index, and a drained
// queue starts again at the front of its array. A burst may grow the array (a
// window's worth of messages); once drained, an array past queueKeep entries is let
// go so that one burst does not pin its memory for the node's life. The bound on
// what goes in is the producer's, written where it pushes.
type queue[T any] struct {
	items []T
	head  int
}

// queueKeep is the largest array a drained queue keeps.
const queueKeep = 256

func (q *queue[T]) push(v T) { q.items = append(q.items, v) }

func (q *queue[T]) len() int { return len(q.items) - q.head }

func (q *queue[T]) pop() (T, bool) {
	var zero T
	if q.head == len(q.items) {
		if cap(q.items) > queueKeep {
			q.items = nil
		} else {
			q.items = q.items[:0]
		}
		q.head = 0
		return zero, false
	}
	v := q.items[q.head]
	q.items[q.head] = zero // the queue keeps no reference to what it handed out
	q.head++
	return v, true
}
