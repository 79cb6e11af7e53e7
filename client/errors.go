package client

import (
	"errors"
	"fmt"

	"github.com/ternmq/tern/packet"
)

var (
	// ErrDropped: a QoS 0 publish made while the client was not connected
	// (and Config.QueueQoS0 is off) was not sent, and never will be.
	ErrDropped = errors.New("client: QoS 0 message dropped while offline (set Config.QueueQoS0 to queue it)")
	// ErrQueueFull: PublishAsync found Config.MaxQueued messages waiting.
	ErrQueueFull = errors.New("client: publish queue full (Config.MaxQueued)")
	// ErrClosed: the client was disconnected (Disconnect), or its only
	// connection (Config.Conn, with no Config.Servers) broke: then
	// publishes that were queued, and every later Publish, Subscribe,
	// Unsubscribe and Request, fail at once with an error wrapping
	// ErrClosed that says so.
	ErrClosed = errors.New("client: closed")
	// ErrNotConnected: an operation that needs a live connection
	// (Subscribe, Unsubscribe, Reauthenticate) was tried without one.
	ErrNotConnected = errors.New("client: not connected")
	// ErrExpired: an MQTT 5 message whose Message Expiry Interval passed
	// while it waited in the client's queue (offline, or behind the
	// server's Receive Maximum) was not sent, and never will be.
	ErrExpired = errors.New("client: message expired before it was sent (MQTT 5 Message Expiry Interval)")
	// ErrConnectionLost: a SUBSCRIBE, UNSUBSCRIBE or AUTH was on its way
	// when the connection broke; its outcome is unknown. A QoS 1 or 2
	// publish sent and not yet acknowledged when the only connection
	// (Config.Conn) broke fails with it too; it stays in Config.Store.
	ErrConnectionLost = errors.New("client: connection lost before the acknowledgement")
)

// ConnectError is a refusal: the server answered CONNECT with a CONNACK
// whose reason code is an error (MQTT 3.1.1 return codes 1 to 5, MQTT 5
// codes 0x80 and above). Use errors.As to get the code:
//
//	var ce *client.ConnectError
//	if errors.As(err, &ce) { os.Exit(int(ce.ReasonCode)) }
type ConnectError struct {
	ReasonCode packet.ReasonCode
	Version    packet.Version
	Properties packet.Properties // MQTT 5: ReasonString, ServerReference, User
	Server     string
}

func (e *ConnectError) Error() string {
	s := fmt.Sprintf("client: %s refused the connection: %s (0x%02X)", e.Server,
		e.ReasonCode.Text(packet.CONNACK, e.Version), byte(e.ReasonCode))
	if e.Properties.ReasonString != "" {
		s += ": " + e.Properties.ReasonString
	}
	return s
}

// ReasonError is an MQTT 5 acknowledgement (PUBACK, PUBREC, PUBCOMP) or
// DISCONNECT whose reason code is an error; Publish returns it.
type ReasonError struct {
	Packet     packet.Type
	ReasonCode packet.ReasonCode
	Properties packet.Properties
}

func (e *ReasonError) Error() string {
	s := fmt.Sprintf("client: %s 0x%02X %s", e.Packet, byte(e.ReasonCode), e.ReasonCode.Text(e.Packet, packet.V5))
	if e.Properties.ReasonString != "" {
		s += ": " + e.Properties.ReasonString
	}
	return s
}

// DisconnectError is a connection ended by the server's DISCONNECT
// (MQTT 5), as given to Config.OnConnectionDown.
type DisconnectError struct {
	ReasonCode packet.ReasonCode
	Properties packet.Properties
}

func (e *DisconnectError) Error() string {
	s := fmt.Sprintf("client: server sent DISCONNECT 0x%02X %s", byte(e.ReasonCode), e.ReasonCode.Text(packet.DISCONNECT, packet.V5))
	if e.Properties.ReasonString != "" {
		s += ": " + e.Properties.ReasonString
	}
	return s
}
