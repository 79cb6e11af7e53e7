package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	mqttsession "github.com/ternmq/tern/session"
	"github.com/ternmq/tern/store"
)

// Persistence. With Server.Store set, the broker keeps in it what it
// must not lose to a restart or a crash, and says so to a client only
// once it is kept ("acknowledged means kept"):
//
//   - a persistent session (Session Expiry Interval above 0, or 3.1.1
//     clean session 0) is stored before its CONNACK; its subscriptions
//     before the SUBACK or UNSUBACK; when its connection ends, the time
//     (expiry and will delay count from it after a restart) and the will
//     waiting for its delay;
//   - a QoS 1 or 2 message is stored in the queue of every persistent
//     session it goes to, and a retained message is stored, before the
//     PUBACK or PUBREC, in one batch: one durable write whatever the
//     fan-out. Only then is it queued in memory, so that every later
//     change of its delivery (sent, released, completed) reaches the
//     store after it;
//   - a QoS 2 message received is recorded (its packet id) in the same
//     batch, before PUBREC, and forgotten before PUBCOMP;
//   - a QoS 2 message sent to a persistent session is stored with its
//     packet id before the PUBLISH is written, and as released before
//     the PUBREL, so that after a restart it is resent with DUP under
//     the same id, or as PUBREL: never twice to the application;
//   - a completed delivery is dequeued.
//
// QoS 1 deliveries are not stored as sent: after a restart they are sent
// again as new PUBLISHes (DUP 0) in their original order, which QoS 1
// allows. A shared subscription delivery is stored in the queue of the
// member it was given to; handed over to another member (its connection
// ended), it moves in the store too, in one write. After a restart it
// waits for that member (the group is not stored, so it is not handed
// over again). Not stored: QoS 0
// messages queued for offline clients and the retained messages queued
// behind a SUBACK (see the README's Persistence section). No store call
// is made with a broker lock held.

// storeCtx is the context of store calls. The store is local and its
// calls are bounded by the disk; cancelling one half-way when the server
// stops would drop state the broker has acknowledged, so they are not
// tied to the server's context.
func storeCtx() context.Context { return context.Background() }

// persist applies cs to the store, logging a failure.
func (srv *Server) persist(what string, cs ...store.Change) error {
	if len(cs) == 0 {
		return nil
	}
	t0 := time.Now()
	err := srv.Store.Apply(storeCtx(), cs...)
	srv.stats.appliedStore(time.Since(t0), err)
	if err != nil {
		srv.cfg.log.Warn("store: "+what+" not kept", "err", err)
	}
	return err
}

// persistLazy applies cs, changes whose loss to a power failure is
// harmless, without a durable write of their own if the store can
// (la, the Store as a store.LazyApplier, not nil): they then cost no
// fsync of their own, and the fsync of the next QoS 1/2 message's batch
// keeps them too.
func (srv *Server) persistLazy(la store.LazyApplier, what string, cs ...store.Change) error {
	if la == nil {
		return srv.persist(what, cs...)
	}
	err := la.ApplyLazy(storeCtx(), cs...)
	if err != nil {
		srv.cfg.log.Warn("store: "+what+" not kept", "err", err)
	}
	return err
}

// persistOrNil applies cs if there is a store and changes to keep.
func (srv *Server) persistOrNil(cs []store.Change) error {
	if srv.Store == nil || len(cs) == 0 {
		return nil
	}
	return srv.persist("subscriptions", cs...)
}

// storeCode is the reason code that refuses what the store could not keep.
func storeCode(err error) packet.ReasonCode {
	if errors.Is(err, store.ErrFull) {
		return packet.QuotaExceeded
	}
	return packet.UnspecifiedError
}

// target is one session a message goes to and what it gets.
type target struct {
	s *session
	d delivery
}

// routing is a message on its way to the store: the sessions it goes to
// and what each gets, delivered once the store has kept it.
type routing struct {
	m    *Message
	from *session
	ts   []target
	n    int // sessions matched (for 0x10 No matching subscribers)
	// shared are the shared subscription groups m matched, each with the
	// member chosen for it.
	shared []shareTarget
}

