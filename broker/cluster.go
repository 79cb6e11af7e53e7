package broker

// The broker as one node of a back plane (package backplane): several
// brokers serving one topic space. Everything the back plane needs is in
// this file; the rest of the broker calls it at a few marked points (the
// publish path, SUBSCRIBE and the end of subscriptions, retained messages
// on SUBSCRIBE, CONNECT and the end of a connection). With no back plane
// (Server.Backplane nil) every hook is one nil check.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/store"
)

// BackplaneJoin joins a back plane with cfg and returns the node. The
// server fills in cfg's OnMessage, OnTakeover and Logger; the function
// sets the rest (the node's ID, its Lease) as its owner wants, and calls
// the engine's Join (backplane/memory, backplane/redis, backplane/nats).
type BackplaneJoin func(ctx context.Context, cfg backplane.Config) (backplane.Node, error)

// clusterTimeout bounds each call the broker makes to the back plane, so
// that an engine that does not answer cannot hang a connection.
const clusterTimeout = 5 * time.Second

// joinTimeout bounds the join at start (see joinBackplane).
const joinTimeout = 30 * time.Second

// errForward is a message that could not be forwarded to the other nodes.
var errForward = errors.New("broker: the back plane could not forward the message")

// joinBackplane joins the back plane at start, after the store's sessions
// are restored, and announces their subscriptions.
func (srv *Server) joinBackplane() error {
	// An engine that starts with the brokers (a JetStream cluster electing
	// its leaders, on a busy machine) may take a while to answer the
	// join's first creations: the join may take up to joinTimeout.
	ctx, cancel := context.WithTimeout(srv.ctx, joinTimeout)
	defer cancel()
	srv.bpJoined = make(chan struct{})
	defer close(srv.bpJoined)
	node, err := srv.Backplane(ctx, backplane.Config{
		OnMessage:  srv.onClusterMessage,
		OnBatch:    srv.onClusterBatch,
		OnTakeover: srv.onClusterTakeover,
		OnNodeGone: srv.onNodeGone, // sharedsession.go
		Logger:     srv.cfg.log.With("component", "backplane"),
	})
	if err != nil {
		return fmt.Errorf("broker: Backplane: cannot join: %w", err)
	}
	if node == nil {
		return errors.New("broker: Backplane: the join function returned no node and no error")
	}
	srv.bp = node
	srv.stats.bpReachable.Store(true)
	srv.cfg.log.Info("joined the back plane", "node", node.ID())
	if srv.shStore != nil {
		// The messages by which other nodes let sessions go to this one.
		if err := node.Subscribe(ctx, handoffPrefix+node.ID()+"/#"); err != nil {
			node.Close(ctx)
			srv.bp = nil
			return fmt.Errorf("broker: Backplane: %w", err)
		}
	}
	// The restored sessions' subscriptions, once each.
	srv.regMu.Lock()
	ss := make([]*session, 0, len(srv.sessions))
	for _, s := range srv.sessions {
		ss = append(ss, s)
	}
	srv.regMu.Unlock()
	for _, s := range ss {
		s.mu.Lock()
		fs := make([]string, 0, len(s.subs))
		for f := range s.subs {
			fs = append(fs, f)
		}
		s.mu.Unlock()
		for _, f := range fs {
			srv.clusterSubscribe(f)
		}
	}
	return nil
}

// joined waits until the server has its node: the back plane may call its
// handlers before Join returned.
func (srv *Server) joined(ctx context.Context) bool {
	select {
	case <-srv.bpJoined:
		return srv.bp != nil
	case <-ctx.Done():
		return false
	}
}

// leaveBackplane leaves the back plane at the end of Shutdown or Close,
// once the connections are gone.
func (srv *Server) leaveBackplane() {
	if srv.bp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if err := srv.bp.Close(ctx); err != nil && !errors.Is(err, backplane.ErrClosed) {
		srv.cfg.log.Warn("leaving the back plane", "err", err)
	}
}

// clusterCtx is the context of one call to the back plane.
func (srv *Server) clusterCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), clusterTimeout)
}

// NodeID returns the server's name on its back plane, "" without one.
func (srv *Server) NodeID() string {
	if srv.bp == nil {
		return ""
	}
	return srv.bp.ID()
}

