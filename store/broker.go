package store

import (
	"context"
	"errors"
	"time"

	"github.com/ternmq/tern/message"
)

// Broker is the durable state of a broker: its persistent sessions
// (with their subscriptions, will, queue, in-flight messages in both
// directions) and its retained messages. The broker loads it once at
// start and then describes every change with [Change] values, applied
// in batches: a batch is durable as a whole when Apply returns (as
// durable as the implementation and its sync mode promise), so a
// message that enters the queues of many sessions and the retained
// index costs one durable write, and concurrent Apply calls may share
// one (group commit).
//
// Implementations are safe for concurrent use. Apply keeps the order of
// the changes of one call; two concurrent calls are ordered as they
// take effect, and a Load after a crash sees a prefix of that order.
type Broker interface {
	// Load returns everything stored. The broker calls it once, before
	// the first Apply; the state is the caller's (messages are shared and
	// not to be modified).
	Load(ctx context.Context) (*BrokerState, error)
	// Apply applies changes in order and returns once they are kept. A
	// change that refers to something missing (a Sent for a sequence
	// number not queued, say) is ignored, not an error: the broker may
	// race a change with a deletion. Changes of a session not stored yet
	// create it with a zero SessionInfo. An error means none or only a
	// prefix of the batch may be kept; the broker must not acknowledge
	// what it carried. ctx bounds the wait for durability.
	Apply(ctx context.Context, changes ...Change) error
	// Close writes and syncs what is pending and releases the store.
	// Calls after Close return ErrClosed.
	Close() error
}

// Op is the kind of a [Change].
type Op uint8

// The kinds of change. The fields of [Change] each uses are listed.
const (
	// OpSession stores a session's own state: ClientID, Session.
	OpSession Op = iota + 1
	// OpDeleteSession forgets a session and everything it holds:
	// ClientID.
	OpDeleteSession
	// OpSubscribe adds or replaces a subscription: ClientID, Filter, Sub.
	OpSubscribe
	// OpUnsubscribe removes one: ClientID, Filter.
	OpUnsubscribe
	// OpEnqueue appends a message to a session's queue: ClientID, Queued
	// (Seq, MsgID, Msg, QoS, Retain, SubIDs, and PacketID/Released if it
	// is in flight already). Messages of the same MsgID are stored once
	// whatever the number of queues they enter.
	OpEnqueue
	// OpSent records that the queued message Seq was sent under a packet
	// identifier: ClientID, Queued.Seq, Queued.PacketID. A packet id
	// names one flight at a time: an earlier message of the session
	// stored under the same id has ended (its Dequeue may be written
	// lazily, after the id was reused) and is removed.
	OpSent
	// OpReleased records that the QoS 2 message Seq got its PUBREC:
	// ClientID, Queued.Seq.
	OpReleased
	// OpDequeue removes message Seq from the queue (completed, expired or
	// dropped): ClientID, Queued.Seq.
	OpDequeue
	// OpAddIncoming records a QoS 2 packet id received and not yet
	// released: ClientID, PacketID.
	OpAddIncoming
	// OpDeleteIncoming forgets one at PUBREL: ClientID, PacketID.
	OpDeleteIncoming
	// OpRetain sets the retained message of Topic to Msg (whose Topic is
	// Topic), or removes it when Msg is nil: Topic, Msg.
	OpRetain
	// OpEnqueueAll appends one message to the queues of many sessions:
	// Queued.MsgID and Queued.Msg, and Targets (ClientID, Seq, QoS,
	// Retain, SubIDs of each). It is the same as an OpEnqueue per target,
	// in order; a message that fans out to many sessions is one small
	// change instead of many large ones.
	OpEnqueueAll
	// OpDequeueAll removes messages from queues: Targets (ClientID and
	// Seq of each). The same as an OpDequeue per target, in order.
	OpDequeueAll
	// OpMark records how far the broker has taken messages from an
	// external feed, in the same batch as what it took: Topic names the
	// feed (a back plane node, "backplane"), Filter holds the position
	// (the feed's own text form); an empty Filter deletes the mark. After
	// a crash the broker skips what the feed gives again up to the mark,
	// so that it is taken exactly once. Kept in BrokerState.Marks.
	OpMark
)

