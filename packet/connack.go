package packet

import "fmt"

// Connack is the CONNACK packet (section 3.2). In 3.1 / 3.1.1 ReasonCode
// carries the return code (V3Accepted ... V3NotAuthorized).
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties // MQTT 5 only
}

func (*Connack) Type() Type { return CONNACK }

func (p *Connack) decode(d *decoder, flags byte) error {
	af := d.u8()
	p.ReasonCode = ReasonCode(d.u8())
	if d.err != nil {
		return d.err
	}
	if af&^1 != 0 {
		// [v5 MQTT-3.2.2-1]; 3.1.1 section 3.2.2.1 reserves the same bits.
		return malformed(CONNACK, "v5 MQTT-3.2.2-1", "reserved acknowledge flags are set")
	}
	p.SessionPresent = af&1 != 0
	if d.v == V5 {
		if !connackCodes.has(p.ReasonCode) {
			return malformed(CONNACK, "v5 MQTT-3.2.2-8", "reason code not allowed in CONNACK: "+p.ReasonCode.String())
		}
		p.Properties.decode(d, CONNACK)
		d.authPair(&p.Properties)
	} else if p.ReasonCode > v3ConnackCodeMax {
		return malformed(CONNACK, "v3 noid:connack-return-code", fmt.Sprintf("reserved return code %d", p.ReasonCode))
	}
	if d.err == nil && p.SessionPresent && p.ReasonCode != 0 {
		// [v5 MQTT-3.2.2-6] [v3 MQTT-3.2.2-4] session present is 0 on refusal.
		d.fail(protoErr(CONNACK, versioned(d.v, "MQTT-3.2.2-6", "MQTT-3.2.2-4"), "session present set on a refused connection"))
	}
	return d.end()
}

func (p *Connack) Append(dst []byte, v Version) ([]byte, error) {
	e := encoder{t: CONNACK}
	if v == V5 {
		e.check(connackCodes.has(p.ReasonCode), "reason code not allowed in CONNACK")
	} else {
		e.check(p.ReasonCode <= v3ConnackCodeMax, "return code above 5")
	}
	e.check(!p.SessionPresent || p.ReasonCode == 0, "session present on a refused connection")
	start := len(dst)
	dst, off := header(dst, CONNACK, 0)
	var af byte
	if p.SessionPresent {
		af = 1
	}
	dst = append(dst, af, byte(p.ReasonCode))
	if v == V5 {
		dst = p.Properties.append(dst, CONNACK, &e)
	}
	return finish(dst, start, off, &e)
}

func (p *Connack) String() string {
	s := fmt.Sprintf("CONNACK session_present=%t code=0x%02x", p.SessionPresent, byte(p.ReasonCode))
	if !p.Properties.IsZero() {
		s += " props=" + p.Properties.String()
	}
	return s
}
