// Package memory is an in-process back plane: every node of a Cluster lives
// in the same program. It exists for tests: nodes can be cut off from the
// cluster (Partition), brought back (Heal) and killed without a goodbye
// (Kill), so that a broker's handling of each fault can be tested without an
// engine. It passes backplane/backplanetest like the real engines.
//
// Like the durable engines, it keeps a queue per node ID: a message
// forwarded to a node waits there until the node's handler returned for it,
// and a node that was partitioned, or killed and joined again under the same
// ID within Config.Keep, gets what it missed, in order. The queues live as
// long as the Cluster value (in the process's memory).
package memory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/backplane/internal/delay"
	"github.com/ternmq/tern/backplane/internal/route"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/topic"
)

// inboxSize bounds each node's queue of undelivered events; a sender waits
// (with its context) when it is full.
const inboxSize = 1024

// Cluster is one in-process back plane. The zero value is not usable: call
// New.
type Cluster struct {
	mu       sync.Mutex
	nodes    map[string]*Node
	table    route.Table
	retained map[string]*message.Message
	owners   map[string]string                      // client id → node
	wills    map[string]map[string]*message.Message // node → client id → will
	later    delay.Queue                            // dead nodes' wills waiting for their delay
	queues   map[string]*queue                      // node id → its durable queue
}

// queue is the messages forwarded to one node ID and not yet handled.
type queue struct {
	items []backplane.Delivery // in Mark order
	next  uint64               // the last Mark given
	keep  *time.Timer          // forgets a dead node after Keep
}

// New returns an empty cluster.
func New() *Cluster {
	return &Cluster{nodes: make(map[string]*Node), retained: make(map[string]*message.Message),
		owners: make(map[string]string), wills: make(map[string]map[string]*message.Message),
		queues: make(map[string]*queue)}
}

// Node is one member of a Cluster. It implements backplane.Node.
type Node struct {
	c     *Cluster
	cfg   backplane.Config
	local route.Local
	inbox chan func(context.Context)
	poke  chan struct{} // the queue has something new
	ctx   context.Context
	stop  context.CancelFunc
	done  chan struct{}

	// guarded by c.mu
	state     state
	mine      map[string]*message.Message // this node's wills, kept to register again after a heal
	leaseTime *time.Timer
	settle    *time.Timer // replaces the interest found at the join
}

type state int

const (
	live state = iota
	partitioned
	dead   // killed or lease lapsed: the cluster forgot it
	closed // Close was called
)

var _ backplane.Node = (*Node)(nil)

// Join adds a node to the cluster.
func (c *Cluster) Join(ctx context.Context, cfg backplane.Config) (*Node, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.nodes[cfg.ID]; ok && old.state != dead && old.state != closed {
		return nil, fmt.Errorf("backplane/memory: node ID %q is in use: give each node its own Config.ID", cfg.ID)
	}
	n := &Node{c: c, cfg: cfg, inbox: make(chan func(context.Context), inboxSize), poke: make(chan struct{}, 1),
		done: make(chan struct{}), mine: make(map[string]*message.Message)}
	n.ctx, n.stop = context.WithCancel(context.Background())
	c.nodes[cfg.ID] = n
	if q := c.queues[cfg.ID]; q != nil {
		// The node comes back: its queue and the interest it had wait for
		// it; that interest stays until the node has announced its own.
		if q.keep != nil {
			q.keep.Stop()
			q.keep = nil
		}
		n.settle = time.AfterFunc(cfg.Lease, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if n.state == live {
				c.table.Set(n.cfg.ID, n.local.Filters())
			}
		})
		n.poke <- struct{}{}
	} else {
		c.queues[cfg.ID] = &queue{}
	}
	go n.run()
	return n, nil
}

func (n *Node) run() {
	defer close(n.done)
	var last backplane.Mark
	for {
		select {
		case <-n.ctx.Done():
			return
		case f := <-n.inbox:
			f(n.ctx)
		case <-n.poke:
			for {
				d, ok := n.c.next(n, last)
				if !ok {
					break
				}
				n.cfg.OnMessage(n.ctx, d)
				if n.ctx.Err() != nil {
					return // killed: not acknowledged, delivered again
				}
				last = d.Mark
				n.c.ack(n.cfg.ID, d.Mark)
			}
		}
	}
}

