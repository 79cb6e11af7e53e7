package jetstream

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/memory"
)

// view is the state the log describes, as far as this node has read it:
// a memory.Broker per session (so that LoadSession costs one session, and
// the reference semantics of every change are memory.Broker's) and the
// retained messages. The Store's mutex guards it.
type view struct {
	sessions map[string]*memory.Broker
	retained map[string]*message.Message
	marks    map[string]string // the feeds' positions (store.OpMark)
	maxMsgID uint64
	saved    time.Time
}

func newView() *view {
	return &view{sessions: map[string]*memory.Broker{}, retained: map[string]*message.Message{}}
}

// creates reports whether a change of kind op creates its session when it
// is not stored (the others refer to it and are ignored then).
func creates(op store.Op) bool {
	switch op {
	case store.OpSession, store.OpSubscribe, store.OpEnqueue, store.OpAddIncoming:
		return true
	}
	return false
}

func (v *view) apply(c *store.Change) {
	switch c.Op {
	case store.OpRetain:
		if c.Msg == nil {
			delete(v.retained, c.Topic)
		} else {
			v.retained[c.Topic] = c.Msg
		}
		return
	case store.OpMark:
		if c.Filter == "" {
			delete(v.marks, c.Topic)
		} else {
			if v.marks == nil {
				v.marks = map[string]string{}
			}
			v.marks[c.Topic] = c.Filter
		}
		return
	case store.OpDeleteSession:
		delete(v.sessions, c.ClientID)
		return
	case store.OpEnqueue:
		v.maxMsgID = max(v.maxMsgID, c.Queued.MsgID)
	}
	s := v.sessions[c.ClientID]
	if s == nil {
		if !creates(c.Op) {
			return
		}
		s = memory.NewBroker()
		v.sessions[c.ClientID] = s
	}
	_ = s.Apply(context.Background(), *c) // a memory.Broker fails only when closed
}

// session returns the stored session id.
func (v *view) session(id string) (store.StoredSession, bool) {
	s := v.sessions[id]
	if s == nil {
		return store.StoredSession{}, false
	}
	st, err := s.Load(context.Background())
	if err != nil || len(st.Sessions) != 1 {
		return store.StoredSession{}, false
	}
	return st.Sessions[0], true
}

// state returns everything, sessions in client id order.
func (v *view) state() *store.BrokerState {
	st := &store.BrokerState{Saved: v.saved, MaxMsgID: v.maxMsgID}
	for _, id := range slices.Sorted(maps.Keys(v.sessions)) {
		if ss, ok := v.session(id); ok {
			st.Sessions = append(st.Sessions, ss)
		}
	}
	if len(v.marks) > 0 {
		st.Marks = maps.Clone(v.marks)
	}
	st.Retained = slices.Collect(maps.Values(v.retained))
	if st.Retained == nil {
		st.Retained = []*message.Message{}
	}
	return st
}
