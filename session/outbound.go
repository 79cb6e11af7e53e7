package session

import (
	"slices"
	"time"

	"github.com/ternmq/tern/packet"
)

// Flight is one QoS 1 or 2 PUBLISH sent and not yet completed.
type Flight[T any] struct {
	Item     T         // what was sent: the owner's message or delivery
	QoS      byte      // 1 or 2
	Seq      uint64    // send order within the session, for resending in order
	Sent     time.Time // last (re)send
	Released bool      // QoS 2: PUBREC received and PUBREL sent; PUBREL is what a resend sends
}

// Outbound is the sending side's in-flight window: the QoS 1 and 2
// PUBLISHes sent and not yet acknowledged, their packet identifiers, the
// order they were first sent in, and which of them a new connection must
// send again. The same type serves a broker sending to a client and a
// client sending to its server.
//
// The window is the peer's Receive Maximum (MQTT 5 section 4.9), lowered
// by the sender's own limit: no more than that many QoS 1 and 2 PUBLISHes
// are unacknowledged at once [v5 MQTT-3.3.4-9] [v5 MQTT-3.3.4-7]. QoS 0
// messages do not count.
//
// On a new connection the owner calls Resume: every flight is then sent
// again, in the order first sent [v5 MQTT-4.4.0-1] [v3 MQTT-4.4.0-1]
// [v5 MQTT-4.6.0-1], with DUP set on PUBLISHes [v5 MQTT-3.3.1-1], as PUBREL
// for QoS 2 flights already released, before anything new (NextResend).
//
// The zero value has a window of 65535. Outbound is not safe for
// concurrent use; the owner's lock guards it.
type Outbound[T any] struct {
	window  int
	ids     IDs
	flights map[uint16]*Flight[T]
	peak    int // the most flights the map has held: it does not shrink
	seq     uint64
	resend  []uint16 // flights still to resend on this connection, in send order
}

// bigWindow is the number of flights above which a map drained empty is
// given back.
const bigWindow = 64

// SetWindow sets how many flights may be outstanding; n <= 0 or above
// 65535 means 65535. Lowering it below the number in flight only holds
// back new messages.
func (o *Outbound[T]) SetWindow(n int) {
	if n <= 0 || n > 65535 {
		n = 65535
	}
	o.window = n
}

// Window returns the number of flights that may be outstanding.
func (o *Outbound[T]) Window() int {
	if o.window == 0 {
		return 65535
	}
	return o.window
}

// Len returns the number of flights outstanding.
func (o *Outbound[T]) Len() int { return len(o.flights) }

// Full reports whether the window is full: a new QoS 1 or 2 PUBLISH must
// wait for an acknowledgement.
func (o *Outbound[T]) Full() bool { return len(o.flights) >= o.Window() }

// Add records item as sent now at qos (1 or 2) under a packet identifier not in use [v5 MQTT-2.2.1-4] [v5 MQTT-4.3.2-1]
// [v3 MQTT-2.3.1-4], which it returns; the identifier stays taken until
// the flight completes [v5 MQTT-4.3.2-3] [v5 MQTT-4.3.3-3]. It
// returns false, recording nothing, when the window is full or every
// packet identifier is in use.
func (o *Outbound[T]) Add(item T, qos byte, now time.Time) (uint16, bool) {
	if o.Full() {
		return 0, false
	}
	id, ok := o.ids.Alloc()
	if !ok {
		return 0, false
	}
	if o.flights == nil {
		o.flights = map[uint16]*Flight[T]{}
	}
	o.seq++
	o.flights[id] = &Flight[T]{Item: item, QoS: qos, Seq: o.seq, Sent: now}
	o.peak = max(o.peak, len(o.flights))
	return id, true
}

// Get returns the flight with packet identifier id, nil if there is none.
func (o *Outbound[T]) Get(id uint16) *Flight[T] { return o.flights[id] }

// Ack completes a QoS 1 flight at PUBACK (whatever its reason code: a
// PUBACK ends the exchange) and frees its packet identifier. It returns the flight, or false when id is not a QoS
// 1 flight (an unexpected PUBACK, which the caller ignores).
func (o *Outbound[T]) Ack(id uint16) (Flight[T], bool) {
	f := o.flights[id]
	if f == nil || f.QoS != 1 {
		return Flight[T]{}, false
	}
	o.remove(id)
	return *f, true
}

// RecResult says what a PUBREC means for the sender.
type RecResult byte

