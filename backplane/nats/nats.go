// Package nats is a back plane on NATS (github.com/nats-io/nats.go): an
// external NATS server or cluster, or one embedded in the program (the
// nats-server module), with JetStream enabled.
//
// # How it uses NATS
//
// Interest: each node writes its filters as keys of the JetStream
// key-value bucket Prefix+"_interest" and every node watches the bucket,
// keeping every node's interest in memory as a topic trie (exact MQTT
// matching). A message published on a node is published with JetStream to
// the subject Prefix+".q."+NODE of each node with matching interest, and of
// one member node per matching shared group; a node without matching
// interest gets nothing. The subjects belong to the stream
// Prefix+"_queues" (limits retention: QueueLen messages per node, Keep);
// each node reads its own subject through its durable consumer
// "q_"+NODE, with explicit acknowledgement (AckAll, one per batch).
//
// JetStream key-value buckets hold the rest, named Prefix + "_retained",
// "_owners", "_wills" and "_nodes": retained messages (one key per topic, a
// token per level, so a filter is read with a key filter), the owner of each
// client id (compare-and-set on the revision), each node's wills, and each
// node's heartbeat. A node whose heartbeat is older than the Lease (measured
// between server timestamps, so node clocks do not matter) is dead: the
// first node to delete each of its wills at the revision it read publishes
// it, so exactly one does. A dead node's interest and queue stay for
// Config.Keep, so that it gets what it missed when it joins again under the
// same ID; after Keep it is forgotten (its consumer goes by JetStream's
// inactive threshold, its interest by the other nodes). Takeover notices
// are core NATS messages on Prefix+".ctl."+NODE.
//
// MQTT topics are escaped into NATS subjects and key tokens reversibly
// (NameSubject, FilterSubjects, the key tokens): '.', '*', '>' and spaces
// never reach NATS unescaped.
//
// # Connection
//
// The caller makes the *nats.Conn and closes it after the node. Give it
// nats.MaxReconnects(-1) so it always reconnects, and
// nats.ReconnectBufSize(-1) so that a publish while disconnected fails
// rather than waiting in a buffer: Forward then returns ErrUnreachable.
// After a reconnect the node's consumer and interest watch resume by
// themselves; the node registers its wills, interest and heartbeat again.
//
// # Guarantees
//
// Forward returns once JetStream acknowledged the message (a PubAck) on
// the queue subject of every node with matching interest (as the
// publishing node knew it), for QoS 1 and 2 (a QoS 0 message is written to
// the connection and not waited for: at most once): the message is then as durable
// as the stream's storage and replicas make it (file storage with
// Replicas 3 survives the loss of one server; JetStream writes to disk
// without an fsync per message, by its sync_interval).
//
// A receiving node acknowledges a message only after OnMessage returned for
// it. If the node dies or is cut off before that, the message stays
// unacknowledged; the node's next incarnation under the same ID starts its
// consumer again right after the acknowledgement floor, so it gets what it
// missed first and in order: at least once, with the same Delivery.Mark
// (the stream sequence), so a broker that stores marks delivers exactly
// once. Order is kept per publishing node and receiving node. Limits: a
// node's queue keeps its last QueueLen messages and none older than Keep;
// interest reaches the other nodes asynchronously (a message published
// before a new subscription was known there is not forwarded for it);
// after a clean Close the node's queue is purged.
package nats

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/backplane/internal/delay"
	"github.com/ternmq/tern/backplane/internal/route"
	"github.com/ternmq/tern/backplane/internal/wire"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/topic"
)

// chanSize bounds the channel all of a node's subscriptions deliver into;
// nats.go drops messages (slow consumer) when it is full.
const chanSize = 1 << 16

// publishTimeout bounds the publication of a dead node's delayed will.
const publishTimeout = 5 * time.Second

// Config configures Join.
type Config struct {
	backplane.Config
	// Prefix starts every subject and bucket name; nodes with the same
	// Prefix on the same NATS system form one cluster. Letters, digits, '-'
	// and '_'. Default "tern".
	Prefix string
	// Storage of the key-value buckets: jetstream.FileStorage (the default)
	// or jetstream.MemoryStorage.
	Storage jetstream.StorageType
	// Replicas of the key-value buckets and of the queues' stream in a
	// JetStream cluster. Default 1.
	Replicas int
	// QueueLen bounds each node's queue (the stream's messages per
	// subject; the oldest go first). Default DefaultQueueLen.
	QueueLen int64
}

