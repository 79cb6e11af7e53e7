package packet

import "fmt"

// ack is the shared layout of PUBACK, PUBREC, PUBREL and PUBCOMP: a packet
// identifier and, in MQTT 5, a reason code and properties, both of which
// may be left off when the code is 0 and there are no properties.
type ack struct {
	PacketID   uint16
	ReasonCode ReasonCode // MQTT 5 only
	Properties Properties // MQTT 5 only: ReasonString and User
}

func (a *ack) decodeAck(d *decoder, t Type, codes *reasonSet, spec string) error {
	a.PacketID = d.u16()
	if d.err == nil && a.PacketID == 0 {
		// [v5 MQTT-2.2.1-5] [v3 MQTT-2.3.1-6 .. -7]: acks echo a non-zero id.
		return protoErr(t, versioned(d.v, "MQTT-2.2.1-5", "MQTT-2.3.1-6"), "packet identifier 0")
	}
	if d.v == V5 && d.remaining() > 0 {
		a.ReasonCode = ReasonCode(d.u8())
		if d.err == nil && !codes.has(a.ReasonCode) {
			return malformed(t, spec, "reason code not allowed: "+a.ReasonCode.String())
		}
		if d.remaining() > 0 {
			a.Properties.decode(d, t)
		}
	}
	return d.end()
}

func (a *ack) appendAck(dst []byte, v Version, t Type, flags byte, codes *reasonSet) ([]byte, error) {
	e := encoder{t: t}
	e.check(a.PacketID != 0, "packet identifier 0")
	start := len(dst)
	dst, off := header(dst, t, flags)
	dst = appendU16(dst, a.PacketID)
	if v == V5 {
		e.code(codes, a.ReasonCode)
		hasProps := !a.Properties.IsZero()
		if a.ReasonCode != Success || hasProps {
			dst = append(dst, byte(a.ReasonCode))
			if hasProps {
				dst = a.Properties.append(dst, t, &e)
			}
		}
	}
	return finish(dst, start, off, &e)
}

func (a *ack) str(t Type) string {
	s := fmt.Sprintf("%s id=%d", t, a.PacketID)
	if a.ReasonCode != 0 {
		s += fmt.Sprintf(" code=0x%02x(%s)", byte(a.ReasonCode), a.ReasonCode)
	}
	if !a.Properties.IsZero() {
		s += " props=" + a.Properties.String()
	}
	return s
}

// Puback is the PUBACK packet (section 3.4), the answer to a QoS 1 PUBLISH.
type Puback struct {
	PacketID   uint16
	ReasonCode ReasonCode // MQTT 5 only
	Properties Properties // MQTT 5 only: ReasonString and User
}

// Pubrec is the PUBREC packet (section 3.5), the first answer to a QoS 2 PUBLISH.
type Pubrec struct {
	PacketID   uint16
	ReasonCode ReasonCode // MQTT 5 only
	Properties Properties // MQTT 5 only: ReasonString and User
}

// Pubrel is the PUBREL packet (section 3.6), the answer to a PUBREC.
type Pubrel struct {
	PacketID   uint16
	ReasonCode ReasonCode // MQTT 5 only
	Properties Properties // MQTT 5 only: ReasonString and User
}

// Pubcomp is the PUBCOMP packet (section 3.7), the answer to a PUBREL.
type Pubcomp struct {
	PacketID   uint16
	ReasonCode ReasonCode // MQTT 5 only
	Properties Properties // MQTT 5 only: ReasonString and User
}

func (*Puback) Type() Type  { return PUBACK }
func (*Pubrec) Type() Type  { return PUBREC }
func (*Pubrel) Type() Type  { return PUBREL }
func (*Pubcomp) Type() Type { return PUBCOMP }

func (p *Puback) decode(d *decoder, _ byte) error {
	return (*ack)(p).decodeAck(d, PUBACK, pubackCodes, "v5 MQTT-3.4.2-1")
}
func (p *Pubrec) decode(d *decoder, _ byte) error {
	return (*ack)(p).decodeAck(d, PUBREC, pubackCodes, "v5 MQTT-3.5.2-1")
}
func (p *Pubrel) decode(d *decoder, _ byte) error {
	return (*ack)(p).decodeAck(d, PUBREL, pubrelCodes, "v5 MQTT-3.6.2-1")
}
func (p *Pubcomp) decode(d *decoder, _ byte) error {
	return (*ack)(p).decodeAck(d, PUBCOMP, pubrelCodes, "v5 MQTT-3.7.2-1")
}

func (p *Puback) Append(dst []byte, v Version) ([]byte, error) {
	return (*ack)(p).appendAck(dst, v, PUBACK, 0, pubackCodes)
}
func (p *Pubrec) Append(dst []byte, v Version) ([]byte, error) {
	return (*ack)(p).appendAck(dst, v, PUBREC, 0, pubackCodes)
}

// Append encodes the PUBREL with its required flags 0010 [v5 MQTT-3.6.1-1].
func (p *Pubrel) Append(dst []byte, v Version) ([]byte, error) {
	return (*ack)(p).appendAck(dst, v, PUBREL, 0x02, pubrelCodes)
}
func (p *Pubcomp) Append(dst []byte, v Version) ([]byte, error) {
	return (*ack)(p).appendAck(dst, v, PUBCOMP, 0, pubrelCodes)
}

func (p *Puback) String() string  { return (*ack)(p).str(PUBACK) }
func (p *Pubrec) String() string  { return (*ack)(p).str(PUBREC) }
func (p *Pubrel) String() string  { return (*ack)(p).str(PUBREL) }
func (p *Pubcomp) String() string { return (*ack)(p).str(PUBCOMP) }
