package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/topic"
)

// Filter is one topic filter of a subscription and its options.
type Filter struct {
	Topic             string
	QoS               byte // maximum QoS
	NoLocal           bool // MQTT 5: not the client's own messages
	RetainAsPublished bool // MQTT 5: keep the RETAIN flag as published
	RetainHandling    byte // MQTT 5: 0 send retained, 1 only if new, 2 never
}

// SubscribeOptions is a subscription: its filters, its handler, and the
// SUBSCRIBE's MQTT 5 User Properties.
type SubscribeOptions struct {
	Filters []Filter
	// Handler receives the subscription's messages. Nil: read them with
	// Subscription.Messages.
	Handler Handler
	User    []packet.UserProperty
}

// Subscription is a subscription made by Subscribe. Its messages go to
// its handler or to Messages.
type Subscription struct {
	c        *Client
	filters  []Filter
	handler  Handler
	user     []packet.UserProperty
	id       uint32 // MQTT 5 Subscription Identifier, 0 if none
	catchAll bool

	// Under c.mu:
	Codes   []packet.ReasonCode // the SUBACK's, one per filter (set before Subscribe returns)
	Props   packet.Properties   // the SUBACK's properties
	q       session.Queue[delivery]
	running bool
	active  bool
	notify  chan struct{}
}

type delivery struct {
	m *Message
	e *ackEntry // to release when taken (auto ack over the buffer bound)
}

// Filters returns the subscription's filters.
func (s *Subscription) Filters() []Filter { return s.filters }

// ID returns the MQTT 5 Subscription Identifier the client gave the
// subscription, 0 if none (MQTT 3.1.1, or a server without them).
func (s *Subscription) ID() uint32 { return s.id }

// ctrlOp is a SUBSCRIBE or UNSUBSCRIBE awaiting its acknowledgement.
type ctrlOp struct {
	cn   *conn
	sub  *Subscription // SUBSCRIBE
	done chan struct{}
	ack  packet.Packet
	err  error
}

func (op *ctrlOp) finish(ack packet.Packet, err error) {
	op.ack, op.err = ack, err
	if op.done != nil {
		close(op.done)
	}
}

// Subscribe subscribes to filter at qos with handler h (nil: use
// Subscription.Messages), and waits for the SUBACK. See SubscribeWith.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte, h Handler) (*Subscription, error) {
	return c.SubscribeWith(ctx, SubscribeOptions{Filters: []Filter{{Topic: filter, QoS: qos}}, Handler: h})
}

// SubscribeWith sends one SUBSCRIBE with every filter of opts and waits
// for the SUBACK, whose reason codes are in Subscription.Codes. When
// every filter is refused it returns the subscription and a *ReasonError
// (the first code). With MQTT 5 and a server that has them, the
// subscription gets a Subscription Identifier, which routes its messages;
// otherwise messages are routed by matching the filters. Messages arrive
// on the handler from the SUBACK on; the subscription is made again on
// every connection that finds the server without the session (see
// Config.NoResubscribe).
func (c *Client) SubscribeWith(ctx context.Context, opts SubscribeOptions) (*Subscription, error) {
	if len(opts.Filters) == 0 {
		return nil, errors.New("client: Subscribe: no filter")
	}
	for _, f := range opts.Filters {
		if err := topic.ValidateFilter(f.Topic); err != nil {
			return nil, fmt.Errorf("client: Subscribe: %w", err)
		}
		if f.QoS > 2 || f.RetainHandling > 2 {
			return nil, fmt.Errorf("client: Subscribe %q: QoS %d / retain handling %d: use 0, 1 or 2", f.Topic, f.QoS, f.RetainHandling)
		}
	}
	s := &Subscription{c: c, filters: append([]Filter(nil), opts.Filters...), handler: opts.Handler, user: opts.User, active: true}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	cn := c.cn
	if cn == nil {
		c.mu.Unlock()
		return nil, ErrNotConnected
	}
	if cn.version == packet.V5 && !(c.serverProps.Has(packet.PropSubIDAvailable) && c.serverProps.SubIDAvailable == 0) {
		c.nextSub++
		if c.nextSub > 268_435_455 {
			c.nextSub = 1
		}
		s.id = c.nextSub
	}
	op, err := c.sendSubscribeLocked(cn, s, true)
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	// Routing starts now: a retained message may come right after the SUBACK.
	c.subs = append(c.subs, s)
	if s.id != 0 {
		c.subByID[s.id] = s
	}
	c.mu.Unlock()
	select {
	case <-op.done:
	case <-ctx.Done():
		c.mu.Lock()
		c.removeSubLocked(s)
		c.mu.Unlock()
		return nil, ctx.Err()
	}
	if op.err != nil {
		c.mu.Lock()
		c.removeSubLocked(s)
		c.mu.Unlock()
		return nil, op.err
	}
	sa := op.ack.(*packet.Suback)
	c.mu.Lock()
	defer c.mu.Unlock()
	s.Codes, s.Props = sa.ReasonCodes, sa.Properties
	allFailed := true
	for _, code := range sa.ReasonCodes {
		if !code.IsError() {
			allFailed = false
		}
	}
	if allFailed {
		c.removeSubLocked(s)
		return s, &ReasonError{Packet: packet.SUBACK, ReasonCode: sa.ReasonCodes[0], Properties: sa.Properties}
	}
	return s, nil
}

