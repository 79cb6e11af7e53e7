// Package packet is Tern's MQTT wire format: every control packet of MQTT 3.1
// (protocol name "MQIsdp", level 3), 3.1.1 (level 4) and 5.0 (level 5), with
// all MQTT 5 properties and reason codes.
//
// The package stands alone, like golang.org/x/net/http2's Framer: it reads and
// writes packets on any io.Reader / io.Writer and knows nothing of sessions,
// so it can be used to build a custom server, client or proxy.
//
// # Reading
//
// A [Reader] reads one packet at a time. It refuses a packet larger than its
// MaxPacketSize before allocating memory for it, and validates everything a
// receiver can check on a single packet: reserved flag bits, QoS 3, packet
// identifier 0, variable byte integers of five bytes or more, a remaining
// length that does not match the content, duplicated or misplaced MQTT 5
// properties, ill-formed UTF-8, wildcards in a PUBLISH topic, empty SUBSCRIBE
// and UNSUBSCRIBE packets, and more. Each check carries the normative
// statement id it enforces in a comment ("[v5 MQTT-3.3.1-4]"), and each
// failure is a *[ProtocolError] carrying the MQTT 5 reason code a server
// should send (0x81 Malformed Packet, 0x82 Protocol Error, 0x95 Packet Too
// Large, ...) and that id.
//
// Strings and byte slices of a decoded packet share one buffer that the
// Reader allocates for that packet and never reuses, so decoded packets may
// be kept and shared freely; treat them as read-only.
//
// Topic filter syntax in SUBSCRIBE and UNSUBSCRIBE is not checked here: in
// MQTT 5 an invalid filter is answered per filter (SUBACK or UNSUBACK
// 0x8F), not by closing the connection. Package topic validates filters.
// One rule is checked: in 3.1 and 3.1.1 an empty filter is a Protocol
// Error, like an empty topic name, and such a packet cannot be encoded
// for those versions either.
//
// MQTT 3.1 sets the DUP flag when it sends a PUBREL, SUBSCRIBE or
// UNSUBSCRIBE again; a Reader of Version V31 accepts those packets with
// fixed-header flags 1010 as well as 0010 (3.1.1 and 5.0 require 0010).
// The flag is informational and not part of the decoded packet.
//
// # Writing
//
// A [Writer] encodes packets for one protocol version into a reused buffer
// and writes each with a single Write call; [Packet.Append] encodes into a
// caller's buffer. Encoding checks that the packet can be represented on
// the wire (string lengths, remaining length, QoS, packet identifiers).
//
// # Properties
//
// [Properties] holds every MQTT 5 property as a plain field. A property is
// encoded when its field is non-zero or when it has been marked present
// with [Properties.Mark]; the Reader marks every property it decodes, so a
// property sent with a zero value (Session Expiry Interval 0, Maximum QoS
// 0, ...) survives a decode / encode round trip. User properties keep their
// order and may repeat. Properties are ignored when encoding for 3.1 and
// 3.1.1.
package packet
