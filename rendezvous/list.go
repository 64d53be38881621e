package rendezvous

// link and lruList form an intrusive doubly linked list over the slots of a table,
// in the order the slots were last touched. Tables use it to find, in O(1) and
// without allocating, the session that expires next (sessions share one timeout, so
// the least recently refreshed expires first) and the source entry to evict.
type link struct{ prev, next int32 }

const nilSlot = -1

type lruList struct{ head, tail int32 }

func newLRU() lruList { return lruList{head: nilSlot, tail: nilSlot} }

func (l *lruList) pushBack(links []link, i int32) {
	links[i] = link{prev: l.tail, next: nilSlot}
	if l.tail != nilSlot {
		links[l.tail].next = i
	} else {
		l.head = i
	}
	l.tail = i
}

func (l *lruList) remove(links []link, i int32) {
	lk := links[i]
	if lk.prev != nilSlot {
		links[lk.prev].next = lk.next
	} else {
		l.head = lk.next
	}
	if lk.next != nilSlot {
		links[lk.next].prev = lk.prev
	} else {
		l.tail = lk.prev
	}
	links[i] = link{prev: nilSlot, next: nilSlot}
}

// touch moves i to the back (most recently used).
func (l *lruList) touch(links []link, i int32) {
	if l.tail == i {
		return
	}
	l.remove(links, i)
	l.pushBack(links, i)
}
