package broker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/packet"
	mqttsession "github.com/ternmq/tern/session"
	"github.com/ternmq/tern/store"
)

// subscription is what the trie stores per (filter, session).
type subscription struct {
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	SubID             uint32 // MQTT 5 subscription identifier, 0 for none
}

// delivery is one message on its way to one session: the shared message
// plus what this subscriber gets (QoS, retain flag, subscription ids).
type delivery struct {
	ctl    packet.Packet // a packet sent in this place instead of a message (a SUBACK ahead of its retained messages)
	msg    *Message
	qos    byte
	retain bool
	subIDs []uint32
	share  *shareGroup // the shared subscription group it was given to, nil for an ordinary subscription
	seq    uint64      // its place in the session's stored queue (Server.Store); 0: not stored
	msgID  uint64      // the stored message's id, when seq is set
}

// session is the state of one client id, kept across connections when the
// client asks for a persistent session. All fields below mu are guarded
// by it.
type session struct {
	id     string
	seq    uint64      // unique per session object, orders sessions when merging matches
	inline *inlineSink // set for the broker's in-process subscribers
	online atomic.Bool // a connection is attached (always, for inline sessions)

	durable atomic.Bool // the session is kept in Server.Store (persistent, and a store is set)

	mu       sync.Mutex
	conn     *conn       // the connection attached now, nil when offline
	removed  bool        // taken out of the registry; a new connect must make a new session
	expiry   uint32      // Session Expiry Interval, seconds: 0 ends the session with its connection, neverExpire never
	expTimer *time.Timer // runs while the session is offline and expires
	gen      uint64      // bumped at every attach: a timer of an older generation does nothing
	will     *lastWill   // a will waiting for its Will Delay Interval
	willTmr  *time.Timer
	subs     map[string]subscription
	info     ClientInfo                  // of the attached (or last) connection
	backlog  mqttsession.Queue[delivery] // SUBACKs and the retained messages for new subscriptions: not bounded by the queue limit
	hold     int                         // while > 0 the queue is not sent: a subscription is being set up
	queue    mqttsession.Queue[delivery]
	out      mqttsession.Outbound[delivery] // sent at QoS 1 or 2 and not completed: packet ids, send order, resends, the window
	in       mqttsession.Inbound            // QoS 2 packet ids received and not yet released, the client's send quota
	drops    *dropLog                       // messages dropped, for the warning; nil until the first
	offSince time.Time                      // when it went offline, for the store
	// adopted are the stored sequence numbers of a session loaded from a
	// shared store (sharedsession.go): a delivery stored before the load
	// and queued after it is queued already.
	adopted map[uint64]struct{}
}

func newSession(id string, seq uint64) *session {
	return &session{id: id, seq: seq, subs: map[string]subscription{}}
}

// isCtl reports whether d is a control packet (a SUBACK) rather than a
// message.
func isCtl(d *delivery) bool { return d.ctl != nil }

// isShared reports whether d was given to a shared subscription group.
func isShared(d *delivery) bool { return d.share != nil }

// holdQueue holds (or releases) the queue while a subscription is being
// set up, so that live messages wait behind its retained messages.
func (s *session) holdQueue(on bool) {
	s.mu.Lock()
	if on {
		s.hold++
	} else {
		s.hold--
	}
	s.mu.Unlock()
}

// deliver queues d for the session and wakes its writer. It returns false
// when the message was dropped (queue full, or QoS 0 for an offline
// client); the caller counts and reports the drop.
func (s *session) deliver(srv *Server, d delivery) (ok bool, why error) {
	return s.deliverOpt(srv, d, false)
}