const (
	// RecRelease: the flight is released; send PUBREL (again, for a
	// retransmitted PUBREC) [v5 MQTT-4.3.3-3] [v3 MQTT-4.3.3-1].
	RecRelease RecResult = iota + 1
	// RecFailed: an MQTT 5 PUBREC with a reason code of 0x80 or above
	// ended the exchange: the flight is completed, its packet identifier
	// and window slot are free, and no PUBREL follows [v5 MQTT-4.3.3-4]
	// (section 2.2.1). The message was not delivered.
	RecFailed
	// RecUnknown: no QoS 2 flight has this packet identifier; MQTT 5
	// answers PUBREL 0x92 Packet Identifier not found.
	RecUnknown
)

// Rec handles a PUBREC for id with reason code code (0 for MQTT 3.1.1),
// received at now. With RecFailed the completed flight is returned too.
func (o *Outbound[T]) Rec(id uint16, code packet.ReasonCode, now time.Time) (RecResult, Flight[T]) {
	f := o.flights[id]
	if f == nil || f.QoS != 2 {
		return RecUnknown, Flight[T]{}
	}
	if code.IsError() && !f.Released {
		o.remove(id)
		return RecFailed, *f
	}
	f.Released = true
	f.Sent = now
	return RecRelease, Flight[T]{}
}

// Comp completes a released QoS 2 flight at PUBCOMP and frees its packet
// identifier [v5 MQTT-4.3.3-5]. It returns false when id is not a
// released QoS 2 flight. A released flight is never sent as PUBLISH
// again, only as PUBREL [v5 MQTT-4.3.3-6].
func (o *Outbound[T]) Comp(id uint16) (Flight[T], bool) {
	f := o.flights[id]
	if f == nil || f.QoS != 2 || !f.Released {
		return Flight[T]{}, false
	}
	o.remove(id)
	return *f, true
}

// Remove drops the flight with packet identifier id whatever its state
// (a message handed to another session, or one that could not be sent)
// and frees the identifier. It returns false if there was none.
func (o *Outbound[T]) Remove(id uint16) (Flight[T], bool) {
	f := o.flights[id]
	if f == nil {
		return Flight[T]{}, false
	}
	o.remove(id)
	return *f, true
}

// remove ends the flight with packet identifier id.
func (o *Outbound[T]) remove(id uint16) {
	delete(o.flights, id)
	o.ids.Free(id)
	if len(o.flights) == 0 && o.peak > bigWindow {
		// A burst does not pin its map; a steady flow keeps it, so that
		// it does not make a map per message.
		o.flights, o.peak = nil, 0
	}
}

// Order returns the packet identifiers of the flights in the order they
// were first sent.
func (o *Outbound[T]) Order() []uint16 {
	ids := make([]uint16, 0, len(o.flights))
	for id := range o.flights {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uint16) int {
		sa, sb := o.flights[a].Seq, o.flights[b].Seq
		switch {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return 0
	})
	return ids
}

// Resume marks every flight to be sent again, in the order first sent:
// called when a connection resumes the session, and for MQTT 3.1.1 when
// flights are overdue (see Overdue).
func (o *Outbound[T]) Resume() { o.resend = o.Order() }

// Resending reports whether flights are waiting to be sent again; new
// messages wait behind them.
func (o *Outbound[T]) Resending() bool { return len(o.resend) > 0 }

// NextResend returns the next flight to send again and its packet
// identifier, marking it sent now, while the window allows: a peer that
// reconnects with a smaller Receive Maximum gets no more than it allows
// [v5 MQTT-3.3.4-9]. It returns false when there is none or the window
// is full.
func (o *Outbound[T]) NextResend(now time.Time) (uint16, *Flight[T], bool) {
	for len(o.resend) > 0 && len(o.flights)-len(o.resend) < o.Window() {
		id := o.resend[0]
		o.resend = o.resend[1:]
		f := o.flights[id]
		if f == nil {
			continue // completed meanwhile
		}
		f.Sent = now
		return id, f, true
	}
	if len(o.resend) == 0 {
		o.resend = nil
	}
	return 0, nil, false
}

// Overdue reports whether a flight was last sent before t: MQTT 3.1.1
// senders may resend those (MQTT 5 resends only on reconnect
// [v5 MQTT-4.4.0-1]).
func (o *Outbound[T]) Overdue(t time.Time) bool {
	for _, f := range o.flights {
		if f.Sent.Before(t) {
			return true
		}
	}
	return false
}

// Restore puts back a flight read from a store under its packet
// identifier, keeping its send order. It reports false if id is 0 or
// already in use.
func (o *Outbound[T]) Restore(id uint16, f Flight[T]) bool {
	if !o.ids.Use(id) {
		return false
	}
	if o.flights == nil {
		o.flights = map[uint16]*Flight[T]{}
	}
	o.flights[id] = &f
	o.peak = max(o.peak, len(o.flights))
	o.seq = max(o.seq, f.Seq)
	return true
}

// Clear forgets every flight: the session ended or started clean.
func (o *Outbound[T]) Clear() {
	w := o.window
	*o = Outbound[T]{window: w}
}