// sendSubscribeLocked queues the SUBSCRIBE of s on cn; wait makes an op
// with a done channel.
func (c *Client) sendSubscribeLocked(cn *conn, s *Subscription, wait bool) (*ctrlOp, error) {
	id, ok := c.out.Reserve()
	if !ok {
		return nil, errors.New("client: Subscribe: every packet identifier is in use")
	}
	p := &packet.Subscribe{PacketID: id}
	for _, f := range s.filters {
		p.Subscriptions = append(p.Subscriptions, packet.Subscription{Filter: f.Topic, QoS: f.QoS, NoLocal: f.NoLocal, RetainAsPublished: f.RetainAsPublished, RetainHandling: f.RetainHandling})
	}
	if cn.version == packet.V5 {
		if s.id != 0 {
			p.Properties.SubscriptionIDs = []uint32{s.id}
		}
		p.Properties.User = s.user
	}
	op := &ctrlOp{cn: cn, sub: s}
	if wait {
		op.done = make(chan struct{})
	}
	c.ctrl[id] = op
	cn.ctrl = append(cn.ctrl, p)
	cn.signal()
	return op, nil
}

// resubscribeLocked subscribes every active subscription again on cn.
func (c *Client) resubscribeLocked(cn *conn) {
	for _, s := range c.subs {
		if _, err := c.sendSubscribeLocked(cn, s, false); err != nil {
			c.log.Warn("resubscribe failed", "err", err)
		}
	}
}

func (c *Client) removeSubLocked(s *Subscription) {
	for i, x := range c.subs {
		if x == s {
			c.subs = append(c.subs[:i], c.subs[i+1:]...)
			break
		}
	}
	if s.id != 0 && c.subByID[s.id] == s {
		delete(c.subByID, s.id)
	}
	s.active = false
	s.notifyLocked()
}

// finishCtrl completes the SUBSCRIBE or UNSUBSCRIBE with packet id.
func (c *Client) finishCtrl(cn *conn, id uint16, ack packet.Packet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	op := c.ctrl[id]
	if op == nil || op.cn != cn {
		return
	}
	delete(c.ctrl, id)
	c.out.Unreserve(id)
	if op.sub != nil && op.done == nil {
		if sa, ok := ack.(*packet.Suback); ok {
			op.sub.Codes = sa.ReasonCodes
		}
	}
	op.finish(ack, nil)
}

// Unsubscribe removes the subscription's filters (one UNSUBSCRIBE) and
// waits for the UNSUBACK, whose MQTT 5 reason codes it returns. Its
// handler gets no message afterwards; Messages ends.
func (s *Subscription) Unsubscribe(ctx context.Context) ([]packet.ReasonCode, error) {
	c := s.c
	filters := make([]string, len(s.filters))
	for i, f := range s.filters {
		filters[i] = f.Topic
	}
	c.mu.Lock()
	c.removeSubLocked(s)
	c.mu.Unlock()
	return c.Unsubscribe(ctx, filters...)
}

