// Package store holds the persistence interfaces of Tern's session engine:
// what one end of an MQTT session must not lose across a reconnect, a
// restart or a crash. Implementations live in sub-packages (store/memory,
// store/disk) and all pass the one conformance suite in store/storetest.
//
// A [Session] is the state of one session as one end sees it: the QoS 1
// and 2 messages on their way out, in the order they were accepted, with
// the packet identifier each was sent under and whether its PUBREC has
// come; and the packet identifiers of QoS 2 messages received and not yet
// released. The client keeps one Session per client identifier.
// [BrokerSession] keeps a Session as one session of a Broker, so that
// the client's stores run on the broker's engines (store/memory's and
// store/disk's Session are such).
//
// A [Broker] is the durable state of a whole broker: its persistent
// sessions with their subscriptions, wills, queues and in-flight messages
// in both directions, and its retained messages, changed by batches of
// [Change] values so that one durable write covers a message that
// entered many queues.
//
// "Acknowledged means kept": a call that returns nil has made the change
// as durable as the implementation promises (for store/disk: it survives
// the process being killed, and with Sync also a power loss), and
// implementations must be safe for concurrent use.
package store

import (
	"errors"

	"github.com/ternmq/tern/message"
)

// Outgoing is one QoS 1 or 2 message of a session on its way out: accepted
// from the application (queued, PacketID 0), sent under a packet
// identifier, and for QoS 2 released once its PUBREC came (Released: a
// resend sends PUBREL, not the PUBLISH). It leaves the store when the
// exchange completes (PUBACK, PUBCOMP, or an MQTT 5 PUBREC of 0x80 or
// above).
type Outgoing struct {
	Seq      uint64           // order of acceptance: unique and increasing within the session, assigned by the caller
	Msg      *message.Message // the message; Msg.QoS is 1 or 2
	PacketID uint16           // 0 while queued
	Released bool             // QoS 2: PUBREC received, PUBREL sent
}

// Session is the durable state of one end of one MQTT session.
type Session interface {
	// AddOutgoing records a newly accepted message. o.Seq must not be
	// held by the session already (ErrExists); callers number messages
	// in increasing order (after a restart: on from the last Seq that
	// Outgoing returns), but Outgoing sorts whatever the order of
	// insertion, so a Seq that was deleted or cleared may come back.
	// o.PacketID may be set already (a message sent at once), and so may
	// o.Released.
	AddOutgoing(o Outgoing) error
	// MarkSent records that the message with seq was sent under packet
	// identifier id (a resend under the same id need not be recorded).
	// A packet identifier names one flight at a time, as in [Broker]'s
	// OpSent: another message stored under id has ended (its
	// DeleteOutgoing may come later, after the id was reused) and is
	// removed, so that a restart does not send it again. The same holds
	// for an AddOutgoing with a PacketID.
	MarkSent(seq uint64, id uint16) error
	// MarkReleased records that the QoS 2 message with seq got its PUBREC.
	MarkReleased(seq uint64) error
	// DeleteOutgoing removes the message with seq; removing one that is
	// not there is not an error.
	DeleteOutgoing(seq uint64) error
	// Outgoing returns every message in Seq order. The slice is the
	// caller's; the messages are not to be modified.
	Outgoing() ([]Outgoing, error)

	// AddIncoming records that the QoS 2 PUBLISH with packet identifier
	// id was received (and passed on) and awaits its PUBREL; recording
	// an id that is pending already is not an error.
	AddIncoming(id uint16) error
	// DeleteIncoming forgets id at PUBREL; forgetting an unknown id is
	// not an error.
	DeleteIncoming(id uint16) error
	// Incoming returns the pending packet identifiers in increasing order.
	Incoming() ([]uint16, error)

	// Clear forgets the whole session (a clean start).
	Clear() error
	// Close releases the session's resources; it does not forget anything.
	// Calls after Close, a second Close included, return ErrClosed.
	Close() error
}

// ErrNotFound is returned by MarkSent and MarkReleased when no message
// has the given sequence number.
var ErrNotFound = errors.New("store: not found")

// ErrExists is returned by AddOutgoing when the session holds a message
// with the same sequence number.
var ErrExists = errors.New("store: sequence number in use")

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("store: closed")
