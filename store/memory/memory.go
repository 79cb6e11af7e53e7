// Package memory is the in-memory [store.Session]: the default store of
// Tern's client. It keeps a session across reconnects of one process and
// loses it when the process ends; use store/disk to keep it across
// restarts and crashes.
//
// Messages are kept by pointer, not copied: a [message.Message] is
// immutable once published. Every method is safe for concurrent use
// and takes O(1) time, but for Outgoing and Incoming, which sort
// (O(n log n)) what they return.
package memory

import (
	"maps"
	"slices"
	"sync"

	"github.com/ternmq/tern/store"
)

// Session is one session kept in memory. The zero value is not usable:
// call New.
type Session struct {
	mu     sync.Mutex
	closed bool
	out    map[uint64]store.Outgoing
	in     map[uint16]struct{}
}

var _ store.Session = (*Session)(nil)

// New returns an empty session.
func New() *Session {
	return &Session{out: map[uint64]store.Outgoing{}, in: map[uint16]struct{}{}}
}

// AddOutgoing implements [store.Session].
func (s *Session) AddOutgoing(o store.Outgoing) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	if _, ok := s.out[o.Seq]; ok {
		return store.ErrExists
	}
	s.out[o.Seq] = o
	return nil
}

// MarkSent implements [store.Session].
func (s *Session) MarkSent(seq uint64, id uint16) error {
	return s.update(seq, func(o *store.Outgoing) { o.PacketID = id })
}

// MarkReleased implements [store.Session].
func (s *Session) MarkReleased(seq uint64) error {
	return s.update(seq, func(o *store.Outgoing) { o.Released = true })
}

func (s *Session) update(seq uint64, f func(*store.Outgoing)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	o, ok := s.out[seq]
	if !ok {
		return store.ErrNotFound
	}
	f(&o)
	s.out[seq] = o
	return nil
}

// DeleteOutgoing implements [store.Session].
func (s *Session) DeleteOutgoing(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	delete(s.out, seq)
	return nil
}

// Outgoing implements [store.Session].
func (s *Session) Outgoing() ([]store.Outgoing, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, store.ErrClosed
	}
	out := slices.AppendSeq(make([]store.Outgoing, 0, len(s.out)), maps.Values(s.out))
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b store.Outgoing) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	return out, nil
}

// AddIncoming implements [store.Session].
func (s *Session) AddIncoming(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.in[id] = struct{}{}
	return nil
}

// DeleteIncoming implements [store.Session].
func (s *Session) DeleteIncoming(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	delete(s.in, id)
	return nil
}

// Incoming implements [store.Session].
func (s *Session) Incoming() ([]uint16, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, store.ErrClosed
	}
	in := slices.AppendSeq(make([]uint16, 0, len(s.in)), maps.Keys(s.in))
	s.mu.Unlock()
	slices.Sort(in)
	return in, nil
}

// Clear implements [store.Session].
func (s *Session) Clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.out = map[uint64]store.Outgoing{} // clear() would keep the buckets of a large session
	s.in = map[uint16]struct{}{}
	return nil
}

// Close implements [store.Session]: it drops what the session held.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	s.out, s.in = nil, nil
	return nil
}
