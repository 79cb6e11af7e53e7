package broker

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/topic"
)

func protocolError(t packet.Type, spec, msg string) error {
	return &packet.ProtocolError{Code: packet.ProtocolErrorCode, Packet: t, Spec: spec, Msg: msg}
}

// onPublish handles a PUBLISH from the client.
func (c *conn) onPublish(p *packet.Publish) error {
	srv := c.srv
	srv.stats.msgsIn.Add(1)
	if c.version == packet.V5 {
		if p.Properties.TopicAlias != 0 {
			// The broker announces no Topic Alias Maximum, so any alias
			// exceeds it [v5 MQTT-3.2.2-17] (a client must not send one).
			return &packet.ProtocolError{Code: packet.TopicAliasInvalid, Packet: packet.PUBLISH,
				Spec: "v5 MQTT-3.3.2-9", Msg: "topic alias above the Topic Alias Maximum 0"}
		}
		if len(p.Properties.SubscriptionIDs) > 0 {
			return protocolError(packet.PUBLISH, "v5 MQTT-3.3.4-6", "subscription identifier in a PUBLISH from a client")
		}
	}
	if err := topic.ValidateName(p.Topic); err != nil {
		return &packet.ProtocolError{Code: packet.TopicNameInvalid, Packet: packet.PUBLISH, Spec: "v5 MQTT-4.7.3-1", Msg: err.Error()}
	}
	allowed := srv.cfg.authz.Authorize(srv.ctx, &c.info, ActionPublish, p.Topic)
	code := packet.Success
	if !allowed {
		code = packet.NotAuthorized
		c.log.Info("publish not authorized", "client", c.info.ClientID, "topic", p.Topic)
	}
	route := allowed
	if p.QoS == 2 {
		s := c.sess
		s.mu.Lock()
		if _, dup := s.incoming[p.PacketID]; dup {
			route = false // [v5 MQTT-4.3.3-10] [v3 MQTT-4.3.3-2] deliver once
		} else if allowed {
			if s.incoming == nil {
				s.incoming = map[uint16]struct{}{}
			}
			s.incoming[p.PacketID] = struct{}{}
		}
		s.mu.Unlock()
	}
	if route {
		m := &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: c.info.ClientID, Created: time.Now()}
		if c.version == packet.V5 {
			m.Properties = p.Properties
			if p.Properties.MessageExpiry > 0 {
				m.Expires = m.Created.Add(time.Duration(p.Properties.MessageExpiry) * time.Second)
			}
		}
		srv.publish(m, c.sess)
		srv.observe(Event{Kind: EventPublish, Client: &c.info, Topic: m.Topic, QoS: m.QoS, Message: m})
	}
	switch p.QoS {
	case 1:
		if c.version != packet.V5 {
			code = packet.Success // 3.1.1 has no way to say no; the message is dropped
		}
		c.send(ctrlPkt{t: packet.PUBACK, id: p.PacketID, code: code}) // [v5 MQTT-4.3.2-4] [v3 MQTT-4.3.2-2]
	case 2:
		if c.version != packet.V5 {
			code = packet.Success
		}
		c.send(ctrlPkt{t: packet.PUBREC, id: p.PacketID, code: code}) // [v5 MQTT-4.3.3-8] [v3 MQTT-4.3.3-2]
	}
	return nil
}

// publish routes m: stores or clears the retained message and delivers m
// to every matching subscription. from is the publishing session (for
// MQTT 5 No Local), nil for the broker's own messages.
func (srv *Server) publish(m *Message, from *session) {
	if m.Retain {
		if len(m.Payload) == 0 {
			srv.retained.delete(m.Topic) // [v5 MQTT-3.3.1-6] [v3 MQTT-3.3.1-10]
		} else {
			srv.retained.set(m) // [v5 MQTT-3.3.1-5] [v3 MQTT-3.3.1-5]
		}
	}
	srv.route(m, from)
}

// match is one subscription that a message matched.
type match struct {
	s   *session
	sub subscription
}

var matchPool = sync.Pool{New: func() any { s := make([]match, 0, 64); return &s }}