// shareTarget is one shared subscription group a message matched: its
// members, the strategy's first choice among them (start), and the
// member chosen when the message was prepared, with its delivery (kept
// in the store already when d.seq is set); pick is nil when no member
// could take it then.
type shareTarget struct {
	g       *shareGroup
	members []shareMatch
	start   int
	pick    *session
	d       delivery
}

// routeStored is route with a store: the deliveries of m to persistent
// sessions at QoS 1 or 2, the retained message and extra are stored in
// one batch before anything is delivered or retained in memory. If the
// store fails, nothing is published and the error is returned.
func (srv *Server) routeStored(m *Message, from *session, extra []store.Change) (int, error) {
	r, cs := srv.prepareRoute(m, from, extra)
	if err := srv.persist("message", cs...); err != nil {
		return 0, err
	}
	return srv.commitRoute(&r), nil
}

// prepareRoute finds the sessions m goes to and appends to cs the
// changes that store it: an enqueue for each persistent session that
// gets it at QoS 1 or 2 (one message id for all), and the retained
// message. Nothing is delivered yet: commitRoute does, once cs is kept.
func (srv *Server) prepareRoute(m *Message, from *session, cs []store.Change) (routing, []store.Change) {
	r := routing{m: m, from: from}
	mp := matchPool.Get().(*[]match)
	ms := (*mp)[:0]
	defer func() {
		clear(ms)
		*mp = ms[:0]
		matchPool.Put(mp)
	}()
	srv.subs.Match(m.Topic, func(_ string, s *session, sub subscription) bool {
		ms = append(ms, match{s, sub})
		return true
	})
	if len(ms) > 0 {
		r.ts = make([]target, 0, len(ms))
	}
	if len(ms) > 1 && !srv.CopyPerSubscription {
		slices.SortFunc(ms, func(a, b match) int {
			switch {
			case a.s.seq < b.s.seq:
				return -1
			case a.s.seq > b.s.seq:
				return 1
			}
			return 0
		})
	}
	var msgID uint64
	var kept []store.Target // the persistent sessions it is stored for: one change for all
	for i := 0; i < len(ms); {
		s := ms[i].s
		j := i + 1
		if !srv.CopyPerSubscription {
			for j < len(ms) && ms[j].s == s {
				j++
			}
		}
		d, ok := buildDelivery(m, from, ms[i:j])
		i = j
		if !ok {
			continue
		}
		r.n++
		if !srv.mayReceive(s, m) {
			srv.dropped(s, m, errDenied)
			continue
		}
		if d.qos > 0 && s.durable.Load() {
			if msgID == 0 {
				msgID = srv.msgSeq.Add(1)
			}
			d.seq, d.msgID = srv.qseq.Add(1), msgID
			if kept == nil {
				kept = make([]store.Target, 0, len(ms)) // at most one per match
			}
			kept = append(kept, store.Target{ClientID: s.id, Seq: d.seq, QoS: d.qos, Retain: d.retain, SubIDs: d.subIDs})
		}
		r.ts = append(r.ts, target{s, d})
	}
	if len(kept) > 0 {
		cs = append(cs, store.EnqueueAll(msgID, m, kept))
	}
	if srv.sharedSubs.Load() > 0 && srv.bp == nil { // with a back plane they come through onClusterMessage (cluster.go)
		r.shared, cs = srv.prepareShared(m, cs, &msgID)
	}
	if m.Retain && !isSysTopic(m.Topic) {
		if len(m.Payload) == 0 {
			cs = append(cs, store.Retain(m.Topic, nil))
		} else {
			cs = append(cs, store.Retain(m.Topic, m))
		}
	}
	return r, cs
}