// Node is a member of a NATS back plane. It implements backplane.Node.
type Node struct {
	nc         *nats.Conn
	cfg        backplane.Config
	log        *slog.Logger
	p          string
	inc        uint64
	seq        atomic.Uint64
	pubMu      sync.Mutex // keeps seq order = publish order
	js         jetstream.JetStream
	kvRet      jetstream.KeyValue
	kvOwn      jetstream.KeyValue
	kvWill     jetstream.KeyValue
	kvNode     jetstream.KeyValue
	kvInt      jetstream.KeyValue
	table      route.Table
	local      route.Local
	ch         chan *nats.Msg          // takeover notices
	qch        chan queued             // messages of the node's queue
	lch        chan backplane.Delivery // deliveries to this node that skip JetStream
	handled    atomic.Uint64           // stream sequence of the last queued message handled
	interestMu sync.Mutex              // serializes interest announcements
	joinedAt   time.Time
	settled    atomic.Bool
	ctl        *nats.Subscription
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	closed     atomic.Bool
	down       atomic.Bool
	resync     atomic.Bool
	later      delay.Queue // dead nodes' wills waiting for their Will Delay

	mu    sync.Mutex
	wills map[string]*message.Message
	owned map[string]struct{}

	jcfg Config // for creating the buckets again
}

var _ backplane.Node = (*Node)(nil)

