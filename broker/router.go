package broker

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/topic"
)

func protocolError(t packet.Type, spec, msg string) error {
	return &packet.ProtocolError{Code: packet.ProtocolErrorCode, Packet: t, Spec: spec, Msg: msg}
}

// onPublish handles a PUBLISH from the client.
func (c *conn) onPublish(p *packet.Publish) error {
	srv := c.srv
	q := qosIndex(p.QoS)
	srv.stats.msgsIn[q].Add(1)
	srv.stats.payloadIn[q].Add(uint64(len(p.Payload)))
	v5 := c.version == packet.V5
	if v5 {
		// A Topic Alias sets or names the topic, for this connection
		// (section 3.3.2.3.4) [v5 MQTT-3.3.2-7]: above the Topic Alias
		// Maximum of the CONNACK it is DISCONNECT 0x94 [v5 MQTT-3.2.2-17]
		// [v5 MQTT-3.3.2-9], one never set a Protocol Error.
		if err := c.aliasIn.Resolve(p); err != nil {
			return err
		}
		if len(p.Properties.SubscriptionIDs) > 0 {
			return protocolError(packet.PUBLISH, "v5 MQTT-3.3.4-6", "subscription identifier in a PUBLISH from a client")
		}
	}
	if p.QoS > srv.cfg.maxQoS {
		// [v5 MQTT-3.2.2-11] the client was told the Maximum QoS; 3.1.1
		// clients cannot be told and are disconnected too (as Mosquitto's max_qos).
		return &packet.ProtocolError{Code: packet.QoSNotSupported, Packet: packet.PUBLISH, Spec: "v5 MQTT-3.2.2-11",
			Msg: fmt.Sprintf("QoS %d above the Maximum QoS %d", p.QoS, srv.cfg.maxQoS)}
	}
	if p.Retain && srv.RetainUnavailable {
		// [v5 MQTT-3.2.2-14] the client was told Retain Available 0.
		return &packet.ProtocolError{Code: packet.RetainNotSupported, Packet: packet.PUBLISH, Spec: "v5 MQTT-3.2.2-14",
			Msg: "retained messages are not available"}
	}
	if err := topic.ValidateName(p.Topic); err != nil {
		return &packet.ProtocolError{Code: packet.TopicNameInvalid, Packet: packet.PUBLISH, Spec: "v5 MQTT-4.7.3-1", Msg: err.Error()}
	}
	allowed := srv.authorize(&c.info, ActionPublish, p.Topic)
	code := packet.Success
	var reason string
	if !allowed {
		code = packet.NotAuthorized
		reason = "not authorized to publish to " + p.Topic
		c.log.Info("publish not authorized", "client", c.info.ClientID, userAttr(c.info.Username), "topic", p.Topic)
	}
	// A QoS 1 PUBLISH is a new message every time, DUP or not: once its
	// PUBACK is sent its packet id is free [v5 MQTT-4.3.2-5].
	route := allowed
	if p.QoS == 2 && allowed {
		// Only an accepted one is remembered: after a PUBREC >= 0x80 the
		// packet id starts a new message [v5 MQTT-4.3.3-9]. One more
		// unacknowledged than the Receive Maximum the client was given is
		// DISCONNECT 0x93 (section 3.3.4).
		s := c.sess
		s.mu.Lock()
		first, err := s.in.Receive(p.PacketID)
		s.mu.Unlock()
		if err != nil {
			return err
		}
		route = first // [v5 MQTT-4.3.3-10] [v3 MQTT-4.3.3-2] deliver once
	}
	if srv.batchesPublishes() {
		// Stored, forwarded, acknowledged and delivered in batches: see queuePublish.
		return c.queuePublish(p, route, code, reason)
	}
	if route {
		// The MQTT 5 properties are kept unaltered for the subscribers
		// [v5 MQTT-3.3.2-4] [v5 MQTT-3.3.2-15] [v5 MQTT-3.3.2-16]
		// [v5 MQTT-3.3.2-17] [v5 MQTT-3.3.2-18] [v5 MQTT-3.3.2-20], but
		// for the Topic Alias, which belongs to this connection; a 3.1.1
		// PUBLISH has none.
		m := message.FromPublish(p, c.info.ClientID, time.Now())
		n, _ := srv.publishStored(m, c.sess, nil)
		if err := srv.clusterPublish(m); err != nil && p.QoS > 0 {
			// Not acknowledged as if the other nodes had it: 0x80, and a
			// 3.1.1 client, which cannot be told, is disconnected without
			// its acknowledgement (cluster.go).
			if !v5 {
				return err
			}
			code, reason = packet.UnspecifiedError, "the broker could not forward the message to its other nodes"
			if p.QoS == 2 {
				c.sess.mu.Lock()
				c.sess.in.Release(p.PacketID) // a new message after a PUBREC >= 0x80 [v5 MQTT-4.3.3-9]
				c.sess.mu.Unlock()
			}
		}
		if srv.bp != nil {
			n++ // other nodes may have subscribers: this one cannot tell
		}
		if srv.backlogged.Load() && srv.backlogged.Swap(false) {
			// A subscriber's queue is growing: let the writers run before
			// this publisher's next message, so that a flood queues less
			// in the broker (lower latency) at a small cost in throughput.
			runtime.Gosched()
		}
		if n == 0 && p.QoS > 0 {
			code = packet.NoMatchingSubscribers // [v5] section 3.4.2.1: the message is accepted all the same
		}
		srv.observe(Event{Kind: EventPublish, Client: &c.info, Topic: m.Topic, QoS: m.QoS, Message: m})
	}
	if !v5 {
		// 3.1.1 has no way to say no; a refused message is acknowledged
		// as usual and dropped [v3 MQTT-3.3.5-2].
		code = packet.Success
	}
	// The answer the QoS calls for [v5 MQTT-3.3.4-1]: none for QoS 0.
	// The answer Table 3.4 gives the QoS: none, PUBACK or PUBREC [v3 MQTT-3.3.4-1].
	switch p.QoS {
	case 1:
		c.send(c.ack(packet.PUBACK, p.PacketID, code, reason)) // [v5 MQTT-4.3.2-4] [v3 MQTT-4.3.2-2]
	case 2:
		c.send(c.ack(packet.PUBREC, p.PacketID, code, reason)) // [v5 MQTT-4.3.3-8] [v3 MQTT-4.3.3-2]
	}
	return nil
}

