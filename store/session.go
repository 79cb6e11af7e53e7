package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// BrokerSession is a [Session] kept as one stored session of a [Broker]:
// the client's end of a session on the broker's engine, so that one
// record format, one group commit and one conformance suite serve both
// ends. The session's messages on their way out are the stored session's
// queue (Seq for Seq; the message id is the Seq, unique in the session),
// a packet id given by MarkSent or AddOutgoing is an OpSent, a PUBREC an
// OpReleased, a completion an OpDequeue; the QoS 2 ids received are its
// incoming ids; Clear is an OpDeleteSession.
//
// It keeps an index in memory (each message's Seq, packet id and release
// flag, and the incoming ids) to answer ErrExists and ErrNotFound and to
// write nothing for a change that changes nothing; Outgoing reads the
// messages from the Broker's Load. A packet id names one flight at a
// time, as in the Broker (see [OpSent]): giving it to a message ends the
// earlier message stored under it.
//
// It calls b.Load at the start, after a failed write and for each
// Outgoing, so b must allow Load more than once (store/memory's and
// store/disk's do); Load's cost is that of everything b stores, which
// for a Broker kept for one client is that client's session.
//
// Changes of one message are to be made one after the other (each call
// returning before the next one starts), as a client does; changes of
// different messages may be concurrent, and then share the Broker's
// durable writes.
type BrokerSession struct {
	b        Broker
	id       string
	closeAll bool // Close closes b

	mu     sync.Mutex
	closed bool
	err    error // sticky: a write failed and the store cannot say what it holds
	out    map[uint64]flight
	ids    map[uint16]uint64 // packet id -> Seq of the message in flight under it
	in     map[uint16]struct{}
}

// flight is what the index keeps of one message.
type flight struct {
	id       uint16
	released bool
}

var _ Session = (*BrokerSession)(nil)