// next returns the first delivery of n's queue after mark, if n is live.
func (c *Cluster) next(n *Node, after backplane.Mark) (backplane.Delivery, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queues[n.cfg.ID]
	if n.state != live || q == nil {
		return backplane.Delivery{}, false
	}
	for _, d := range q.items {
		if d.Mark.After(after) {
			return d, true
		}
	}
	return backplane.Delivery{}, false
}

// ack removes the deliveries up to mark from node id's queue.
func (c *Cluster) ack(id string, mark backplane.Mark) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queues[id]
	if q == nil {
		return
	}
	i := 0
	for i < len(q.items) && !q.items[i].Mark.After(mark) {
		i++
	}
	q.items = q.items[i:]
}

// ID returns the node's name.
func (n *Node) ID() string { return n.cfg.ID }

// check returns the error for a call on n in its state; c.mu held.
func (n *Node) check(op string) error {
	switch n.state {
	case partitioned:
		return backplane.Unreachable(op, errors.New("node is partitioned from the cluster"))
	case dead, closed:
		return fmt.Errorf("%s: %w", op, backplane.ErrClosed)
	}
	return nil
}

// Subscribe announces interest in filter. The count is kept even when the
// node is partitioned (the error then wraps ErrUnreachable): the interest is
// announced when it heals.
func (n *Node) Subscribe(ctx context.Context, filter string) error {
	if _, _, err := backplane.ParseFilter(filter); err != nil {
		return err
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.state >= dead {
		return fmt.Errorf("subscribe: %w", backplane.ErrClosed)
	}
	if n.local.Inc(filter) && n.state == live {
		n.c.table.Add(n.cfg.ID, filter)
	}
	return n.check("subscribe")
}

// Unsubscribe withdraws one count of interest in filter.
func (n *Node) Unsubscribe(ctx context.Context, filter string) error {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.state >= dead {
		return fmt.Errorf("unsubscribe: %w", backplane.ErrClosed)
	}
	last, ok := n.local.Dec(filter)
	if !ok {
		return fmt.Errorf("unsubscribe %q: %w", filter, backplane.ErrNotSubscribed)
	}
	if last && n.state == live {
		n.c.table.Remove(n.cfg.ID, filter)
	}
	return n.check("unsubscribe")
}

// sending is a node whose queue got something.
type sending struct {
	to *Node
}

// Forward sends m to the nodes with matching interest.
func (n *Node) Forward(ctx context.Context, m *message.Message) error {
	n.c.mu.Lock()
	if err := n.check("forward"); err != nil {
		n.c.mu.Unlock()
		return err
	}
	out := n.c.routeLocked(m, n.cfg.ID, false)
	n.c.mu.Unlock()
	return deliverAll(ctx, out)
}

// routeLocked queues the deliveries of m published on node from in the
// queues of the nodes with matching interest (live, partitioned or dead
// within Keep) and returns the live ones to wake; c.mu held.
func (c *Cluster) routeLocked(m *message.Message, from string, will bool) []sending {
	var out []sending
	for id, tg := range c.table.Route(m.Topic, from) {
		to, q := c.nodes[id], c.queues[id]
		if to == nil || to.state == closed || q == nil {
			continue
		}
		q.next++
		q.items = append(q.items, backplane.Delivery{Message: m, Node: from, Plain: tg.Plain || (will && id == from),
			Groups: tg.Groups, Will: will, Mark: backplane.Mark{Lo: q.next}})
		if to.state == live {
			out = append(out, sending{to})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].to.cfg.ID < out[j].to.cfg.ID })
	return out
}

// deliverAll wakes the nodes whose queues got something.
func deliverAll(_ context.Context, out []sending) error {
	for _, s := range out {
		s.to.wake()
	}
	return nil
}

func (n *Node) wake() {
	select {
	case n.poke <- struct{}{}:
	default:
	}
}

// post queues f for n's handler goroutine. A node that is gone drops it.
func (n *Node) post(ctx context.Context, f func(context.Context)) error {
	select {
	case n.inbox <- f:
		return nil
	case <-n.ctx.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("backplane/memory: forwarding to %s: %w", n.cfg.ID, ctx.Err())
	}
}

