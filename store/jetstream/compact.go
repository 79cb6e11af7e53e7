package jetstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	js "github.com/nats-io/nats.go/jetstream"

	"github.com/ternmq/tern/store"
)

// A snapshot is the whole state as of log record S, written to the
// snapshot stream as chunks in consecutive sequences (each publish
// expects the stream's last sequence to be the one before it, so two
// writers never interleave). Each chunk is recSnap, then S, MaxMsgID, the
// chunk's index and the count, then a slice of a batch body that rebuilds
// the state. Once the last chunk is stored the writer purges the log up to
// S and the snapshots before its own.
const recSnap = 3

// staleParts: a batch whose first part is this many records old when a
// compaction is due was abandoned by its writer (its Apply failed).
const staleParts = 10000

// start builds the view from the latest snapshot and starts a consumer of
// the log from the record after it.
func (s *Store) start(ctx context.Context) error {
	S, maxID, body, saved, err := s.latestSnapshot(ctx)
	if err != nil {
		return err
	}
	v := newView()
	if S > 0 {
		cs, err := decodeBatch(body)
		if err != nil {
			return fmt.Errorf("store/jetstream: the snapshot at log record %d: %w", S, err)
		}
		for i := range cs {
			v.apply(&cs[i])
		}
		v.maxMsgID = max(v.maxMsgID, maxID)
		v.saved = saved
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.gen++
	gen := s.gen
	s.v, s.applied, s.base = v, S, S
	clear(s.parts)
	s.mu.Unlock()
	cc, err := s.consume(ctx, S+1, gen)
	if err != nil {
		return fmt.Errorf("store/jetstream: reading the log: %w", err)
	}
	s.mu.Lock()
	s.cc = cc
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.stopConsumer()
		return store.ErrClosed
	}
	return nil
}

