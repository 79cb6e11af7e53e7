// Package nats is a back plane on NATS (github.com/nats-io/nats.go): an
// external NATS server or cluster, or one embedded in the program (the
// nats-server module), with JetStream enabled.
//
// # How it uses NATS
//
// Forwarding is NATS's own interest-based routing: a node subscribes to the
// subjects its filters map to (see NameSubject and FilterSubjects: '+' is
// '*', '#' is '>', reserved characters are escaped reversibly) and a message
// is published once, to the subject of its topic; NATS carries it only to the
// nodes, and across a NATS cluster only to the servers, with matching
// subscriptions. Shared groups are NATS queue groups, so one member node per
// group gets each message, cluster-wide. A node with overlapping filters gets
// one copy per matching subscription and keeps the first (the frame carries
// the publishing node's sequence number); its handlers see one delivery.
//
// JetStream key-value buckets hold the rest, named Prefix + "_retained",
// "_owners", "_wills" and "_nodes": retained messages (one key per topic, a
// token per level, so a filter is read with a key filter), the owner of each
// client id (compare-and-set on the revision), each node's wills, and each
// node's heartbeat. A node whose heartbeat is older than the Lease (measured
// between server timestamps, so node clocks do not matter) is dead: the
// first node to delete each of its wills at the revision it read publishes
// it, so exactly one does.
//
// # Connection
//
// The caller makes the *nats.Conn and closes it after the node. Give it
// nats.MaxReconnects(-1) so it always reconnects, and
// nats.ReconnectBufSize(-1) so that a publish while disconnected fails
// rather than waiting in a buffer: Forward then returns ErrUnreachable. After
// a reconnect nats.go subscribes again by itself, so the node's interest is
// recovered; the node registers its wills and heartbeat again.
//
// # Guarantees
//
// Forward returns once the message is written to the connection: core NATS
// is at most once, so a message in flight when a connection or server fails
// can be lost. Order is kept per publishing node and receiving node.
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
	// Replicas of the key-value buckets in a JetStream cluster. Default 1.
	Replicas int
}

type subKind struct {
	filter string
	group  *backplane.Group // nil: a plain subscription
}

type pubKey struct {
	node string
	inc  uint64
}

// Node is a member of a NATS back plane. It implements backplane.Node.
type Node struct {
	nc     *nats.Conn
	cfg    backplane.Config
	log    *slog.Logger
	p      string
	inc    uint64
	seq    atomic.Uint64
	pubMu  sync.Mutex // keeps seq order = publish order
	js     jetstream.JetStream
	kvRet  jetstream.KeyValue
	kvOwn  jetstream.KeyValue
	kvWill jetstream.KeyValue
	kvNode jetstream.KeyValue
	ch     chan *nats.Msg
	ctl    *nats.Subscription
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
	down   atomic.Bool
	resync atomic.Bool
	later  delay.Queue // dead nodes' wills waiting for their Will Delay

	mu    sync.Mutex
	count map[string]int                  // filter → local subscriptions
	subs  map[string][]*nats.Subscription // filter → its NATS subscriptions
	kinds map[*nats.Subscription]subKind
	wills map[string]*message.Message
	owned map[string]struct{}

	last map[pubKey]uint64 // reader goroutine only
	jcfg Config            // for creating the buckets again
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
	var b [8]byte
	_, _ = rand.Read(b[:])
	n := &Node{nc: nc, cfg: bc, log: bc.Logger.With("backplane", "nats", "node", bc.ID), p: cfg.Prefix,
		inc: binary.LittleEndian.Uint64(b[:]), ch: make(chan *nats.Msg, chanSize),
		count: map[string]int{}, subs: map[string][]*nats.Subscription{}, kinds: map[*nats.Subscription]subKind{},
		wills: map[string]*message.Message{}, owned: map[string]struct{}{}, last: map[pubKey]uint64{}}
	n.jcfg = cfg
	if n.js, err = jetstream.New(nc); err != nil {
		return nil, backplane.Unreachable("jetstream", err)
	}
	if err := n.buckets(ctx, cfg); err != nil {
		return nil, err
	}
	// A heartbeat younger than the lease (by this machine's clock: a guard
	// against a configuration mistake, not a lock) means the ID is in use.
	var e jetstream.KeyValueEntry
	if err := retry(ctx, func(ctx context.Context) (err error) {
		e, err = n.kvNode.Get(ctx, kvToken(bc.ID))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		return err
	}); err == nil && e != nil && time.Since(e.Created()) < bc.Lease {
		return nil, fmt.Errorf("backplane/nats: node ID %q is live in cluster %q: give each node its own ID", bc.ID, cfg.Prefix)
	}
	if n.ctl, err = nc.ChanSubscribe(n.p+".ctl."+kvToken(bc.ID), n.ch); err != nil {
		return nil, backplane.Unreachable("subscribe", err)
	}
	if err := retry(ctx, func(ctx context.Context) error {
		_, err := n.kvNode.Put(ctx, kvToken(bc.ID), []byte(bc.ID))
		return err
	}); err != nil {
		_ = n.ctl.Unsubscribe()
		return nil, backplane.Unreachable("heartbeat", err)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.wg.Add(2)
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
// subscribes to the filter's subjects (a queue subscription for a shared
// group). nats.go keeps subscriptions made while disconnected and sends them
// on reconnect; the error then wraps ErrUnreachable.
func (n *Node) Subscribe(ctx context.Context, filter string) error {
	g, shared, err := backplane.ParseFilter(filter)
	if err != nil {
		return err
	}
	if n.closed.Load() {
		return fmt.Errorf("subscribe: %w", backplane.ErrClosed)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.count[filter]++
	if n.count[filter] > 1 {
		return nil
	}
	var kind subKind
	kind.filter = filter
	queue := ""
	if shared {
		kind.group = &g
		queue = n.p + "_" + kvToken(g.Name) + "_" + kvToken(g.Filter)
	}
	var subs []*nats.Subscription
	for _, subj := range FilterSubjects(n.p, g.Filter) {
		var s *nats.Subscription
		if shared {
			s, err = n.nc.ChanQueueSubscribe(subj, queue, n.ch)
		} else {
			s, err = n.nc.ChanSubscribe(subj, n.ch)
		}
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
				delete(n.kinds, s)
			}
			n.count[filter]--
			if n.count[filter] == 0 {
				delete(n.count, filter)
			}
			return n.fail("subscribe "+filter, err)
		}
		subs = append(subs, s)
		n.kinds[s] = kind
	}
	n.subs[filter] = subs
	if n.nc.Status() != nats.CONNECTED {
		return backplane.Unreachable("subscribe", errors.New("kept, sent on reconnect"))
	}
	return nil
}

// Unsubscribe withdraws one count of interest in filter.
func (n *Node) Unsubscribe(ctx context.Context, filter string) error {
	if n.closed.Load() {
		return fmt.Errorf("unsubscribe: %w", backplane.ErrClosed)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.count[filter]
	if c == 0 {
		return fmt.Errorf("unsubscribe %q: %w", filter, backplane.ErrNotSubscribed)
	}
	if c > 1 {
		n.count[filter] = c - 1
		return nil
	}
	delete(n.count, filter)
	var errs []error
	for _, s := range n.subs[filter] {
		errs = append(errs, s.Unsubscribe())
		delete(n.kinds, s)
	}
	delete(n.subs, filter)
	return n.fail("unsubscribe", errors.Join(errs...))
}

// Forward publishes m on its topic's subject: NATS takes it to the nodes
// with matching subscriptions only.
func (n *Node) Forward(ctx context.Context, m *message.Message) error {
	if err := n.check("forward"); err != nil {
		return err
	}
	return n.publish(m, n.cfg.ID, false)
}

func (n *Node) publish(m *message.Message, from string, will bool) error {
	subj := NameSubject(n.p, m.Topic)
	n.pubMu.Lock()
	defer n.pubMu.Unlock()
	h := &wire.Header{Node: from, Incarnation: n.inc, Seq: n.seq.Add(1), Plain: true, Will: will}
	b, err := wire.Append([]byte{'M'}, h, m)
	if err != nil {
		return fmt.Errorf("backplane/nats: encoding %q: %w", m.Topic, err)
	}
	return n.fail("forward", n.nc.Publish(subj, b))
}

func (n *Node) read() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case msg := <-n.ch:
			n.receive(msg)
		}
	}
}