// commitRoute retains and delivers a message whose changes are kept, and
// returns the number of sessions and shared groups it matched.
func (srv *Server) commitRoute(r *routing) int {
	m := r.m
	srv.retain(m)
	for _, t := range r.ts {
		if ok, why := t.s.deliver(srv, t.d); !ok {
			srv.dropped(t.s, m, why)
			if t.d.seq != 0 {
				srv.forget(t.s, t.d.seq)
			}
		}
	}
	for i := range r.shared {
		st := &r.shared[i]
		if st.pick != nil {
			// Kept in the store as the pick's (d.seq set): it goes to the
			// pick whatever its queue has taken meanwhile.
			if ok, _ := st.pick.deliverOpt(srv, st.d, st.d.seq != 0); ok {
				continue
			}
		}
		srv.deliverShared(m, st.g, st.members, st.start, st.pick, delivery{})
	}
	srv.stats.routed(m)
	return r.n + len(r.shared)
}

// prepareShared chooses, for each shared subscription group m matches,
// the member it goes to, as deliverShared would, and appends to cs the
// enqueue of m for that member when it is a persistent session getting
// it at QoS 1 or 2 [v5 MQTT-4.8.2-3]: the message is kept for the group
// before the PUBACK or PUBREC, like any other. *msgID is the message's
// stored id, assigned here if it has none yet.
func (srv *Server) prepareShared(m *Message, cs []store.Change, msgID *uint64) ([]shareTarget, []store.Change) {
	mp := shareMatchPool.Get().(*[]shareMatch)
	ms := (*mp)[:0]
	defer func() {
		clear(ms)
		*mp = ms[:0]
		shareMatchPool.Put(mp)
	}()
	srv.shared.Match(m.Topic, func(_ string, k shareKey, sub subscription) bool {
		ms = append(ms, shareMatch{k, sub})
		return true
	})
	if len(ms) == 0 {
		return nil, cs
	}
	slices.SortFunc(ms, func(a, b shareMatch) int {
		return cmp.Or(cmp.Compare(a.key.g.seq, b.key.g.seq), cmp.Compare(a.key.s.seq, b.key.s.seq))
	})
	var sts []shareTarget
	for i := 0; i < len(ms); {
		j := i + 1
		for j < len(ms) && ms[j].key.g == ms[i].key.g {
			j++
		}
		g := ms[i].key.g
		st := shareTarget{g: g, members: slices.Clone(ms[i:j])}
		st.start = srv.shareStart(m, g, j-i)
		shareCandidates(st.members, st.start, nil, func(mb *shareMatch) bool {
			s := mb.key.s
			d := shareDelivery(m, g, mb, delivery{})
			if !srv.mayReceive(s, m) {
				return false
			}
			if srv.keeps(s, d) {
				if !s.hasRoom(srv) {
					return false
				}
				if *msgID == 0 {
					*msgID = srv.msgSeq.Add(1)
				}
				d.seq, d.msgID = srv.qseq.Add(1), *msgID
				cs = append(cs, store.Enqueue(s.id, storedQueued(d)))
			}
			st.pick, st.d = s, d
			return true
		})
		sts = append(sts, st)
		i = j
	}
	return sts, cs
}

// keeps reports whether delivery d to s is kept in the store: a QoS 1
// or 2 message for a persistent session.
func (srv *Server) keeps(s *session, d delivery) bool {
	return srv.Store != nil && d.qos > 0 && s.durable.Load()
}

// storedQueued is the stored form of delivery d.
func storedQueued(d delivery) store.Queued {
	return store.Queued{Seq: d.seq, MsgID: d.msgID, Msg: d.msg, QoS: d.qos, Retain: d.retain, SubIDs: d.subIDs}
}

// deliverKept gives a shared subscription delivery d to the persistent
// session s: kept in its stored queue first, then queued in memory. prev,
// when it has a seq, is the same message leaving the stored queue of
// from (a member that left): the move is one write, so that a crash
// leaves it in exactly one of the two queues. A member whose queue is
// full, or a store failure, refuses it (the caller tries the next).
func (srv *Server) deliverKept(s *session, d delivery, from *session, prev delivery) (bool, error) {
	if !s.hasRoom(srv) {
		return false, errQueueFull
	}
	d.seq = srv.qseq.Add(1)
	if d.msgID = prev.msgID; d.msgID == 0 {
		d.msgID = srv.msgSeq.Add(1)
	}
	cs := []store.Change{store.Enqueue(s.id, storedQueued(d))}
	if prev.seq != 0 {
		cs = append(cs, store.Dequeue(from.id, prev.seq))
	}
	if err := srv.persist("shared subscription message", cs...); err != nil {
		return false, &dropError{"the store could not keep the message for the member"}
	}
	return s.deliverOpt(srv, d, true)
}

