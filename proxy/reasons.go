package proxy

import "github.com/ternmq/tern/packet"

// The reason codes each packet the proxy sends on its own may carry
// (MQTT 5.0 section 3). A filter's code that the packet cannot carry
// becomes Unspecified error (0x80), or Success where the proxy answers a
// drop with a non-error code.

// serverDisconnect are the DISCONNECT codes a server may send
// [v5 MQTT-3.14.2-1].
var serverDisconnect = codeSet(0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F,
	0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2)

// clientDisconnect are the DISCONNECT codes a client may send
// [v5 MQTT-3.14.2-1].
var clientDisconnect = codeSet(0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x90, 0x93, 0x94, 0x95,
	0x96, 0x97, 0x98, 0x99)

// connackCodes are the CONNACK codes [v5 MQTT-3.2.2-8].
var connackCodes = codeSet(0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A,
	0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)

// pubackCodes are the PUBACK and PUBREC codes [v5 MQTT-3.4.2-1]
// [v5 MQTT-3.5.2-1].
var pubackCodes = codeSet(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)

// subackFailures are the SUBACK failure codes [v5 MQTT-3.9.3-2].
var subackFailures = codeSet(0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)

// unsubackCodes are the UNSUBACK codes [v5 MQTT-3.11.3-2].
var unsubackCodes = codeSet(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)

type reasonSet [256 / 64]uint64

func codeSet(codes ...packet.ReasonCode) *reasonSet {
	var s reasonSet
	for _, c := range codes {
		s[c/64] |= 1 << (c % 64)
	}
	return &s
}

func (s *reasonSet) has(c packet.ReasonCode) bool { return s[c/64]&(1<<(c%64)) != 0 }

// pick returns c if s has it, else def.
func (s *reasonSet) pick(c, def packet.ReasonCode) packet.ReasonCode {
	if s.has(c) {
		return c
	}
	return def
}

// v3Connack maps an MQTT 5 refusal to the nearest 3.1 / 3.1.1 CONNACK
// return code [v3 MQTT-3.2.2-4].
func v3Connack(c packet.ReasonCode) packet.ReasonCode {
	switch c {
	case packet.UnsupportedProtocolVersion:
		return packet.V3UnacceptableProtocolVersion
	case packet.ClientIdentifierNotValid:
		return packet.V3IdentifierRejected
	case packet.BadUserNameOrPassword, packet.BadAuthenticationMethod:
		return packet.V3BadUsernameOrPassword
	case packet.NotAuthorized, packet.Banned:
		return packet.V3NotAuthorized
	}
	return packet.V3ServerUnavailable
}