// consume starts an ordered consumer of the log from record from, for the
// reader of generation gen. A JetStream cluster with a server down now
// and then leaves a consumer's creation unanswered: each attempt has its
// own deadline.
func (s *Store) consume(ctx context.Context, from uint64, gen int) (js.ConsumeContext, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		cons, err := s.log.OrderedConsumer(actx, js.OrderedConsumerConfig{DeliverPolicy: js.DeliverByStartSequencePolicy, OptStartSeq: from})
		var cc js.ConsumeContext
		if err == nil {
			cc, err = cons.Consume(func(m js.Msg) { s.read(gen, m) })
		}
		cancel()
		if err == nil {
			return cc, nil
		}
		if ctx.Err() != nil || !retryable(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stopConsumer stops the log's consumer and waits for it.
func (s *Store) stopConsumer() {
	s.mu.Lock()
	cc := s.cc
	s.cc = nil
	s.mu.Unlock()
	if cc != nil {
		cc.Stop()
		select {
		case <-cc.Closed():
		case <-time.After(5 * time.Second):
		}
	}
}

// reloader starts again from the latest snapshot when the reader found
// records missing (another node compacted the log past it), until Close.
func (s *Store) reloader() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.reload:
		}
		s.stopConsumer()
		for {
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			err := s.start(ctx)
			cancel()
			if err == nil || s.ctx.Err() != nil {
				break
			}
			select { // the engine is out of reach: Load and LoadSession wait, bounded by their context
			case <-s.ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// maybeCompact starts a compaction when the view has read compactAfter
// records past the last snapshot; s.mu is held.
func (s *Store) maybeCompact() {
	if s.compactAfter == 0 || s.compacting || s.closed || s.applied-s.base < s.compactAfter {
		return
	}
	for id, p := range s.parts {
		if s.applied-p.first > staleParts {
			delete(s.parts, id) // abandoned
		}
	}
	if len(s.parts) > 0 {
		return // a batch in parts spans this point: not here
	}
	s.compacting = true
	cs := stateChanges(s.v.state())
	S, maxID := s.applied, s.v.maxMsgID
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
		defer cancel()
		done := s.compact(ctx, S, maxID, cs)
		s.mu.Lock()
		s.compacting = false
		if done {
			s.base = max(s.base, S)
		} else {
			s.base = s.applied // try again compactAfter records later
		}
		s.mu.Unlock()
	}()
}

// stateChanges returns the changes that build st from nothing.
func stateChanges(st *store.BrokerState) []store.Change {
	var cs []store.Change
	for _, ss := range st.Sessions {
		cs = append(cs, store.PutSession(ss.ClientID, ss.Info))
		for f, sub := range ss.Subs {
			cs = append(cs, store.Subscribe(ss.ClientID, f, sub))
		}
		for _, q := range ss.Queue {
			cs = append(cs, store.Enqueue(ss.ClientID, q))
		}
		for _, id := range ss.Incoming {
			cs = append(cs, store.AddIncoming(ss.ClientID, id))
		}
	}
	for _, m := range st.Retained {
		cs = append(cs, store.Retain(m.Topic, m))
	}
	for name, pos := range st.Marks {
		cs = append(cs, store.Mark(name, pos))
	}
	return cs
}

type snapHeader struct {
	S, maxID uint64
	i, n     int
}

func parseSnap(data []byte) (snapHeader, []byte, error) {
	if len(data) == 0 || data[0] != recSnap {
		return snapHeader{}, nil, fmt.Errorf("%w: not a snapshot chunk", errMalformed)
	}
	d := decoder{b: data[1:]}
	h := snapHeader{S: d.uv(), maxID: d.uv(), i: int(d.uvMax(1<<31, "chunk index")), n: int(d.uvMax(1<<31, "chunk count"))}
	if d.err == nil && (h.n == 0 || h.i >= h.n) {
		d.fail("chunk index past the count")
	}
	return h, d.b, d.err
}

// compact writes a snapshot of the state cs at log record S and purges
// what it makes unneeded. It reports whether the snapshot was written.
func (s *Store) compact(ctx context.Context, S, maxID uint64, cs []store.Change) bool {
	info, err := s.snap.Info(ctx)
	if err != nil {
		return false
	}
	last := info.State.LastSeq
	if info.State.Msgs > 0 {
		m, err := s.snap.GetMsg(ctx, last)
		if err != nil {
			return false
		}
		if h, _, err := parseSnap(m.Data); err == nil && h.S >= S {
			return false // a snapshot as recent is there
		}
	}
	rec, err := encodeBatch(cs)
	if err != nil {
		return false
	}
	body := rec[1:]
	limit := int(s.nc.MaxPayload()) - partOverhead
	n := max(1, (len(body)+limit-1)/limit)
	first := uint64(0)
	name := s.snap.CachedInfo().Config.Name
	for i := range n {
		chunk := binary.AppendUvarint([]byte{recSnap}, S)
		chunk = binary.AppendUvarint(chunk, maxID)
		chunk = binary.AppendUvarint(chunk, uint64(i))
		chunk = binary.AppendUvarint(chunk, uint64(n))
		chunk = append(chunk, body[min(len(body), i*limit):min(len(body), (i+1)*limit)]...)
		ack, err := s.js.Publish(ctx, s.snapSubject, chunk, js.WithExpectStream(name), js.WithExpectLastSequence(last))
		if err != nil {
			return false // another node's snapshot came first, or the engine failed
		}
		last = ack.Sequence
		if i == 0 {
			first = ack.Sequence
		}
	}
	// The snapshot is whole: the log up to S and the older snapshots go.
	if err := s.log.Purge(ctx, js.WithPurgeSequence(S+1)); err != nil {
		return true
	}
	_ = s.snap.Purge(ctx, js.WithPurgeSequence(first))
	return true
}

// latestSnapshot returns the latest whole snapshot: the log record S it
// stands for (0: none), its MaxMsgID, its body and when it was written.
func (s *Store) latestSnapshot(ctx context.Context) (S, maxID uint64, body []byte, saved time.Time, err error) {
	for attempt := 0; ; attempt++ {
		S, maxID, body, saved, err = s.latestSnapshotOnce(ctx)
		if err == nil || ctx.Err() != nil || !errors.Is(err, js.ErrMsgNotFound) || attempt == 10 {
			if err != nil {
				err = fmt.Errorf("store/jetstream: reading the snapshot: %w", err)
			}
			return S, maxID, body, saved, err
		}
		// A newer snapshot purged the one being read: read that one.
	}
}

func (s *Store) latestSnapshotOnce(ctx context.Context) (S, maxID uint64, body []byte, saved time.Time, err error) {
	info, err := s.snap.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return 0, 0, nil, time.Time{}, err
	}
	for seq := info.State.LastSeq; seq >= max(info.State.FirstSeq, 1); {
		m, err := s.snap.GetMsg(ctx, seq)
		if err != nil {
			return 0, 0, nil, time.Time{}, err
		}
		h, _, err := parseSnap(m.Data)
		if err != nil {
			return 0, 0, nil, time.Time{}, err
		}
		if h.i != h.n-1 || seq < uint64(h.n) { // a writer that stopped part way: the snapshot before
			seq -= min(seq, uint64(h.i)+1)
			continue
		}
		for k := seq - uint64(h.n-1); k <= seq; k++ {
			c, err := s.snap.GetMsg(ctx, k)
			if err != nil {
				return 0, 0, nil, time.Time{}, err
			}
			ch, part, err := parseSnap(c.Data)
			if err != nil {
				return 0, 0, nil, time.Time{}, err
			}
			if ch.S != h.S || ch.i != int(k-(seq-uint64(h.n-1))) {
				return 0, 0, nil, time.Time{}, fmt.Errorf("%w: chunk %d of the snapshot at %d is out of place", errMalformed, k, h.S)
			}
			body = append(body, part...)
		}
		return h.S, h.maxID, body, m.Time, nil
	}
	return 0, 0, nil, time.Time{}, nil
}
