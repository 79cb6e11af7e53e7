package broker

import (
	"time"

	"github.com/ternmq/tern/packet"
)

// Message is an application message inside the broker: decoded once from
// the publisher's PUBLISH and shared, read-only, by every subscriber it is
// delivered to and by the retained store. Broker metadata (origin, arrival
// time, expiry deadline) lives here, not in the wire packet.
type Message struct {
	Topic      string
	Payload    []byte
	QoS        byte // the QoS it was published with
	Retain     bool // published with the RETAIN flag
	Properties packet.Properties

	From    string    // client id of the publisher; "" for the inline client and $SYS
	Created time.Time // when the broker received it
	Expires time.Time // zero: never (MQTT 5 Message Expiry Interval)

	willOf *ClientInfo // for a will: the client whose will it is, for Observers
}

// expired reports whether m's expiry deadline has passed at now.
func (m *Message) expired(now time.Time) bool {
	return !m.Expires.IsZero() && !now.Before(m.Expires)
}