// NewBrokerSession returns the session that b stores under clientID,
// loading its index from b. If own is set, Close closes b as well.
func NewBrokerSession(ctx context.Context, b Broker, clientID string, own bool) (*BrokerSession, error) {
	s := &BrokerSession{b: b, id: clientID, closeAll: own}
	if err := s.reindex(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// reindex builds the index from what b stores: at the start, and after a
// write failed (the index may say what the store does not).
func (s *BrokerSession) reindex(ctx context.Context) error {
	ss, err := s.load(ctx)
	if err != nil {
		return err
	}
	out, ids, in := map[uint64]flight{}, map[uint16]uint64{}, map[uint16]struct{}{}
	for _, q := range ss.Queue {
		out[q.Seq] = flight{id: q.PacketID, released: q.Released}
		if q.PacketID != 0 {
			ids[q.PacketID] = q.Seq
		}
	}
	for _, id := range ss.Incoming {
		in[id] = struct{}{}
	}
	s.mu.Lock()
	if !s.closed {
		s.out, s.ids, s.in = out, ids, in
	}
	s.mu.Unlock()
	return nil
}

// load returns the stored session (an empty one if none is stored).
func (s *BrokerSession) load(ctx context.Context) (StoredSession, error) {
	st, err := s.b.Load(ctx)
	if err != nil {
		return StoredSession{}, err
	}
	i, ok := slices.BinarySearchFunc(st.Sessions, s.id, func(ss StoredSession, id string) int {
		return strings.Compare(ss.ClientID, id)
	})
	if !ok {
		return StoredSession{ClientID: s.id}, nil
	}
	return st.Sessions[i], nil
}

// change runs f under mu, unless the session is closed, and writes the
// change f returns unless it is moot (write false) or f failed.
func (s *BrokerSession) change(f func() (c Change, write bool, err error)) error {
	s.mu.Lock()
	if err := s.failed(); err != nil {
		s.mu.Unlock()
		return err
	}
	c, write, err := f()
	s.mu.Unlock()
	if err != nil || !write {
		return err
	}
	if err := s.b.Apply(context.Background(), c); err != nil {
		// Not kept (or not known to be): the index follows the store
		// again, if the store can still say what it holds; if not, the
		// session takes no more changes.
		if s.reindex(context.Background()) != nil {
			s.mu.Lock()
			if s.err == nil {
				s.err = err
			}
			s.mu.Unlock()
		}
		return err
	}
	return nil
}

// failed returns ErrClosed after Close, or the sticky error; mu is held.
func (s *BrokerSession) failed() error {
	if s.closed {
		return ErrClosed
	}
	return s.err
}

// use takes the id for seq in the index, ending the flight of another
// message under it; mu is held.
func (s *BrokerSession) use(seq uint64, id uint16) {
	f := s.out[seq]
	if f.id != 0 && s.ids[f.id] == seq {
		delete(s.ids, f.id)
	}
	f.id = id
	if id != 0 {
		if old, ok := s.ids[id]; ok && old != seq {
			delete(s.out, old)
		}
		s.ids[id] = seq
	}
	s.out[seq] = f
}

// drop removes seq from the index; mu is held.
func (s *BrokerSession) drop(seq uint64) {
	if f, ok := s.out[seq]; ok {
		if f.id != 0 && s.ids[f.id] == seq {
			delete(s.ids, f.id)
		}
		delete(s.out, seq)
	}
}

// AddOutgoing implements [Session].
func (s *BrokerSession) AddOutgoing(o Outgoing) error {
	if o.Msg == nil {
		return fmt.Errorf("store: AddOutgoing(seq %d): Msg is nil", o.Seq)
	}
	return s.change(func() (Change, bool, error) {
		if _, ok := s.out[o.Seq]; ok {
			return Change{}, false, ErrExists
		}
		s.out[o.Seq] = flight{released: o.Released}
		s.use(o.Seq, o.PacketID)
		q := Queued{Seq: o.Seq, MsgID: o.Seq, Msg: o.Msg, QoS: o.Msg.QoS, Retain: o.Msg.Retain, PacketID: o.PacketID, Released: o.Released}
		return Enqueue(s.id, q), true, nil
	})
}

// MarkSent implements [Session].
func (s *BrokerSession) MarkSent(seq uint64, id uint16) error {
	return s.change(func() (Change, bool, error) {
		f, ok := s.out[seq]
		if !ok {
			return Change{}, false, ErrNotFound
		}
		if f.id == id {
			return Change{}, false, nil
		}
		s.use(seq, id)
		return Sent(s.id, seq, id), true, nil
	})
}

// MarkReleased implements [Session].
func (s *BrokerSession) MarkReleased(seq uint64) error {
	return s.change(func() (Change, bool, error) {
		f, ok := s.out[seq]
		if !ok {
			return Change{}, false, ErrNotFound
		}
		if f.released {
			return Change{}, false, nil
		}
		f.released = true
		s.out[seq] = f
		return Released(s.id, seq), true, nil
	})
}

// DeleteOutgoing implements [Session].
func (s *BrokerSession) DeleteOutgoing(seq uint64) error {
	return s.change(func() (Change, bool, error) {
		_, ok := s.out[seq]
		s.drop(seq)
		return Dequeue(s.id, seq), ok, nil
	})
}

// Outgoing implements [Session]: it loads the stored session.
func (s *BrokerSession) Outgoing() ([]Outgoing, error) {
	s.mu.Lock()
	err := s.failed()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	ss, err := s.load(context.Background())
	if err != nil {
		return nil, err
	}
	out := make([]Outgoing, 0, len(ss.Queue))
	for _, q := range ss.Queue { // in Seq order
		out = append(out, Outgoing{Seq: q.Seq, Msg: q.Msg, PacketID: q.PacketID, Released: q.Released})
	}
	return out, nil
}

// AddIncoming implements [Session].
func (s *BrokerSession) AddIncoming(id uint16) error {
	return s.change(func() (Change, bool, error) {
		_, ok := s.in[id]
		s.in[id] = struct{}{}
		return AddIncoming(s.id, id), !ok, nil
	})
}

// DeleteIncoming implements [Session].
func (s *BrokerSession) DeleteIncoming(id uint16) error {
	return s.change(func() (Change, bool, error) {
		_, ok := s.in[id]
		delete(s.in, id)
		return DeleteIncoming(s.id, id), ok, nil
	})
}

// Incoming implements [Session], from the index.
func (s *BrokerSession) Incoming() ([]uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failed(); err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(s.in)), nil
}

// Clear implements [Session]: the stored session is deleted.
func (s *BrokerSession) Clear() error {
	return s.change(func() (Change, bool, error) {
		s.out, s.ids, s.in = map[uint64]flight{}, map[uint16]uint64{}, map[uint16]struct{}{}
		return DeleteSession(s.id), true, nil
	})
}

// Close implements [Session]: it closes the Broker too if the session
// owns it.
func (s *BrokerSession) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.out, s.ids, s.in = nil, nil, nil
	s.mu.Unlock()
	if s.closeAll {
		if err := s.b.Close(); err != nil && !errors.Is(err, ErrClosed) {
			return err
		}
	}
	return nil
}
