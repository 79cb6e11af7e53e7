// Package message holds the application message as Tern's broker, client,
// stores and back planes share it: a topic, a payload, the QoS and retain
// flag it was published with, its MQTT 5 properties, and the metadata the
// wire packet does not carry (who published it, when, and when it
// expires).
//
// A Message is immutable once published: the broker decodes a PUBLISH
// once and hands the same *Message to every subscriber it matches, to the
// retained store and to the back plane; each delivery carries what differs
// per subscriber (granted QoS, retain flag, subscription identifiers)
// beside it.
package message

import (
	"time"

	"github.com/ternmq/tern/packet"
)

// Message is one application message.
type Message struct {
	Topic      string
	Payload    []byte
	QoS        byte // the QoS it was published with
	Retain     bool // published with the RETAIN flag
	Properties packet.Properties

	From    string    // client id of the publisher; "" for a broker's own messages
	Created time.Time // when it was received or published
	Expires time.Time // zero: never (MQTT 5 Message Expiry Interval)
}

// Expired reports whether m's expiry deadline has passed at now.
func (m *Message) Expired(now time.Time) bool {
	return !m.Expires.IsZero() && !now.Before(m.Expires)
}

// SetExpiry sets Expires from the Message Expiry Interval property,
// counted from Created (which it sets to now when zero). A message
// without the property keeps a zero Expires.
func (m *Message) SetExpiry(now time.Time) {
	if m.Created.IsZero() {
		m.Created = now
	}
	if e := m.Properties.MessageExpiry; e > 0 {
		m.Expires = m.Created.Add(time.Duration(e) * time.Second)
	}
}

// Remaining returns the Message Expiry Interval to forward at now: the
// lifetime left, rounded up to whole seconds and at least 1
// [v5 MQTT-3.3.2-6], and false for a message that does not expire.
func (m *Message) Remaining(now time.Time) (uint32, bool) {
	if m.Expires.IsZero() {
		return 0, false
	}
	left := m.Expires.Sub(now)
	return uint32(max(1, (left+time.Second-1)/time.Second)), true
}

// FromPublish builds the message a PUBLISH carries, received at now from
// client from. The Topic Alias is a property of the connection, not of
// the message, and is left out; the payload and properties are shared
// with p, not copied.
func FromPublish(p *packet.Publish, from string, now time.Time) *Message {
	m := &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: from, Created: now}
	m.Properties = p.Properties
	m.Properties.TopicAlias = 0
	m.Properties.Unmark(packet.PropTopicAlias)
	if p.Properties.MessageExpiry > 0 {
		m.Expires = now.Add(time.Duration(p.Properties.MessageExpiry) * time.Second)
	}
	return m
}