func (n *Node) receive(msg *nats.Msg) {
	b := msg.Data
	if len(b) == 0 {
		return
	}
	if b[0] == 'T' && msg.Sub == n.ctl {
		cid, by, ok := strings.Cut(string(b[1:]), "\x00")
		if ok {
			n.cfg.OnTakeover(n.ctx, backplane.Takeover{ClientID: cid, By: by})
		}
		return
	}
	if b[0] != 'M' {
		return
	}
	n.mu.Lock()
	kind, ok := n.kinds[msg.Sub]
	n.mu.Unlock()
	if !ok {
		return // unsubscribed meanwhile
	}
	h, m, err := wire.Decode(b[1:])
	if err != nil {
		n.log.Warn("undecodable message from the back plane", "subject", msg.Subject, "err", err)
		return
	}
	d := backplane.Delivery{Message: m, Node: h.Node, Will: h.Will}
	if kind.group != nil {
		d.Groups = []backplane.Group{*kind.group}
	} else {
		if h.Node == n.cfg.ID && !h.Will {
			return // our own message: the broker delivered it locally
		}
		k := pubKey{h.Node, h.Incarnation}
		if h.Seq <= n.last[k] {
			return // a second matching subscription on this node
		}
		n.last[k] = h.Seq
		d.Plain = true
	}
	n.cfg.OnMessage(n.ctx, d)
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
		e, err := n.kvOwn.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			prev = ""
			_, err = n.kvOwn.Create(ctx, key, []byte(n.cfg.ID))
		case err == nil:
			prev = string(e.Value())
			_, err = n.kvOwn.Update(ctx, key, []byte(n.cfg.ID), e.Revision())
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

func (n *Node) release(ctx context.Context, clientID string) error {
	e, err := n.kvOwn.Get(ctx, kvToken(clientID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return n.fail("release", err)
	}
	if string(e.Value()) != n.cfg.ID {
		return nil
	}
	err = n.kvOwn.Delete(ctx, e.Key(), jetstream.LastRevision(e.Revision()))
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

func (n *Node) heartbeat() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
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
		n.resync.Store(false)
		if n.down.Swap(false) {
			n.log.Info("back plane reachable again: wills registered again")
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
		if now.Sub(e.Created()) > n.cfg.Lease {
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
	_ = n.kvNode.Delete(ctx, e.Key(), jetstream.LastRevision(e.Revision()))
	n.log.Info("node dead: its wills published", "dead", dead, "wills", published)
}

// publishWill retains (if asked) and publishes will m of dead node dead.
func (n *Node) publishWill(ctx context.Context, dead string, m *message.Message) {
	if m.Retain {
		if err := n.SetRetained(ctx, m); err != nil {
			n.log.Warn("retaining a dead node's will", "dead", dead, "err", err)
		}
	}
	if err := n.publish(m, dead, true); err != nil {
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
	for _, subs := range n.subs {
		for _, s := range subs {
			errs = append(errs, s.Unsubscribe())
		}
	}
	n.subs, n.kinds, n.count = nil, nil, nil
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