// clusterEngine names the engine of the back plane: what the node's
// Engine method returns if it has one, else the last element of its
// type's package path ("memory", "redis", "nats"); "" without a back
// plane.
func (srv *Server) clusterEngine() string {
	if srv.bp == nil {
		return ""
	}
	if e, ok := srv.bp.(interface{ Engine() string }); ok {
		return e.Engine()
	}
	t := reflect.TypeOf(srv.bp)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if p := t.PkgPath(); p != "" {
		return path.Base(p)
	}
	return t.String()
}

// clusterSeen records what a call to the back plane says of the engine:
// it answered (err nil) or it is out of reach. Other errors (a bad
// filter, the node closed) say nothing about reachability.
func (srv *Server) clusterSeen(err error) {
	switch {
	case err == nil:
		srv.stats.bpReachable.Store(true)
	case errors.Is(err, backplane.ErrUnreachable):
		srv.stats.bpReachable.Store(false)
	}
}

// clusterProbeTopic is the name the $SYS update looks up on the back
// plane to learn whether the engine answers; nothing is retained there.
const clusterProbeTopic = "$SYS/tern/backplane-probe"

// clusterProbe asks the engine a cheap question (the retained message of
// one topic name nobody publishes) so that Stats and $SYS tell whether it
// is reachable even when the node has no traffic. Called by the $SYS loop;
// bounded by clusterTimeout and by the server's end.
func (srv *Server) clusterProbe() {
	if srv.bp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(srv.ctx, clusterTimeout)
	defer cancel()
	_, err := srv.bp.MatchRetained(ctx, clusterProbeTopic)
	if srv.ctx.Err() != nil {
		return // shutting down: the answer says nothing of the engine
	}
	srv.clusterSeen(err)
}

// clusterLocal reports whether a message stays on this node: the $SYS
// topics describe the node that publishes them.
func clusterLocal(name string) bool { return isSysTopic(name) }

// clusterPublish hands a message published on this node (by a client, a
// will, the in-process client) to the back plane, after its local
// delivery: its retained message first, then the message itself to the
// nodes with matching interest. A QoS 1 or 2 message is acknowledged only
// once this returned nil. Never called for a message that came from the
// back plane.
func (srv *Server) clusterPublish(m *Message) error {
	if srv.bp == nil || clusterLocal(m.Topic) {
		return nil
	}
	ctx, cancel := srv.clusterCtx()
	defer cancel()
	if m.Retain {
		err := srv.bp.SetRetained(ctx, m)
		srv.clusterSeen(err)
		if err != nil {
			srv.stats.bpFailed.Add(1)
			srv.cfg.log.Warn("back plane: retained message not stored", "topic", m.Topic, "err", err)
			return fmt.Errorf("%w: %w", errForward, err)
		}
	}
	err := srv.bp.Forward(ctx, m)
	srv.clusterSeen(err)
	if err != nil {
		srv.stats.bpFailed.Add(1)
		srv.cfg.log.Warn("back plane: message not forwarded", "topic", m.Topic, "qos", m.QoS, "err", err)
		return fmt.Errorf("%w: %w", errForward, err)
	}
	srv.stats.bpForwarded.Add(1)
	return nil
}

// clusterPublishAll is clusterPublish for the messages of one batch of a
// connection, in order: the retained messages are set first, one after
// the other (rare), then every message goes to the engine at once
// (backplane.ForwardAll: one pipeline or one burst of publishes, in
// order, where the engine can), so that a busy connection costs one
// engine round trip per batch, not per message. It returns one error
// per message of ms, or nil when the engine took them all.
func (srv *Server) clusterPublishAll(ms []*Message) []error {
	if srv.bp == nil || len(ms) == 0 {
		return nil
	}
	if len(ms) == 1 {
		if err := srv.clusterPublish(ms[0]); err != nil {
			return []error{err}
		}
		return nil
	}
	ctx, cancel := srv.clusterCtx()
	defer cancel()
	var errs []error
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(ms))
		}
		errs[i] = fmt.Errorf("%w: %w", errForward, err)
		srv.stats.bpFailed.Add(1)
	}
	send := make([]*Message, 0, len(ms))
	at := make([]int, 0, len(ms)) // the index in ms of each message in send
	for i, m := range ms {
		if clusterLocal(m.Topic) {
			continue
		}
		if m.Retain {
			err := srv.bp.SetRetained(ctx, m)
			srv.clusterSeen(err)
			if err != nil {
				srv.cfg.log.Warn("back plane: retained message not stored", "topic", m.Topic, "err", err)
				fail(i, err)
				continue
			}
		}
		send = append(send, m)
		at = append(at, i)
	}
	if len(send) == 0 {
		return errs
	}
	ferrs := backplane.ForwardAll(ctx, srv.bp, send)
	var seen error
	for j, i := range at {
		var err error
		if ferrs != nil {
			err = ferrs[j]
		}
		if err != nil {
			if seen == nil {
				seen = err
			}
			srv.cfg.log.Warn("back plane: message not forwarded", "topic", ms[i].Topic, "qos", ms[i].QoS, "err", err)
			fail(i, err)
			continue
		}
		srv.stats.bpForwarded.Add(1)
	}
	srv.clusterSeen(seen)
	return errs
}