// pendingPub is a PUBLISH read and not yet answered (see queuePublish).
type pendingPub struct {
	qos    byte
	id     uint16
	route  bool // routed: a new message the client may publish
	code   packet.ReasonCode
	reason string
	r      routing
}

// maxPending bounds the PUBLISHes of one connection stored in one batch.
const maxPending = 256

// queuePublish takes a PUBLISH of the connection's client with a store:
// its changes join those of the PUBLISHes read before it and not yet
// stored; the batch is stored with one write (one fsync) when the reader
// has nothing more to read at once, before any other packet of the
// client is handled, or when it is large. Then, in the order received,
// each message is delivered and acknowledged, so that PUBACKs keep the
// order of the PUBLISHes [v3 MQTT-4.6.0-2] [v5 MQTT-4.6.0-2] and a
// publisher keeping many messages in flight shares fsyncs between them.
func (c *conn) queuePublish(p *packet.Publish, route bool, code packet.ReasonCode, reason string) error {
	srv := c.srv
	pp := pendingPub{qos: p.QoS, id: p.PacketID, route: route, code: code, reason: reason}
	if route {
		// The MQTT 5 properties are kept unaltered for the subscribers
		// [v5 MQTT-3.3.2-4] [v5 MQTT-3.3.2-15] [v5 MQTT-3.3.2-16]
		// [v5 MQTT-3.3.2-17] [v5 MQTT-3.3.2-18] [v5 MQTT-3.3.2-20], but
		// for the Topic Alias, which belongs to this connection.
		m := message.FromPublish(p, c.info.ClientID, time.Now())
		if srv.Store == nil {
			// Nothing to store: the batch is only forwarded to the other
			// nodes together (see answerPublishes), and routed here.
			pp.r = routing{m: m, from: c.sess}
			c.pend = append(c.pend, pp)
			if len(c.pend) >= maxPending || c.r.Buffered() == 0 {
				return c.flushPublishes()
			}
			return nil
		}
		if p.QoS == 2 && c.sess.durable.Load() {
			// The packet id is kept with the message: after a restart a
			// resend of it is still a duplicate [v5 MQTT-4.3.3-10].
			c.pendCS = append(c.pendCS, store.AddIncoming(c.sess.id, p.PacketID))
		}
		pp.r, c.pendCS = srv.prepareRoute(m, c.sess, c.pendCS)
	}
	c.pend = append(c.pend, pp)
	if len(c.pend) >= maxPending || c.r.Buffered() == 0 {
		return c.flushPublishes()
	}
	return nil
}

// pubBatch is a batch of PUBLISHes handed from the reader to the
// connection's acker.
type pubBatch struct {
	pend []pendingPub
	cs   []store.Change
}

// acker stores the PUBLISHes of a connection, batch after batch, and
// answers them, while the reader goes on reading: so a publisher with
// many messages in flight has the next batch gathered while the last
// one is fsynced. It runs while there are batches and exits when there
// are none (an idle connection has no acker). Guarded by mu: the batches
// waiting, and whether an acker runs.
type acker struct {
	mu      sync.Mutex
	idle    *sync.Cond
	batches []pubBatch
	running bool
	fatal   error // a 3.1.1 batch could not be stored: the connection is closing
}

// maxBatches bounds the batches of one connection waiting for its acker:
// a reader that gets this far ahead waits.
const maxBatches = 4

