package jetstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/ternmq/tern/store"
)

// blockBits is the width of a node's message id block: the store opened
// as node n hands the broker MaxMsgID n<<blockBits (or more), so ids of
// different opens never meet while each numbers fewer than 2^40 messages.
const blockBits = 40

// partOverhead is room left in a NATS message for a part's header and the
// JetStream headers.
const partOverhead = 1024

// Config configures Open. The zero value works: a store named "tern" on
// file storage with one replica.
type Config struct {
	// Name starts the names of the store's streams (Name+"_store",
	// Name+"_store_nodes") and subjects (Name+".store.…"); nodes that
	// share a store use the same Name. Letters, digits, '-' and '_'.
	// Default "tern".
	Name string
	// Storage of the streams: jetstream.FileStorage (the default) or
	// jetstream.MemoryStorage.
	Storage js.StorageType
	// Replicas of the streams in a JetStream cluster, 1 to 5. Default 1;
	// use 3 in a cluster of three or more servers.
	Replicas int
	// CompactAfter is how many log records a node reads past the last
	// snapshot before it writes a new one and drops the log before it.
	// Default 10000; negative: never.
	CompactAfter int
}

// Store is a store.Shared on JetStream. Create one with Open.
type Store struct {
	nc           *nats.Conn
	js           js.JetStream
	log, snap    js.Stream
	subject      string // of the log
	snapSubject  string
	node         uint64 // this open's number, unique among the opens of Name
	compactAfter uint64 // 0: never
	batches      atomic.Uint64

	ctx    context.Context // ends at Close: the background work
	cancel context.CancelFunc
	wg     sync.WaitGroup
	reload chan struct{} // the reader found a gap: load the snapshot again

	mu         sync.Mutex
	closed     bool
	v          *view
	cc         js.ConsumeContext
	gen        int           // of cc: records of an older consumer are ignored
	applied    uint64        // log sequence of the last record applied to v
	base       uint64        // log sequence of the snapshot v started from, or of the last compaction
	wake       chan struct{} // closed (and replaced) when applied moves or the store fails or closes
	failed     error         // the reader met a record it cannot read
	parts      map[uint64]*partial
	compacting bool
}

type partial struct {
	first uint64 // log sequence of its first part
	next  int
	body  []byte
}

var _ store.Shared = (*Store)(nil)

