package broker

// Sessions across nodes. With a back plane (Server.Backplane) and a
// store that the nodes share (a store.Shared, such as store/redis), a
// persistent session is not tied to the node that created it: a client
// that reconnects to another node resumes it there. The node does not
// restore every stored session when it starts; it loads one when its
// client connects, once it owns the client id cluster-wide.
//
// The move, for client X from node A (which has X's session, online or
// offline) to node B (where X connects):
//
//  1. B loads X's stored session to learn its subscriptions, registers
//     it (offline) and announces them as its interest, so that from now
//     on the messages for X reach B as well as A: nothing published
//     during the move falls between the two nodes.
//  2. B claims X on the back plane; A is told (OnTakeover).
//  3. A closes X's connection (DISCONNECT 0x8E for MQTT 5), lets the
//     session go without deleting it from the store (its subscriptions
//     and interest go, its will is dropped: the session resumes), writes
//     its pending store changes (the dequeues written lazily) and tells
//     B it is done with a message to B alone on the back plane
//     ("$tern/handoff/B/hex(X)"). B waits for it (at most
//     handoffTimeout: a node that died says nothing).
//  4. B loads X's session again, now complete, and merges it with what
//     reached X on B during the move: a message that both nodes queued
//     (same publisher, creation time, topic and payload) is kept once,
//     A's copy, and what only B got follows A's messages, renumbered
//     after them in the store so that a later load keeps the order.
//  5. The CONNECT goes on as on one node: session present, queued
//     messages delivered, QoS 2 flights resumed in both directions.
//
// A clean start claims X, waits for A in the same way and deletes the
// stored session cluster-wide.
//
// A node keeps the client ids of the sessions it has, offline ones too,
// until they end or move. When a node dies, the node that finds the death
// (the back plane tells exactly one, OnNodeGone) adopts its sessions: it
// claims each client id from the dead node alone (backplane.Adopter: not
// from a node the client reconnected to meanwhile), loads the session and
// keeps it offline, its subscriptions announced, its expiry and delayed
// will counted from its disconnection. A node that finds it was taken for
// dead (cut off from the engine longer than its lease) closes its
// connections and lets its sessions go: they may be another node's now.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/message"
	mqttsession "github.com/ternmq/tern/session"
	"github.com/ternmq/tern/store"
)

// handoffTimeout bounds the wait of a node that claimed a client id for
// the node that had it to let the session go.
const handoffTimeout = 5 * time.Second

// handoffPrefix starts the topic of the messages by which a node tells
// another that it let a session go: handoffPrefix + node + "/" +
// hex(client id). They travel on the back plane only, from the broker
// itself (no publisher).
const handoffPrefix = "$tern/handoff/"

// sharedStore is the store the nodes share, nil unless the server has a
// back plane and a store.Shared.
func (srv *Server) sharedStore() store.Shared {
	if srv.Backplane == nil {
		return nil
	}
	sh, _ := srv.Store.(store.Shared)
	return sh
}

// msgIDReserver is a store.Shared that hands each node a block of message
// ids of its own (store/redis).
type msgIDReserver interface {
	MsgIDBase(ctx context.Context) (uint64, error)
}

// startShared prepares a node of a shared store at start, in place of
// restore: its message ids and sequence numbers are numbered from a block
// no other node uses.
func (srv *Server) startShared() error {
	srv.handoffs = map[string]chan struct{}{}
	r, ok := srv.Store.(msgIDReserver)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(srv.ctx, clusterTimeout)
	defer cancel()
	base, err := r.MsgIDBase(ctx)
	if err != nil {
		return fmt.Errorf("Store: reserving message ids: %w", err)
	}
	srv.msgSeq.Store(base)
	srv.qseq.Store(base)
	srv.cfg.log.Info("shared store: sessions load when their clients connect", "msg_id_base", base)
	return nil
}

// handoffTopic is the topic by which a node tells node that it let the
// session of id go.
func handoffTopic(node, id string) string {
	return handoffPrefix + node + "/" + hex.EncodeToString([]byte(id))
}