// route delivers m to every session with a matching subscription: one
// copy per session at the highest matching QoS (MQTT 3.1.1 section 3.3.5,
// MQTT 5 section 4.7.4), or one per subscription when so configured.
func (srv *Server) route(m *Message, from *session) {
	mp := matchPool.Get().(*[]match)
	ms := (*mp)[:0]
	srv.subs.Match(m.Topic, func(_ string, s *session, sub subscription) bool {
		ms = append(ms, match{s, sub})
		return true
	})
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
	for i := 0; i < len(ms); {
		s := ms[i].s
		j := i + 1
		if !srv.CopyPerSubscription {
			for j < len(ms) && ms[j].s == s {
				j++
			}
		}
		srv.deliverTo(m, from, ms[i:j])
		i = j
	}
	clear(ms)
	*mp = ms[:0]
	matchPool.Put(mp)
}

// deliverTo delivers m to one session whose subscriptions subs matched.
func (srv *Server) deliverTo(m *Message, from *session, subs []match) {
	s := subs[0].s
	d := delivery{msg: m}
	any := false
	for _, mt := range subs {
		sub := mt.sub
		if sub.NoLocal && s == from {
			continue // [v5 MQTT-3.8.3-3]
		}
		any = true
		d.qos = max(d.qos, min(m.QoS, sub.QoS)) // [v5 MQTT-3.8.4-8] [v3 MQTT-3.8.4-6]
		if sub.RetainAsPublished {
			d.retain = d.retain || m.Retain // [v5 MQTT-3.3.1-13]
		}
		if sub.SubID != 0 {
			d.subIDs = append(d.subIDs, sub.SubID) // [v5 MQTT-3.3.4-3]
		}
	}
	if !any {
		return
	}
	if ra := srv.cfg.recvAuthz; ra != nil && s.inline == nil {
		s.mu.Lock()
		info := s.info
		s.mu.Unlock()
		if !ra.AuthorizeReceive(&info, m.Topic) {
			srv.dropped(s, m, errDenied)
			return
		}
	}
	if ok, why := s.deliver(srv, d); !ok {
		srv.dropped(s, m, why)
	}
}

// dropped counts and reports a message that was not delivered to s.
func (srv *Server) dropped(s *session, m *Message, why error) {
	if why == errOffline {
		srv.stats.offlineQoS0.Add(1)
		return // QoS 0 to an offline client is discarded by design, not lost
	}
	srv.stats.dropped.Add(1)
	if len(srv.Observers) > 0 {
		s.mu.Lock()
		info := s.info
		s.mu.Unlock()
		srv.observe(Event{Kind: EventDrop, Client: &info, Topic: m.Topic, QoS: m.QoS, Message: m, Err: why})
	}
}

// onSubscribe handles a SUBSCRIBE: one reason code per filter, in order
// [v5 MQTT-3.8.4-6] [v5 MQTT-3.9.3-1] [v3 MQTT-3.8.4-5], then the
// retained messages of the new subscriptions.
//
// The client sees the SUBACK, then the retained messages, then messages
// published after the subscription: the session's queue is held while
// the subscriptions are added and the retained messages collected, and
// the SUBACK travels in the backlog ahead of them. Otherwise a message
// published meanwhile could overtake the older retained one, leaving the
// client with a stale value.
func (c *conn) onSubscribe(p *packet.Subscribe) {
	srv := c.srv
	s := c.sess
	v5 := c.version == packet.V5
	codes := make([]packet.ReasonCode, len(p.Subscriptions))
	var subID uint32
	if len(p.Properties.SubscriptionIDs) > 0 {
		subID = p.Properties.SubscriptionIDs[0]
	}
	s.holdQueue(true)
	defer func() {
		s.holdQueue(false)
		c.kick()
	}()
	var retained []delivery
	for i, rs := range p.Subscriptions {
		if err := topic.ValidateFilter(rs.Filter); err != nil {
			codes[i] = failCode(v5, packet.TopicFilterInvalid)
			c.log.Info("subscription refused: invalid filter", "client", c.info.ClientID, "filter", rs.Filter, "err", err)
			continue
		}
		if topic.IsShared(rs.Filter) {
			// Shared subscriptions come with MQTT 5 support.
			codes[i] = failCode(v5, packet.SharedSubscriptionsNotSupported)
			continue
		}
		if !srv.cfg.authz.Authorize(srv.ctx, &c.info, ActionSubscribe, rs.Filter) {
			codes[i] = failCode(v5, packet.NotAuthorized)
			c.log.Info("subscription not authorized", "client", c.info.ClientID, "filter", rs.Filter)
			continue
		}
		sub := subscription{QoS: rs.QoS, NoLocal: rs.NoLocal, RetainAsPublished: rs.RetainAsPublished, RetainHandling: rs.RetainHandling, SubID: subID}
		existed := srv.subscribe(s, rs.Filter, sub) // [v5 MQTT-3.8.4-3] [v3 MQTT-3.8.4-3] replaces
		codes[i] = packet.ReasonCode(rs.QoS)        // granted QoS
		if sub.RetainHandling == 0 || sub.RetainHandling == 1 && !existed {
			retained = srv.retainedFor(retained, rs.Filter, sub)
		}
		srv.observe(Event{Kind: EventSubscribe, Client: &c.info, Topic: rs.Filter, QoS: rs.QoS})
	}
	// [v5 MQTT-3.8.4-1] [v3 MQTT-3.8.4-1] the SUBACK, then the retained messages.
	ack := delivery{ctl: &packet.Suback{PacketID: p.PacketID, ReasonCodes: codes}}
	s.mu.Lock()
	s.backlog.push(ack)
	for _, d := range retained {
		s.backlog.push(d)
	}
	s.mu.Unlock()
}