// Join makes a node of the cluster on nc, creating the buckets if needed.
func Join(ctx context.Context, nc *nats.Conn, cfg Config) (*Node, error) {
	if nc == nil {
		return nil, errors.New("backplane/nats: Join needs a NATS connection: pass the *nats.Conn from nats.Connect")
	}
	bc, err := cfg.Config.WithDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "tern"
	}
	if strings.Trim(cfg.Prefix, "-_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
		return nil, fmt.Errorf("backplane/nats: Config.Prefix %q: use only letters, digits, '-' and '_'", cfg.Prefix)
	}
	if cfg.Replicas < 0 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("backplane/nats: Config.Replicas %d: use 1 to 5 (0 means 1)", cfg.Replicas)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.QueueLen < 0 {
		return nil, fmt.Errorf("backplane/nats: Config.QueueLen %d is negative: use 0 for the default %d", cfg.QueueLen, DefaultQueueLen)
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	n := &Node{nc: nc, cfg: bc, log: bc.Logger.With("backplane", "nats", "node", bc.ID), p: cfg.Prefix,
		inc: binary.LittleEndian.Uint64(b[:]), ch: make(chan *nats.Msg, chanSize),
		qch: make(chan queued, queueBatch), lch: make(chan backplane.Delivery, queueBatch),
		wills: map[string]*message.Message{}, owned: map[string]struct{}{}}
	n.jcfg = cfg
	if n.js, err = jetstream.New(nc); err != nil {
		return nil, backplane.Unreachable("jetstream", err)
	}
	if err := n.buckets(ctx, cfg); err != nil {
		return nil, err
	}
	// A heartbeat younger than the lease (by this machine's clock: a guard
	// against a configuration mistake, not a lock) means the ID is in use.
	// A node that restarts under its ID after a crash waits for the
	// heartbeat of its previous incarnation to age past the lease (at most
	// Lease), as long as ctx allows; a node whose ID is in use keeps it
	// fresh.
	for giveUp := time.Now().Add(bc.Lease * 3 / 2); ; {
		// Each Get with its own deadline, retried: on a JetStream cluster
		// that is still settling one can go unanswered (see retry).
		var e jetstream.KeyValueEntry
		err := retry(ctx, func(ctx context.Context) (err error) {
			e, err = n.kvNode.Get(ctx, kvToken(bc.ID))
			return err
		})
		if err != nil || string(e.Value()) != bc.ID || time.Since(e.Created()) >= bc.Lease {
			break
		}
		wait := time.NewTimer(bc.Lease / 10)
		select {
		case <-ctx.Done():
		case <-wait.C:
		}
		wait.Stop()
		if ctx.Err() != nil || time.Now().After(giveUp) {
			return nil, fmt.Errorf("backplane/nats: node ID %q is live in cluster %q: give each node its own ID", bc.ID, cfg.Prefix)
		}
	}
	if err := n.queues(ctx); err != nil {
		return nil, err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	fail := func(err error) (*Node, error) {
		n.cancel()
		n.wg.Wait()
		return nil, err
	}
	// The table of every node's interest, loaded before the first Forward.
	w, err := n.kvInt.WatchAll(n.ctx)
	if err != nil {
		return fail(backplane.Unreachable("watch interest", err))
	}
	ready := make(chan struct{})
	n.wg.Add(1)
	go n.watchInterest(w, ready)
	select {
	case <-ready:
	case <-ctx.Done():
		return fail(backplane.Unreachable("load interest", ctx.Err()))
	}
	// The queue: what an earlier incarnation left unacknowledged comes
	// first. Its interest stays until the broker has announced its own
	// again (one lease), so nothing for its restored sessions misses it.
	c, err := n.consumer(ctx, false)
	if err != nil {
		return fail(err)
	}
	if n.ctl, err = nc.ChanSubscribe(n.p+".ctl."+kvToken(bc.ID), n.ch); err != nil {
		return fail(backplane.Unreachable("subscribe", err))
	}
	if err := retry(ctx, func(ctx context.Context) error {
		_, err := n.kvNode.Put(ctx, kvToken(bc.ID), []byte(bc.ID))
		return err
	}); err != nil {
		_ = n.ctl.Unsubscribe()
		return fail(backplane.Unreachable("heartbeat", err))
	}
	n.joinedAt = time.Now()
	n.wg.Add(3)
	go n.readQueue(c)
	go n.read()
	go n.heartbeat()
	return n, nil
}

// buckets creates the node's key-value buckets, or opens them if they exist.
func (n *Node) buckets(ctx context.Context, cfg Config) error {
	for _, kv := range []struct {
		kv   *jetstream.KeyValue
		name string
	}{{&n.kvRet, "retained"}, {&n.kvOwn, "owners"}, {&n.kvWill, "wills"}, {&n.kvNode, "nodes"}} {
		h, err := openBucket(ctx, n.js, jetstream.KeyValueConfig{
			Bucket: cfg.Prefix + "_" + kv.name, Storage: cfg.Storage, Replicas: cfg.Replicas, History: 1})
		if err != nil {
			return backplane.Unreachable("key-value bucket "+cfg.Prefix+"_"+kv.name, err)
		}
		if *kv.kv == nil {
			*kv.kv = h
		}
	}
	return nil
}

// retry calls f until it succeeds, fails for good or ctx ends, each call
// with its own deadline (see openBucket).
func retry(ctx context.Context, f func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, bucketAttempt)
		err := f(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// openBucket opens the bucket of cfg, creating it if it is missing. Not
// CreateOrUpdateKeyValue: an update is not needed, and may stall. Nodes
// that start together each create the bucket, and in a JetStream cluster
// such a request now and then gets no answer at all (seen with three
// servers and three nodes at once): each attempt has its own deadline and
// the next one finds the bucket.
func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	var h jetstream.KeyValue
	err := retry(ctx, func(ctx context.Context) (err error) {
		h, err = openBucketOnce(ctx, js, cfg)
		return err
	})
	return h, err
}

// bucketAttempt bounds one attempt of openBucket.
const bucketAttempt = 2 * time.Second

// retryable reports whether a JetStream request may succeed if made
// again: it got no answer, JetStream was between leaders, or it did not
// know enough servers yet to place the replicas (10005, no suitable peers:
// seen just after a cluster started).
func retryable(err error) bool {
	var ae *jetstream.APIError
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoHeartbeat) ||
		(errors.As(err, &ae) && (ae.Code == 503 || ae.ErrorCode == 10005))
}

func openBucketOnce(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	h, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		h, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			h, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	return h, err
}

// ID returns the node's name.
func (n *Node) ID() string { return n.cfg.ID }

