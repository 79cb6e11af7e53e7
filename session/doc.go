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
// and guards the state with its own lock. A custom server or client can
// be built from packet and session alone: see the package example.
package session
