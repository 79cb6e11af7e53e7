package session

import (
	"fmt"

	"github.com/ternmq/tern/packet"
)

// InboundAliases are the MQTT 5 topic aliases the peer sets in the
// PUBLISHes it sends (section 3.3.2.3.4). They live as long as the network
// connection [v5 MQTT-3.3.2-7]: Reset them on every new connection. Max
// is the Topic Alias Maximum this side announced (in the CONNACK for a
// broker, in the CONNECT for a client); 0 refuses every alias. Not safe
// for concurrent use; the connection's reader owns it.
type InboundAliases struct {
	Max uint16
	m   map[uint16]string
}

// Resolve applies the Topic Alias of p, if it has one: a PUBLISH with a
// topic and an alias sets the alias, one with an alias and an empty topic
// uses it, and p.Topic is filled in. Every alias from 1 to Max is accepted
// [v5 MQTT-3.3.2-12] [v5 MQTT-3.3.2-10]; one above Max is a *packet.ProtocolError
// with 0x94 Topic Alias invalid [v5 MQTT-3.2.2-17] [v5 MQTT-3.3.2-9], and
// an alias that was never set one with 0x82 Protocol Error.
func (a *InboundAliases) Resolve(p *packet.Publish) error {
	alias := p.Properties.TopicAlias
	if alias == 0 {
		return nil
	}
	if alias > a.Max {
		return &packet.ProtocolError{Code: packet.TopicAliasInvalid, Packet: packet.PUBLISH, Spec: "v5 MQTT-3.3.2-9",
			Msg: fmt.Sprintf("topic alias %d above the Topic Alias Maximum %d", alias, a.Max)}
	}
	if p.Topic != "" {
		if a.m == nil {
			a.m = map[uint16]string{}
		}
		a.m[alias] = p.Topic
		return nil
	}
	t, ok := a.m[alias]
	if !ok {
		return &packet.ProtocolError{Code: packet.ProtocolErrorCode, Packet: packet.PUBLISH, Spec: "v5 noid:alias-not-set",
			Msg: fmt.Sprintf("topic alias %d was never set", alias)}
	}
	p.Topic = t
	return nil
}

// Reset forgets every alias, for a new connection, and sets Max.
func (a *InboundAliases) Reset(max uint16) { *a = InboundAliases{Max: max} }

// OutboundAliases are the MQTT 5 topic aliases this side sets in the
// PUBLISHes it sends, up to the peer's Topic Alias Maximum: each topic
// name travels once per connection, then its alias alone. Aliases are
// assigned first come, first served and never reassigned; a topic beyond
// the maximum goes without one. Reset them on every new connection
// [v5 MQTT-3.3.2-7]. The zero value sends no aliases. Not safe for
// concurrent use; the connection's writer owns it.
type OutboundAliases struct {
	max uint16
	m   map[string]uint16
}

// Reset forgets every alias, for a new connection, and sets the peer's
// Topic Alias Maximum; 0 means no aliases [v5 MQTT-3.1.2-27] [v5 MQTT-3.2.2-18].
func (a *OutboundAliases) Reset(max uint16) { *a = OutboundAliases{max: max} }

// Apply puts a topic alias in p: the alias alone, with an empty topic,
// for a topic that has one; or the topic with a new alias while the
// peer's maximum allows [v5 MQTT-3.3.2-11] [v5 MQTT-3.1.2-26]
// [v5 MQTT-3.2.2-17]. It returns the new alias, which the caller records
// with Commit once the packet has been written (an alias the peer never
// received must not be used alone), and 0 otherwise.
func (a *OutboundAliases) Apply(p *packet.Publish) uint16 {
	if a.max == 0 {
		return 0
	}
	if alias, ok := a.m[p.Topic]; ok {
		p.Properties.TopicAlias = alias
		p.Topic = ""
		return 0
	}
	if len(a.m) >= int(a.max) {
		return 0
	}
	alias := uint16(len(a.m) + 1)
	p.Properties.TopicAlias = alias
	return alias
}

// Commit records that alias now stands for topic, after the PUBLISH that
// set it was written.
func (a *OutboundAliases) Commit(topic string, alias uint16) {
	if alias == 0 {
		return
	}
	if a.m == nil {
		a.m = map[string]uint16{}
	}
	a.m[topic] = alias
}
