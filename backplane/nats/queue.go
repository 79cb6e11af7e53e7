package nats

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/backplane/internal/route"
	"github.com/ternmq/tern/backplane/internal/wire"
	"github.com/ternmq/tern/message"
)

// Interest and the durable queues.
//
// Each node's filters are keys of the key-value bucket Prefix+"_interest"
// (NODE.FILTER, both escaped as key tokens); every node watches the bucket
// and keeps the table of every node's interest in memory. A message
// published on a node goes, through JetStream, to the subject
// Prefix+".q."+NODE of each node whose interest matches (and of one member
// node per matching shared group): subjects of the stream Prefix+"_queues".
// Each node reads its subject through its durable consumer "q_"+NODE with
// acknowledgement (AckAll: one per batch), and acknowledges a message once its handlers
// returned.

// DefaultQueueLen is the QueueLen of a zero Config.
const DefaultQueueLen = 100_000

// queueBatch is how many messages a node's consumer buffers.
const queueBatch = 512

// ackWait is how long JetStream waits for a node's acknowledgement before it
// delivers a message again (to the same running node, whose handlers skip
// what they handled already).
const ackWait = 30 * time.Second

// queued is one message read from the node's consumer.
type queued struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
}

func (n *Node) streamName() string   { return n.p + "_queues" }
func (n *Node) consumerName() string { return "q_" + kvToken(n.cfg.ID) }
func (n *Node) queueSubject(id string) string {
	return n.p + ".q." + kvToken(id)
}
func (n *Node) interestKey(id, filter string) string { return kvToken(id) + "." + kvToken(filter) }

// queues creates (or updates) the stream of the nodes' queues and the
// interest bucket.
func (n *Node) queues(ctx context.Context) error {
	cfg := jetstream.StreamConfig{
		Name: n.streamName(), Subjects: []string{n.p + ".q.*"},
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
		MaxMsgsPerSubject: n.jcfg.QueueLen, MaxAge: n.cfg.Keep,
		Storage: n.jcfg.Storage, Replicas: n.jcfg.Replicas,
	}
	// Opened, or created if missing, with a deadline per attempt: nodes
	// that start together each create it, and in a JetStream cluster such
	// a request now and then goes unanswered (see openBucket).
	err := retry(ctx, func(ctx context.Context) error {
		_, err := n.js.Stream(ctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = n.js.CreateStream(ctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				_, err = n.js.Stream(ctx, cfg.Name)
			}
		}
		return err
	})
	if err != nil {
		return backplane.Unreachable("stream "+n.streamName(), err)
	}
	h, err := openBucket(ctx, n.js, jetstream.KeyValueConfig{
		Bucket: n.p + "_interest", Storage: n.jcfg.Storage, Replicas: n.jcfg.Replicas, History: 1})
	if err != nil {
		return backplane.Unreachable("key-value bucket "+n.p+"_interest", err)
	}
	if n.kvInt == nil {
		n.kvInt = h
	}
	return nil
}

// consumer opens the node's durable consumer, creating it if missing. With
// rewind, or when it has messages delivered and not acknowledged (by an
// earlier incarnation of the node), it is made again to start right after
// its acknowledgement floor, so that they come first and in order rather
// than after the ack wait. Deleting it loses nothing: the stream keeps
// messages by its limits, not by interest.
func (n *Node) consumer(ctx context.Context, rewind bool) (jetstream.Consumer, error) {
	cc := jetstream.ConsumerConfig{
		Durable: n.consumerName(), FilterSubject: n.queueSubject(n.cfg.ID),
		AckPolicy: jetstream.AckAllPolicy, AckWait: ackWait, MaxAckPending: 4 * queueBatch,
		DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: n.cfg.Keep,
		Replicas: n.jcfg.Replicas,
	}
	c, err := n.js.Consumer(ctx, n.streamName(), n.consumerName())
	if err == nil {
		info, err := c.Info(ctx)
		if err != nil {
			return nil, backplane.Unreachable("consumer info", err)
		}
		if !rewind && info.NumAckPending == 0 && info.Config.AckPolicy == cc.AckPolicy {
			return c, nil
		}
		floor := max(info.AckFloor.Stream, n.handled.Load())
		if err := n.js.DeleteConsumer(ctx, n.streamName(), n.consumerName()); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, backplane.Unreachable("consumer rewind", err)
		}
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, floor+1
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, backplane.Unreachable("consumer", err)
	}
	err = retry(ctx, func(ctx context.Context) (err error) {
		c, err = n.js.CreateOrUpdateConsumer(ctx, n.streamName(), cc)
		return err
	})
	if err != nil {
		return nil, backplane.Unreachable("consumer", err)
	}
	return c, nil
}