// Change is one change of a broker's state; build one with the
// functions below (PutSession, Enqueue, Retain, ...) rather than by hand.
type Change struct {
	Op       Op
	ClientID string
	Session  SessionInfo      // OpSession
	Filter   string           // OpSubscribe, OpUnsubscribe; OpMark: the position
	Sub      Subscription     // OpSubscribe
	Queued   Queued           // OpEnqueue, OpSent, OpReleased, OpDequeue
	PacketID uint16           // OpAddIncoming, OpDeleteIncoming
	Topic    string           // OpRetain; OpMark: the feed
	Msg      *message.Message // OpRetain (nil deletes)
	Targets  []Target         // OpEnqueueAll, OpDequeueAll
}

// Target is one queue of an [OpEnqueueAll] or [OpDequeueAll] change:
// the session, the message's place in its queue and, for an enqueue,
// what the session gets (see [Queued]).
type Target struct {
	ClientID string
	Seq      uint64
	QoS      byte
	Retain   bool
	SubIDs   []uint32
}

// EnqueueAll appends message m, of id msgID, to the queue of each
// target (ClientID, Seq, QoS, Retain, SubIDs).
func EnqueueAll(msgID uint64, m *message.Message, ts []Target) Change {
	return Change{Op: OpEnqueueAll, Queued: Queued{MsgID: msgID, Msg: m}, Targets: ts}
}

// DequeueAll removes message Seq from the queue of session ClientID, for
// each target.
func DequeueAll(ts []Target) Change { return Change{Op: OpDequeueAll, Targets: ts} }

// Each calls f with each change c stands for: the OpEnqueue or
// OpDequeue of every target of an OpEnqueueAll or OpDequeueAll, or c
// itself. Implementations that handle the one-queue changes only use it.
func (c *Change) Each(f func(*Change)) {
	switch c.Op {
	case OpEnqueueAll:
		for _, t := range c.Targets {
			one := Enqueue(t.ClientID, Queued{Seq: t.Seq, MsgID: c.Queued.MsgID, Msg: c.Queued.Msg, QoS: t.QoS, Retain: t.Retain, SubIDs: t.SubIDs})
			f(&one)
		}
	case OpDequeueAll:
		for _, t := range c.Targets {
			one := Dequeue(t.ClientID, t.Seq)
			f(&one)
		}
	default:
		f(c)
	}
}

// PutSession stores the state of session id.
func PutSession(id string, info SessionInfo) Change {
	return Change{Op: OpSession, ClientID: id, Session: info}
}

// DeleteSession forgets session id.
func DeleteSession(id string) Change { return Change{Op: OpDeleteSession, ClientID: id} }

// Subscribe stores a subscription of session id.
func Subscribe(id, filter string, sub Subscription) Change {
	return Change{Op: OpSubscribe, ClientID: id, Filter: filter, Sub: sub}
}

// Unsubscribe removes a subscription of session id.
func Unsubscribe(id, filter string) Change {
	return Change{Op: OpUnsubscribe, ClientID: id, Filter: filter}
}

// Enqueue appends q to the queue of session id.
func Enqueue(id string, q Queued) Change { return Change{Op: OpEnqueue, ClientID: id, Queued: q} }

// Sent records that message seq of session id went out under packet id pid.
func Sent(id string, seq uint64, pid uint16) Change {
	return Change{Op: OpSent, ClientID: id, Queued: Queued{Seq: seq, PacketID: pid}}
}

// Released records the PUBREC of QoS 2 message seq of session id.
func Released(id string, seq uint64) Change {
	return Change{Op: OpReleased, ClientID: id, Queued: Queued{Seq: seq}}
}

// Dequeue removes message seq from the queue of session id.
func Dequeue(id string, seq uint64) Change {
	return Change{Op: OpDequeue, ClientID: id, Queued: Queued{Seq: seq}}
}

// AddIncoming records QoS 2 packet id pid received by session id.
func AddIncoming(id string, pid uint16) Change {
	return Change{Op: OpAddIncoming, ClientID: id, PacketID: pid}
}

// DeleteIncoming forgets QoS 2 packet id pid of session id.
func DeleteIncoming(id string, pid uint16) Change {
	return Change{Op: OpDeleteIncoming, ClientID: id, PacketID: pid}
}

