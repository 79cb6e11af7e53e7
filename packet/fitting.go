package packet

import "fmt"

// Diagnostics returns the properties of p that may carry a Reason String
// and User Properties, which a sender leaves out of the packet when they
// would make it larger than the receiver's Maximum Packet Size (see
// [AppendFitting]); it returns nil for the other packets, whose User
// Properties, as a PUBLISH's, are part of what they carry. It is also
// the place to set a Reason String on such a packet.
func Diagnostics(p Packet) *Properties {
	switch p := p.(type) {
	case *Puback: // [v5 MQTT-3.4.2-2] [v5 MQTT-3.4.2-3]
		return &p.Properties
	case *Pubrec: // [v5 MQTT-3.5.2-2] [v5 MQTT-3.5.2-3]
		return &p.Properties
	case *Pubrel: // [v5 MQTT-3.6.2-2] [v5 MQTT-3.6.2-3]
		return &p.Properties
	case *Pubcomp: // [v5 MQTT-3.7.2-2] [v5 MQTT-3.7.2-3]
		return &p.Properties
	case *Suback: // [v5 MQTT-3.9.2-1] [v5 MQTT-3.9.2-2]
		return &p.Properties
	case *Unsuback: // [v5 MQTT-3.11.2-1] [v5 MQTT-3.11.2-2]
		return &p.Properties
	case *Disconnect: // [v5 MQTT-3.14.2-3] [v5 MQTT-3.14.2-4]
		return &p.Properties
	case *Auth: // [v5 MQTT-3.15.2-2] [v5 MQTT-3.15.2-3]
		return &p.Properties
	case *Connack: // [v5 MQTT-3.2.2-19] [v5 MQTT-3.2.2-20]
		return &p.Properties
	}
	return nil
}

// AppendFitting appends p, encoded for version v, to buf, within the
// receiver's Maximum Packet Size max (0: no limit), for a server or a
// client sending to an MQTT 5 peer. A packet larger than max
// [v5 MQTT-3.1.2-24] [v5 MQTT-3.2.2-15] is encoded again without its
// Reason String and User Properties (see [Diagnostics]), which are
// removed from p [v5 MQTT-3.2.2-19] [v5 MQTT-3.2.2-20]
// [v5 MQTT-3.14.2-3] [v5 MQTT-3.14.2-4] [v5 MQTT-3.15.2-2]
// [v5 MQTT-3.15.2-3]. If it still does not fit, or p has nothing to
// leave out, AppendFitting returns buf as it was and a *ProtocolError of
// code PacketTooLarge, which errors.Is matches with [ErrPacketTooLarge]:
// the packet must not be sent.
func AppendFitting(buf []byte, p Packet, v Version, max uint32) ([]byte, error) {
	start := len(buf)
	out, err := p.Append(buf, v)
	if err != nil {
		return buf[:start], err
	}
	if max == 0 || len(out)-start <= int(max) {
		return out, nil
	}
	if props := Diagnostics(p); props != nil && (props.Has(PropReasonString) || props.Has(PropUser)) {
		props.ReasonString, props.User = "", nil
		props.Unmark(PropReasonString)
		props.Unmark(PropUser)
		if out, err = p.Append(buf[:start], v); err != nil {
			return buf[:start], err
		}
	}
	if n := len(out) - start; n > int(max) {
		return buf[:start], &ProtocolError{Code: PacketTooLarge, Packet: p.Type(), Spec: "v5 MQTT-3.1.2-24",
			Msg: fmt.Sprintf("packet of %d bytes exceeds the peer's maximum packet size %d", n, max)}
	}
	return out, nil
}
