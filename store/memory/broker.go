package memory

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store"
)

// Broker is a [store.Broker] kept in memory: a broker Server that loads
// it after another Server of the same process used it (a Server does not
// close the store it is given) finds everything the previous one stored. Messages are kept by pointer. The zero value
// is not usable: call NewBroker.
type Broker struct {
	mu       sync.Mutex
	closed   bool
	sessions map[string]*brokerSession
	retained map[string]*message.Message
	maxMsgID uint64
	saved    time.Time
}

type brokerSession struct {
	info  store.SessionInfo
	subs  map[string]store.Subscription
	queue map[uint64]store.Queued
	in    map[uint16]struct{}
}

var _ store.Broker = (*Broker)(nil)

// NewBroker returns an empty broker store.
func NewBroker() *Broker {
	return &Broker{sessions: map[string]*brokerSession{}, retained: map[string]*message.Message{}}
}

// Load implements [store.Broker].
func (b *Broker) Load(ctx context.Context) (*store.BrokerState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, store.ErrClosed
	}
	st := &store.BrokerState{Saved: b.saved, MaxMsgID: b.maxMsgID}
	for _, id := range slices.Sorted(maps.Keys(b.sessions)) {
		s := b.sessions[id]
		ss := store.StoredSession{ClientID: id, Info: s.info, Subs: maps.Clone(s.subs)}
		if ss.Subs == nil {
			ss.Subs = map[string]store.Subscription{}
		}
		for _, q := range s.queue {
			q.SubIDs = slices.Clone(q.SubIDs)
			ss.Queue = append(ss.Queue, q)
		}
		slices.SortFunc(ss.Queue, func(a, b store.Queued) int { return cmp.Compare(a.Seq, b.Seq) })
		ss.Incoming = slices.Sorted(maps.Keys(s.in))
		st.Sessions = append(st.Sessions, ss)
	}
	st.Retained = make([]*message.Message, 0, len(b.retained))
	for _, m := range b.retained {
		st.Retained = append(st.Retained, m) // in no order: sorting a million topics costs a restart time
	}
	return st, nil
}

// Apply implements [store.Broker].
func (b *Broker) Apply(ctx context.Context, changes ...store.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return store.ErrClosed
	}
	for i := range changes {
		b.apply(&changes[i])
	}
	b.saved = time.Now()
	return nil
}

func (b *Broker) session(id string) *brokerSession {
	s := b.sessions[id]
	if s == nil {
		s = &brokerSession{}
		b.sessions[id] = s
	}
	return s
}

func (b *Broker) enqueue(id string, q store.Queued) {
	s := b.session(id)
	if s.queue == nil {
		s.queue = map[uint64]store.Queued{}
	}
	q.SubIDs = slices.Clone(q.SubIDs)
	s.queue[q.Seq] = q
	b.maxMsgID = max(b.maxMsgID, q.MsgID)
}

func (b *Broker) apply(c *store.Change) {
	switch c.Op {
	case store.OpSession:
		b.session(c.ClientID).info = c.Session
	case store.OpDeleteSession:
		delete(b.sessions, c.ClientID)
	case store.OpSubscribe:
		s := b.session(c.ClientID)
		if s.subs == nil {
			s.subs = map[string]store.Subscription{}
		}
		s.subs[c.Filter] = c.Sub
	case store.OpUnsubscribe:
		if s := b.sessions[c.ClientID]; s != nil {
			delete(s.subs, c.Filter)
		}
	case store.OpEnqueue:
		b.enqueue(c.ClientID, c.Queued)
	case store.OpEnqueueAll:
		for i := range c.Targets {
			t := &c.Targets[i]
			b.enqueue(t.ClientID, store.Queued{Seq: t.Seq, MsgID: c.Queued.MsgID, Msg: c.Queued.Msg, QoS: t.QoS, Retain: t.Retain, SubIDs: t.SubIDs})
		}
	case store.OpDequeueAll:
		for i := range c.Targets {
			if s := b.sessions[c.Targets[i].ClientID]; s != nil {
				delete(s.queue, c.Targets[i].Seq)
			}
		}
	case store.OpSent, store.OpReleased:
		if s := b.sessions[c.ClientID]; s != nil {
			if q, ok := s.queue[c.Queued.Seq]; ok {
				if c.Op == store.OpSent {
					q.PacketID = c.Queued.PacketID
				} else {
					q.Released = true
				}
				s.queue[q.Seq] = q
			}
		}
	case store.OpDequeue:
		if s := b.sessions[c.ClientID]; s != nil {
			delete(s.queue, c.Queued.Seq)
		}
	case store.OpAddIncoming:
		s := b.session(c.ClientID)
		if s.in == nil {
			s.in = map[uint16]struct{}{}
		}
		s.in[c.PacketID] = struct{}{}
	case store.OpDeleteIncoming:
		if s := b.sessions[c.ClientID]; s != nil {
			delete(s.in, c.PacketID)
		}
	case store.OpRetain:
		if c.Msg == nil {
			delete(b.retained, c.Topic)
		} else {
			b.retained[c.Topic] = c.Msg
		}
	}
}

// Close implements [store.Broker]. The state stays for the next Load
// only until Close: a closed Broker returns ErrClosed.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return store.ErrClosed
	}
	b.closed = true
	return nil
}