func (n *Node) check(op string) error {
	if n.closed.Load() {
		return fmt.Errorf("%s: %w", op, backplane.ErrClosed)
	}
	if n.nc.Status() != nats.CONNECTED {
		n.down.Store(true)
		return backplane.Unreachable(op, fmt.Errorf("connection %v", n.nc.Status()))
	}
	return nil
}

func (n *Node) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if n.closed.Load() {
		return fmt.Errorf("%s: %w", op, backplane.ErrClosed)
	}
	return backplane.Unreachable(op, err)
}

// Subscribe announces interest in filter: on the first count, the node
// writes it in the interest bucket. A count taken while NATS is out of reach
// is kept (the error wraps ErrUnreachable) and announced when it is back.
func (n *Node) Subscribe(ctx context.Context, filter string) error {
	if _, _, err := backplane.ParseFilter(filter); err != nil {
		return err
	}
	if n.closed.Load() {
		return fmt.Errorf("subscribe: %w", backplane.ErrClosed)
	}
	n.interestMu.Lock()
	defer n.interestMu.Unlock()
	if !n.local.Inc(filter) {
		return nil
	}
	if err := n.check("subscribe"); err != nil {
		n.resync.Store(true)
		return err
	}
	return n.announce(ctx, filter, true)
}

// Unsubscribe withdraws one count of interest in filter.
func (n *Node) Unsubscribe(ctx context.Context, filter string) error {
	if n.closed.Load() {
		return fmt.Errorf("unsubscribe: %w", backplane.ErrClosed)
	}
	n.interestMu.Lock()
	defer n.interestMu.Unlock()
	last, ok := n.local.Dec(filter)
	if !ok {
		return fmt.Errorf("unsubscribe %q: %w", filter, backplane.ErrNotSubscribed)
	}
	if !last {
		return nil
	}
	if err := n.check("unsubscribe"); err != nil {
		n.resync.Store(true)
		return err
	}
	return n.announce(ctx, filter, false)
}

// hasPlain reports whether this node has a non-shared filter matching name.
func (n *Node) hasPlain(name string) bool {
	for _, f := range n.local.Filters() {
		if !topic.IsShared(f) && topic.Match(f, name) {
			return true
		}
	}
	return false
}

// Forward sends m to the queues of the nodes with matching interest and
// returns once JetStream has stored it for each.
func (n *Node) Forward(ctx context.Context, m *message.Message) error {
	if err := n.check("forward"); err != nil {
		return err
	}
	if n.down.Load() {
		return backplane.Unreachable("forward", errors.New("interest and wills not registered again yet"))
	}
	return n.send(ctx, m, n.cfg.ID, false)
}

// ForwardBatch forwards ms: every publish of every message goes out first,
// in the order of ms under the node's publish lock (so each node's
// subject has them in that order), then the PubAcks are awaited, all in
// flight together: one round trip for the batch. QoS 0 messages are not
// waited for, as in Forward. A message a publish or PubAck failed for
// gets its error; the others were taken.
func (n *Node) ForwardBatch(ctx context.Context, ms []*message.Message) []error {
	all := func(err error) []error {
		errs := make([]error, len(ms))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if err := n.check("forward"); err != nil {
		return all(err)
	}
	if n.down.Load() {
		return all(backplane.Unreachable("forward", errors.New("interest and wills not registered again yet")))
	}
	if len(ms) == 0 {
		return nil
	}
	self := n.cfg.ID
	var errs []error
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(ms))
		}
		if errs[i] == nil {
			errs[i] = err
		}
	}
	futures := make([][]jetstream.PubAckFuture, len(ms))
	locals := make([]*backplane.Delivery, len(ms))
	n.pubMu.Lock() // one node's messages reach JetStream in Forward order
	for i, m := range ms {
		routes := n.table.Route(m.Topic, self)
		ids := make([]string, 0, len(routes))
		for id := range routes {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			tg := routes[id]
			if id == self {
				locals[i] = &backplane.Delivery{Message: m, Node: self, Plain: tg.Plain, Groups: tg.Groups}
				continue
			}
			h := &wire.Header{Node: self, Incarnation: n.inc, Seq: n.seq.Add(1), Plain: tg.Plain, Groups: tg.Groups}
			b, err := wire.Append([]byte{'M'}, h, m)
			if err != nil {
				fail(i, fmt.Errorf("backplane/nats: encoding %q: %w", m.Topic, err))
				continue
			}
			f, err := n.js.PublishMsgAsync(&nats.Msg{Subject: n.queueSubject(id), Data: b})
			if err != nil {
				fail(i, n.fail("forward", err))
				continue
			}
			futures[i] = append(futures[i], f)
		}
	}
	n.pubMu.Unlock()
	for i, m := range ms {
		if m.QoS > 0 { // QoS 0 is at most once: written in order, not waited for
		wait:
			for _, f := range futures[i] {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					fail(i, n.fail("forward", err))
					break wait
				case <-ctx.Done():
					fail(i, n.fail("forward", ctx.Err()))
					break wait
				}
			}
		}
		if locals[i] != nil && (errs == nil || errs[i] == nil) {
			select {
			case n.lch <- *locals[i]:
			case <-ctx.Done():
				fail(i, n.fail("forward", ctx.Err()))
			}
		}
	}
	return errs
}

