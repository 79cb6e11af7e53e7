package packet

import (
	"fmt"
	"strings"
)

// Subscription is one topic filter of a SUBSCRIBE with its options.
type Subscription struct {
	Filter            string
	QoS               byte // maximum QoS: 0, 1 or 2
	NoLocal           bool // MQTT 5: not sent back to the publishing connection
	RetainAsPublished bool // MQTT 5: keep the RETAIN flag as published
	RetainHandling    byte // MQTT 5: 0 send retained, 1 only on new subscription, 2 never
}

// Subscribe is the SUBSCRIBE packet (section 3.8). Topic filter syntax is
// not checked here, except that 3.1 and 3.1.1 refuse an empty filter (see
// package doc); package topic validates filters.
type Subscribe struct {
	PacketID      uint16
	Properties    Properties // MQTT 5: SubscriptionIDs (at most one) and User
	Subscriptions []Subscription
}

func (*Subscribe) Type() Type { return SUBSCRIBE }

func (p *Subscribe) decode(d *decoder, flags byte) error {
	p.PacketID = d.u16()
	if d.err == nil && p.PacketID == 0 {
		return protoErr(SUBSCRIBE, versioned(d.v, "MQTT-2.2.1-3", "MQTT-2.3.1-1"), "packet identifier 0") // [v5 MQTT-2.2.1-3] [v3 MQTT-2.3.1-1]
	}
	if d.v == V5 {
		p.Properties.decode(d, SUBSCRIBE)
	}
	if n := d.entries(1); d.err == nil && n > 0 {
		p.Subscriptions = make([]Subscription, 0, n)
	}
	for d.err == nil && d.remaining() > 0 {
		var s Subscription
		s.Filter = d.str() // [v5 MQTT-3.8.3-1] [v3 MQTT-3.8.3-1]
		o := d.u8()
		if d.err != nil {
			break
		}
		if s.Filter == "" && d.v != V5 {
			return emptyFilter(SUBSCRIBE)
		}
		s.QoS = o & 0x03
		if d.v == V5 {
			if o&0xC0 != 0 {
				return malformed(SUBSCRIBE, "v5 MQTT-3.8.3-5", "reserved subscription option bits are set") // [v5 MQTT-3.8.3-5]
			}
			if s.QoS == 3 {
				return protoErr(SUBSCRIBE, "v5 noid:sub-qos3", "QoS 3 in subscription options") // section 3.8.3.1: a Protocol Error
			}
			s.NoLocal = o&0x04 != 0
			s.RetainAsPublished = o&0x08 != 0
			s.RetainHandling = (o >> 4) & 0x03
			if s.RetainHandling == 3 {
				return protoErr(SUBSCRIBE, "v5 noid:retain-handling-3", "retain handling 3") // section 3.8.3.1
			}
			if s.NoLocal && strings.HasPrefix(s.Filter, "$share/") {
				return protoErr(SUBSCRIBE, "v5 MQTT-3.8.3-4", "no local on a shared subscription") // [v5 MQTT-3.8.3-4]
			}
		} else if o&^0x03 != 0 || s.QoS == 3 {
			return malformed(SUBSCRIBE, "v3 MQTT-3.8.3-4", "reserved bits set or QoS 3 in a requested QoS byte") // [v3 MQTT-3.8.3-4]
		}
		p.Subscriptions = append(p.Subscriptions, s)
	}
	if d.err == nil && len(p.Subscriptions) == 0 {
		// [v5 MQTT-3.8.3-2] [v3 MQTT-3.8.3-3]
		return protoErr(SUBSCRIBE, versioned(d.v, "MQTT-3.8.3-2", "MQTT-3.8.3-3"), "no topic filter")
	}
	return d.end()
}

// Append encodes the SUBSCRIBE with its required flags 0010 [v5 MQTT-3.8.1-1].
func (p *Subscribe) Append(dst []byte, v Version) ([]byte, error) {
	e := encoder{t: SUBSCRIBE}
	e.check(p.PacketID != 0, "packet identifier 0")
	e.check(len(p.Subscriptions) > 0, "no topic filter")
	start := len(dst)
	dst, off := header(dst, SUBSCRIBE, 0x02)
	dst = appendU16(dst, p.PacketID)
	if v == V5 {
		dst = p.Properties.append(dst, SUBSCRIBE, &e)
	}
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		e.str(s.Filter, "topic filter")
		e.check(s.Filter != "" || v == V5, "empty topic filter")
		e.check(s.QoS <= 2, "QoS above 2")
		o := s.QoS
		if v == V5 {
			e.check(s.RetainHandling <= 2, "retain handling above 2")
			if s.NoLocal {
				o |= 0x04
			}
			if s.RetainAsPublished {
				o |= 0x08
			}
			o |= s.RetainHandling << 4
		}
		dst = append(appendString(dst, s.Filter), o)
	}
	return finish(dst, start, off, &e)
}