// clusterSubscribe announces a new local subscription (not a replaced
// one) to the back plane. An engine out of reach keeps the count and
// announces it when it is back: the subscription is granted all the same.
func (srv *Server) clusterSubscribe(filter string) {
	if srv.bp == nil {
		return
	}
	ctx, cancel := srv.clusterCtx()
	defer cancel()
	err := srv.bp.Subscribe(ctx, filter)
	srv.clusterSeen(err)
	if err != nil {
		srv.cfg.log.Warn("back plane: interest not announced", "filter", filter, "err", err)
	}
}

// clusterUnsubscribe withdraws one local subscription from the back plane.
func (srv *Server) clusterUnsubscribe(filter string) {
	if srv.bp == nil {
		return
	}
	ctx, cancel := srv.clusterCtx()
	defer cancel()
	err := srv.bp.Unsubscribe(ctx, filter)
	srv.clusterSeen(err)
	if err != nil && !errors.Is(err, backplane.ErrClosed) {
		srv.cfg.log.Warn("back plane: interest not withdrawn", "filter", filter, "err", err)
	}
}

// clusterRetained appends to ds the retained messages of the whole topic
// space that match filter, from the back plane. It reports false when the
// back plane is not in use for filter (none, or a $SYS filter: the node's
// own), and the caller uses the local index.
func (srv *Server) clusterRetained(ds []delivery, filter string, sub subscription) ([]delivery, bool) {
	if srv.bp == nil || clusterLocal(filter) {
		return ds, false
	}
	ctx, cancel := srv.clusterCtx()
	defer cancel()
	ms, err := srv.bp.MatchRetained(ctx, filter)
	srv.clusterSeen(err)
	if err != nil {
		// The local copies are the best there is.
		srv.cfg.log.Warn("back plane: retained messages unavailable, using this node's", "filter", filter, "err", err)
		return ds, false
	}
	now := time.Now()
	slices.SortFunc(ms, func(a, b *Message) int { return cmp.Compare(a.Topic, b.Topic) })
	for _, m := range ms {
		if m.Expired(now) { // [v5 MQTT-3.3.2-5]
			continue
		}
		d := delivery{msg: m, qos: min(m.QoS, sub.QoS), retain: true} // [v3 MQTT-3.3.1-8]
		if sub.SubID != 0 {
			d.subIDs = []uint32{sub.SubID}
		}
		ds = append(ds, d)
	}
	return ds, true
}

// clusterClaim makes this node the owner of a client id before its
// CONNACK; the node that had it closes its connection.
func (srv *Server) clusterClaim(id string) error {
	if srv.bp == nil {
		return nil
	}
	ctx, cancel := srv.clusterCtx()
	defer cancel()
	prev, err := srv.bp.Claim(ctx, id)
	srv.clusterSeen(err)
	if err != nil {
		return err
	}
	if prev != "" && prev != srv.bp.ID() {
		srv.cfg.log.Info("client taken over from another node", "client", id, "node", prev)
	}
	return nil
}

// clusterConnected registers the will of a connection that has one, so
// that the back plane publishes it if this node dies.
func (srv *Server) clusterConnected(c *conn, w *packet.Will) {
	if srv.bp == nil || w == nil {
		return
	}
	lw := c.willOf(w)
	m := lw.msg
	if lw.delay > 0 {
		// The back plane holds a dead node's will for its Will Delay
		// Interval [v5 MQTT-3.1.2-8]; the delay travels in the property,
		// on a copy (the will is shared once published).
		cp := *lw.msg
		cp.Properties.WillDelay = lw.delay
		cp.Properties.Mark(packet.PropWillDelay)
		m = &cp
	}
	ctx, cancel := srv.clusterCtx()
	defer cancel()
	err := srv.bp.SetWill(ctx, c.info.ClientID, m)
	srv.clusterSeen(err)
	if err != nil {
		srv.cfg.log.Warn("back plane: will not registered", "client", c.info.ClientID, "err", err)
		return
	}
	c.bpWill = true
}