// onHandoff takes a handoff message for this node; it reports whether m
// was one.
func (srv *Server) onHandoff(m *Message) bool {
	if !strings.HasPrefix(m.Topic, handoffPrefix) {
		return false
	}
	rest, ok := strings.CutPrefix(m.Topic, handoffPrefix+srv.bp.ID()+"/")
	if !ok || m.From != "" {
		return true // not for this node, or not from a broker: dropped
	}
	b, err := hex.DecodeString(rest)
	if err != nil {
		return true
	}
	srv.handoffMu.Lock()
	if ch := srv.handoffs[string(b)]; ch != nil {
		close(ch)
		delete(srv.handoffs, string(b))
	}
	srv.handoffMu.Unlock()
	return true
}

// sharedClaim owns client id for a connecting client on a node of a
// shared store, taking the session over from the node that has it (see
// the file's comment). It returns the session registered for id, nil if
// none is stored (or cleanStart: attach makes a new one).
func (srv *Server) sharedClaim(id string, cleanStart bool) (*session, error) {
	srv.regMu.Lock()
	local := srv.sessions[id]
	srv.regMu.Unlock()
	if local != nil {
		// This node has the session: the connection takes it over here.
		return local, srv.clusterClaim(id)
	}
	ctx, cancel := context.WithTimeout(srv.ctx, clusterTimeout)
	defer cancel()
	var s *session
	if !cleanStart {
		pre, ok, err := srv.shStore.LoadSession(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("loading the session: %w", err)
		}
		if ok && !storedExpired(&pre.Info, time.Now()) {
			s = srv.registerMoving(id, pre)
		}
	}
	fail := func(err error) (*session, error) {
		if s != nil {
			srv.letGo(s)
		}
		return nil, err
	}
	ch := make(chan struct{})
	srv.handoffMu.Lock()
	srv.handoffs[id] = ch
	srv.handoffMu.Unlock()
	defer func() {
		srv.handoffMu.Lock()
		if srv.handoffs[id] == ch {
			delete(srv.handoffs, id)
		}
		srv.handoffMu.Unlock()
	}()
	prev, err := srv.bp.Claim(ctx, id)
	srv.clusterSeen(err)
	if err != nil {
		return fail(err)
	}
	if prev != "" && prev != srv.bp.ID() {
		srv.cfg.log.Info("client taken over from another node", "client", id, "node", prev)
		t := time.NewTimer(handoffTimeout)
		select {
		case <-ch:
		case <-t.C:
			srv.cfg.log.Warn("the node that had the session did not let it go in time: loading it as stored", "client", id, "node", prev, "waited", handoffTimeout)
		case <-srv.ctx.Done():
		}
		t.Stop()
	}
	if cleanStart {
		return nil, nil
	}
	lctx, lcancel := context.WithTimeout(srv.ctx, clusterTimeout)
	defer lcancel()
	ss, ok, err := srv.shStore.LoadSession(lctx, id)
	if err != nil {
		return fail(fmt.Errorf("loading the session: %w", err))
	}
	if ok && storedExpired(&ss.Info, time.Now()) {
		// It expired while no node had it (the last one stopped): it
		// ends now, and its end sends the will (section 3.1.2.5).
		if err := srv.persist("expired session", store.DeleteSession(id)); err != nil {
			return fail(err)
		}
		if w := ss.Info.Will; w != nil && w.Msg != nil {
			srv.sendWill(&lastWill{msg: w.Msg})
		}
		ok = false
	}
	if !ok {
		if s != nil {
			srv.letGo(s) // ended meanwhile (expired, or a clean start elsewhere)
		}
		return nil, nil
	}
	if s == nil {
		s = srv.registerMoving(id, store.StoredSession{ClientID: id})
	}
	if err := srv.adopt(s, &ss); err != nil {
		return fail(err)
	}
	return s, nil
}

// registerMoving registers an offline session for id with the
// subscriptions of ss (not its queue), so that messages for it reach
// this node while it moves here.
func (srv *Server) registerMoving(id string, ss store.StoredSession) *session {
	s := newSession(id, srv.sessSeq.Add(1))
	s.durable.Store(true)
	s.expiry = ss.Info.Expiry
	s.info = ClientInfo{ClientID: id}
	s.offSince = time.Now()
	srv.regMu.Lock()
	srv.sessions[id] = s
	srv.regMu.Unlock()
	for f, sub := range ss.Subs {
		srv.subscribe(s, f, storedSub(sub))
	}
	return s
}

func storedSub(sub store.Subscription) subscription {
	return subscription{QoS: sub.QoS, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, SubID: sub.ID}
}

