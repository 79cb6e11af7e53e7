package packet

import "strconv"

// Version is the MQTT protocol level carried in CONNECT.
type Version byte

// Protocol levels.
const (
	V31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 Version = 4 // MQTT 3.1.1, protocol name "MQTT"
	V5   Version = 5 // MQTT 5.0, protocol name "MQTT"
)

// String returns "3.1", "3.1.1" or "5.0".
func (v Version) String() string {
	switch v {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return "level " + strconv.Itoa(int(v))
}

// ProtocolName returns the protocol name a CONNECT of this version carries.
func (v Version) ProtocolName() string {
	if v == V31 {
		return "MQIsdp"
	}
	return "MQTT"
}

// Valid reports whether v is one of the three supported levels.
func (v Version) Valid() bool { return v == V31 || v == V311 || v == V5 }

// Type is the MQTT control packet type, the high nibble of the first byte.
type Type byte

// Control packet types.
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15 // MQTT 5 only
)

var typeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "TYPE(" + strconv.Itoa(int(t)) + ")"
}

// Packet is one MQTT control packet. The concrete types are the pointer
// types of this package (*Connect, *Publish, ...); a type switch over them
// is exhaustive.
type Packet interface {
	// Type returns the control packet type.
	Type() Type
	// Append appends the packet's wire form for protocol version v to dst.
	// It returns an error, and dst unchanged, when the packet cannot be
	// encoded (a string over 65,535 bytes, QoS 3, a missing packet
	// identifier, a packet type that v does not have, ...).
	Append(dst []byte, v Version) ([]byte, error)
	// String renders the packet in a readable one-line form for logs.
	String() string

	decode(d *decoder, flags byte) error
}

// New returns an empty packet of type t, or nil if t is not a packet type.
func New(t Type) Packet {
	switch t {
	case CONNECT:
		return new(Connect)
	case CONNACK:
		return new(Connack)
	case PUBLISH:
		return new(Publish)
	case PUBACK:
		return new(Puback)
	case PUBREC:
		return new(Pubrec)
	case PUBREL:
		return new(Pubrel)
	case PUBCOMP:
		return new(Pubcomp)
	case SUBSCRIBE:
		return new(Subscribe)
	case SUBACK:
		return new(Suback)
	case UNSUBSCRIBE:
		return new(Unsubscribe)
	case UNSUBACK:
		return new(Unsuback)
	case PINGREQ:
		return new(Pingreq)
	case PINGRESP:
		return new(Pingresp)
	case DISCONNECT:
		return new(Disconnect)
	case AUTH:
		return new(Auth)
	}
	return nil
}

// MaxRemainingLength is the largest remaining length a variable byte
// integer of four bytes can carry (256 MiB - 1).
const MaxRemainingLength = 268_435_455

// MaxPacketSize is the largest possible MQTT packet: a five-byte fixed
// header plus MaxRemainingLength.
const MaxPacketSize = MaxRemainingLength + 5