// clusterDisconnected runs at the end of a connection, after its will was
// settled here (published, kept for its delay, or dropped after
// DISCONNECT): the back plane's copy goes, and the client id is released
// unless another connection of this node has it now.
func (srv *Server) clusterDisconnected(c *conn) {
	if srv.bp == nil || c.sess == nil {
		return
	}
	s := c.sess
	s.mu.Lock()
	mine := s.conn == nil || s.conn == c
	s.mu.Unlock()
	ctx, cancel := srv.clusterCtx()
	defer cancel()
	id := c.info.ClientID
	if c.bpWill {
		// Wills are kept per node, and a new connection of this node
		// registers its own only after this one is torn down (attach
		// waits for it).
		if err := srv.bp.ClearWill(ctx, id); err != nil && !errors.Is(err, backplane.ErrClosed) {
			srv.cfg.log.Warn("back plane: will not cleared", "client", id, "err", err)
		}
	}
	if !mine {
		return // taken over on this node: the new connection owns the id
	}
	if c.kicked.Load() == uint32(packet.SessionTakenOver) {
		return // another node claimed the id
	}
	if srv.shStore != nil {
		s.mu.Lock()
		kept := !s.removed
		s.mu.Unlock()
		if kept {
			// A session the nodes share stays this node's while it is
			// here, offline: a node that claims the id is told, and takes
			// the session over (sharedsession.go). It is released when the
			// session ends.
			return
		}
	}
	if err := srv.bp.Release(ctx, id); err != nil && !errors.Is(err, backplane.ErrClosed) {
		srv.cfg.log.Warn("back plane: client id not released", "client", id, "err", err)
	}
}

// onClusterTakeover closes the connection of a client that connected to
// another node [v5 MQTT-3.1.4-3]: DISCONNECT 0x8E for MQTT 5.
func (srv *Server) onClusterTakeover(ctx context.Context, t backplane.Takeover) {
	if !srv.joined(ctx) {
		return
	}
	if srv.shStore != nil {
		srv.onSharedTakeover(ctx, t.ClientID, t.By)
		return
	}
	srv.regMu.Lock()
	s := srv.sessions[t.ClientID]
	srv.regMu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c == nil {
		return
	}
	// A connection between its CONNACK and c.started would be closed
	// without the DISCONNECT 0x8E: give it the moment it needs (bounded,
	// for one that is refused meanwhile).
	for i := 0; i < 100 && !c.started.Load() && c.kicked.Load() == 0; i++ {
		time.Sleep(time.Millisecond)
	}
	srv.cfg.log.Info("client taken over by another node", "client", t.ClientID, "node", t.By)
	srv.stats.bpTakeovers.Add(1)
	c.takenOver()
}

// onClusterMessage delivers a message forwarded from the back plane: to
// every local non-shared subscription that matches, when asked, and to
// one local member of each shared group this node was picked for. It is
// never forwarded again, and not retained here: the back plane keeps the
// retained messages.
func (srv *Server) onClusterMessage(ctx context.Context, d backplane.Delivery) {
	m := d.Message
	if m == nil || !srv.joined(ctx) || srv.closing.Load() || srv.onHandoff(m) {
		return
	}
	srv.stats.countIn(m)
	if d.Node != srv.bp.ID() {
		srv.stats.bpReceived.Add(1) // not a shared delivery this node's own Forward picked it for
	}
	if !d.Mark.IsZero() && srv.Store != nil && !d.Mark.After(srv.bpMark) {
		// Stored before a crash and not yet acknowledged to the engine,
		// which delivers it again: taken once [v5 MQTT-4.3.3-3].
		srv.stats.bpDuplicates.Add(1)
		return
	}
	if d.Plain {
		// Retained here too (and stored, with a store): the local copy
		// answers a SUBSCRIBE while the back plane is out of reach.
		if err := srv.clusterStored(m, d.Mark); err != nil {
			srv.cfg.log.Warn("back plane: forwarded message not stored", "topic", m.Topic, "err", err)
		}
	}
	for _, g := range d.Groups {
		srv.routeGroup(m, g)
	}
	if len(d.Groups) > 0 && !d.Mark.IsZero() && srv.Store != nil && d.Mark.After(srv.bpMark) {
		// A shared delivery is stored by the member's own write; the mark
		// follows it (a crash between the two delivers it again).
		if srv.persist("back plane mark", store.Mark(srv.bpFeed(), d.Mark.String())) == nil {
			srv.bpMark = d.Mark
		}
	}
}