// read is the node's handler goroutine: takeover notices, its queue, and
// deliveries to itself, in arrival order.
func (n *Node) read() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case msg := <-n.ch:
			n.receive(msg)
		case q := <-n.qch:
			n.handleQueued(q)
		case d := <-n.lch:
			n.cfg.OnMessage(n.ctx, d)
		}
	}
}

func (n *Node) receive(msg *nats.Msg) {
	b := msg.Data
	if len(b) == 0 || b[0] != 'T' || msg.Sub != n.ctl {
		return
	}
	cid, by, ok := strings.Cut(string(b[1:]), "\x00")
	if ok {
		n.cfg.OnTakeover(n.ctx, backplane.Takeover{ClientID: cid, By: by})
	}
}

// SetRetained stores or, for an empty payload, deletes the retained message.
func (n *Node) SetRetained(ctx context.Context, m *message.Message) error {
	if len(m.Payload) == 0 { // [v5 MQTT-3.3.1-6] [v5 MQTT-3.3.1-7] [v3 MQTT-3.3.1-10] [v3 MQTT-3.3.1-11]
		return n.DeleteRetained(ctx, m.Topic)
	}
	if err := topic.ValidateName(m.Topic); err != nil {
		return fmt.Errorf("backplane/nats: retained message: %w", err)
	}
	if err := n.check("set retained"); err != nil {
		return err
	}
	b, err := wire.Append(nil, &wire.Header{}, m)
	if err != nil {
		return err
	}
	_, err = n.kvRet.Put(ctx, kvName(m.Topic), b) // [v5 MQTT-3.3.1-5]
	return n.fail("set retained", err)
}

