// Package proxy is Tern's MQTT-aware proxy: a Server that accepts client
// connections on any transport (TCP, TLS, WebSocket, secure WebSocket,
// unix) and forwards each to an upstream broker on any transport, reading
// whole packets in both directions with package packet and passing each
// through a chain of Filters that may pass, change, drop it, or close the
// connection with a reason code.
//
// # What the proxy does itself
//
// The protocol version is learned from the CONNECT (MQTT 3.1, 3.1.1 and
// 5.0). Every packet is decoded and checked before a filter sees it and
// encoded again before it is sent: a malformed packet, or one that breaks
// the protocol (a second CONNECT, a CONNACK from a client, a SUBSCRIBE from
// a server, ...) from either side is never passed on; it closes the
// connection, an MQTT 5 client being told why in a DISCONNECT with the
// reason code (0x81 Malformed Packet, 0x82 Protocol Error, 0x95 Packet too
// large, ...). Server.MaxPacketSize bounds what is read from either side
// before any memory is allocated for it, and is announced to MQTT 5 peers
// as their Maximum Packet Size; a connection holds at most about two such
// packets.
//
// Keep alive and wills are the upstream's: the proxy keeps no timers of
// its own once the CONNECT has arrived, forwards PINGREQ and PINGRESP, and
// when it closes a connection for any reason other than the client's
// DISCONNECT, the upstream connection is closed without a normal
// DISCONNECT, so the broker publishes the client's will.
//
// MQTT 5 topic aliases are resolved by the proxy in both directions (the
// filters always see the topic) and not forwarded: a dropped PUBLISH must
// not take an alias's definition with it.
//
// # Dropping without breaking sessions
//
// A dropped packet that the sender expects an answer to is answered by
// the proxy, as the receiver would: PUBACK for QoS 1, PUBREC for QoS 2 and
// PUBCOMP for the PUBREL that follows (the proxy remembers those packet
// identifiers, and answers a duplicate PUBLISH with PUBREC again), SUBACK
// for a SUBSCRIBE, UNSUBACK for an UNSUBSCRIBE, PINGRESP for a PINGREQ. A
// filter can refuse some of a SUBSCRIBE's filters (Verdict.Refused): the
// others are forwarded and the proxy merges its failure codes into the
// upstream's SUBACK, in the SUBSCRIBE's order.
//
// The proxy's own answers last as long as the connection: after the
// client reconnects, a PUBREL for a QoS 2 message the proxy dropped goes
// to the broker, which completes it (MQTT 5: PUBCOMP 0x92 Packet
// Identifier not found), and a QoS 1 or 2 message sent again is filtered
// again.
//
// # Upstreams
//
// Server.Upstreams lists brokers; each new client connection goes to the
// one that answered last, and on failure to the others in turn, with
// exponential backoff between rounds, until Server.DialTimeout. A client
// that finds none gets CONNACK 0x88 Server unavailable (3 in 3.1.1). When
// an upstream connection breaks, the client's connection is closed; the
// client's reconnection is then proxied to a broker that answers.
//
// # Built-in filters
//
// TopicFilter (allow and deny lists per direction), Rewrite (client
// identifier and user name templates), RateLimit (messages and bytes per
// second per client, delaying or disconnecting with 0x96) and PacketLog
// (every packet to a log/slog logger). Command tern proxy configures them
// from a YAML file.
package proxy