// ack builds an acknowledgement for the writer: spelled out in place,
// unless an MQTT 5 reason string goes with it, which it does only when
// the client asked for problem information [v5 MQTT-3.1.2-29].
func (c *conn) ack(t packet.Type, id uint16, code packet.ReasonCode, reason string) ctrlPkt {
	if reason == "" || !c.problem {
		return ctrlPkt{t: t, id: id, code: code}
	}
	p := ackPacket(t, id, code)
	packet.Diagnostics(p).ReasonString = reason
	return ctrlPkt{p: p}
}

// publish routes m: stores or clears the retained message and delivers m
// to every matching subscription. from is the publishing session (for
// MQTT 5 No Local), nil for the broker's own messages.
// It returns the number of sessions the message went to.
func (srv *Server) publish(m *Message, from *session) int {
	n, _ := srv.publishStored(m, from, nil)
	srv.clusterPublish(m) // to the other nodes; a failure is logged there
	return n
}

// publishStored is publish that stores, with Server.Store, the message
// in the queues of the persistent sessions it goes to and as the
// retained message, together with extra, before delivering anything.
// When the store fails nothing is published and the error is returned.
func (srv *Server) publishStored(m *Message, from *session, extra []store.Change) (int, error) {
	if srv.Store != nil {
		return srv.routeStored(m, from, extra) // retains m once it is stored
	}
	srv.retain(m)
	return srv.route(m, from), nil
}

