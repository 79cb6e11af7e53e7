// Package session is the MQTT session engine that Tern's broker and client
// share, so that each piece of protocol logic exists once:
//
//   - [IDs] allocates packet identifiers in O(1);
//   - [Queue] holds messages waiting for a connection, in order;
//   - [Outbound] is the sending side's in-flight window: QoS 1 and 2
//     PUBLISHes sent and not yet acknowledged, their send order, the
//     PUBREC / PUBREL / PUBCOMP states, the peer's Receive Maximum and the
//     resending of everything unacknowledged, in order, on a new
//     connection;
//   - [Inbound] is the receiving side's QoS 2 exactly-once state and its
//     own Receive Maximum;
//   - [InboundAliases] and [OutboundAliases] are the MQTT 5 topic aliases
//     of one connection, in each direction.
//
// The types hold state and apply the protocol's rules; they do no I/O and
// take no locks. Their owner (a broker's session, a client) reads packets
// with package packet, calls the engine, writes what it says to write,
// and guards the state with its own lock. The messages themselves are the
// owner's: Queue and Outbound are generic over what they hold (Tern's
// broker keeps a delivery of a shared
// [github.com/ternmq/tern/message.Message] in them).
//
// # Build your own server or client end
//
// A custom server, a client, a test peer or a proxy can be built from
// package packet and this package alone, as the package example does (a
// single-connection server that authenticates, then takes PUBLISHes at
// every QoS, talking to mosquitto_pub in its test):
//
//   - read with a [packet.Reader]; write with a [packet.Writer] or
//     [packet.Packet.Append], and [packet.AppendFitting] to keep within
//     the peer's MQTT 5 Maximum Packet Size;
//   - receiving PUBLISHes: answer QoS 1 with PUBACK; pass QoS 2 to
//     [Inbound.Receive], pass the message on when it says it is new, and
//     answer PUBREC; answer PUBREL with PUBCOMP after [Inbound.Release].
//     Call [Inbound.NewConnection] on every new connection of a session
//     that outlives its connections. For MQTT 5, resolve topic aliases
//     with [InboundAliases.Resolve] first; any error these return is a
//     [packet.ProtocolError] whose code goes in the DISCONNECT;
//   - sending PUBLISHes: take messages from a [Queue]; give QoS 1 and 2
//     ones a packet identifier with [Outbound.Add] while the window has
//     room ([Outbound.Full]); complete them with [Outbound.Ack] at PUBACK,
//     [Outbound.Rec] at PUBREC (it says whether to send PUBREL) and
//     [Outbound.Comp] at PUBCOMP. On a new connection call
//     [Outbound.SetWindow] with the peer's Receive Maximum and
//     [Outbound.Resume], then send what [Outbound.NextResend] returns (a
//     PUBLISH with DUP set, or a PUBREL) before anything new. For MQTT 5,
//     [OutboundAliases.Apply] replaces topics by aliases and
//     [OutboundAliases.Commit] records each new one once written.
//
// Everything that is not a session's state stays with the owner: keep
// alive, authentication, subscriptions and routing, retained messages,
// wills, persistence (the state's accessors, Order, IDs, Restore, are
// what a store saves and loads).
package session