// hasRoom reports whether the queue has room for one more message under
// the DropNew policy (with DropOldest there is always room). It is a
// hint: deliverOpt with force takes a message kept in the store even if
// the queue filled up meanwhile.
func (s *session) hasRoom(srv *Server) bool {
	if srv.QueuePolicy == DropOldest {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queue.Len() < srv.cfg.maxQueued
}

// deliverOpt is deliver; with force, a full queue takes d all the same
// (d is kept in the store already, and its queue was checked with
// hasRoom just before: it is over the limit by the deliveries that raced
// it at most).
func (s *session) deliverOpt(srv *Server, d delivery, force bool) (ok bool, why error) {
	s.mu.Lock()
	c := s.conn
	if s.adopted != nil && d.seq != 0 {
		if _, ok := s.adopted[d.seq]; ok {
			s.mu.Unlock()
			return true, nil // loaded with the session already
		}
	}
	// An offline persistent session keeps QoS 1 and 2 messages
	// [v3 MQTT-3.1.2-5]; QoS 0 only if so configured.
	if c == nil && s.inline == nil && d.qos == 0 && !srv.QueueQoS0 {
		s.mu.Unlock()
		return false, errOffline
	}
	if s.queue.Len() >= srv.cfg.maxQueued && !(force && srv.QueuePolicy != DropOldest) {
		var oldest delivery
		if srv.QueuePolicy == DropOldest {
			oldest = s.queue.Pop()
			s.queue.Push(d)
		}
		s.mu.Unlock() // the caller counts and logs the drop (Server.dropped)
		if c != nil {
			c.kick()
		}
		if srv.QueuePolicy == DropOldest {
			// d is queued; the drop to count and report is the oldest.
			srv.dropped(s, oldest.msg, errQueueFull)
			srv.forget(s, oldest.seq)
			return true, nil
		}
		return false, errQueueFull
	}
	// The queue is first in, first out: every topic is an Ordered Topic
	// [v5 MQTT-4.6.0-5] [v5 MQTT-4.6.0-6].
	// A FIFO: every topic is an Ordered Topic, messages go out in the
	// order they were published [v3 MQTT-4.6.0-5] [v3 MQTT-4.6.0-6].
	s.queue.Push(d)
	long := s.queue.Len() > yieldQueueLen
	s.mu.Unlock()
	if c != nil {
		if long && !srv.backlogged.Load() {
			srv.backlogged.Store(true)
		}
		c.kick()
	} else if s.inline != nil {
		s.inline.kick()
	}
	return true, nil
}

// yieldQueueLen is the queue length of a connected subscriber above which
// the reader that published the message yields the processor (see
// Server.backlogged).
const yieldQueueLen = 64

// resetState forgets everything but the identity: used for a clean start.
// Subscriptions must have been removed from the trie by the caller.
// Called with s.mu held.
func (s *session) resetState() {
	s.subs = map[string]subscription{}
	s.queue.Clear()
	s.backlog.Clear()
	s.out.Clear()
	s.in.Clear()
}

// unsent ends the flight of packet id id, a QoS qos message that was
// not sent after all (see conn.appendOut), freeing its packet id and its
// slot of the in-flight window. A flight that has moved on meanwhile
// (released by a PUBREC, or completed and its id reused) is left alone.
func (s *session) unsent(srv *Server, id uint16, qos byte) {
	s.mu.Lock()
	var seq uint64
	if f := s.out.Get(id); f != nil && f.QoS == qos && !f.Released {
		seq = f.Item.seq
		s.out.Remove(id)
	}
	s.mu.Unlock()
	srv.forget(s, seq)
}

// attach makes c the session's connection, taking over from a connection
// that has it now; it returns the session (a new one when the old was
// removed or clean start was asked) and whether an existing session was
// resumed. Sessions are kept by client id [v3 MQTT-3.1.3-2]: a persistent
// one is resumed whole, or created if there is none [v3 MQTT-3.1.2-4],
// and its state lives as long as the session, not only the connection
// [v3 MQTT-4.1.0-1] [v3 MQTT-4.1.0-2]. The displaced connection, if any, is told to close and attach
// waits for it to finish, so that only one connection of a client id runs
// at a time, whatever the order of concurrent reconnects.
func (srv *Server) attach(c *conn, id string, cleanStart bool) (*session, bool) {
	for {
		srv.regMu.Lock()
		s := srv.sessions[id] // session state is the client id's [v5 MQTT-3.1.3-2]
		fresh := s == nil
		if fresh {
			// No session for the id: a new one [v5 MQTT-3.1.2-6].
			s = newSession(id, srv.sessSeq.Add(1))
			srv.sessions[id] = s
		}
		srv.regMu.Unlock()

		s.mu.Lock()
		if s.removed {
			s.mu.Unlock()
			continue
		}
		old := s.conn
		s.conn = c
		s.online.Store(true)
		s.mu.Unlock()
		if old != nil {
			old.takenOver()
			<-old.done
		}
		if c.isKicked() {
			return s, false // a newer connection took over meanwhile
		}
		s.mu.Lock()
		s.backlog.Extract(isCtl) // SUBACKs the previous connection did not get are not for this one
		// [v3 MQTT-3.2.2-2] the existence of a session is session state,
		// even if the rest of it is empty (3.1.1 section 3.1.2.4).
		// A clean session ends with its connection, taken over or not
		// [v3 MQTT-3.1.2-6] [v5 MQTT-3.1.2-4]: none of it is resumed.
		ended := old != nil && s.expiry == 0
		// Clean Start 1: Session Present 0 [v5 MQTT-3.2.2-2]; Clean Start
		// 0 resumes the session there is [v5 MQTT-3.1.2-5].
		// Session Present 0 for clean session or no stored session
		// [v3 MQTT-3.2.2-1] [v3 MQTT-3.2.2-3].
		present := !cleanStart && !ended && (!fresh || len(s.subs) > 0 || s.queue.Len() > 0 || s.out.Len() > 0 || s.in.Len() > 0 || old != nil || s.drops != nil)
		var subs []string
		fresh = cleanStart || ended
		if fresh {
			for f := range s.subs {
				subs = append(subs, f)
			}
			s.resetState()
		}
		// The session has a connection again: it does not expire, and a
		// will waiting for its delay is not sent if the session resumes
		// [v5 MQTT-3.1.3-9]; a session that starts afresh has ended, and
		// the ending of a session sends the will (section 3.1.2.5).
		will := s.stopTimers()
		s.mu.Unlock()
		for _, f := range subs {
			srv.unsubscribe(s, f)
		}
		if will != nil && fresh {
			srv.sendWill(will)
		}
		return s, present
	}
}

// detach is called when c's connection has ended. A clean session ends
// with it; a persistent one stays, offline, for the next connection
// [v3 MQTT-3.1.2-4].
func (srv *Server) detach(c *conn, s *session) {
	s.mu.Lock()
	if s.conn != c {
		s.mu.Unlock()
		return // taken over: the session lives on with the new connection
	}
	s.conn = nil
	s.online.Store(false)
	gen := s.gen
	s.mu.Unlock()
	srv.handOver(s) // [v5] section 4.8.2: to another member of the group
	s.mu.Lock()
	if s.conn != nil || s.removed || s.gen != gen {
		s.mu.Unlock()
		return // attached again meanwhile
	}
	if s.expiry != 0 {
		// The session outlives the connection [v5 MQTT-3.1.2-23] until
		// its expiry interval has passed [v5 MQTT-4.1.0-2].
		if s.expiry != neverExpire && !srv.closing.Load() {
			s.expTimer = time.AfterFunc(time.Duration(s.expiry)*time.Second, func() { srv.expire(s, gen) })
		}
		s.offSince = time.Now()
		off := s.offSince
		s.mu.Unlock()
		if s.durable.Load() {
			// Its expiry and will delay count from now, across a restart.
			srv.storeSession(s, off, nil)
		}
		return
	}
	s.mu.Unlock()
	srv.endSession(s, 0, false)
}

// neverExpire is the Session Expiry Interval of a session that does not
// expire (MQTT 5 section 3.1.2.11.2).
const neverExpire = 0xFFFFFFFF

// expire ends an offline session whose expiry interval has passed,
// unless it has been attached again since the timer of generation gen
// was set.
func (srv *Server) expire(s *session, gen uint64) {
	srv.endSession(s, gen, true)
}

// endSession removes session s: its subscriptions, queue and state go,
// and a will waiting for its delay is sent now (the end of a session
// sends it, section 3.1.2.5). Retained messages are not session state and
// stay [v3 MQTT-3.1.2-7]. With checkGen, nothing happens if s was
// attached again after generation gen.
func (srv *Server) endSession(s *session, gen uint64, checkGen bool) {
	s.mu.Lock()
	if s.removed || s.conn != nil || checkGen && s.gen != gen {
		// Never while a connection has it [v5 MQTT-4.1.0-1].
		s.mu.Unlock()
		return
	}
	s.removed = true
	durable := s.durable.Swap(false)
	subs := make([]string, 0, len(s.subs))
	for f := range s.subs {
		subs = append(subs, f)
	}
	s.resetState()
	will := s.stopTimers()
	s.mu.Unlock()
	for _, f := range subs {
		srv.unsubscribe(s, f)
	}
	srv.regMu.Lock()
	if srv.sessions[s.id] == s {
		delete(srv.sessions, s.id)
	}
	srv.regMu.Unlock()
	if durable {
		srv.persist("session end", store.DeleteSession(s.id))
	}
	srv.sharedEnded(s.id)
	if checkGen {
		srv.cfg.log.Debug("session expired", "client", s.id)
	}
	if will != nil {
		srv.sendWill(will)
	}
}

// endTimers runs when the server stops: the sessions end with the
// process, so the wills waiting for their delay are sent now, and no
// expiry timer fires afterwards.
func (srv *Server) endTimers() {
	if srv.Store != nil {
		// With a store the sessions do not end with the process: their
		// wills wait in the store for their delay, counted on after a
		// restart.
		srv.regMu.Lock()
		all := make([]*session, 0, len(srv.sessions))
		for _, s := range srv.sessions {
			all = append(all, s)
		}
		srv.regMu.Unlock()
		for _, s := range all {
			s.mu.Lock()
			s.gen++
			if s.expTimer != nil {
				s.expTimer.Stop()
				s.expTimer = nil
			}
			if s.willTmr != nil {
				s.willTmr.Stop()
				s.willTmr = nil
			}
			s.mu.Unlock()
		}
		return
	}
	srv.regMu.Lock()
	all := make([]*session, 0, len(srv.sessions))
	for _, s := range srv.sessions {
		all = append(all, s)
	}
	srv.regMu.Unlock()
	for _, s := range all {
		s.mu.Lock()
		w := s.stopTimers()
		s.mu.Unlock()
		if w != nil {
			srv.sendWill(w)
		}
	}
}

// stopTimers starts a new generation of s, so that no timer set before
// acts, stops the expiry timer and takes the will waiting for its delay,
// which the caller sends or drops. Called with s.mu held.
func (s *session) stopTimers() *lastWill {
	s.gen++
	if s.expTimer != nil {
		s.expTimer.Stop()
		s.expTimer = nil
	}
	return s.takeWill()
}

// takeWill removes and returns the will waiting in s, stopping its
// timer. Called with s.mu held.
func (s *session) takeWill() *lastWill {
	w := s.will
	s.will = nil
	if s.willTmr != nil {
		s.willTmr.Stop()
		s.willTmr = nil
	}
	return w
}

// delayWill keeps will m in session s until its delay has passed (or
// the session ends, or resumes, whichever is first).
func (srv *Server) delayWill(s *session, m *lastWill, delay time.Duration) {
	s.mu.Lock()
	if old := s.takeWill(); old != nil {
		defer srv.sendWill(old) // cannot happen: one connection at a time
	}
	s.will = m // the will belongs to the session now [v5 MQTT-3.1.2-7]
	gen := s.gen
	s.willTmr = time.AfterFunc(delay, func() {
		s.mu.Lock()
		if s.gen != gen || s.will != m {
			s.mu.Unlock()
			return
		}
		w := s.takeWill()
		off := s.offSince
		s.mu.Unlock()
		srv.sendWill(w)
		if s.durable.Load() {
			srv.storeSession(s, off, nil) // the will is gone: not sent again after a restart
		}
	})
	s.mu.Unlock()
}

var (
	errOffline   = &dropError{"client offline and QoS 0 is not queued"}
	errQueueFull = &dropError{"session queue full"}
	errTooLarge  = &dropError{"message larger than the client's maximum packet size"}
	errDenied    = &dropError{"not authorized to receive"}
)

type dropError struct{ s string }

func (e *dropError) Error() string { return e.s }

// refusedError is why a message counts as dropped when the MQTT 5 client
// it was sent to refused it: a PUBACK or PUBREC with a reason code of 0x80
// or above ends the delivery unsuccessfully.
type refusedError struct {
	ack  packet.Type // PUBACK or PUBREC
	code packet.ReasonCode
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("the client refused the message: %v reason code 0x%02x (%v)", e.ack, byte(e.code), e.code)
}

// wireForm builds the PUBLISH that carries delivery d to a client of
// version v. DUP is dup, set for a resend alone, never taken from the
// PUBLISH the message came in [v3 MQTT-3.3.1-3].
func (d *delivery) wireForm(id uint16, dup bool, v packet.Version, now time.Time) packet.Publish {
	// DUP says whether this PUBLISH is a resend, and is never copied from
	// the PUBLISH the message came in [v5 MQTT-3.3.1-3]; the topic name is
	// the one that matched the subscription [v5 MQTT-3.3.2-3].
	p := packet.Publish{Topic: d.msg.Topic, Payload: d.msg.Payload, QoS: d.qos, Retain: d.retain, PacketID: id, Dup: dup}
	if v == packet.V5 {
		// The properties as published [v5 MQTT-3.3.2-4] [v5 MQTT-3.3.2-15]
		// [v5 MQTT-3.3.2-16] [v5 MQTT-3.3.2-17] [v5 MQTT-3.3.2-18]
		// [v5 MQTT-3.3.2-20].
		p.Properties = d.msg.Properties
		p.Properties.TopicAlias = 0
		p.Properties.Unmark(packet.PropTopicAlias)
		p.Properties.SubscriptionIDs = d.subIDs
		if left, ok := d.msg.Remaining(now); ok {
			p.Properties.MessageExpiry = left // the remaining lifetime [v5 MQTT-3.3.2-6]
		}
	}
	return p
}
