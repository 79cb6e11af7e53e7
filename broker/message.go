package broker

import "github.com/ternmq/tern/message"

// Message is an application message inside the broker: decoded once from
// the publisher's PUBLISH and shared, read-only, by every subscriber it is
// delivered to and by the retained store. Broker metadata (origin, arrival
// time, expiry deadline) lives here, not in the wire packet.
//
// It is [message.Message], the message type the broker, the session
// engine (package session) and the stores share.
type Message = message.Message

// lastWill is a will message on its way to being published, and the
// client whose will it is, for Observers.
type lastWill struct {
	msg   *Message
	owner *ClientInfo
	delay uint32 // Will Delay Interval, seconds, for the store
}