// DeleteRetained deletes the retained message of name.
func (n *Node) DeleteRetained(ctx context.Context, name string) error {
	if err := n.check("delete retained"); err != nil {
		return err
	}
	err := n.kvRet.Delete(ctx, kvName(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		err = nil
	}
	return n.fail("delete retained", err)
}

// MatchRetained returns the live retained messages matching filter, sorted by
// topic, read with a key filter made from the topic filter.
func (n *Node) MatchRetained(ctx context.Context, filter string) ([]*message.Message, error) {
	g, _, err := backplane.ParseFilter(filter)
	if err != nil {
		return nil, err
	}
	if err := n.check("match retained"); err != nil {
		return nil, err
	}
	now := time.Now()
	var out []*message.Message
	err = n.scan(ctx, n.kvRet, kvFilters(g.Filter), func(e jetstream.KeyValueEntry) {
		_, m, err := wire.Decode(e.Value())
		if err != nil {
			n.log.Warn("undecodable retained message", "key", e.Key(), "err", err)
			return
		}
		if topic.Match(g.Filter, m.Topic) && !m.Expired(now) { // [v5 MQTT-3.3.2-5]
			out = append(out, m)
		}
	})
	if err != nil {
		return nil, n.fail("match retained", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out, nil
}

// scan calls fn for the current value of every key of kv matching filters,
// once per key. One watch per filter: a watch of several (a consumer with
// filter_subjects) needs nats-server 2.10, and Debian ships 2.9.
//
// Each filter's watch has its own deadline and is tried again: with a
// server of a JetStream cluster killed, a watch's consumer creation now and
// then gets no answer.
func (n *Node) scan(ctx context.Context, kv jetstream.KeyValue, filters []string, fn func(jetstream.KeyValueEntry)) error {
	seen := map[string]bool{}
	for _, f := range filters {
		var got []jetstream.KeyValueEntry
		if err := retry(ctx, func(ctx context.Context) error {
			got = got[:0]
			return n.scan1(ctx, kv, f, func(e jetstream.KeyValueEntry) { got = append(got, e) })
		}); err != nil {
			return err
		}
		for _, e := range got {
			if !seen[e.Key()] {
				seen[e.Key()] = true
				fn(e)
			}
		}
	}
	return nil
}

func (n *Node) scan1(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(jetstream.KeyValueEntry)) error {
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch ended")
			}
			if e == nil {
				return nil
			}
			fn(e)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Claim makes n the owner of clientID (compare-and-set on the key's
// revision) and tells the previous owner.
func (n *Node) Claim(ctx context.Context, clientID string) (string, error) {
	if err := n.check("claim"); err != nil {
		return "", err
	}
	key := kvToken(clientID)
	var prev string
	for {
		v, rev, found, err := n.ownerOf(ctx, key)
		switch {
		case err != nil:
		case !found:
			prev = ""
			_, err = n.kvOwn.Create(ctx, key, []byte(n.cfg.ID))
		default:
			prev = v
			_, err = n.kvOwn.Update(ctx, key, []byte(n.cfg.ID), rev)
		}
		if err == nil {
			break
		}
		if errors.Is(err, jetstream.ErrKeyExists) || strings.Contains(err.Error(), "wrong last sequence") {
			continue // someone else wrote it between our read and write
		}
		return "", n.fail("claim", err)
	}
	n.mu.Lock()
	n.owned[clientID] = struct{}{}
	n.mu.Unlock()
	if prev != "" && prev != n.cfg.ID {
		if err := n.nc.Publish(n.p+".ctl."+kvToken(prev), []byte("T"+clientID+"\x00"+n.cfg.ID)); err != nil {
			return prev, n.fail("takeover notice", err)
		}
	}
	return prev, nil
}

// Release gives up clientID if n owns it.
func (n *Node) Release(ctx context.Context, clientID string) error {
	if err := n.check("release"); err != nil {
		return err
	}
	n.mu.Lock()
	delete(n.owned, clientID)
	n.mu.Unlock()
	return n.release(ctx, clientID)
}

// ownerOf reads the owner of key from the owners bucket's stream leader.
// Not KeyValue.Get: on a replicated bucket that is a direct get, which
// any replica may answer, and a replica behind the leader gives a stale
// owner (seen on a 3-server cluster: a Release that read the previous
// owner deleted nothing). found is false for a missing or deleted key.
func (n *Node) ownerOf(ctx context.Context, key string) (owner string, rev uint64, found bool, err error) {
	bucket := n.kvOwn.Bucket()
	st, err := n.js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return "", 0, false, err
	}
	m, err := st.GetLastMsgForSubject(ctx, "$KV."+bucket+"."+key)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, err
	}
	if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
		return "", m.Sequence, false, nil
	}
	return string(m.Data), m.Sequence, true, nil
}

func (n *Node) release(ctx context.Context, clientID string) error {
	key := kvToken(clientID)
	owner, rev, found, err := n.ownerOf(ctx, key)
	if err != nil {
		return n.fail("release", err)
	}
	if !found || owner != n.cfg.ID {
		return nil
	}
	err = n.kvOwn.Delete(ctx, key, jetstream.LastRevision(rev))
	if err != nil && strings.Contains(err.Error(), "wrong last sequence") {
		return nil // claimed by another node meanwhile
	}
	return n.fail("release", err)
}

func (n *Node) willKey(clientID string) string { return kvToken(n.cfg.ID) + "." + kvToken(clientID) }

// SetWill registers the will of clientID.
func (n *Node) SetWill(ctx context.Context, clientID string, m *message.Message) error {
	if err := topic.ValidateName(m.Topic); err != nil {
		return fmt.Errorf("backplane/nats: will of %q: %w", clientID, err)
	}
	if n.closed.Load() {
		return fmt.Errorf("set will: %w", backplane.ErrClosed)
	}
	n.mu.Lock()
	n.wills[clientID] = m
	n.mu.Unlock()
	if err := n.check("set will"); err != nil {
		n.resync.Store(true)
		return err
	}
	return n.putWill(ctx, clientID, m)
}

func (n *Node) putWill(ctx context.Context, clientID string, m *message.Message) error {
	b, err := wire.Append(nil, &wire.Header{Node: n.cfg.ID, Will: true}, m)
	if err != nil {
		return err
	}
	_, err = n.kvWill.Put(ctx, n.willKey(clientID), b)
	return n.fail("set will", err)
}

// ClearWill removes the will of clientID.
func (n *Node) ClearWill(ctx context.Context, clientID string) error {
	if n.closed.Load() {
		return fmt.Errorf("clear will: %w", backplane.ErrClosed)
	}
	n.mu.Lock()
	delete(n.wills, clientID)
	n.mu.Unlock()
	if err := n.check("clear will"); err != nil {
		n.resync.Store(true)
		return err
	}
	err := n.kvWill.Delete(ctx, n.willKey(clientID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		err = nil
	}
	return n.fail("clear will", err)
}

func (n *Node) pause() {
	select {
	case <-n.ctx.Done():
	case <-time.After(50 * time.Millisecond):
	}
}

func (n *Node) heartbeat() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Lease / 3)
	defer t.Stop()
	// A reconnect registers the node again at once, not at the next tick.
	up := n.nc.StatusChanged(nats.CONNECTED)
	defer n.nc.RemoveStatusListener(up)
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-up:
		}
		n.beat()
	}
}