// msgKey identifies a message across nodes: its publisher, creation
// time, topic, QoS and payload.
func msgKey(m *Message) string {
	return fmt.Sprintf("%q %d %q %d %q", m.From, m.Created.UnixNano(), m.Topic, m.QoS, m.Payload)
}

// adopt makes s the session ss describes, merged with what reached s on
// this node while it moved (see the file's comment).
func (srv *Server) adopt(s *session, ss *store.StoredSession) error {
	// Subscriptions: as stored.
	s.mu.Lock()
	var gone []string
	for f := range s.subs {
		if _, ok := ss.Subs[f]; !ok {
			gone = append(gone, f)
			delete(s.subs, f)
		}
	}
	s.mu.Unlock()
	for _, f := range gone {
		srv.unsubscribe(s, f)
	}
	for f, sub := range ss.Subs {
		s.mu.Lock()
		cur, ok := s.subs[f]
		s.mu.Unlock()
		if !ok || cur != storedSub(sub) {
			srv.subscribe(s, f, storedSub(sub))
		}
	}
	var top uint64
	for _, q := range ss.Queue {
		top = max(top, q.Seq)
	}
	for {
		cur := srv.qseq.Load()
		if cur >= top || srv.qseq.CompareAndSwap(cur, top) {
			break
		}
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	// What reached s here during the move, in its queue: kept in the
	// store already (seq set) unless QoS 0.
	var mine []delivery
	for s.queue.Len() > 0 {
		mine = append(mine, s.queue.Pop())
	}
	ours := make(map[uint64]bool, len(mine))
	for _, d := range mine {
		if d.seq != 0 {
			ours[d.seq] = true
		}
	}
	theirs := make(map[string]bool)
	var theirTop uint64
	s.adopted = make(map[uint64]struct{}, len(ss.Queue))
	var cs []store.Change
	for _, q := range ss.Queue {
		s.adopted[q.Seq] = struct{}{}
		if ours[q.Seq] {
			continue
		}
		theirs[msgKey(q.Msg)] = true
		theirTop = max(theirTop, q.Seq)
		d := delivery{msg: q.Msg, qos: q.QoS, retain: q.Retain, subIDs: q.SubIDs, seq: q.Seq, msgID: q.MsgID}
		if q.PacketID != 0 && q.QoS == 2 {
			// In flight on the other node: resent with DUP and the same
			// packet id, or as PUBREL once released.
			if s.out.Restore(q.PacketID, mqttsession.Flight[delivery]{Item: d, QoS: q.QoS, Seq: q.Seq, Sent: now, Released: q.Released}) {
				continue
			}
		}
		if q.Msg.Expired(now) {
			cs = append(cs, store.Dequeue(s.id, q.Seq)) // [v5 MQTT-3.3.2-5]
			continue
		}
		s.queue.Push(d)
	}
	for _, d := range mine {
		if d.msg != nil && theirs[msgKey(d.msg)] {
			// Queued by both nodes: the other node's copy stays.
			if d.seq != 0 {
				cs = append(cs, store.Dequeue(s.id, d.seq))
			}
			continue
		}
		if d.seq != 0 && d.seq <= theirTop {
			// After the other node's messages, in the store too.
			old := d.seq
			d.seq = srv.qseq.Add(1)
			s.adopted[d.seq] = struct{}{}
			cs = append(cs, store.Enqueue(s.id, storedQueued(d)), store.Dequeue(s.id, old))
		}
		s.queue.Push(d)
	}
	for _, id := range ss.Incoming {
		s.in.Restore(id)
	}
	if len(cs) == 0 {
		return nil
	}
	s.mu.Unlock()
	err := srv.persist("moved session", cs...)
	s.mu.Lock()
	return err
}

// handoffDrain is how long a node that lost a session to another node
// goes on taking the messages for it (storing them in its queue) before
// it lets the session go: a node whose view of the back plane's interest
// lags may still send a message for the session here alone, not yet to
// the node that claimed it (see the file's comment).
const handoffDrain = 100 * time.Millisecond

// onSharedTakeover starts letting go the session of a client that
// connected to another node, on a goroutine of its own: the back plane's
// handler goes on delivering messages meanwhile, those for this session
// included.
func (srv *Server) onSharedTakeover(ctx context.Context, id, by string) {
	srv.handoffWG.Add(1)
	go func() {
		defer srv.handoffWG.Done()
		srv.handOff(srv.ctx, id, by)
	}()
}

// handOff lets the session of a client that connected to another node
// go: its connection is closed [v5 MQTT-3.1.4-3] (DISCONNECT 0x8E for
// MQTT 5), messages for it are still taken for handoffDrain, the session
// leaves this node without leaving the store, what is pending for the
// store is written, and the node that claimed it is told.
func (srv *Server) handOff(ctx context.Context, id, by string) {
	srv.regMu.Lock()
	s := srv.sessions[id]
	srv.regMu.Unlock()
	if s != nil {
		s.mu.Lock()
		c := s.conn
		s.mu.Unlock()
		if c != nil {
			srv.cfg.log.Info("client taken over by another node", "client", id, "node", by)
			srv.stats.bpTakeovers.Add(1)
			c.takenOver()
			t := time.NewTimer(handoffTimeout)
			select {
			case <-c.done: // its teardown stored the session's state
			case <-t.C:
				srv.cfg.log.Warn("connection taken over by another node did not close in time", "client", id)
			case <-ctx.Done():
			}
			t.Stop()
		}
		select {
		case <-time.After(handoffDrain):
		case <-ctx.Done():
		}
		srv.letGo(s)
	}
	srv.flushLazy()
	if ctx.Err() != nil {
		return
	}
	hctx, cancel := srv.clusterCtx()
	defer cancel()
	m := &message.Message{Topic: handoffTopic(by, id), Created: time.Now()}
	if err := srv.bp.Forward(hctx, m); err != nil && !errors.Is(err, context.Canceled) {
		srv.cfg.log.Warn("back plane: the node that took a session over was not told", "client", id, "node", by, "err", err)
	}
}

// letGo removes s from this node without ending it: the store keeps it
// for the node that has it now. Its will is dropped (the session
// resumes elsewhere [v5 MQTT-3.1.3-9]).
func (srv *Server) letGo(s *session) {
	s.mu.Lock()
	if s.removed || s.conn != nil {
		s.mu.Unlock()
		return
	}
	s.removed = true
	s.durable.Store(false)
	subs := make([]string, 0, len(s.subs))
	for f := range s.subs {
		subs = append(subs, f)
	}
	s.resetState()
	s.stopTimers()
	s.mu.Unlock()
	for _, f := range subs {
		srv.unsubscribe(s, f)
	}
	srv.regMu.Lock()
	if srv.sessions[s.id] == s {
		delete(srv.sessions, s.id)
	}
	srv.regMu.Unlock()
}

// flushLazy has the background writer write the dequeues waiting for it
// now, and waits until they are written (and any write of it under way).
func (srv *Server) flushLazy() {
	done := make(chan struct{})
	select {
	case srv.lazy.flush <- done:
		<-done // bounded by one store write
	case <-srv.ctx.Done(): // the writer writes what is left as it stops
	}
}

// sharedEnded gives up the client id of a session that ended on a node
// of a shared store: the node kept it while the session was here,
// offline too (see clusterDisconnected).
func (srv *Server) sharedEnded(id string) {
	if srv.shStore == nil || srv.bp == nil {
		return
	}
	ctx, cancel := srv.clusterCtx()
	defer cancel()
	if err := srv.bp.Release(ctx, id); err != nil && !errors.Is(err, backplane.ErrClosed) {
		srv.cfg.log.Warn("back plane: client id not released", "client", id, "err", err)
	}
}

// storedExpired reports whether a stored offline session's expiry
// interval has passed at now. A session stored as online (its node
// stopped or died with its connection) counts as not expired.
func storedExpired(info *store.SessionInfo, now time.Time) bool {
	if info.Expiry == neverExpire || info.Disconnected.IsZero() {
		return false
	}
	return now.Sub(info.Disconnected) >= time.Duration(info.Expiry)*time.Second
}

// onNodeGone adopts the sessions of a dead node, when this node is the
// one the back plane told (exactly one is): each client id the dead node
// owned is claimed from it (not from a node the client reconnected to
// meanwhile), its stored session loaded and kept here offline, with its
// subscriptions announced, its expiry counted from its disconnection and
// its delayed will waiting, as if this node had restarted with it. A
// session that was online on the dead node counts from now; its will is
// the back plane's to publish.
func (srv *Server) onNodeGone(ctx context.Context, g backplane.NodeGone) {
	if srv.shStore == nil || !srv.joined(ctx) {
		return
	}
	if g.Node == srv.bp.ID() {
		srv.declaredDead()
		return
	}
	if len(g.ClientIDs) == 0 {
		return
	}
	ad, ok := srv.bp.(backplane.Adopter)
	if !ok {
		return
	}
	srv.handoffWG.Add(1)
	go func() {
		defer srv.handoffWG.Done()
		n := 0
		for _, id := range g.ClientIDs {
			if srv.ctx.Err() != nil {
				return
			}
			if srv.adoptOne(ad, g.Node, id) {
				n++
			}
		}
		srv.cfg.log.Info("adopted the sessions of a dead node", "dead", g.Node, "sessions", n, "client_ids", len(g.ClientIDs))
	}()
}

// adoptOne adopts the session of client id from the dead node; it
// reports whether it did.
func (srv *Server) adoptOne(ad backplane.Adopter, dead, id string) bool {
	srv.regMu.Lock()
	local := srv.sessions[id]
	srv.regMu.Unlock()
	if local != nil {
		return false // here already
	}
	ctx, cancel := context.WithTimeout(srv.ctx, clusterTimeout)
	defer cancel()
	won, err := ad.ClaimFrom(ctx, id, dead)
	if err != nil || !won {
		if err != nil {
			srv.cfg.log.Warn("back plane: a dead node's client id not adopted", "client", id, "dead", dead, "err", err)
		}
		return false
	}
	ss, ok, err := srv.shStore.LoadSession(ctx, id)
	if err != nil {
		srv.cfg.log.Warn("store: a dead node's session not loaded", "client", id, "dead", dead, "err", err)
	}
	now := time.Now()
	if !ok || err != nil || ss.Info.Expiry == 0 {
		srv.sharedEnded(id)
		return false
	}
	off := ss.Info.Disconnected
	online := off.IsZero()
	if online {
		off = now // it was connected to the dead node: disconnected at its death
	}
	if storedExpired(&store.SessionInfo{Expiry: ss.Info.Expiry, Disconnected: off}, now) {
		srv.persist("expired session", store.DeleteSession(id))
		if w := ss.Info.Will; w != nil && w.Msg != nil && !online {
			srv.sendWill(&lastWill{msg: w.Msg})
		}
		srv.sharedEnded(id)
		return false
	}
	s := srv.registerMoving(id, ss)
	if err := srv.adopt(s, &ss); err != nil {
		srv.letGo(s)
		srv.sharedEnded(id)
		return false
	}
	s.mu.Lock()
	s.offSince = off
	gen := s.gen
	if ss.Info.Expiry != neverExpire {
		left := time.Duration(ss.Info.Expiry)*time.Second - now.Sub(off)
		s.expTimer = time.AfterFunc(left, func() { srv.expire(s, gen) })
	}
	s.mu.Unlock()
	if w := ss.Info.Will; w != nil && w.Msg != nil && !online {
		// The will of an offline session waiting for its delay: the back
		// plane does not have it (it was settled on the dead node).
		lw := &lastWill{msg: w.Msg, delay: w.Delay}
		if due := off.Add(time.Duration(w.Delay) * time.Second); due.After(now) {
			srv.delayWill(s, lw, due.Sub(now))
		} else {
			srv.sendWill(lw)
			srv.storeSession(s, off, nil)
		}
	}
	return true
}

// declaredDead runs when the back plane took this node for dead (it was
// cut off longer than its lease) and it is back: other nodes may have
// adopted its sessions and own its client ids, so it keeps none of them.
// Its connections are closed (DISCONNECT 0x8E for MQTT 5: the session
// may be elsewhere now) and its sessions let go, not ended: the store
// keeps them for whichever node the clients reach next.
func (srv *Server) declaredDead() {
	srv.cfg.log.Warn("the back plane took this node for dead: closing its connections and letting its sessions go")
	srv.regMu.Lock()
	all := make([]*session, 0, len(srv.sessions))
	for _, s := range srv.sessions {
		if s.inline == nil {
			all = append(all, s)
		}
	}
	srv.regMu.Unlock()
	srv.handoffWG.Add(1)
	go func() {
		defer srv.handoffWG.Done()
		for _, s := range all {
			s.mu.Lock()
			c := s.conn
			s.mu.Unlock()
			if c != nil {
				c.takenOver()
				t := time.NewTimer(handoffTimeout)
				select {
				case <-c.done:
				case <-t.C:
				case <-srv.ctx.Done():
				}
				t.Stop()
			}
			srv.letGo(s)
		}
		srv.flushLazy()
	}()
}