// readQueue reads the node's consumer and hands each message to the
// handler goroutine (read). A gap in the consumer's delivery sequence (a
// message lost between the server and this node, say at a reconnect)
// rewinds the consumer to the last message handled, so that the order
// holds.
func (n *Node) readQueue(c jetstream.Consumer) {
	defer n.wg.Done()
	rewind := false
	var lastCons uint64 // the consumer's last delivery sequence seen
	for n.ctx.Err() == nil {
		if c == nil || rewind {
			lastCons = 0
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Lease)
			var err error
			c, err = n.consumer(ctx, rewind)
			cancel()
			if err != nil {
				c = nil
				n.pause()
				continue
			}
			rewind = false
		}
		it, err := c.Messages(jetstream.PullMaxMessages(queueBatch), jetstream.PullExpiry(max(n.cfg.Lease, time.Second)))
		if err != nil {
			c = nil
			n.pause()
			continue
		}
		stop := make(chan struct{})
		go func() {
			select {
			case <-n.ctx.Done():
				it.Stop()
			case <-stop:
			}
		}()
		for {
			msg, err := it.Next()
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgIteratorClosed) && n.ctx.Err() == nil {
					c = nil // the consumer may be gone (server restarted empty)
					n.pause()
				}
				break
			}
			meta, err := msg.Metadata()
			if err != nil {
				continue
			}
			if meta.NumDelivered == 1 && lastCons != 0 && meta.Sequence.Consumer > lastCons+1 {
				rewind = true // a delivery was lost: start again after the last one handled
				break
			}
			if meta.Sequence.Consumer > lastCons {
				lastCons = meta.Sequence.Consumer
			}
			select {
			case n.qch <- queued{msg, meta}:
			case <-n.ctx.Done():
			}
		}
		it.Stop()
		close(stop)
	}
}

// handleQueued runs on the handler goroutine: it delivers q and the
// messages of the node's queue already waiting behind it (a batch, for
// OnBatch), skipping those handled already, and acknowledges them.
func (n *Node) handleQueued(q queued) {
	qs := []queued{q}
	for len(qs) < queueBatch {
		select {
		case q := <-n.qch:
			qs = append(qs, q)
			continue
		default:
		}
		break
	}
	var batch []backplane.Delivery
	last := n.handled.Load()
	for _, q := range qs {
		seq := q.meta.Sequence.Stream
		if seq <= last {
			continue
		}
		last = seq
		b := q.msg.Data()
		if len(b) == 0 || b[0] != 'M' {
			continue
		}
		h, m, err := wire.Decode(b[1:])
		if err != nil {
			n.log.Warn("undecodable message from the back plane", "err", err)
			continue
		}
		d := backplane.Delivery{Message: m, Node: h.Node, Plain: h.Plain, Groups: h.Groups, Will: h.Will, Mark: backplane.Mark{Lo: seq}}
		if n.cfg.OnBatch != nil {
			batch = append(batch, d)
		} else {
			n.cfg.OnMessage(n.ctx, d)
		}
	}
	if len(batch) > 0 {
		n.cfg.OnBatch(n.ctx, batch)
	}
	if n.ctx.Err() != nil {
		return // stopping: not acknowledged, delivered again
	}
	n.handled.Store(last)
	// One acknowledgement for the batch: the consumer's policy is
	// AckAll, so the latest message's covers those before it.
	top := qs[0]
	for _, q := range qs[1:] {
		if q.meta.Sequence.Stream > top.meta.Sequence.Stream {
			top = q
		}
	}
	_ = top.msg.Ack()
}

// watchInterest keeps the table of every node's interest current from the
// interest bucket. ready is closed once the initial values are in.
func (n *Node) watchInterest(w jetstream.KeyWatcher, ready chan struct{}) {
	defer n.wg.Done()
	defer w.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				if ready != nil {
					close(ready)
					ready = nil
				}
				continue
			}
			nodeTok, filterTok, ok := strings.Cut(e.Key(), ".")
			if !ok {
				continue
			}
			node, err1 := unKVToken(nodeTok)
			filter, err2 := unKVToken(filterTok)
			if err1 != nil || err2 != nil {
				continue
			}
			if e.Operation() == jetstream.KeyValuePut {
				n.table.Add(node, filter)
			} else {
				n.table.Remove(node, filter)
			}
		}
	}
}

