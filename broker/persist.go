package broker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

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
// allows. Not stored: QoS 0 messages queued for offline clients, shared
// subscription deliveries and the retained messages queued behind a
// SUBACK (see the README's Persistence section). No store call is made
// with a broker lock held.

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
	err := srv.Store.Apply(storeCtx(), cs...)
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
			cs = append(cs, store.Enqueue(s.id, store.Queued{Seq: d.seq, MsgID: msgID, Msg: m, QoS: d.qos, Retain: d.retain, SubIDs: d.subIDs}))
		}
		r.ts = append(r.ts, target{s, d})
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
	n := r.n
	if srv.sharedSubs.Load() > 0 && srv.bp == nil { // with a back plane they come through onClusterMessage
		n += srv.routeShared(m)
	}
	return n
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

func (c *conn) runAcker() {
	defer c.srv.live.Add(-1)
	a := &c.pubAcker
	for {
		a.mu.Lock()
		if len(a.batches) == 0 {
			a.running = false
			a.idle.Broadcast()
			a.mu.Unlock()
			return
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
			continue // the connection is closing: nothing more is answered
		}
		if err := c.storePublishes(b.pend, b.cs); err != nil {
			a.mu.Lock()
			a.fatal = err
			a.mu.Unlock()
			c.nc.Close() // the reader fails and tears the connection down
		}
	}
}

// storePublishes stores the changes of a batch of PUBLISHes with one
// Apply, then delivers and acknowledges them in order. What the store
// could not keep is not acknowledged as kept: MQTT 5 clients get 0x97
// Quota exceeded (disk full) or 0x80; a 3.1.1 client, which cannot be
// told, is disconnected without the acknowledgements, so that it sends
// the messages again.
func (c *conn) storePublishes(pend []pendingPub, cs []store.Change) error {
	srv := c.srv
	err := srv.persist("messages", cs...)
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
	for i := range pend {
		pp := &pend[i]
		code := pp.code
		if pp.route {
			if err != nil {
				code = storeCode(err)
				pp.reason = "the broker could not store the message"
			} else {
				n := srv.commitRoute(&pp.r)
				if srv.backlogged.Load() && srv.backlogged.Swap(false) {
					runtime.Gosched() // see onPublish
				}
				if ferr := srv.clusterPublish(pp.r.m); ferr != nil && pp.qos > 0 { // cluster.go
					if !v5 {
						return ferr
					}
					code, pp.reason = packet.UnspecifiedError, "the broker could not forward the message to its other nodes"
				} else if n == 0 && pp.qos > 0 && srv.bp == nil {
					code = packet.NoMatchingSubscribers // [v5] section 3.4.2.1
				}
				m := pp.r.m
				srv.observe(Event{Kind: EventPublish, Client: &c.info, Topic: m.Topic, QoS: m.QoS, Message: m})
			}
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
	l.cs = append(l.cs, store.Dequeue(s.id, seq))
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// lazyChanges are changes written in the background (see forget).
type lazyChanges struct {
	mu   sync.Mutex
	cs   []store.Change
	wake chan struct{}
}

// lazyLoop writes the background changes in batches until the server
// stops, then writes what is left.
func (srv *Server) lazyLoop() {
	defer srv.bgWG.Done()
	l := &srv.lazy
	var spare []store.Change // the buffer not in l.cs: the two are swapped
	for {
		stopping := false
		select {
		case <-l.wake:
		case <-srv.ctx.Done():
			stopping = true
		}
		l.mu.Lock()
		batch := l.cs
		l.cs = spare
		l.mu.Unlock()
		srv.persist("completed deliveries", batch...)
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
	if (cleanStart || expiry == 0) && old != nil && old.durable.Load() {
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
