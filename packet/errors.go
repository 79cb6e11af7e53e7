package packet

import (
	"errors"
	"strings"
)

// ProtocolError is a violation of the MQTT wire format or of a rule a
// receiver can check on one packet. Code is the MQTT 5 reason code a server
// sends in its DISCONNECT (or CONNACK) before closing the connection; for
// 3.1 and 3.1.1 the connection is simply closed. Spec names the normative
// statement, e.g. "v5 MQTT-3.3.1-4".
//
// Every ProtocolError is fatal to the connection it came from. Use
// errors.As to get at the code, or errors.Is with the sentinels
// [ErrMalformed], [ErrProtocol] and [ErrPacketTooLarge], which match any
// ProtocolError with the same code.
type ProtocolError struct {
	Code   ReasonCode // MalformedPacket, ProtocolErrorCode, PacketTooLarge, ...
	Packet Type       // the packet being decoded or encoded, 0 if unknown
	Spec   string     // normative id, "v5 MQTT-2.1.3-1"; "noid:..." for rules without one
	Msg    string     // what was wrong, in words
}

func (e *ProtocolError) Error() string {
	var b strings.Builder
	b.WriteString("mqtt: ")
	if e.Packet != 0 {
		b.WriteString(e.Packet.String())
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	b.WriteString(" (")
	b.WriteString(e.Code.String())
	if e.Spec != "" {
		b.WriteString(", ")
		b.WriteString(e.Spec)
	}
	b.WriteString(")")
	return b.String()
}

// Is reports whether target is a *ProtocolError with the same Code, so
// errors.Is(err, ErrMalformed) matches every malformed-packet error.
func (e *ProtocolError) Is(target error) bool {
	t, ok := target.(*ProtocolError)
	return ok && t.Code == e.Code && (t.Spec == "" || t.Spec == e.Spec)
}

// Sentinels for errors.Is; each matches any ProtocolError with its code.
var (
	ErrMalformed      = &ProtocolError{Code: MalformedPacket, Msg: "malformed packet"}
	ErrProtocol       = &ProtocolError{Code: ProtocolErrorCode, Msg: "protocol error"}
	ErrPacketTooLarge = &ProtocolError{Code: PacketTooLarge, Msg: "packet too large"}
)

// ErrProtocolName matches (errors.Is) the error of a CONNECT whose
// protocol name is neither "MQTT" nor "MQIsdp": the peer does not speak
// MQTT. An unsupported protocol level with a known name is another
// UnsupportedProtocolVersion error, which it does not match.
var ErrProtocolName = &ProtocolError{Code: UnsupportedProtocolVersion, Spec: "v5 MQTT-3.1.2-1", Msg: "not an MQTT protocol name"}

// ErrEncode is returned (wrapped) by Append when a packet cannot be
// represented on the wire.
var ErrEncode = errors.New("mqtt: cannot encode packet")

func malformed(t Type, spec, msg string) *ProtocolError {
	return &ProtocolError{Code: MalformedPacket, Packet: t, Spec: spec, Msg: msg}
}

func protoErr(t Type, spec, msg string) *ProtocolError {
	return &ProtocolError{Code: ProtocolErrorCode, Packet: t, Spec: spec, Msg: msg}
}

type encodeError struct {
	t   Type
	msg string
}

func (e *encodeError) Error() string { return "mqtt: cannot encode " + e.t.String() + ": " + e.msg }
func (e *encodeError) Unwrap() error { return ErrEncode }

func encErr(t Type, msg string) error { return &encodeError{t, msg} }