// unKVToken reverses kvToken.
func unKVToken(s string) (string, error) {
	if s == "=" {
		return "", nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("backplane/nats: bad key token %q", s)
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("backplane/nats: bad key token %q", s)
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return b.String(), nil
}

// announce writes (or deletes) one filter of this node in the interest
// bucket.
func (n *Node) announce(ctx context.Context, filter string, add bool) error {
	key := n.interestKey(n.cfg.ID, filter)
	var err error
	if add {
		_, err = n.kvInt.Put(ctx, key, []byte(filter))
	} else if err = n.kvInt.Delete(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
		err = nil
	}
	if err != nil {
		n.resync.Store(true)
		return n.fail("announce interest", err)
	}
	return nil
}

// announceAll makes the interest bucket hold exactly this node's filters:
// those it lacks are written, and (unless merge) those the node no longer
// has (from an earlier incarnation) are deleted.
func (n *Node) announceAll(ctx context.Context, merge bool) error {
	n.interestMu.Lock()
	defer n.interestMu.Unlock()
	want := map[string]bool{}
	for _, f := range n.local.Filters() {
		want[n.interestKey(n.cfg.ID, f)] = true
		if _, err := n.kvInt.Put(ctx, n.interestKey(n.cfg.ID, f), []byte(f)); err != nil {
			return n.fail("announce interest", err)
		}
	}
	if merge {
		return nil
	}
	var stale []string
	if err := n.scan(ctx, n.kvInt, []string{kvToken(n.cfg.ID) + ".>"}, func(e jetstream.KeyValueEntry) {
		if !want[e.Key()] {
			stale = append(stale, e.Key())
		}
	}); err != nil {
		return n.fail("load interest", err)
	}
	for _, k := range stale {
		if err := n.kvInt.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return n.fail("withdraw interest", err)
		}
	}
	return nil
}

// forget deletes a node's interest (dead for longer than Keep, or closed).
func (n *Node) forget(ctx context.Context, id string) {
	var keys []string
	_ = n.scan(ctx, n.kvInt, []string{kvToken(id) + ".>"}, func(e jetstream.KeyValueEntry) { keys = append(keys, e.Key()) })
	for _, k := range keys {
		_ = n.kvInt.Delete(ctx, k)
	}
}

// send routes m, published on node from, to the queues of the nodes with
// matching interest and waits until JetStream has stored it for each.
// Deliveries to this node (a shared group it was picked for, a dead node's
// will for its own subscribers) skip JetStream.
func (n *Node) send(ctx context.Context, m *message.Message, from string, will bool) error {
	self := n.cfg.ID
	routes := n.table.Route(m.Topic, from)
	if will {
		if routes == nil {
			routes = make(map[string]*route.Target)
		}
		if n.hasPlain(m.Topic) {
			if tg := routes[self]; tg != nil {
				tg.Plain = true
			} else {
				routes[self] = &route.Target{Plain: true}
			}
		}
	}
	if len(routes) == 0 {
		return nil
	}
	ids := make([]string, 0, len(routes))
	for id := range routes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	futures := make([]jetstream.PubAckFuture, 0, len(ids))
	var local *backplane.Delivery
	n.pubMu.Lock() // one node's messages reach JetStream in Forward order
	for _, id := range ids {
		tg := routes[id]
		h := &wire.Header{Node: from, Incarnation: n.inc, Seq: n.seq.Add(1), Plain: tg.Plain, Will: will, Groups: tg.Groups}
		if id == self {
			local = &backplane.Delivery{Message: m, Node: from, Plain: tg.Plain, Groups: tg.Groups, Will: will}
			continue
		}
		b, err := wire.Append([]byte{'M'}, h, m)
		if err != nil {
			n.pubMu.Unlock()
			return fmt.Errorf("backplane/nats: encoding %q: %w", m.Topic, err)
		}
		f, err := n.js.PublishMsgAsync(&nats.Msg{Subject: n.queueSubject(id), Data: b})
		if err != nil {
			n.pubMu.Unlock()
			return n.fail("forward", err)
		}
		futures = append(futures, f)
	}
	n.pubMu.Unlock()
	if m.QoS == 0 && !will {
		// QoS 0 is at most once: written to the connection, in order
		// with the node's other messages, not waited for.
		futures = nil
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return n.fail("forward", err)
		case <-ctx.Done():
			return n.fail("forward", ctx.Err())
		}
	}
	if local != nil {
		d := *local
		select {
		case n.lch <- d:
		case <-ctx.Done():
			return n.fail("forward", ctx.Err())
		}
	}
	return nil
}