// retain stores or clears the retained message of m's topic, as m says.
func (srv *Server) retain(m *Message) {
	// RETAIN 0 leaves the retained messages as they are [v5 MQTT-3.3.1-8] [v3 MQTT-3.3.1-12].
	if m.Retain {
		if len(m.Payload) == 0 {
			// [v5 MQTT-3.3.1-7]: an empty retained message is never stored.
			srv.retained.delete(m.Topic) // [v5 MQTT-3.3.1-6] [v3 MQTT-3.3.1-10] [v3 MQTT-3.3.1-11]
		} else {
			// Replaces the message retained before, whatever the QoS
			// [v5 MQTT-3.3.1-5] [v3 MQTT-3.3.1-5] [v3 MQTT-3.3.1-7].
			srv.retained.set(m)
		}
	}
}

// match is one subscription that a message matched.
type match struct {
	s   *session
	sub subscription
}

var matchPool = sync.Pool{New: func() any { s := make([]match, 0, 64); return &s }}

// route delivers m to every session with a matching subscription
// [v3 MQTT-4.5.0-1], whose filter matches the topic name by the rules of
// section 4.7 [v3 MQTT-3.3.2-3]: one copy per session at the highest
// matching QoS (MQTT 3.1.1 section 3.3.5, MQTT 5 section 4.7.4), or one
// per subscription when so configured; and to one member of every shared
// subscription group that matches. It returns the number of sessions and
// groups that m matched.
func (srv *Server) route(m *Message, from *session) int {
	mp := matchPool.Get().(*[]match)
	ms := (*mp)[:0]
	// The subscriptions whose filter matches the topic name (section
	// 4.7) [v5 MQTT-3.3.2-3].
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
	n := 0
	for i := 0; i < len(ms); {
		s := ms[i].s
		j := i + 1 // CopyPerSubscription: one copy per subscription [v5 MQTT-3.3.4-5]
		if !srv.CopyPerSubscription {
			for j < len(ms) && ms[j].s == s {
				j++
			}
		}
		if srv.deliverTo(m, from, ms[i:j]) { // every matching session [v5 MQTT-4.5.0-1]
			n++
		}
		i = j
	}
	clear(ms)
	*mp = ms[:0]
	matchPool.Put(mp)
	if srv.sharedSubs.Load() > 0 && srv.bp == nil { // with a back plane they come through onClusterMessage
		n += srv.routeShared(m)
	}
	srv.stats.routed(m)
	return n
}

// deliverTo delivers m to one session whose subscriptions subs matched.
// It reports false when No Local leaves none of them.
func (srv *Server) deliverTo(m *Message, from *session, subs []match) bool {
	s := subs[0].s
	d, any := buildDelivery(m, from, subs)
	if !any {
		return false
	}
	if !srv.mayReceive(s, m) {
		srv.dropped(s, m, errDenied)
		return true
	}
	if ok, why := s.deliver(srv, d); !ok {
		srv.dropped(s, m, why)
	}
	return true
}

// buildDelivery is what one session whose subscriptions subs matched m
// gets: false when No Local leaves none of them.
func buildDelivery(m *Message, from *session, subs []match) (delivery, bool) {
	s := subs[0].s
	d := delivery{msg: m}
	any := false
	for _, mt := range subs {
		sub := mt.sub
		if sub.NoLocal && s == from {
			continue // [v5 MQTT-3.8.3-3]
		}
		any = true
		d.qos = max(d.qos, min(m.QoS, sub.QoS)) // [v5 MQTT-3.8.4-8] [v3 MQTT-3.8.4-6] [v5 MQTT-3.3.4-2] [v3 MQTT-3.3.5-1]
		if sub.RetainAsPublished {
			d.retain = d.retain || m.Retain // [v5 MQTT-3.3.1-13]
		} // else RETAIN 0 [v5 MQTT-3.3.1-12] [v3 MQTT-3.3.1-9]
		if sub.SubID != 0 {
			d.subIDs = append(d.subIDs, sub.SubID) // [v5 MQTT-3.3.4-3] [v5 MQTT-3.3.4-4]
		}
	}
	return d, any
}