// beat renews the heartbeat, registers the wills again after an outage, and
// publishes the wills of nodes whose heartbeat is older than the lease.
func (n *Node) beat() {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Lease/2)
	defer cancel()
	if n.nc.Status() != nats.CONNECTED {
		if !n.down.Swap(true) {
			n.log.Warn("back plane unreachable: refusing what cannot be forwarded", "status", n.nc.Status())
		}
		return
	}
	if n.down.Load() {
		// The server may have restarted without its JetStream state.
		if err := n.buckets(ctx, n.jcfg); err != nil {
			n.log.Warn("back plane: key-value buckets", "err", err)
			return
		}
		if err := n.queues(ctx); err != nil {
			n.log.Warn("back plane: queues", "err", err)
			return
		}
	}
	rev, err := n.kvNode.Put(ctx, kvToken(n.cfg.ID), []byte(n.cfg.ID))
	if err != nil {
		if !n.down.Swap(true) {
			n.log.Warn("back plane unreachable: refusing what cannot be forwarded", "err", err)
		}
		return
	}
	if n.down.Load() || n.resync.Load() {
		n.mu.Lock()
		wills := make(map[string]*message.Message, len(n.wills))
		for k, v := range n.wills {
			wills[k] = v
		}
		n.mu.Unlock()
		for cid, m := range wills {
			if err := n.putWill(ctx, cid, m); err != nil {
				return
			}
		}
		if err := n.announceAll(ctx, !n.settled.Load()); err != nil {
			return
		}
		n.resync.Store(false)
		if n.down.Swap(false) {
			n.log.Info("back plane reachable again: interest and wills registered again")
		}
	}
	if !n.settled.Load() && time.Since(n.joinedAt) >= n.cfg.Lease {
		// The interest an earlier incarnation left goes, now that the
		// broker has announced its own.
		if err := n.announceAll(ctx, false); err == nil {
			n.settled.Store(true)
		}
	}
	var now time.Time
	var others []jetstream.KeyValueEntry
	err = n.scan(ctx, n.kvNode, []string{">"}, func(e jetstream.KeyValueEntry) {
		if e.Revision() == rev {
			now = e.Created()
		} else if e.Key() != kvToken(n.cfg.ID) {
			others = append(others, e)
		}
	})
	if err != nil || now.IsZero() {
		return
	}
	for _, e := range others {
		switch v := string(e.Value()); {
		case strings.HasPrefix(v, "-"):
			// Dead, its wills published: forgotten after Keep.
			if now.Sub(e.Created()) > n.cfg.Keep {
				if err := n.kvNode.Delete(ctx, e.Key(), jetstream.LastRevision(e.Revision())); err == nil {
					n.forget(ctx, v[1:])
					n.log.Info("node dead for longer than Keep: forgotten", "dead", v[1:], "keep", n.cfg.Keep)
				}
			}
		case now.Sub(e.Created()) > n.cfg.Lease:
			n.reap(ctx, e)
		}
	}
}