// Open opens the store named cfg.Name on nc, creating its streams if they
// are missing, and reads the log to build its view. The caller keeps nc
// and closes it after the Store.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if nc == nil {
		return nil, errors.New("store/jetstream: Open needs a NATS connection: pass the *nats.Conn from nats.Connect")
	}
	if cfg.Name == "" {
		cfg.Name = "tern"
	}
	if strings.Trim(cfg.Name, "-_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
		return nil, fmt.Errorf("store/jetstream: Config.Name %q: use only letters, digits, '-' and '_'", cfg.Name)
	}
	if cfg.Replicas < 0 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("store/jetstream: Config.Replicas %d: use 1 to 5 (0 means 1)", cfg.Replicas)
	}
	cfg.Replicas = max(cfg.Replicas, 1)
	j, err := js.New(nc)
	if err != nil {
		return nil, fmt.Errorf("store/jetstream: %w", err)
	}
	s := &Store{nc: nc, js: j, subject: cfg.Name + ".store.log", snapSubject: cfg.Name + ".store.snap",
		v: newView(), wake: make(chan struct{}), parts: map[uint64]*partial{}, reload: make(chan struct{}, 1)}
	switch {
	case cfg.CompactAfter == 0:
		s.compactAfter = 10000
	case cfg.CompactAfter > 0:
		s.compactAfter = uint64(cfg.CompactAfter)
	}
	if s.log, err = stream(ctx, j, js.StreamConfig{Name: cfg.Name + "_store", Subjects: []string{s.subject},
		Storage: cfg.Storage, Replicas: cfg.Replicas, Discard: js.DiscardNew}); err != nil {
		return nil, err
	}
	if s.snap, err = stream(ctx, j, js.StreamConfig{Name: cfg.Name + "_store_snap", Subjects: []string{s.snapSubject},
		Storage: cfg.Storage, Replicas: cfg.Replicas}); err != nil {
		return nil, err
	}
	if _, err := stream(ctx, j, js.StreamConfig{Name: cfg.Name + "_store_nodes", Subjects: []string{cfg.Name + ".store.node"},
		Storage: cfg.Storage, Replicas: cfg.Replicas, MaxMsgs: 1}); err != nil {
		return nil, err
	}
	// The stream sequence of this open's message is its number: unique,
	// without a compare-and-set loop.
	ack, err := j.Publish(ctx, cfg.Name+".store.node", nil, js.WithExpectStream(cfg.Name+"_store_nodes"))
	if err != nil {
		return nil, fmt.Errorf("store/jetstream: numbering this node: %w", err)
	}
	if ack.Sequence >= 1<<(64-blockBits) {
		return nil, fmt.Errorf("store/jetstream: store %q was opened %d times, more than its message id blocks allow: use a new Name", cfg.Name, ack.Sequence)
	}
	s.node = ack.Sequence
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.start(ctx); err != nil {
		s.cancel()
		return nil, err
	}
	s.wg.Add(1)
	go s.reloader()
	if err := s.catchUp(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// stream returns the stream of cfg, creating it if it is missing. Nodes
// that start together each create it, and in a JetStream cluster such a
// request now and then gets no answer: each attempt has its own deadline
// and the next one finds the stream.
func stream(ctx context.Context, j js.JetStream, cfg js.StreamConfig) (js.Stream, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		st, err := streamOnce(actx, j, cfg)
		cancel()
		if err == nil {
			return st, nil
		}
		if ctx.Err() != nil || !retryable(err) {
			return nil, fmt.Errorf("store/jetstream: stream %s: %w", cfg.Name, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("store/jetstream: stream %s: %w", cfg.Name, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// attemptTimeout bounds one attempt of stream.
const attemptTimeout = 2 * time.Second

func streamOnce(ctx context.Context, j js.JetStream, cfg js.StreamConfig) (js.Stream, error) {
	st, err := j.Stream(ctx, cfg.Name)
	if errors.Is(err, js.ErrStreamNotFound) {
		st, err = j.CreateStream(ctx, cfg)
		if errors.Is(err, js.ErrStreamNameAlreadyInUse) { // another node made it meanwhile
			st, err = j.Stream(ctx, cfg.Name)
		}
	}
	return st, err
}

// retryable reports whether a JetStream request may succeed if made
// again: it got no answer, JetStream was between leaders, or it did not
// know enough servers yet to place the replicas (10005, no suitable peers:
// seen just after a cluster started).
func retryable(err error) bool {
	var ae *js.APIError
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || (errors.As(err, &ae) && (ae.Code == 503 || ae.ErrorCode == 10005))
}

// read applies one record of the log to the view, in stream order, for
// the consumer of generation gen.
func (s *Store) read(gen int, m js.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	seq := md.Sequence.Stream
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.failed != nil || gen != s.gen || seq <= s.applied {
		return
	}
	if seq != s.applied+1 {
		// Records are missing: another node compacted the log past this
		// reader. Start again from the snapshot.
		s.gen++
		select {
		case s.reload <- struct{}{}:
		default:
		}
		return
	}
	if err := s.record(seq, m.Data()); err != nil {
		s.failed = fmt.Errorf("store/jetstream: record %d of the log: %w", seq, err)
	}
	s.v.saved = md.Timestamp
	s.applied = seq
	close(s.wake)
	s.wake = make(chan struct{})
	s.maybeCompact()
}

// record applies record seq; s.mu is held.
func (s *Store) record(seq uint64, data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty", errMalformed)
	}
	body := data[1:]
	switch data[0] {
	case recBatch:
	case recPart:
		d := decoder{b: body}
		id, i, n := d.uv(), int(d.uv()), int(d.uv())
		if d.err != nil {
			return d.err
		}
		p := s.parts[id]
		if p == nil && i == 0 {
			p = &partial{first: seq}
			s.parts[id] = p
		}
		if p == nil || p.next != i {
			delete(s.parts, id) // a part missing: the batch never took effect
			return nil
		}
		p.body = append(p.body, d.b...)
		if p.next++; p.next < n {
			return nil
		}
		delete(s.parts, id)
		body = p.body
	default:
		return fmt.Errorf("%w: unknown kind %d", errMalformed, data[0])
	}
	cs, err := decodeBatch(body)
	if err != nil {
		return err
	}
	for i := range cs {
		s.v.apply(&cs[i])
	}
	return nil
}

// catchUp waits until the view holds every record the stream held when
// it was called: what every Apply that returned before, on any node, wrote.
func (s *Store) catchUp(ctx context.Context) error {
	info, err := s.log.Info(ctx)
	if err != nil {
		return fmt.Errorf("store/jetstream: %w", err)
	}
	last := info.State.LastSeq
	for {
		s.mu.Lock()
		closed, failed, applied, wake := s.closed, s.failed, s.applied, s.wake
		s.mu.Unlock()
		switch {
		case closed:
			return store.ErrClosed
		case failed != nil:
			return failed
		case applied >= last:
			return nil
		}
		stall := time.NewTimer(stallAfter)
		select {
		case <-wake:
		case <-stall.C:
			s.unstall(applied)
		case <-ctx.Done():
			stall.Stop()
			return fmt.Errorf("store/jetstream: reading the log up to record %d (at %d): %w", last, applied, ctx.Err())
		}
		stall.Stop()
	}
}

// stallAfter is how long catchUp waits for the reader to move before it
// starts it again.
const stallAfter = 2 * time.Second

// unstall starts the reader again from the snapshot if it is still at
// record applied: records it waits for never came (seen after the log was
// purged under a reader that had fallen behind).
func (s *Store) unstall(applied uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.applied != applied || s.closed {
		return
	}
	s.gen++
	select {
	case s.reload <- struct{}{}:
	default:
	}
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Apply implements store.Broker: the batch is one record of the log (or,
// beyond the server's maximum payload, parts that take effect with the
// last), kept once JetStream acknowledged it.
func (s *Store) Apply(ctx context.Context, changes ...store.Change) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(changes) == 0 {
		return nil
	}
	rec, err := encodeBatch(changes)
	if err != nil {
		return err
	}
	limit := int(s.nc.MaxPayload()) - partOverhead
	if len(rec) <= limit {
		return s.publish(ctx, rec)
	}
	body := rec[1:]
	id := s.node<<blockBits | s.batches.Add(1)
	n := (len(body) + limit - 1) / limit
	for i := range n {
		part := binary.AppendUvarint([]byte{recPart}, id)
		part = binary.AppendUvarint(part, uint64(i))
		part = binary.AppendUvarint(part, uint64(n))
		part = append(part, body[i*limit:min(len(body), (i+1)*limit)]...)
		if err := s.publish(ctx, part); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) publish(ctx context.Context, rec []byte) error {
	if _, err := s.js.Publish(ctx, s.subject, rec, js.WithExpectStream(s.log.CachedInfo().Config.Name)); err != nil {
		var ae *js.APIError
		if errors.As(err, &ae) && (ae.ErrorCode == 10047 || ae.ErrorCode == 10023 || ae.ErrorCode == js.JSErrCodeStreamMessageExceedsMaximum) {
			// store failed (maximum bytes or messages), insufficient
			// resources, message too large: the stream's limits.
			return fmt.Errorf("store/jetstream: %w: %v", store.ErrFull, err)
		}
		return fmt.Errorf("store/jetstream: writing a batch: %w", err)
	}
	return nil
}

// Load implements store.Broker: the whole state, once this node has read
// the log as far as the stream held when Load was called. MaxMsgID is at
// least the start of this open's block of message ids: a broker that
// numbers its messages from it never meets another node's ids.
func (s *Store) Load(ctx context.Context) (*store.BrokerState, error) {
	if err := s.catchUp(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	st := s.v.state()
	st.MaxMsgID = max(st.MaxMsgID, s.idBase())
	return st, nil
}

// LoadSession implements store.Shared: the session of clientID, once this
// node has read the log as far as the stream held when it was called.
func (s *Store) LoadSession(ctx context.Context, clientID string) (store.StoredSession, bool, error) {
	if err := s.catchUp(ctx); err != nil {
		return store.StoredSession{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.StoredSession{}, false, store.ErrClosed
	}
	ss, ok := s.v.session(clientID)
	return ss, ok, nil
}

// MsgIDBase returns the first message id of this open's block: a broker
// that does not call Load numbers its messages from above it, so that
// no other node's ids meet its own. Its signature is store/redis's, the
// one the broker looks for on a shared store (the block is taken at Open
// already: ctx is unused and the error always nil).
func (s *Store) MsgIDBase(context.Context) (uint64, error) { return s.idBase(), nil }

// idBase is the first message id of this open's block.
func (s *Store) idBase() uint64 { return s.node << blockBits }

// Close implements store.Broker: it stops reading the log and waits for
// a compaction under way. Every Apply that returned is kept by JetStream
// already. The connection stays open.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.stopConsumer()
	return nil
}