// mayReceive asks a ReceiveAuthorizer, if there is one, whether s may
// receive m.
func (srv *Server) mayReceive(s *session, m *Message) bool {
	ra := srv.cfg.recvAuthz
	if ra == nil || s.inline != nil {
		return true
	}
	s.mu.Lock()
	info := s.info
	s.mu.Unlock()
	return srv.authorizeReceive(ra, &info, m.Topic)
}

// onSubscribe handles a SUBSCRIBE: one reason code per filter, in order
// [v5 MQTT-3.8.4-6] [v5 MQTT-3.9.3-1] [v3 MQTT-3.8.4-5] [v3 MQTT-3.9.3-1],
// then the retained messages of the new subscriptions. Several filters
// are handled one after the other, as if each came in a SUBSCRIBE of its
// own, with one SUBACK for all [v3 MQTT-3.8.4-4].
//
// The client sees the SUBACK, then the retained messages, then messages
// published after the subscription: the session's queue is held while
// the subscriptions are added and the retained messages collected, and
// the SUBACK travels in the backlog ahead of them. Otherwise a message
// published meanwhile could overtake the older retained one, leaving the
// client with a stale value.
func (c *conn) onSubscribe(p *packet.Subscribe) error {
	srv := c.srv
	s := c.sess
	v5 := c.version == packet.V5
	codes := make([]packet.ReasonCode, len(p.Subscriptions))
	var subID uint32
	if len(p.Properties.SubscriptionIDs) > 0 {
		subID = p.Properties.SubscriptionIDs[0]
	}
	for _, rs := range p.Subscriptions {
		if rs.NoLocal && topic.IsShared(rs.Filter) {
			// [v5 MQTT-3.8.3-4] No Local on a shared subscription: DISCONNECT 0x82.
			return protocolError(packet.SUBSCRIBE, "v5 MQTT-3.8.3-4", "No Local on shared subscription "+rs.Filter)
		}
	}
	s.holdQueue(true)
	defer func() {
		s.holdQueue(false)
		c.kick()
	}()
	var retained []delivery
	var kept []store.Change // the subscriptions to store, for a persistent session
	var keptAt []int        // their places in codes
	// Each filter as if it came in a SUBSCRIBE of its own, the answers
	// together in one SUBACK [v5 MQTT-3.8.4-5].
	for i, rs := range p.Subscriptions {
		refuse := func(code packet.ReasonCode, why string) {
			codes[i] = failCode(v5, code)
			c.log.Info("subscription refused", "client", c.info.ClientID, userAttr(c.info.Username), "filter", rs.Filter, "code", code.String(), "reason", why)
		}
		if err := topic.ValidateFilter(rs.Filter); err != nil {
			refuse(packet.TopicFilterInvalid, err.Error())
			continue
		}
		_, inner, shared := isSharedFilter(rs.Filter)
		if !shared {
			inner = rs.Filter
		}
		switch {
		case shared && srv.SharedSubscriptionsUnavailable:
			refuse(packet.SharedSubscriptionsNotSupported, "shared subscriptions are turned off")
			continue
		case srv.WildcardSubscriptionsUnavailable && strings.ContainsAny(inner, "+#"): // [v3 MQTT-3.8.3-2]
			refuse(packet.WildcardSubscriptionsNotSupported, "wildcard subscriptions are turned off")
			continue
		case subID != 0 && srv.SubscriptionIDsUnavailable:
			refuse(packet.SubscriptionIdentifiersNotSupported, "subscription identifiers are turned off")
			continue
		}
		if !srv.authorize(&c.info, ActionSubscribe, inner) {
			refuse(packet.NotAuthorized, "not authorized")
			continue
		}
		qos := min(rs.QoS, srv.cfg.maxQoS) // [v5 MQTT-3.2.2-10] granted at most the Maximum QoS
		sub := subscription{QoS: qos, NoLocal: rs.NoLocal, RetainAsPublished: rs.RetainAsPublished, RetainHandling: rs.RetainHandling, SubID: subID}
		existed := srv.subscribe(s, rs.Filter, sub) // [v5 MQTT-3.8.4-3] [v3 MQTT-3.8.4-3] replaces
		codes[i] = packet.ReasonCode(qos)           // granted QoS [v5 MQTT-3.8.4-7]
		if s.durable.Load() {
			kept = append(kept, store.Subscribe(s.id, rs.Filter, store.Subscription{QoS: qos, NoLocal: rs.NoLocal, RetainAsPublished: rs.RetainAsPublished, RetainHandling: rs.RetainHandling, ID: subID}))
			keptAt = append(keptAt, i)
		}
		// Retained messages: Retain Handling 0 sends them, 1 only for a new
		// subscription, 2 never [v5 MQTT-3.3.1-9] [v5 MQTT-3.3.1-10]
		// [v5 MQTT-3.3.1-11]; shared subscriptions get none (section 4.8.2).
		// A replaced subscription with Retain Handling 0 gets them again,
		// and loses no message: the queue is held meanwhile [v5 MQTT-3.8.4-4].
		if !shared && (sub.RetainHandling == 0 || sub.RetainHandling == 1 && !existed) {
			retained = srv.retainedFor(retained, rs.Filter, sub) // [v3 MQTT-3.3.1-6]
		}
		srv.observe(Event{Kind: EventSubscribe, Client: &c.info, Topic: rs.Filter, QoS: qos})
	}
	// The subscriptions are kept before the SUBACK says they are made.
	if err := srv.persistOrNil(kept); err != nil {
		for _, i := range keptAt {
			f := p.Subscriptions[i].Filter
			s.mu.Lock()
			delete(s.subs, f)
			s.mu.Unlock()
			srv.unsubscribe(s, f)
			codes[i] = failCode(v5, storeCode(err))
		}
		retained = nil
	}
	// [v5 MQTT-3.8.4-1] [v3 MQTT-3.8.4-1] the SUBACK, then the retained messages.
	ack := delivery{ctl: &packet.Suback{PacketID: p.PacketID, ReasonCodes: codes}} // the SUBSCRIBE's id [v5 MQTT-3.8.4-2] [v3 MQTT-3.8.4-2]
	s.mu.Lock()
	s.backlog.Push(ack)
	for _, d := range retained {
		s.backlog.Push(d)
	}
	s.mu.Unlock()
	return nil
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
		srv.clusterSubscribe(filter) // once per subscription, as the back plane counts
	}
	if group, inner, ok := isSharedFilter(filter); ok {
		srv.subscribeShared(s, group, inner, sub)
	} else {
		srv.subs.Add(filter, s, sub)
	}
	return existed
}

