package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"net"

	"github.com/ternmq/tern/packet"
)

// ClientInfo describes one client connection to the hooks. It is read-only
// for them.
type ClientInfo struct {
	ClientID   string
	Username   string
	Version    packet.Version
	RemoteAddr net.Addr
	Listener   string               // the name of the listener that accepted the connection
	TLS        *tls.ConnectionState // nil for a connection without TLS
	Inline     bool                 // the broker's own in-process client
}

// AuthRequest is what a client presents at CONNECT.
type AuthRequest struct {
	ClientInfo
	Password []byte
	Connect  *packet.Connect // the whole packet, for hooks that need its properties
	// AuthMethod is the MQTT 5 Authentication Method of an enhanced
	// authentication (AuthMethod hooks only).
	AuthMethod string
	// Reauth is true when a connected client re-authenticates (AUTH with
	// reason code 0x19); Connect and Password are then nil.
	Reauth bool
}

// Authenticator decides whether a client may connect. Return nil to
// accept, a *Refusal to refuse with a chosen reason code, or any other
// error to refuse with "not authorized" (the error is logged, not sent).
// It may change req.Username (for example to the certificate's common
// name) and the broker uses the changed value from then on. ctx ends
// after Server.HookTimeout (or the ConnectTimeout, if sooner): a hook
// that has not answered by then refuses the client with 0x88 Server
// unavailable (see NonBlocking).
type Authenticator interface {
	Authenticate(ctx context.Context, req *AuthRequest) error
}

// Refusal refuses a connection with an MQTT 5 CONNACK reason code. Older
// clients get the 3.1.1 return code that says the same: 2 for
// ClientIdentifierNotValid, 4 for BadUserNameOrPassword and
// BadAuthenticationMethod, 5 for NotAuthorized and Banned, 3 (server
// unavailable) for ServerUnavailable, ServerBusy, UseAnotherServer,
// ServerMoved, ConnectionRateExceeded and QuotaExceeded. For any other
// code no 3.1.1 return code applies, and the connection is closed
// without a CONNACK (MQTT 3.1.1 section 3.2.2.3).
type Refusal struct {
	Code   packet.ReasonCode // e.g. packet.BadUserNameOrPassword, packet.NotAuthorized, packet.Banned
	Reason string            // sent as the MQTT 5 reason string when the client asked for problem information
}

func (r *Refusal) Error() string {
	if r.Reason != "" {
		return "connection refused: " + r.Code.String() + ": " + r.Reason
	}
	return "connection refused: " + r.Code.String()
}

// ErrBadCredentials refuses a connection with "bad user name or password".
var ErrBadCredentials error = &Refusal{Code: packet.BadUserNameOrPassword}

// ErrNotAuthorized refuses a connection or an action with "not authorized".
var ErrNotAuthorized error = &Refusal{Code: packet.NotAuthorized}

// Action is what a client asks an Authorizer for.
type Action byte

const (
	// ActionPublish: the client publishes to a topic name (the will
	// included, checked when it is published).
	ActionPublish Action = iota + 1
	// ActionSubscribe: the client subscribes to a topic filter.
	ActionSubscribe
	// ActionReceive: a message on a topic name is about to be delivered
	// to the client through one of its subscriptions. Asked only of
	// authorizers that also implement ReceiveAuthorizer.
	ActionReceive
)

func (a Action) String() string {
	switch a {
	case ActionPublish:
		return "publish"
	case ActionSubscribe:
		return "subscribe"
	case ActionReceive:
		return "receive"
	}
	return "action?"
}

// Authorizer decides whether a client may publish to a topic or subscribe
// to a filter. It is called on every PUBLISH and every filter of a
// SUBSCRIBE, so it should be fast (see NonBlocking). ctx ends after
// Server.HookTimeout: an answer after that counts as false.
type Authorizer interface {
	Authorize(ctx context.Context, c *ClientInfo, a Action, topic string) bool
}

