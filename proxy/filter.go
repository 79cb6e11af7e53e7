package proxy

import (
	"context"

	"github.com/ternmq/tern/packet"
)

// Direction is the way a packet travels through the proxy.
type Direction uint8

const (
	// Up is from the client to the upstream broker.
	Up Direction = iota + 1
	// Down is from the upstream broker to the client.
	Down
)

// String returns "up" or "down".
func (d Direction) String() string {
	switch d {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "direction(?)"
}

// Action is what a Verdict tells the proxy to do with a packet.
type Action uint8

const (
	// Pass forwards the packet (or Verdict.Packet in its place).
	Pass Action = iota
	// Drop forwards nothing. The proxy answers the sender itself where
	// the protocol needs an answer, so that both session states stay
	// right: a QoS 1 PUBLISH gets a PUBACK, a QoS 2 PUBLISH a PUBREC (and
	// its PUBREL a PUBCOMP), a SUBSCRIBE a SUBACK of failure codes, an
	// UNSUBSCRIBE an UNSUBACK, a PINGREQ a PINGRESP; Verdict.Code is the
	// reason code of that answer in MQTT 5. Dropping a CONNECT or a
	// CONNACK closes the connection. Dropping an acknowledgement
	// (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK) leaves its peer
	// waiting for it: close instead.
	Drop
	// Close ends the connection: an MQTT 5 client gets a DISCONNECT (or,
	// for its CONNECT, a CONNACK) with Verdict.Code; a 3.1 / 3.1.1 client
	// is just disconnected (a refused CONNECT gets the nearest CONNACK
	// return code). The upstream connection is closed so that the broker
	// publishes the client's will.
	Close
)

// String returns "pass", "drop" or "close".
func (a Action) String() string {
	switch a {
	case Pass:
		return "pass"
	case Drop:
		return "drop"
	case Close:
		return "close"
	}
	return "action(?)"
}

// Verdict is a Filter's decision on one packet.
type Verdict struct {
	Action Action
	// Packet replaces the packet when the action is Pass; nil keeps it.
	// A filter may also change the packet it was given in place. Packet
	// identifiers must be kept: the proxy does not renumber them.
	Packet packet.Packet
	// Code is the MQTT 5 reason code of the answer to a dropped packet or
	// of the DISCONNECT (CONNACK) that closes the connection. Zero means
	// Success for a drop and Unspecified error (0x80) for a close.
	Code packet.ReasonCode
	// Refused applies to a SUBSCRIBE that passes: one entry per
	// subscription, in order; a failure code (0x80 or above) makes the
	// proxy refuse that subscription itself (it is not forwarded, and the
	// SUBACK the client gets has the code there, 0x80 for 3.1 / 3.1.1),
	// zero forwards it. Nil forwards them all.
	Refused []packet.ReasonCode
	// Reason says why, for the log.
	Reason string
}

// Forward returns the Verdict that passes the packet on unchanged (the
// zero Verdict).
func Forward() Verdict { return Verdict{} }

// DropWith returns a Verdict that drops the packet; code is the MQTT 5
// reason code of the proxy's answer to it (see Drop).
func DropWith(code packet.ReasonCode, reason string) Verdict {
	return Verdict{Action: Drop, Code: code, Reason: reason}
}

// CloseWith returns a Verdict that closes the connection with code.
func CloseWith(code packet.ReasonCode, reason string) Verdict {
	return Verdict{Action: Close, Code: code, Reason: reason}
}

// Filter sees every packet that crosses the proxy, in both directions, and
// decides what becomes of it. The CONNECT is seen first (Up), then the
// CONNACK (Down), then the rest as they come. A Filter is called from the
// goroutine reading the direction's source, so calls for the two
// directions of a connection may be concurrent; calls for one direction
// are sequential, in packet order, and a filter that blocks (to delay a
// packet) holds back that direction only. ctx ends when the connection
// does. Packets are decoded and checked before a filter sees them; a
// PUBLISH's topic alias has been resolved (Topic is always set).
type Filter interface {
	Filter(ctx context.Context, c *Conn, d Direction, p packet.Packet) Verdict
}

// FilterFunc adapts a function to the Filter interface.
type FilterFunc func(ctx context.Context, c *Conn, d Direction, p packet.Packet) Verdict

// Filter calls f.
func (f FilterFunc) Filter(ctx context.Context, c *Conn, d Direction, p packet.Packet) Verdict {
	return f(ctx, c, d, p)
}

// ConnEnder is an optional interface of a Filter that keeps state per
// connection: ConnEnded is called once when a connection that the filter
// saw ends, to release it.
type ConnEnder interface {
	ConnEnded(c *Conn)
}

// runFilters applies fs in order: each sees the packet the previous one
// passed; a Drop or a Close stops the chain. Refused codes of several
// filters are merged (the first failure per subscription wins).
func runFilters(ctx context.Context, fs []Filter, c *Conn, d Direction, p packet.Packet) (packet.Packet, Verdict) {
	var refused []packet.ReasonCode
	for _, f := range fs {
		v := f.Filter(ctx, c, d, p)
		switch v.Action {
		case Drop, Close:
			return p, v
		}
		if v.Packet != nil {
			p = v.Packet
		}
		if v.Refused != nil {
			if refused == nil {
				refused = make([]packet.ReasonCode, len(v.Refused))
			}
			for i, rc := range v.Refused {
				if i < len(refused) && refused[i] < 0x80 && rc >= 0x80 {
					refused[i] = rc
				}
			}
		}
	}
	return p, Verdict{Refused: refused}
}