// unsubscribe removes a subscription from the trie (the caller updates
// s.subs) and reports whether the trie had it.
func (srv *Server) unsubscribe(s *session, filter string) bool {
	var removed bool
	if group, inner, ok := isSharedFilter(filter); ok {
		removed = srv.unsubscribeShared(s, group, inner)
	} else {
		removed = srv.subs.Remove(filter, s)
	}
	if removed {
		srv.stats.subscriptions.Add(-1)
		srv.clusterUnsubscribe(filter)
	}
	return removed
}

// onUnsubscribe handles an UNSUBSCRIBE [v5 MQTT-3.10.4-4] [v3 MQTT-3.10.4-4].
// Each filter, in order and as if it came alone [v5 MQTT-3.10.4-6], is
// looked up as it is, character by character [v5 MQTT-3.10.4-1]; the
// subscription found leaves the trie, so no new message is queued for it
// [v5 MQTT-3.10.4-2], while the session's messages in flight are left to
// complete [v5 MQTT-3.10.4-3]. One UNSUBACK with the UNSUBSCRIBE's packet
// id answers, whether or not anything was deleted [v5 MQTT-3.10.4-5], its
// reason codes in the order of the filters [v5 MQTT-3.11.3-1].
// In 3.1.1 too: its filters one after the other, answered by a single
// UNSUBACK [v3 MQTT-3.10.4-6], sent even if no subscription was deleted
// [v3 MQTT-3.10.4-5]; the QoS 1 and 2 flows under way go on to their end
// [v3 MQTT-3.10.4-3].
//
// A filter that is not a valid topic filter (empty [MQTT-4.7.3-1], a
// misplaced wildcard, a bad shared subscription) cannot name a
// subscription. MQTT 5 answers it with 0x8F Topic Filter invalid in the
// UNSUBACK, as an invalid SUBSCRIBE filter is answered in the SUBACK, and
// the other filters are handled; 3.1 and 3.1.1 have no way to refuse one
// filter, so the connection is closed as for any protocol violation
// (3.1.1 section 4.8), before any filter is acted on. (A "$share/" filter
// that is not a valid shared subscription is a valid 3.1.1 filter, which
// no 3.1.1 subscription can have: it gets the UNSUBACK.)
func (c *conn) onUnsubscribe(p *packet.Unsubscribe) error {
	srv := c.srv
	v5 := c.version == packet.V5
	if !v5 {
		for _, f := range p.Filters {
			if err := topic.ValidateFilter(f); err != nil && !errors.Is(err, topic.ErrBadShare) {
				// [v3 MQTT-4.7.3-1] [v3 MQTT-4.7.1-2] [v3 MQTT-4.7.1-3]
				return protocolError(packet.UNSUBSCRIBE, v3FilterRule(f, err), err.Error())
			}
		}
	}
	ack := &packet.Unsuback{PacketID: p.PacketID}
	var kept []store.Change
	for _, f := range p.Filters {
		if v5 {
			if err := topic.ValidateFilter(f); err != nil {
				// [v5 MQTT-4.7.3-1] [v5 MQTT-4.7.1-1] [v5 MQTT-4.7.1-2]
				c.log.Info("unsubscribe refused", "client", c.info.ClientID, "filter", f,
					"code", packet.TopicFilterInvalid.String(), "reason", err.Error())
				ack.ReasonCodes = append(ack.ReasonCodes, packet.TopicFilterInvalid)
				continue
			}
		}
		s := c.sess
		s.mu.Lock()
		_, ok := s.subs[f] // the filter exactly as subscribed, no wildcard matching [v3 MQTT-3.10.4-1]
		delete(s.subs, f)
		s.mu.Unlock()
		if ok && s.durable.Load() {
			kept = append(kept, store.Unsubscribe(s.id, f))
		}
		if ok {
			srv.unsubscribe(s, f) // no new messages for it [v3 MQTT-3.10.4-2]
			srv.observe(Event{Kind: EventUnsubscribe, Client: &c.info, Topic: f})
		}
		code := packet.Success
		if !ok {
			code = packet.NoSubscriptionExisted
		}
		ack.ReasonCodes = append(ack.ReasonCodes, code)
	}
	// Kept before the UNSUBACK. If the store fails, the subscriptions
	// are gone all the same, but may come back after a restart: MQTT 5
	// clients are told with 0x80 Unspecified error.
	if err := srv.persistOrNil(kept); err != nil && v5 {
		for i, code := range ack.ReasonCodes {
			if code == packet.Success {
				ack.ReasonCodes[i] = packet.UnspecifiedError
			}
		}
	}
	c.send(ctrlPkt{p: ack})
	return nil
}