// flushPublishes hands the pending PUBLISHes to the acker, starting it
// if none runs. It returns the error of an earlier batch that ends the
// connection.
func (c *conn) flushPublishes() error {
	a := &c.pubAcker
	b := pubBatch{pend: c.pend, cs: c.pendCS}
	c.pend, c.pendCS = nil, nil
	a.mu.Lock()
	if a.idle == nil {
		a.idle = sync.NewCond(&a.mu)
	}
	for len(a.batches) >= maxBatches && a.fatal == nil {
		a.idle.Wait() // bounded: the acker finishes a batch per store write
	}
	if err := a.fatal; err != nil {
		a.mu.Unlock()
		return err
	}
	a.batches = append(a.batches, b)
	if !a.running {
		a.running = true
		c.srv.live.Add(1)
		go c.runAcker()
	}
	a.mu.Unlock()
	return nil
}

// drainPublishes hands the pending PUBLISHes over and waits until the
// acker has stored and answered every batch: the client's PUBLISHes take
// effect before what it sends next, and before its connection's end.
func (c *conn) drainPublishes() error {
	if len(c.pend) > 0 {
		if err := c.flushPublishes(); err != nil {
			return err
		}
	}
	a := &c.pubAcker
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.running {
		a.idle.Wait() // bounded by the store's writes
	}
	return a.fatal
}

// runAcker stores and answers the batches of its connection in order,
// two at a time: while batch N+1 is being written (and fsynced), batch N,
// kept already, is delivered and acknowledged. So the fsync of one batch
// and the fan-out of the one before share the time rather than add up.
// Each batch is delivered only once it is kept, in order, and stored only
// once the batch before it is kept (the store sees the messages in the
// order received).
func (c *conn) runAcker() {
	defer c.srv.live.Add(-1)
	a := &c.pubAcker
	var prev *pubBatch // kept (or refused by the store), to be answered
	var prevErr error
	for {
		a.mu.Lock()
		if len(a.batches) == 0 {
			if prev == nil {
				a.running = false
				a.idle.Broadcast()
				a.mu.Unlock()
				return
			}
			a.mu.Unlock()
			c.answerBatch(prev, prevErr)
			prev = nil
			continue
		}
		// Every batch waiting goes in one store write: what arrived
		// while the last write was under way shares the next fsync.
		b := a.batches[0]
		if len(a.batches) > 1 {
			for _, more := range a.batches[1:] {
				b.pend = append(b.pend, more.pend...)
				b.cs = append(b.cs, more.cs...)
			}
		}
		clear(a.batches)
		a.batches = a.batches[:0]
		fatal := a.fatal
		a.idle.Broadcast() // room for the reader's next batches
		a.mu.Unlock()
		if fatal != nil {
			// The connection is closing: nothing more is stored; what is
			// kept already is still delivered.
			if prev != nil {
				c.answerBatch(prev, prevErr)
				prev = nil
			}
			continue
		}
		if len(b.cs) == 0 {
			// Nothing to store (no store, or nothing kept): b follows
			// prev at once, without a goroutine for the write.
			if prev != nil {
				c.answerBatch(prev, prevErr)
			}
			prevErr, prev = nil, &b
			continue
		}
		done := make(chan error, 1)
		go func(cs []store.Change) { done <- c.srv.persist("messages", cs...) }(b.cs)
		if prev != nil {
			c.answerBatch(prev, prevErr)
		}
		prevErr = <-done
		prev = &b
	}
}

// answerBatch delivers and answers a batch whose store write returned
// err. After a batch that ended the connection, later ones are delivered
// (they are kept) but not acknowledged: a 3.1.1 client must not get the
// PUBACK of a later message without that of an earlier one.
func (c *conn) answerBatch(b *pubBatch, err error) {
	a := &c.pubAcker
	a.mu.Lock()
	silent := a.fatal != nil
	a.mu.Unlock()
	if ferr := c.answerPublishes(b.pend, err, silent); ferr != nil {
		a.mu.Lock()
		if a.fatal == nil {
			a.fatal = ferr
		}
		a.mu.Unlock()
		c.nc.Close() // the reader fails and tears the connection down
	}
}