// Unsubscribe sends UNSUBSCRIBE for filters and waits for the UNSUBACK.
// Subscriptions of this client with exactly these filters stop getting
// messages.
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) ([]packet.ReasonCode, error) {
	if len(filters) == 0 {
		return nil, errors.New("client: Unsubscribe: no filter")
	}
	for _, f := range filters {
		if err := topic.ValidateFilter(f); err != nil {
			return nil, fmt.Errorf("client: Unsubscribe: %w", err)
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	for _, s := range append([]*Subscription(nil), c.subs...) {
		if sameFilters(s.filters, filters) {
			c.removeSubLocked(s)
		}
	}
	cn := c.cn
	if cn == nil {
		c.mu.Unlock()
		return nil, ErrNotConnected
	}
	id, ok := c.out.Reserve()
	if !ok {
		c.mu.Unlock()
		return nil, errors.New("client: Unsubscribe: every packet identifier is in use")
	}
	op := &ctrlOp{cn: cn, done: make(chan struct{})}
	c.ctrl[id] = op
	cn.ctrl = append(cn.ctrl, &packet.Unsubscribe{PacketID: id, Filters: filters})
	c.mu.Unlock()
	cn.signal()
	select {
	case <-op.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if op.err != nil {
		return nil, op.err
	}
	return op.ack.(*packet.Unsuback).ReasonCodes, nil
}

func sameFilters(fs []Filter, names []string) bool {
	if len(fs) != len(names) {
		return false
	}
	for i := range fs {
		if fs[i].Topic != names[i] {
			return false
		}
	}
	return true
}

// matches reports whether one of s's filters matches name.
func (s *Subscription) matches(name string) bool {
	for _, f := range s.filters {
		ft := f.Topic
		if strings.HasPrefix(ft, "$share/") {
			if i := strings.IndexByte(ft[len("$share/"):], '/'); i >= 0 {
				ft = ft[len("$share/")+i+1:]
			}
		}
		if topic.Match(ft, name) {
			return true
		}
	}
	return false
}

// routeLocked hands m to every subscription it is for: by Subscription
// Identifier when it carries ours, else by filter; to the catch-all
// handler when none. e counts the deliveries.
func (c *Client) routeLocked(m *Message, e *ackEntry) {
	var targets []*Subscription
	if ids := m.Properties.SubscriptionIDs; len(ids) > 0 {
		for _, id := range ids {
			if s := c.subByID[id]; s != nil && !containsSub(targets, s) {
				targets = append(targets, s)
			}
		}
	}
	if targets == nil {
		for _, s := range c.subs {
			if s.matches(m.Topic) {
				targets = append(targets, s)
			}
		}
	}
	if targets == nil {
		targets = []*Subscription{c.catchAll}
	}
	for i, s := range targets {
		mm := m
		if i > 0 {
			cp := *m
			mm = &cp
		}
		s.pushLocked(mm, e)
	}
}

func containsSub(ss []*Subscription, s *Subscription) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// pushLocked queues one delivery on s and makes sure it is dispatched.
func (s *Subscription) pushLocked(m *Message, e *ackEntry) {
	c := s.c
	if s.catchAll && s.handler == nil {
		return // nobody wants it: acknowledged and dropped
	}
	full := s.q.Len() >= c.cfg.MaxBuffered
	if m.QoS == 0 && full {
		c.log.Warn("subscription buffer full (Config.MaxBuffered): QoS 0 message dropped", "topic", m.Topic)
		return
	}
	var d delivery
	d.m = m
	if e != nil {
		e.pending++
		m.entry = e
		switch {
		case c.cfg.ManualAck:
		case full:
			d.e = e // acknowledged when the handler takes it
		default:
			defer c.releaseLocked(e) // acknowledged now; after the push below
		}
	}
	s.q.Push(d)
	if s.handler != nil {
		if !s.running {
			s.running = true
			c.dispatchers.Add(1)
			go s.dispatch()
		}
	} else {
		s.notifyLocked()
	}
}

func (s *Subscription) notifyLocked() {
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
}

// popLocked takes the next delivery, releasing its held acknowledgement.
func (s *Subscription) popLocked() *Message {
	d := s.q.Pop()
	if d.e != nil {
		s.c.releaseLocked(d.e)
	}
	return d.m
}

// dispatch runs the handler on the queued messages, in order, and ends
// when the queue is empty.
func (s *Subscription) dispatch() {
	c := s.c
	defer c.dispatchers.Done()
	for {
		c.mu.Lock()
		if s.q.Len() == 0 {
			s.running = false
			c.mu.Unlock()
			return
		}
		m := s.popLocked()
		c.mu.Unlock()
		s.call(m)
	}
}

func (s *Subscription) call(m *Message) {
	defer func() {
		if r := recover(); r != nil {
			s.c.log.Error("message handler panicked", "topic", m.Topic, "panic", r)
		}
	}()
	s.handler(m)
}

// Messages returns the subscription's messages, in order, for a
// subscription without a handler: `for m := range sub.Messages(ctx)`.
// The sequence ends when ctx ends, the subscription is unsubscribed or the
// client disconnected. Use it from one goroutine at a time.
func (s *Subscription) Messages(ctx context.Context) iter.Seq[*Message] {
	return func(yield func(*Message) bool) {
		c := s.c
		for {
			c.mu.Lock()
			if s.q.Len() > 0 {
				m := s.popLocked()
				c.mu.Unlock()
				if !yield(m) {
					return
				}
				continue
			}
			if !s.active {
				c.mu.Unlock()
				return
			}
			if s.notify == nil {
				s.notify = make(chan struct{})
			}
			n := s.notify
			c.mu.Unlock()
			select {
			case <-n:
			case <-ctx.Done():
				return
			}
		}
	}
}

// Buffered returns the number of messages waiting for the handler or for
// Messages.
func (s *Subscription) Buffered() int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.q.Len()
}