// v3FilterRule names the MQTT 3.1.1 rule that filter f, refused by
// topic.ValidateFilter with err, breaks, for the protocol error.
func v3FilterRule(f string, err error) string {
	switch {
	case errors.Is(err, topic.ErrEmpty):
		return "v3 MQTT-4.7.3-1"
	case errors.Is(err, topic.ErrBadWildcard):
		for _, level := range strings.Split(f, "/") {
			if len(level) > 1 && strings.Contains(level, "+") {
				return "v3 MQTT-4.7.1-3" // '+' occupies a whole level
			}
		}
		return "v3 MQTT-4.7.1-2" // '#' alone, in the last level
	}
	return "v3 noid:invalid-topic-filter"
}

// retainedFor appends to ds the retained messages matching filter, with
// the RETAIN flag set [v3 MQTT-3.3.1-8] (MQTT 5 section 3.3.1.3). They go to the
// session's backlog, which the queue limit does not apply to, so none of
// them is lost however many there are.
func (srv *Server) retainedFor(ds []delivery, filter string, sub subscription) []delivery {
	if ds, ok := srv.clusterRetained(ds, filter, sub); ok {
		return ds // the whole topic space's, from the back plane
	}
	now := time.Now()
	srv.retained.match(filter, func(m *Message) {
		if m.Expired(now) {
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
	mu       sync.RWMutex
	msgs     map[string]*Message
	sys      int         // messages in msgs under $SYS/: the broker's own, not counted by userLen
	expiring atomic.Bool // a message with an expiry was stored: sweep has work
}

func isSysTopic(name string) bool { return strings.HasPrefix(name, "$SYS/") }

// remove deletes the message of topic name. Called with mu held.
func (r *retainedStore) remove(name string) {
	if _, ok := r.msgs[name]; ok && isSysTopic(name) {
		r.sys--
	}
	delete(r.msgs, name)
}

func (r *retainedStore) init() { r.msgs = map[string]*Message{} }

func (r *retainedStore) set(m *Message) {
	if !m.Expires.IsZero() {
		r.expiring.Store(true)
	}
	r.mu.Lock()
	if _, ok := r.msgs[m.Topic]; !ok && isSysTopic(m.Topic) {
		r.sys++
	}
	r.msgs[m.Topic] = m
	r.mu.Unlock()
}

func (r *retainedStore) delete(name string) {
	r.mu.Lock()
	r.remove(name)
	r.mu.Unlock()
}

// userLen returns the number of retained messages, not counting those
// under $SYS/.
func (r *retainedStore) userLen() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.msgs) - r.sys
}

// match calls fn for each retained message whose topic matches filter.
// fn runs under the read lock and must not call back into the store.
// Expired messages are skipped and removed [v5 MQTT-3.3.2-5].
func (r *retainedStore) match(filter string, fn func(*Message)) {
	now := time.Now()
	var expired []*Message
	r.mu.RLock()
	if !strings.ContainsAny(filter, "+#") {
		if m := r.msgs[filter]; m != nil {
			if m.Expired(now) {
				expired = append(expired, m)
			} else {
				fn(m)
			}
		}
	} else {
		for name, m := range r.msgs {
			if topic.Match(filter, name) {
				if m.Expired(now) {
					expired = append(expired, m)
				} else {
					fn(m)
				}
			}
		}
	}
	r.mu.RUnlock()
	if len(expired) > 0 {
		r.mu.Lock()
		for _, m := range expired {
			if r.msgs[m.Topic] == m {
				r.remove(m.Topic)
			}
		}
		r.mu.Unlock()
	}
}

// sweep removes the expired retained messages.
func (r *retainedStore) sweep(now time.Time) {
	if !r.expiring.Load() {
		return
	}
	r.mu.Lock()
	for name, m := range r.msgs {
		if m.Expired(now) {
			r.remove(name)
		}
	}
	r.mu.Unlock()
}