// answerPublishes delivers and acknowledges, in order, a batch of
// PUBLISHes whose changes the store kept, or refused with err. What the
// store could not keep is not acknowledged as kept: MQTT 5 clients get
// 0x97 Quota exceeded (disk full) or 0x80; a 3.1.1 client, which cannot
// be told, is disconnected without the acknowledgements, so that it
// sends the messages again. silent delivers without acknowledging.
//
// With a back plane, the messages of the batch are delivered here first,
// then forwarded to the other nodes all at once (clusterPublishAll: one
// engine round trip for the batch, in the order received), and only then
// acknowledged, in order: a message the engine did not take is refused
// as today (0x80; a 3.1.1 client is disconnected before its
// acknowledgement), and only that message.
func (c *conn) answerPublishes(pend []pendingPub, err error, silent bool) error {
	srv := c.srv
	v5 := c.version == packet.V5
	if err != nil {
		s := c.sess
		s.mu.Lock()
		for i := range pend {
			if pend[i].route && pend[i].qos == 2 {
				// The exchange ends: the id is free again [v5 MQTT-4.3.3-9].
				s.in.Release(pend[i].id)
			}
		}
		s.mu.Unlock()
		if !v5 {
			return fmt.Errorf("the store could not keep the messages: %w", err)
		}
	}
	var fwd []*Message // the messages routed, in order, for the back plane
	var matched []int  // per pend entry: sessions matched here
	if err == nil {
		matched = make([]int, len(pend))
		for i := range pend {
			pp := &pend[i]
			if !pp.route {
				continue
			}
			if srv.Store == nil {
				matched[i], _ = srv.publishStored(pp.r.m, pp.r.from, nil)
			} else {
				matched[i] = srv.commitRoute(&pp.r)
			}
			if srv.backlogged.Load() && srv.backlogged.Swap(false) {
				runtime.Gosched() // see onPublish
			}
			if srv.bp != nil {
				fwd = append(fwd, pp.r.m)
			}
		}
	}
	ferrs := srv.clusterPublishAll(fwd) // cluster.go; nil when all were taken
	k := 0                              // index in fwd and ferrs
	for i := range pend {
		pp := &pend[i]
		code := pp.code
		if pp.route {
			if err != nil {
				code = storeCode(err)
				pp.reason = "the broker could not store the message"
			} else {
				var ferr error
				if srv.bp != nil {
					if ferrs != nil {
						ferr = ferrs[k]
					}
					k++
				}
				if ferr != nil && pp.qos > 0 {
					if !v5 {
						return ferr
					}
					code, pp.reason = packet.UnspecifiedError, "the broker could not forward the message to its other nodes"
					if pp.qos == 2 {
						c.sess.mu.Lock()
						c.sess.in.Release(pp.id) // a new message after a PUBREC >= 0x80 [v5 MQTT-4.3.3-9]
						c.sess.mu.Unlock()
					}
				} else if matched[i] == 0 && pp.qos > 0 && srv.bp == nil {
					code = packet.NoMatchingSubscribers // [v5] section 3.4.2.1
				}
				m := pp.r.m
				srv.observe(Event{Kind: EventPublish, Client: &c.info, Topic: m.Topic, QoS: m.QoS, Message: m})
			}
		}
		if silent {
			continue
		}
		if !v5 {
			code = packet.Success // [v3 MQTT-3.3.5-2]
		}
		switch pp.qos {
		case 1:
			c.send(c.ack(packet.PUBACK, pp.id, code, pp.reason)) // [v5 MQTT-4.3.2-4] [v3 MQTT-4.3.2-2]
		case 2:
			c.send(c.ack(packet.PUBREC, pp.id, code, pp.reason)) // [v5 MQTT-4.3.3-8] [v3 MQTT-4.3.3-2]
		}
	}
	return nil
}