// SetRetained stores or, for an empty payload, deletes the retained message.
func (n *Node) SetRetained(ctx context.Context, m *message.Message) error {
	if len(m.Payload) == 0 { // [v5 MQTT-3.3.1-6] [v5 MQTT-3.3.1-7] [v3 MQTT-3.3.1-10] [v3 MQTT-3.3.1-11]
		return n.DeleteRetained(ctx, m.Topic)
	}
	if err := topic.ValidateName(m.Topic); err != nil {
		return fmt.Errorf("backplane/memory: retained message: %w", err)
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if err := n.check("set retained"); err != nil {
		return err
	}
	n.c.retained[m.Topic] = m // [v5 MQTT-3.3.1-5]
	return nil
}

// DeleteRetained deletes the retained message of name.
func (n *Node) DeleteRetained(ctx context.Context, name string) error {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if err := n.check("delete retained"); err != nil {
		return err
	}
	delete(n.c.retained, name)
	return nil
}

// MatchRetained returns the live retained messages matching filter, sorted by
// topic.
func (n *Node) MatchRetained(ctx context.Context, filter string) ([]*message.Message, error) {
	g, _, err := backplane.ParseFilter(filter)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if err := n.check("match retained"); err != nil {
		return nil, err
	}
	var out []*message.Message
	for name, m := range n.c.retained {
		if topic.Match(g.Filter, name) && !m.Expired(now) { // [v5 MQTT-3.3.2-5]
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out, nil
}

// Claim makes n the owner of clientID and tells the previous owner.
func (n *Node) Claim(ctx context.Context, clientID string) (string, error) {
	n.c.mu.Lock()
	if err := n.check("claim"); err != nil {
		n.c.mu.Unlock()
		return "", err
	}
	prev := n.c.owners[clientID]
	n.c.owners[clientID] = n.cfg.ID
	old := n.c.nodes[prev]
	n.c.mu.Unlock()
	if prev != "" && prev != n.cfg.ID && old != nil && old.state == live {
		t := backplane.Takeover{ClientID: clientID, By: n.cfg.ID}
		h := old.cfg.OnTakeover
		if err := old.post(ctx, func(hctx context.Context) { h(hctx, t) }); err != nil {
			return prev, err
		}
	}
	return prev, nil
}

// Release gives up clientID if n owns it.
func (n *Node) Release(ctx context.Context, clientID string) error {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if err := n.check("release"); err != nil {
		return err
	}
	if n.c.owners[clientID] == n.cfg.ID {
		delete(n.c.owners, clientID)
	}
	return nil
}

// SetWill registers the will of clientID.
func (n *Node) SetWill(ctx context.Context, clientID string, m *message.Message) error {
	if err := topic.ValidateName(m.Topic); err != nil {
		return fmt.Errorf("backplane/memory: will of %q: %w", clientID, err)
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.state >= dead {
		return fmt.Errorf("set will: %w", backplane.ErrClosed)
	}
	n.mine[clientID] = m
	if n.state == live {
		n.c.setWillLocked(n.cfg.ID, clientID, m)
	}
	return n.check("set will")
}

func (c *Cluster) setWillLocked(node, clientID string, m *message.Message) {
	ws := c.wills[node]
	if ws == nil {
		ws = make(map[string]*message.Message)
		c.wills[node] = ws
	}
	ws[clientID] = m
}

// ClearWill removes the will of clientID.
func (n *Node) ClearWill(ctx context.Context, clientID string) error {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.state >= dead {
		return fmt.Errorf("clear will: %w", backplane.ErrClosed)
	}
	delete(n.mine, clientID)
	if n.state == live {
		delete(n.c.wills[n.cfg.ID], clientID)
	}
	return n.check("clear will")
}

// Close leaves the cluster: interest, ownership and wills are withdrawn
// (wills are not published), and the handler goroutine ends.
func (n *Node) Close(ctx context.Context) error {
	n.c.mu.Lock()
	if n.state == live || n.state == partitioned {
		n.c.forgetLocked(n)
		delete(n.c.wills, n.cfg.ID)
	}
	if n.leaseTime != nil {
		n.leaseTime.Stop()
	}
	if n.settle != nil {
		n.settle.Stop()
	}
	if n.state != dead && n.state != closed {
		delete(n.c.queues, n.cfg.ID)
	}
	n.state = closed
	n.c.mu.Unlock()
	n.stop()
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("backplane/memory: closing %s: %w", n.cfg.ID, ctx.Err())
	}
}

// forgetLocked removes n's interest and ownership; c.mu held.
func (c *Cluster) forgetLocked(n *Node) {
	c.table.Drop(n.cfg.ID)
	for id, owner := range c.owners {
		if owner == n.cfg.ID {
			delete(c.owners, id)
		}
	}
}

func (c *Cluster) node(id string) (*Node, error) {
	n := c.nodes[id]
	if n == nil {
		return nil, fmt.Errorf("backplane/memory: no node %q in the cluster", id)
	}
	return n, nil
}

// Partition cuts node id off: its calls fail with ErrUnreachable, messages
// for it wait in its queue and, unless Heal comes first, its wills are
// published when its lease lapses.
func (c *Cluster) Partition(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if n.state != live {
		return nil
	}
	n.state = partitioned
	n.leaseTime = time.AfterFunc(n.cfg.Lease, func() {
		c.mu.Lock()
		if n.state != partitioned {
			c.mu.Unlock()
			return
		}
		out := c.dieLocked(n, partitioned)
		c.mu.Unlock()
		_ = deliverAll(context.Background(), out)
	})
	return nil
}

// Heal reconnects node id: it announces its interest and wills again. A node
// whose lease lapsed while partitioned comes back as a new member whose
// earlier wills were published.
func (c *Cluster) Heal(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if n.state != partitioned && n.state != dead {
		return nil
	}
	if n.leaseTime != nil {
		n.leaseTime.Stop()
	}
	if n.state == dead && n.ctx.Err() != nil {
		return nil // killed: gone for good
	}
	n.state = live
	c.table.Set(id, n.local.Filters())
	if q := c.queues[id]; q != nil && q.keep != nil {
		q.keep.Stop()
		q.keep = nil
	}
	for cid, m := range n.mine {
		c.setWillLocked(id, cid, m)
	}
	n.wake()
	return nil
}

// Kill makes node id die now, without Close: the cluster publishes its
// wills, its handlers are no longer called, and what is forwarded to it
// waits in its queue for a node that joins under its ID.
func (c *Cluster) Kill(id string) error {
	c.mu.Lock()
	n, err := c.node(id)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	if n.state == dead || n.state == closed {
		c.mu.Unlock()
		return nil
	}
	if n.leaseTime != nil {
		n.leaseTime.Stop()
	}
	n.stop()
	out := c.dieLocked(n, n.state)
	c.mu.Unlock()
	return deliverAll(context.Background(), out)
}

// dieLocked takes n's wills and returns the deliveries of those without a
// delay; its interest and queue stay for Keep; c.mu held.
func (c *Cluster) dieLocked(n *Node, was state) []sending {
	n.state = dead
	for id, owner := range c.owners {
		if owner == n.cfg.ID {
			delete(c.owners, id)
		}
	}
	if q := c.queues[n.cfg.ID]; q != nil {
		q.keep = time.AfterFunc(n.cfg.Keep, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.nodes[n.cfg.ID] == n && n.state == dead {
				c.table.Drop(n.cfg.ID)
				delete(c.queues, n.cfg.ID)
			}
		})
	}
	ws := c.wills[n.cfg.ID]
	delete(c.wills, n.cfg.ID)
	ids := make([]string, 0, len(ws))
	for cid := range ws {
		ids = append(ids, cid)
	}
	sort.Strings(ids)
	var out []sending
	for _, cid := range ids {
		d, m := delay.Of(ws[cid])
		if d > 0 {
			// Published no earlier than the death plus the Will Delay
			// Interval [v5 MQTT-3.1.2-8]; the back plane cannot know of
			// the session, so it always publishes it then.
			from := n.cfg.ID
			c.later.After(d, func() {
				c.mu.Lock()
				out := c.willLocked(m, from)
				c.mu.Unlock()
				_ = deliverAll(context.Background(), out)
			})
			continue
		}
		out = append(out, c.willLocked(m, n.cfg.ID)...)
	}
	return out
}

// willLocked stores will m of dead node from if it is retained and returns
// its deliveries; c.mu held.
func (c *Cluster) willLocked(m *message.Message, from string) []sending {
	if m.Retain {
		if len(m.Payload) == 0 {
			delete(c.retained, m.Topic)
		} else {
			c.retained[m.Topic] = m
		}
	}
	return c.routeLocked(m, from, true)
}

// String describes the cluster's nodes and their states, for test logs.
func (c *Cluster) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for id, n := range c.nodes {
		fmt.Fprintf(&b, "%s:%d ", id, n.state)
	}
	return b.String()
}