func failCode(v5 bool, code packet.ReasonCode) packet.ReasonCode {
	if v5 {
		return code
	}
	return packet.V3SubackFailure
}

// subscribe adds or replaces a subscription and reports whether one
// existed for the filter.
func (srv *Server) subscribe(s *session, filter string, sub subscription) bool {
	s.mu.Lock()
	_, existed := s.subs[filter]
	s.subs[filter] = sub
	s.mu.Unlock()
	if !existed {
		srv.stats.subscriptions.Add(1)
	}
	srv.subs.Add(filter, s, sub)
	return existed
}

// unsubscribe removes a subscription from the trie (the caller updates
// s.subs) and reports whether the trie had it.
func (srv *Server) unsubscribe(s *session, filter string) bool {
	if srv.subs.Remove(filter, s) {
		srv.stats.subscriptions.Add(-1)
		return true
	}
	return false
}

// onUnsubscribe handles an UNSUBSCRIBE [v5 MQTT-3.10.4-4] [v3 MQTT-3.10.4-4].
func (c *conn) onUnsubscribe(p *packet.Unsubscribe) {
	srv := c.srv
	ack := &packet.Unsuback{PacketID: p.PacketID}
	for _, f := range p.Filters {
		s := c.sess
		s.mu.Lock()
		_, ok := s.subs[f]
		delete(s.subs, f)
		s.mu.Unlock()
		if ok {
			srv.unsubscribe(s, f)
			srv.observe(Event{Kind: EventUnsubscribe, Client: &c.info, Topic: f})
		}
		code := packet.Success
		if !ok {
			code = packet.NoSubscriptionExisted
		}
		ack.ReasonCodes = append(ack.ReasonCodes, code)
	}
	c.send(ctrlPkt{p: ack})
}

// retainedFor appends to ds the retained messages matching filter, with
// the RETAIN flag set [v5 MQTT-3.3.1-8] [v3 MQTT-3.3.1-8]. They go to the
// session's backlog, which the queue limit does not apply to, so none of
// them is lost however many there are.
func (srv *Server) retainedFor(ds []delivery, filter string, sub subscription) []delivery {
	now := time.Now()
	srv.retained.match(filter, func(m *Message) {
		if m.expired(now) {
			return
		}
		d := delivery{msg: m, qos: min(m.QoS, sub.QoS), retain: true}
		if sub.SubID != 0 {
			d.subIDs = []uint32{sub.SubID}
		}
		ds = append(ds, d)
	})
	return ds
}

// retainedStore holds the last retained message of each topic.
type retainedStore struct {
	mu   sync.RWMutex
	msgs map[string]*Message
}

func (r *retainedStore) init() { r.msgs = map[string]*Message{} }

func (r *retainedStore) set(m *Message) {
	r.mu.Lock()
	r.msgs[m.Topic] = m
	r.mu.Unlock()
}

func (r *retainedStore) delete(name string) {
	r.mu.Lock()
	delete(r.msgs, name)
	r.mu.Unlock()
}

func (r *retainedStore) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.msgs)
}

// match calls fn for each retained message whose topic matches filter.
// fn runs under the read lock and must not call back into the store.
func (r *retainedStore) match(filter string, fn func(*Message)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !strings.ContainsAny(filter, "+#") {
		if m := r.msgs[filter]; m != nil {
			fn(m)
		}
		return
	}
	for name, m := range r.msgs {
		if topic.Match(filter, name) {
			fn(m)
		}
	}
}