// reap publishes the wills of the dead node whose heartbeat entry is e.
func (n *Node) reap(ctx context.Context, e jetstream.KeyValueEntry) {
	dead := string(e.Value())
	var wills []jetstream.KeyValueEntry
	if err := n.scan(ctx, n.kvWill, []string{e.Key() + ".>"}, func(w jetstream.KeyValueEntry) {
		wills = append(wills, w)
	}); err != nil {
		return
	}
	published := 0
	for _, w := range wills {
		// Exactly one node deletes the will at the revision it read.
		if err := n.kvWill.Delete(ctx, w.Key(), jetstream.LastRevision(w.Revision())); err != nil {
			continue
		}
		_, m, err := wire.Decode(w.Value())
		if err != nil {
			continue
		}
		if d, m := delay.Of(m); d > 0 {
			// No earlier than the death plus the Will Delay Interval
			// [v5 MQTT-3.1.2-8], held by this node meanwhile.
			n.later.After(d, func() {
				ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
				defer cancel()
				n.publishWill(ctx, dead, m)
			})
		} else {
			n.publishWill(ctx, dead, m)
		}
		published++
	}
	// Marked dead (its interest and queue stay for Keep, from now).
	if _, err := n.kvNode.Update(ctx, e.Key(), []byte("-"+dead), e.Revision()); err != nil {
		return // another node marked it, or it came back
	}
	n.log.Info("node dead: its wills published, its queue kept for its return", "dead", dead, "wills", published)
}

// publishWill retains (if asked) and publishes will m of dead node dead.
func (n *Node) publishWill(ctx context.Context, dead string, m *message.Message) {
	if m.Retain {
		if err := n.SetRetained(ctx, m); err != nil {
			n.log.Warn("retaining a dead node's will", "dead", dead, "err", err)
		}
	}
	if err := n.send(ctx, m, dead, true); err != nil {
		n.log.Warn("publishing a dead node's will", "dead", dead, "err", err)
	}
}

// Close leaves the cluster: subscriptions, wills (not published), ownership
// and heartbeat are removed. It does not close the connection.
func (n *Node) Close(ctx context.Context) error {
	if !n.closed.Load() {
		// The delayed wills of dead nodes this node holds are published
		// now, early rather than never.
		for _, f := range n.later.Close() {
			f()
		}
	}
	if n.closed.Swap(true) {
		return nil
	}
	n.cancel()
	n.wg.Wait()
	var errs []error
	n.mu.Lock()
	wills := make([]string, 0, len(n.wills))
	for cid := range n.wills {
		wills = append(wills, cid)
	}
	owned := make([]string, 0, len(n.owned))
	for cid := range n.owned {
		owned = append(owned, cid)
	}
	n.mu.Unlock()
	errs = append(errs, n.ctl.Unsubscribe())
	if n.nc.Status() == nats.CONNECTED {
		for _, cid := range wills {
			if err := n.kvWill.Delete(ctx, n.willKey(cid)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				errs = append(errs, err)
			}
		}
		for _, cid := range owned {
			errs = append(errs, n.release(ctx, cid))
		}
		errs = append(errs, n.kvNode.Delete(ctx, kvToken(n.cfg.ID)))
		n.forget(ctx, n.cfg.ID)
		if err := n.js.DeleteConsumer(ctx, n.streamName(), n.consumerName()); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, err)
		}
		if st, err := n.js.Stream(ctx, n.streamName()); err == nil {
			errs = append(errs, st.Purge(ctx, jetstream.WithPurgeSubject(n.queueSubject(n.cfg.ID))))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return backplane.Unreachable("close", err)
	}
	return nil
}

// abandon stops the node as if its process died, without a goodbye. For
// tests, which then close the connection.
func (n *Node) abandon() {
	n.later.Close() // dropped: they die with the node
	n.closed.Store(true)
	n.cancel()
	n.wg.Wait()
}
