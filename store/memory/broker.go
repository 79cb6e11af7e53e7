package memory

import (
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
	marks    map[string]string
	maxMsgID uint64
	saved    time.Time
}

type brokerSession struct {
	info  store.SessionInfo
	subs  map[string]store.Subscription
	queue queue
	in    map[uint16]struct{}
	// ids maps the packet ids of messages in flight to their Seq: a
	// packet id names one flight at a time (see store.OpSent).
	ids map[uint16]uint64
}

// sent records that message seq went out under pid. An earlier message
// stored under the same id has ended: the broker reuses an id only once
// its flight is over, and the Dequeue of that message, written lazily,
// may not have reached the store before a crash. Without this a restart
// would find two messages under one id, resend the finished one and send
// the live one again under a new id: twice to the application.
func (s *brokerSession) sent(pid uint16, seq uint64) {
	if pid == 0 {
		return
	}
	if old, ok := s.ids[pid]; ok && old != seq {
		s.remove(old)
	}
	if q := s.queue.get(seq); q != nil {
		if q.PacketID != 0 && q.PacketID != pid && s.ids[q.PacketID] == seq {
			delete(s.ids, q.PacketID)
		}
		q.PacketID = pid
		if s.ids == nil {
			s.ids = map[uint16]uint64{}
		}
		s.ids[pid] = seq
	}
}

// remove removes message seq from the queue and its packet id, if any.
func (s *brokerSession) remove(seq uint64) {
	if q := s.queue.get(seq); q != nil && q.PacketID != 0 && s.ids[q.PacketID] == seq {
		delete(s.ids, q.PacketID)
		if len(s.ids) == 0 {
			s.ids = nil
		}
	}
	s.queue.remove(seq)
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
	if len(b.marks) > 0 {
		st.Marks = maps.Clone(b.marks)
	}
	for _, id := range slices.Sorted(maps.Keys(b.sessions)) {
		s := b.sessions[id]
		ss := store.StoredSession{ClientID: id, Info: s.info, Subs: maps.Clone(s.subs)}
		if ss.Subs == nil {
			ss.Subs = map[string]store.Subscription{}
		}
		if n := s.queue.len(); n > 0 {
			ss.Queue = make([]store.Queued, 0, n)
		}
		for _, q := range s.queue.q {
			if q.Msg != nil {
				q.SubIDs = slices.Clone(q.SubIDs)
				ss.Queue = append(ss.Queue, q) // in Seq order already
			}
		}
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
	q.SubIDs = slices.Clone(q.SubIDs)
	pid := q.PacketID
	q.PacketID = 0
	s.remove(q.Seq) // replaced: its id goes with it
	s.queue.put(q)
	if pid != 0 {
		s.sent(pid, q.Seq)
	}
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
				s.remove(c.Targets[i].Seq)
			}
		}
	case store.OpSent:
		if s := b.sessions[c.ClientID]; s != nil {
			s.sent(c.Queued.PacketID, c.Queued.Seq)
		}
	case store.OpReleased:
		if s := b.sessions[c.ClientID]; s != nil {
			if q := s.queue.get(c.Queued.Seq); q != nil {
				q.Released = true
			}
		}
	case store.OpDequeue:
		if s := b.sessions[c.ClientID]; s != nil {
			s.remove(c.Queued.Seq)
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
	case store.OpMark:
		if c.Filter == "" {
			delete(b.marks, c.Topic)
		} else {
			if b.marks == nil {
				b.marks = map[string]string{}
			}
			b.marks[c.Topic] = c.Filter
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

// queue is a session's stored queue: its messages in Seq order, in a
// slice, since the broker appends in increasing Seq order (nearly always)
// and completes from the front (nearly always): a map per session cost a
// hash insert and delete per message and fan-out target. A removed
// message leaves a hole (Msg nil, Seq kept for the search) until the
// holes at either end are trimmed or, once they are half the slice, all
// are squeezed out.
type queue struct {
	q     []store.Queued
	holes int
}

func (q *queue) len() int { return len(q.q) - q.holes }

// find returns the index of seq in q.q, or the index where it belongs
// and false.
func (q *queue) find(seq uint64) (int, bool) {
	n := len(q.q)
	switch {
	case n == 0 || q.q[n-1].Seq < seq:
		return n, false
	case q.q[0].Seq == seq:
		return 0, true
	}
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if q.q[m].Seq < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < n && q.q[lo].Seq == seq
}

// put adds m, or replaces the message of its Seq.
func (q *queue) put(m store.Queued) {
	i, ok := q.find(m.Seq)
	switch {
	case ok:
		if q.q[i].Msg == nil {
			q.holes--
		}
		q.q[i] = m
	case i == len(q.q):
		q.q = append(q.q, m)
	default:
		q.q = slices.Insert(q.q, i, m)
	}
}

// get returns the message of seq, nil if there is none.
func (q *queue) get(seq uint64) *store.Queued {
	if i, ok := q.find(seq); ok && q.q[i].Msg != nil {
		return &q.q[i]
	}
	return nil
}

// remove removes the message of seq, if there is one.
func (q *queue) remove(seq uint64) {
	i, ok := q.find(seq)
	if !ok || q.q[i].Msg == nil {
		return
	}
	q.q[i] = store.Queued{Seq: seq}
	q.holes++
	for len(q.q) > 0 && q.q[0].Msg == nil {
		q.q[0] = store.Queued{}
		q.q = q.q[1:]
		q.holes--
	}
	for n := len(q.q); n > 0 && q.q[n-1].Msg == nil; n-- {
		q.q = q.q[:n-1]
		q.holes--
	}
	if len(q.q) == 0 {
		q.q = nil // let the array go
	} else if q.holes > 16 && q.holes > len(q.q)/2 {
		live := q.q[:0]
		for _, m := range q.q {
			if m.Msg != nil {
				live = append(live, m)
			}
		}
		clear(q.q[len(live):])
		q.q, q.holes = live, 0
	}
}
