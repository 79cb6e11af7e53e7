package packet

import (
	"fmt"
	"strings"
)

// Unsubscribe is the UNSUBSCRIBE packet (section 3.10).
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties // MQTT 5: User
	Filters    []string
}

func (*Unsubscribe) Type() Type { return UNSUBSCRIBE }

func (p *Unsubscribe) decode(d *decoder, flags byte) error {
	p.PacketID = d.u16()
	if d.err == nil && p.PacketID == 0 {
		return protoErr(UNSUBSCRIBE, versioned(d.v, "MQTT-2.2.1-3", "MQTT-2.3.1-1"), "packet identifier 0") // [v5 MQTT-2.2.1-3] [v3 MQTT-2.3.1-1]
	}
	if d.v == V5 {
		p.Properties.decode(d, UNSUBSCRIBE)
	}
	if n := d.entries(0); d.err == nil && n > 0 {
		p.Filters = make([]string, 0, n)
	}
	for d.err == nil && d.remaining() > 0 {
		f := d.str() // [v5 MQTT-3.10.3-1] [v3 MQTT-3.10.3-1]
		if d.err == nil && f == "" && d.v != V5 {
			return emptyFilter(UNSUBSCRIBE)
		}
		p.Filters = append(p.Filters, f)
	}
	if d.err == nil && len(p.Filters) == 0 {
		return protoErr(UNSUBSCRIBE, versioned(d.v, "MQTT-3.10.3-2", "MQTT-3.10.3-2"), "no topic filter") // [v5 MQTT-3.10.3-2] [v3 MQTT-3.10.3-2]
	}
	return d.end()
}

// Append encodes the UNSUBSCRIBE with its required flags 0010 [v5 MQTT-3.10.1-1].
func (p *Unsubscribe) Append(dst []byte, v Version) ([]byte, error) {
	e := encoder{t: UNSUBSCRIBE}
	e.check(p.PacketID != 0, "packet identifier 0")
	e.check(len(p.Filters) > 0, "no topic filter")
	start := len(dst)
	dst, off := header(dst, UNSUBSCRIBE, 0x02)
	dst = appendU16(dst, p.PacketID)
	if v == V5 {
		dst = p.Properties.append(dst, UNSUBSCRIBE, &e)
	}
	for _, f := range p.Filters {
		e.str(f, "topic filter")
		e.check(f != "" || v == V5, "empty topic filter")
		dst = appendString(dst, f)
	}
	return finish(dst, start, off, &e)
}

func (p *Unsubscribe) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "UNSUBSCRIBE id=%d", p.PacketID)
	for _, f := range p.Filters {
		fmt.Fprintf(&b, " %q", f)
	}
	if !p.Properties.IsZero() {
		b.WriteString(" props=" + p.Properties.String())
	}
	return b.String()
}

// Unsuback is the UNSUBACK packet (section 3.11). Properties and reason
// codes exist only in MQTT 5; a 3.1.1 UNSUBACK is just the packet id.
type Unsuback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode // MQTT 5: one per filter
}

func (*Unsuback) Type() Type { return UNSUBACK }

func (p *Unsuback) decode(d *decoder, flags byte) error {
	p.PacketID = d.u16()
	if d.err == nil && p.PacketID == 0 {
		return protoErr(UNSUBACK, versioned(d.v, "MQTT-2.2.1-6", "MQTT-2.3.1-7"), "packet identifier 0") // answers echo the request's non-zero id
	}
	if d.v == V5 {
		p.Properties.decode(d, UNSUBACK)
		p.ReasonCodes = decodeCodes(d, UNSUBACK, unsubackCodes, "v5 MQTT-3.11.3-2") // [v5 MQTT-3.11.3-2]
	}
	return d.end()
}

func (p *Unsuback) Append(dst []byte, v Version) ([]byte, error) {
	e := encoder{t: UNSUBACK}
	e.check(p.PacketID != 0, "packet identifier 0")
	start := len(dst)
	dst, off := header(dst, UNSUBACK, 0)
	dst = appendU16(dst, p.PacketID)
	if v == V5 {
		dst = p.Properties.append(dst, UNSUBACK, &e)
		dst = appendCodes(dst, p.ReasonCodes, unsubackCodes, &e)
	}
	return finish(dst, start, off, &e)
}

func (p *Unsuback) String() string {
	return codesString("UNSUBACK", p.PacketID, p.ReasonCodes, &p.Properties)
}