func (p *Subscribe) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "SUBSCRIBE id=%d", p.PacketID)
	for _, s := range p.Subscriptions {
		fmt.Fprintf(&b, " %q:qos%d", s.Filter, s.QoS)
		if s.NoLocal {
			b.WriteString(",nl")
		}
		if s.RetainAsPublished {
			b.WriteString(",rap")
		}
		if s.RetainHandling != 0 {
			fmt.Fprintf(&b, ",rh%d", s.RetainHandling)
		}
	}
	if !p.Properties.IsZero() {
		b.WriteString(" props=" + p.Properties.String())
	}
	return b.String()
}

// Suback is the SUBACK packet (section 3.9): one reason code per filter,
// in the order of the SUBSCRIBE. In 3.1 / 3.1.1 the codes are 0, 1, 2 or
// 0x80 (V3SubackFailure).
type Suback struct {
	PacketID    uint16
	Properties  Properties // MQTT 5: ReasonString and User
	ReasonCodes []ReasonCode
}

func (*Suback) Type() Type { return SUBACK }

func (p *Suback) decode(d *decoder, flags byte) error {
	p.PacketID = d.u16()
	if d.err == nil && p.PacketID == 0 {
		return protoErr(SUBACK, versioned(d.v, "MQTT-2.2.1-6", "MQTT-2.3.1-7"), "packet identifier 0") // answers echo the request's non-zero id
	}
	if d.v == V5 {
		p.Properties.decode(d, SUBACK)
	}
	codes, spec := v3SubackCodes, "v3 MQTT-3.9.3-2"
	if d.v == V5 {
		codes, spec = subackCodes, "v5 MQTT-3.9.3-2"
	}
	p.ReasonCodes = decodeCodes(d, SUBACK, codes, spec)
	return d.end()
}

func (p *Suback) Append(dst []byte, v Version) ([]byte, error) {
	e := encoder{t: SUBACK}
	e.check(p.PacketID != 0, "packet identifier 0")
	codes := v3SubackCodes
	if v == V5 {
		codes = subackCodes
	}
	start := len(dst)
	dst, off := header(dst, SUBACK, 0)
	dst = appendU16(dst, p.PacketID)
	if v == V5 {
		dst = p.Properties.append(dst, SUBACK, &e)
	}
	dst = appendCodes(dst, p.ReasonCodes, codes, &e)
	return finish(dst, start, off, &e)
}

func (p *Suback) String() string {
	return codesString("SUBACK", p.PacketID, p.ReasonCodes, &p.Properties)
}

// emptyFilter is the error for an empty topic filter in a 3.1 or 3.1.1
// SUBSCRIBE or UNSUBSCRIBE: filters are at least one character long
// [v3 MQTT-4.7.3-1], and those versions have no way to refuse one filter
// of an UNSUBSCRIBE, so the connection is closed (3.1.1 section 4.8), as
// for an empty topic name in a PUBLISH. An MQTT 5 server answers an
// empty filter with reason code 0x8F in the SUBACK or UNSUBACK instead,
// so the decoder lets it through for 5.0.
func emptyFilter(t Type) error {
	return protoErr(t, "v3 MQTT-4.7.3-1", "empty topic filter")
}

// decodeCodes reads the rest of the packet as a non-empty list of reason
// codes, each one of codes.
func decodeCodes(d *decoder, t Type, codes *reasonSet, spec string) []ReasonCode {
	if d.err != nil {
		return nil
	}
	if d.remaining() == 0 {
		d.fail(protoErr(t, "noid:no-reason-codes", "no reason codes"))
		return nil
	}
	rcs := make([]ReasonCode, d.remaining())
	for i := range rcs {
		rcs[i] = ReasonCode(d.u8())
		if !codes.has(rcs[i]) {
			d.fail(malformed(t, spec, "reason code not allowed: "+rcs[i].String()))
			return nil
		}
	}
	return rcs
}

func appendCodes(dst []byte, rcs []ReasonCode, codes *reasonSet, e *encoder) []byte {
	e.check(len(rcs) > 0, "no reason codes")
	for _, c := range rcs {
		e.code(codes, c)
		dst = append(dst, byte(c))
	}
	return dst
}

func codesString(name string, id uint16, rcs []ReasonCode, props *Properties) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s id=%d codes=[", name, id)
	for i, c := range rcs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "0x%02x", byte(c))
	}
	b.WriteByte(']')
	if !props.IsZero() {
		b.WriteString(" props=" + props.String())
	}
	return b.String()
}
