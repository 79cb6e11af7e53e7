// Package delay holds the wills of dead nodes until their MQTT 5 Will Delay
// Interval has passed, for the back plane engines.
//
// A node's death is judged by the engine (its lease lapsed, or it was
// killed); a will registered with Properties.WillDelay is published no
// earlier than that moment plus the delay. The back plane cannot know
// whether the client's session ended earlier or resumed on another node:
// it always publishes the will once the delay has passed.
package delay

import (
	"sync"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
)

// Of returns the Will Delay Interval of will m and the message to publish:
// a copy of m without the Will Delay property (it is not a PUBLISH
// property), or m itself when it has none.
func Of(m *message.Message) (time.Duration, *message.Message) {
	if m.Properties.WillDelay == 0 && !m.Properties.Has(packet.PropWillDelay) {
		return 0, m
	}
	d := time.Duration(m.Properties.WillDelay) * time.Second
	c := *m
	c.Properties.WillDelay = 0
	c.Properties.Unmark(packet.PropWillDelay)
	return d, &c
}

// Queue runs functions (publications of delayed wills) after their delay,
// until it is closed. The zero Queue is ready to use.
type Queue struct {
	mu      sync.Mutex
	closed  bool
	pending map[*time.Timer]func()
	wg      sync.WaitGroup
}

// After runs f after d. It returns false, and does not run f, when q is
// closed.
func (q *Queue) After(d time.Duration, f func()) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	if q.pending == nil {
		q.pending = make(map[*time.Timer]func())
	}
	q.wg.Add(1)
	var t *time.Timer
	// q.mu is held until t is in pending, so the function sees t set.
	t = time.AfterFunc(d, func() {
		defer q.wg.Done()
		q.mu.Lock()
		g, ok := q.pending[t]
		delete(q.pending, t)
		q.mu.Unlock()
		if ok {
			g()
		}
	})
	q.pending[t] = f
	return true
}

// Len is the number of functions waiting for their delay.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// Close stops q: it returns the functions still waiting (the caller runs
// them now or drops them) after the ones already running have returned.
// After never runs anything once Close was called.
func (q *Queue) Close() []func() {
	q.mu.Lock()
	q.closed = true
	var fs []func()
	for t, f := range q.pending {
		if t.Stop() {
			delete(q.pending, t)
			fs = append(fs, f)
			q.wg.Done()
		}
		// Otherwise its timer fired: the function runs, and is waited for.
	}
	q.mu.Unlock()
	q.wg.Wait()
	return fs
}