// Mark records position pos of external feed name (see [OpMark]).
func Mark(name, pos string) Change { return Change{Op: OpMark, Topic: name, Filter: pos} }

// Retain sets (m != nil) or removes (m == nil) the retained message of
// topic.
func Retain(topic string, m *message.Message) Change {
	return Change{Op: OpRetain, Topic: topic, Msg: m}
}

// LazyApplier is a [Broker] that can also keep changes whose loss to a
// power failure is harmless (a completed delivery's dequeue: lost, the
// message is only sent again) without a durable write of their own.
// The broker detects it once, at start.
type LazyApplier interface {
	Broker
	// ApplyLazy applies changes as Apply does, in the same order with
	// the other calls, but returns without waiting for them to be
	// durable beyond the process (a store/disk log: written, not
	// fsynced): the next Apply's durable write, or Close, makes them so.
	ApplyLazy(ctx context.Context, changes ...Change) error
}

// Shared is a [Broker] that the nodes of a cluster share (store/redis,
// store/jetstream): every node applies its changes to one state, so a
// persistent session can resume on whichever node its client reconnects
// to. Load still returns everything stored (the conformance suite and the
// operator tools use it); a broker node on a back plane does not restore
// every session at start but loads one with LoadSession when its client
// connects, once it owns the client id cluster-wide (backplane.Owner).
//
// Message ids (Queued.MsgID) must be unique across the nodes that share
// a store: an implementation that numbers them keeps the numbering
// shared, or the broker qualifies them per node.
type Shared interface {
	Broker
	// LoadSession returns the stored session of clientID; ok is false if
	// none is stored.
	LoadSession(ctx context.Context, clientID string) (ss StoredSession, ok bool, err error)
}

// SessionInfo is a session's own state.
type SessionInfo struct {
	// Expiry is the Session Expiry Interval in seconds (0xFFFFFFFF:
	// never). The broker stores persistent sessions only.
	Expiry uint32
	// Disconnected is when the session lost its connection; zero while
	// one is attached. After a restart the broker counts the expiry and
	// the will delay from here (or from BrokerState.Saved for a session
	// that was online when the broker stopped).
	Disconnected time.Time
	// Will is the session's will, nil for none.
	Will *Will
	// Version is the MQTT protocol version of the last connection
	// (packet.Version's value), for information.
	Version byte
}

// Will is a last will and its MQTT 5 Will Delay Interval.
type Will struct {
	Msg   *message.Message
	Delay uint32 // seconds
}

// Subscription is one subscription's options.
type Subscription struct {
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	ID                uint32 // MQTT 5 subscription identifier, 0 for none
}

// Queued is one message in a session's queue: waiting (PacketID 0) or in
// flight (sent under PacketID; for QoS 2, Released once its PUBREC came).
type Queued struct {
	Seq      uint64 // order in the session: increasing, assigned by the broker
	MsgID    uint64 // the message's identity across queues, assigned by the broker, never 0
	Msg      *message.Message
	QoS      byte     // the QoS it is delivered with
	Retain   bool     // the RETAIN flag it is delivered with
	SubIDs   []uint32 // subscription identifiers it is delivered with
	PacketID uint16
	Released bool
}

// BrokerState is what [Broker.Load] returns.
type BrokerState struct {
	Sessions []StoredSession    // in client id order
	Retained []*message.Message // in no particular order
	// Saved is the last time the store was written to, as well as it is
	// known (a durable store: its files' modification time); zero for an
	// empty store.
	Saved time.Time
	// MaxMsgID is the largest message id stored; the broker numbers new
	// messages from above it.
	MaxMsgID uint64
	// Marks are the positions of the external feeds (OpMark), by feed;
	// nil when there are none.
	Marks map[string]string
}

// StoredSession is one session of a [BrokerState].
type StoredSession struct {
	ClientID string
	Info     SessionInfo
	Subs     map[string]Subscription // by filter
	Queue    []Queued                // in Seq order; messages of one MsgID share one *message.Message
	Incoming []uint16                // increasing
}

// ErrFull is returned (wrapped) by Apply when the store cannot take
// more: the disk is full, or a quota is reached. The broker refuses the
// messages it cannot keep (reason code 0x97 Quota exceeded).
var ErrFull = errors.New("store: full")