// onClusterBatch takes a batch of messages from the back plane's durable
// queue: with a store, the runs of plain deliveries are kept with one
// write (their queues and the last mark), then delivered in order; the
// rest go through onClusterMessage one by one.
func (srv *Server) onClusterBatch(ctx context.Context, ds []backplane.Delivery) {
	if srv.Store == nil || !srv.joined(ctx) {
		for _, d := range ds {
			srv.onClusterMessage(ctx, d)
		}
		return
	}
	var rs []routing
	var cs []store.Change
	var mark backplane.Mark
	flush := func() {
		if len(cs) > 0 {
			cs = append(cs, store.Mark(srv.bpFeed(), mark.String()))
			if err := srv.persist("messages", cs...); err != nil {
				srv.cfg.log.Warn("back plane: forwarded messages not stored", "messages", len(rs), "err", err)
				rs, cs = rs[:0], nil
				return
			}
			srv.bpMark = mark
		}
		for i := range rs {
			srv.commitRoute(&rs[i])
		}
		rs, cs = rs[:0], nil
	}
	for _, d := range ds {
		if d.Message == nil || srv.closing.Load() {
			continue
		}
		// A handoff message is plain (this node's own subscription to
		// handoffPrefix+ID+"/#") but no message to route: it ends the
		// wait of a session moving here (sharedClaim), after what came
		// before it in the batch.
		if !d.Plain || len(d.Groups) > 0 || d.Mark.IsZero() || strings.HasPrefix(d.Message.Topic, handoffPrefix) {
			flush()
			srv.onClusterMessage(ctx, d)
			continue
		}
		if !d.Mark.After(srv.bpMark) || !d.Mark.After(mark) {
			srv.stats.bpDuplicates.Add(1) // kept before a crash: taken once [v5 MQTT-4.3.3-3]
			continue
		}
		srv.stats.countIn(d.Message)
		if d.Node != srv.bp.ID() {
			srv.stats.bpReceived.Add(1)
		}
		r, more := srv.prepareRoute(d.Message, nil, nil)
		rs = append(rs, r)
		cs = append(cs, more...)
		mark = d.Mark
	}
	flush()
}

// bpFeed names the back plane's mark in the store (store.OpMark).
const bpFeed = "backplane"

// bpFeed is the name of this node's back plane mark in the store: with a
// store the nodes share (store.Shared), one per node, by its ID. Such a
// mark is written but not read at start (sessions load when their
// clients connect, not with Load): after a crash, a message the engine
// gives the node again may be delivered twice.
func (srv *Server) bpFeed() string {
	if srv.shStore != nil {
		return bpFeed + "/" + srv.bp.ID()
	}
	return bpFeed
}

// clusterStored delivers a message forwarded from the back plane, as
// publishStored does, and with a store keeps the delivery's mark in the
// same write as the message's queues, so that after a crash the engine's
// second delivery of it is skipped. A message that nothing stores (no
// persistent session gets it at QoS 1 or 2) costs no write.
func (srv *Server) clusterStored(m *Message, mk backplane.Mark) error {
	if srv.Store == nil || mk.IsZero() {
		_, err := srv.publishStored(m, nil, nil)
		return err
	}
	r, cs := srv.prepareRoute(m, nil, nil)
	if len(cs) > 0 {
		cs = append(cs, store.Mark(srv.bpFeed(), mk.String()))
		if err := srv.persist("message", cs...); err != nil {
			return err
		}
		srv.bpMark = mk
	}
	srv.commitRoute(&r)
	return nil
}

// routeGroup delivers m to one local member of group g, with the broker's
// strategy.
func (srv *Server) routeGroup(m *Message, g backplane.Group) {
	v, ok := srv.groups.Load(groupID{g.Name, g.Filter})
	if !ok {
		return // the last member left meanwhile
	}
	grp := v.(*shareGroup)
	var ms []shareMatch
	srv.shared.Match(m.Topic, func(_ string, k shareKey, sub subscription) bool {
		if k.g == grp {
			ms = append(ms, shareMatch{k, sub})
		}
		return true
	})
	slices.SortFunc(ms, func(a, b shareMatch) int { return cmp.Compare(a.key.s.seq, b.key.s.seq) })
	if len(ms) == 0 {
		return
	}
	srv.deliverShared(m, grp, ms, srv.shareStart(m, grp, len(ms)), nil, delivery{})
}