// forget dequeues the stored delivery seq of s (a completed or dropped
// message); seq 0 is a delivery that was not stored. It does not wait:
// a dequeue lost to a crash only sends the message again (QoS 1), or its
// PUBREL again (QoS 2, released), both harmless, so dequeues are
// written in the background, batched, and the connection that got the
// acknowledgement goes on at once. A dequeue is always written after the
// enqueue of its message, which was written before the message could be
// sent; sequence numbers are never reused (Server.qseq), so a late
// dequeue cannot hit a later message.
func (srv *Server) forget(s *session, seq uint64) {
	if seq == 0 || srv.Store == nil {
		return
	}
	l := &srv.lazy
	l.mu.Lock()
	l.ts = append(l.ts, store.Target{ClientID: s.id, Seq: seq})
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// lazyChanges are changes written in the background (see forget).
type lazyChanges struct {
	flush chan chan struct{} // flushLazy's requests: written at once, then the channel is closed
	mu    sync.Mutex
	ts    []store.Target // dequeues: ClientID and Seq
	wake  chan struct{}
}

// lazyLoop writes the background changes in batches until the server
// stops, then writes what is left.
func (srv *Server) lazyLoop() {
	defer srv.bgWG.Done()
	l := &srv.lazy
	lazy, _ := srv.Store.(store.LazyApplier) // detected once
	var spare []store.Target                 // the buffer not in l.ts: the two are swapped
	for {
		stopping := false
		var flushed chan struct{}
		select {
		case <-l.wake:
		case flushed = <-l.flush:
		case <-srv.ctx.Done():
			stopping = true
		}
		l.mu.Lock()
		batch := l.ts
		l.ts = spare
		l.mu.Unlock()
		if len(batch) > 0 {
			srv.persistLazy(lazy, "completed deliveries", store.DequeueAll(batch))
		}
		if flushed != nil {
			close(flushed)
		}
		clear(batch)
		spare = batch[:0]
		if stopping {
			return
		}
	}
}

// storeSession stores the state of s as a session of its own; s.mu is
// not held. offline is when it went offline, zero while connected.
func (srv *Server) storeSession(s *session, offline time.Time, w *lastWill) error {
	s.mu.Lock()
	info := store.SessionInfo{Expiry: s.expiry, Disconnected: offline, Version: byte(s.info.Version)}
	if w == nil {
		w = s.will
	}
	s.mu.Unlock()
	if w != nil {
		info.Will = &store.Will{Msg: w.msg, Delay: w.delay}
	}
	return srv.persist("session", store.PutSession(s.id, info))
}

// connectStore makes the session of a connecting client durable as the
// CONNECT asks, before its CONNACK: a clean start or a session that is
// to end with its connection forgets what is stored; a persistent
// session is stored with the will of the connection. It runs before the
// session is attached; the caller refuses the connection on an error.
func (srv *Server) connectStore(id string, cleanStart bool, expiry uint32, version packet.Version, will *lastWill) error {
	srv.regMu.Lock()
	old := srv.sessions[id]
	srv.regMu.Unlock()
	var cs []store.Change
	// A shared store may hold the session although this node did not
	// (sharedsession.go): it goes cluster-wide.
	if (cleanStart || expiry == 0) && (srv.shStore != nil || old != nil && old.durable.Load()) {
		cs = append(cs, store.DeleteSession(id))
	}
	if expiry != 0 {
		info := store.SessionInfo{Expiry: expiry, Version: byte(version)}
		if will != nil {
			info.Will = &store.Will{Msg: will.msg, Delay: will.delay}
		}
		cs = append(cs, store.PutSession(id, info))
	}
	return srv.persist("session", cs...)
}

// restore loads the store into the server at start: sessions with their
// subscriptions, queues, messages in flight and QoS 2 ids; retained
// messages; the timers of session expiry and delayed wills, counting the
// time the broker was down. Sessions that expired meanwhile end now, and
// their wills are published.
func (srv *Server) restore() error {
	st, err := srv.Store.Load(storeCtx())
	if err != nil {
		return fmt.Errorf("Store: loading the stored state: %w", err)
	}
	now := time.Now()
	down := st.Saved // when the broker last wrote: it stopped after that
	if down.IsZero() || down.After(now) {
		down = now
	}
	srv.msgSeq.Store(st.MaxMsgID)
	if pos, ok := st.Marks[bpFeed]; ok {
		mk, err := backplane.ParseMark(pos)
		if err != nil {
			return fmt.Errorf("Store: the back plane's mark: %w", err)
		}
		srv.bpMark = mk
	}
	for _, m := range st.Retained {
		if !m.Expired(now) {
			srv.retained.set(m)
		}
	}
	var gone []store.Change
	var wills []*lastWill
	sessions, queued := 0, 0
	for i := range st.Sessions {
		ss := &st.Sessions[i]
		off := ss.Info.Disconnected
		if off.IsZero() {
			off = down // online when the broker stopped: its connection ended then
		}
		var left time.Duration
		if ss.Info.Expiry != neverExpire {
			left = time.Duration(ss.Info.Expiry)*time.Second - now.Sub(off)
			if left <= 0 || ss.Info.Expiry == 0 {
				// Expired while the broker was down: the session ends now,
				// and its end sends the will (section 3.1.2.5).
				gone = append(gone, store.DeleteSession(ss.ClientID))
				if w := ss.Info.Will; w != nil && w.Msg != nil {
					wills = append(wills, &lastWill{msg: w.Msg})
				}
				continue
			}
		}
		s := newSession(ss.ClientID, srv.sessSeq.Add(1))
		s.durable.Store(true)
		s.expiry = ss.Info.Expiry
		s.info = ClientInfo{ClientID: ss.ClientID, Version: packet.Version(ss.Info.Version)}
		s.offSince = off
		for f, sub := range ss.Subs {
			srv.subscribe(s, f, subscription{QoS: sub.QoS, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, SubID: sub.ID})
		}
		var top uint64
		for _, q := range ss.Queue {
			top = max(top, q.Seq)
			d := delivery{msg: q.Msg, qos: q.QoS, retain: q.Retain, subIDs: q.SubIDs, seq: q.Seq, msgID: q.MsgID}
			if q.PacketID != 0 && q.QoS == 2 {
				// In flight: resent on the next connection, with DUP and
				// the same packet id, or as PUBREL once released.
				if s.out.Restore(q.PacketID, mqttsession.Flight[delivery]{Item: d, QoS: q.QoS, Seq: q.Seq, Sent: off, Released: q.Released}) {
					queued++
					continue
				}
			}
			if q.Msg.Expired(now) {
				gone = append(gone, store.Dequeue(ss.ClientID, q.Seq)) // [v5 MQTT-3.3.2-5]
				continue
			}
			s.queue.Push(d)
			queued++
		}
		if top > srv.qseq.Load() {
			srv.qseq.Store(top)
		}
		for _, id := range ss.Incoming {
			s.in.Restore(id)
		}
		srv.regMu.Lock()
		srv.sessions[ss.ClientID] = s
		srv.regMu.Unlock()
		sessions++
		s.mu.Lock()
		gen := s.gen
		if ss.Info.Expiry != neverExpire {
			s.expTimer = time.AfterFunc(left, func() { srv.expire(s, gen) })
		}
		s.mu.Unlock()
		if w := ss.Info.Will; w != nil && w.Msg != nil {
			lw := &lastWill{msg: w.Msg, delay: w.Delay}
			if due := off.Add(time.Duration(w.Delay) * time.Second); due.After(now) {
				srv.delayWill(s, lw, due.Sub(now))
			} else {
				// Due while the broker was down: published now, and the
				// session no longer holds it.
				wills = append(wills, lw)
				gone = append(gone, store.PutSession(ss.ClientID, store.SessionInfo{Expiry: ss.Info.Expiry, Disconnected: off, Version: ss.Info.Version}))
			}
		}
	}
	if err := srv.persist("restored state", gone...); err != nil {
		return fmt.Errorf("Store: %w", err)
	}
	srv.cfg.log.Info("store loaded", "sessions", sessions, "queued", queued, "retained", srv.retained.userLen(), "expired_sessions", len(st.Sessions)-sessions)
	for _, w := range wills {
		srv.sendWill(w)
	}
	return nil
}