// ReceiveAuthorizer is an optional capability of an Authorizer: when it is
// implemented, each message is checked with ActionReceive before it is
// delivered, so a client subscribed to "#" receives only what it may read
// (as Mosquitto's ACL "read" rules do).
type ReceiveAuthorizer interface {
	Authorizer
	AuthorizeReceive(c *ClientInfo, topic string) bool
}

// EventKind says what an Event reports.
type EventKind byte

const (
	EventConnect     EventKind = iota + 1 // a client connected (after CONNACK)
	EventDisconnect                       // a client's connection ended; Err says why (nil after DISCONNECT)
	EventSubscribe                        // a client subscribed; Topic is the filter, QoS the granted QoS
	EventUnsubscribe                      // a client unsubscribed; Topic is the filter
	EventPublish                          // a message entered the broker; Message is set (see Observer)
	EventDrop                             // a message was not delivered to a client; Err says why
)

var eventNames = [...]string{"", "connect", "disconnect", "subscribe", "unsubscribe", "publish", "drop"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "event?"
}

// Event is one thing that happened in the broker.
type Event struct {
	Kind    EventKind
	Client  *ClientInfo
	Topic   string
	QoS     byte
	Message *Message
	Err     error
}

// Observer is told about events: connects, disconnects, subscriptions,
// publishes and dropped messages.
//
// EventPublish reports every message that enters the broker from outside
// it, after it has been routed: a client's PUBLISH (Client is that
// client), a message of the program's own published with Server.Publish
// or PublishMessage (Client.Inline is set), and a will when it is
// published (Client is the client whose will it is; Message.From is its
// id). The broker's own $SYS messages are not reported. In-process
// subscriptions made with Server.Subscribe are reported as EventSubscribe
// and EventUnsubscribe with Client.Inline set.
//
// Observe is called on the goroutine where the event happened (the
// client's connection, the caller of Server.Publish, the timer of a
// delayed will), never while the broker holds a lock; it must not block
// for long, since it delays that client.
type Observer interface {
	Observe(e Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }

// NonBlocking is an optional interface of Authenticators, Authorizers
// and AuthMethods. A hook whose NonBlocking returns true promises to
// answer at once, without I/O and without waiting (from a table in
// memory, say): the broker calls it directly on the connection's
// goroutine, with the server's context and no deadline.
//
// Every other hook is called on a goroutine of its own with a context
// whose deadline is Server.HookTimeout, and the connection waits for the
// answer or the deadline, whichever comes first. A hook that has not
// answered by then is taken as a refusal and logged, so
// one stuck on a remote service cannot hang a connection: a PUBLISH is
// not authorized (PUBACK 0x87), a subscription is refused (SUBACK 0x87),
// a CONNECT is refused with 0x88 Server unavailable (3.1.1: return code
// 3) and a re-authentication fails (DISCONNECT 0x87). A hook that panics
// closes the connection it was called for, and only that one. The goroutine and
// the deadline cost a few microseconds and about 850 bytes per call,
// which matters on the Authorizer, called for every PUBLISH (see
// BenchmarkAuthorize). AllowAll and the ACL file of package broker/auth
// are NonBlocking.
type NonBlocking interface {
	NonBlocking() bool
}

// AllowAll is an Authenticator and Authorizer that accepts everything. It
// is what a Server uses when none is configured.
type AllowAll struct{}

// NonBlocking reports true: AllowAll answers at once.
func (AllowAll) NonBlocking() bool { return true }

// Authenticate accepts every client.
func (AllowAll) Authenticate(context.Context, *AuthRequest) error { return nil }

// Authorize allows every action.
func (AllowAll) Authorize(context.Context, *ClientInfo, Action, string) bool { return true }

// refusalCode returns the CONNACK reason code for an Authenticate error.
func refusalCode(err error) packet.ReasonCode {
	var r *Refusal
	if errors.As(err, &r) && r.Code.IsError() {
		return r.Code
	}
	return packet.NotAuthorized
}
