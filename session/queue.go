package session

// Queue is a FIFO of items in a growable circular buffer: the messages a
// session holds until its connection can take them. It is unbounded; the
// owner enforces its limit and drop policy (see Len). The zero value is
// an empty queue. Queue is not safe for concurrent use; the owner's lock
// guards it.
type Queue[T any] struct {
	buf  []T
	head int
	n    int
}

// Len returns the number of items queued.
func (q *Queue[T]) Len() int { return q.n }

// Push appends v at the tail.
func (q *Queue[T]) Push(v T) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = v
	q.n++
}

func (q *Queue[T]) grow() {
	nb := make([]T, max(16, 2*len(q.buf)))
	for i := 0; i < q.n; i++ {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = nb, 0
}

// PushFront puts v at the head, ahead of everything queued.
func (q *Queue[T]) PushFront(v T) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.head = (q.head - 1 + len(q.buf)) % len(q.buf)
	q.buf[q.head] = v
	q.n++
}

// Peek returns a pointer to the item at the head, nil when the queue is
// empty. The pointer is valid until the queue is next changed.
func (q *Queue[T]) Peek() *T {
	if q.n == 0 {
		return nil
	}
	return &q.buf[q.head]
}

// Pop removes and returns the item at the head; the queue must not be
// empty. A large buffer is given back once the queue drains, so that a
// burst does not pin memory for the life of the session.
func (q *Queue[T]) Pop() T {
	var zero T
	v := q.buf[q.head]
	q.buf[q.head] = zero
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if q.n == 0 && len(q.buf) > 64 {
		q.buf, q.head = nil, 0
	}
	return v
}

// Clear empties the queue and releases its buffer.
func (q *Queue[T]) Clear() { *q = Queue[T]{} }

// Any reports whether f is true for an item, looking from the head.
func (q *Queue[T]) Any(f func(*T) bool) bool {
	for i := 0; i < q.n; i++ {
		if f(&q.buf[(q.head+i)%len(q.buf)]) {
			return true
		}
	}
	return false
}

// Extract removes the items for which take is true, keeping the order of
// the rest, and returns them in their order.
func (q *Queue[T]) Extract(take func(*T) bool) []T {
	var out []T
	var keep Queue[T]
	for q.n > 0 {
		v := q.Pop()
		if take(&v) {
			out = append(out, v)
		} else {
			keep.Push(v)
		}
	}
	*q = keep
	return out
}
