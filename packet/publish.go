package packet

import (
	"fmt"
	"strings"
	"unsafe"
)

// Publish is the PUBLISH packet (section 3.3). Broker metadata (arrival
// time, origin, expiry deadline) does not belong here.
type Publish struct {
	Dup        bool
	QoS        byte // 0, 1 or 2
	Retain     bool
	Topic      string // may be empty in MQTT 5 when Properties.TopicAlias is set
	PacketID   uint16 // 0 for QoS 0, non-zero otherwise
	Properties Properties
	Payload    []byte
}

func (*Publish) Type() Type { return PUBLISH }

func (p *Publish) decode(d *decoder, flags byte) error {
	p.Dup = flags&0x08 != 0
	p.QoS = (flags >> 1) & 0x03
	p.Retain = flags&0x01 != 0
	if p.QoS == 3 {
		// [v5 MQTT-3.3.1-4] [v3 MQTT-3.3.1-4]
		return malformed(PUBLISH, versioned(d.v, "MQTT-3.3.1-4", "MQTT-3.3.1-4"), "QoS 3")
	}
	if p.QoS == 0 && p.Dup {
		// [v5 MQTT-3.3.1-2] [v3 MQTT-3.3.1-2]
		return malformed(PUBLISH, versioned(d.v, "MQTT-3.3.1-2", "MQTT-3.3.1-2"), "DUP set on a QoS 0 message")
	}
	p.Topic = d.str() // [v5 MQTT-3.3.2-1] [v3 MQTT-3.3.2-1]
	if p.QoS > 0 {
		p.PacketID = d.u16()
		if d.err == nil && p.PacketID == 0 {
			// [v5 MQTT-2.2.1-3] [v3 MQTT-2.3.1-1]
			return protoErr(PUBLISH, versioned(d.v, "MQTT-2.2.1-3", "MQTT-2.3.1-1"), "packet identifier 0 on a QoS > 0 message")
		}
	} // [v5 MQTT-2.2.1-2] [v3 MQTT-2.3.1-5] QoS 0 has no packet identifier.
	if d.v == V5 {
		p.Properties.decode(d, PUBLISH)
	}
	if d.err != nil {
		return d.err
	}
	if hasWildcard(p.Topic) {
		// [v5 MQTT-3.3.2-2] [v5 MQTT-4.7.0-1] [v3 MQTT-3.3.2-2] [v3 MQTT-4.7.1-1]
		return &ProtocolError{Code: TopicNameInvalid, Packet: PUBLISH, Spec: versioned(d.v, "MQTT-3.3.2-2", "MQTT-3.3.2-2"),
			Msg: fmt.Sprintf("wildcard in topic name %q", p.Topic)}
	}
	if p.Topic == "" && (d.v != V5 || p.Properties.TopicAlias == 0) {
		// [v3 MQTT-4.7.3-1]; in 5.0 an empty topic needs a topic alias
		// (section 3.3.2.1, a Protocol Error).
		return protoErr(PUBLISH, versioned(d.v, "noid:empty-topic-no-alias", "MQTT-4.7.3-1"), "empty topic name")
	}
	p.Payload = d.rest()
	return nil
}

func (p *Publish) Append(dst []byte, v Version) ([]byte, error) {
	e := encoder{t: PUBLISH}
	if p.QoS > 2 {
		return dst, encErr(PUBLISH, "QoS above 2")
	}
	e.check(p.QoS == 0 || p.PacketID != 0, "packet identifier 0 on a QoS > 0 message")
	e.check(p.QoS > 0 || !p.Dup, "DUP set on a QoS 0 message")
	e.check(!hasWildcard(p.Topic), "wildcard in topic name")
	e.check(p.Topic != "" || (v == V5 && p.Properties.TopicAlias != 0), "empty topic name without a topic alias")
	e.str(p.Topic, "topic name")
	flags := p.QoS << 1
	if p.Dup {
		flags |= 0x08
	}
	if p.Retain {
		flags |= 0x01
	}
	start := len(dst)
	dst, off := header(dst, PUBLISH, flags)
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendU16(dst, p.PacketID)
	}
	if v == V5 {
		dst = p.Properties.append(dst, PUBLISH, &e)
	}
	dst = append(dst, p.Payload...)
	return finish(dst, start, off, &e)
}

func (p *Publish) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "PUBLISH topic=%q qos=%d", p.Topic, p.QoS)
	if p.QoS > 0 {
		fmt.Fprintf(&b, " id=%d", p.PacketID)
	}
	if p.Retain {
		b.WriteString(" retain")
	}
	if p.Dup {
		b.WriteString(" dup")
	}
	fmt.Fprintf(&b, " payload=%dB", len(p.Payload))
	if len(p.Payload) > 0 {
		pl := p.Payload
		if len(pl) > 64 {
			pl = pl[:64]
		}
		fmt.Fprintf(&b, " %q", pl)
		if len(p.Payload) > 64 {
			b.WriteString("...")
		}
	}
	if !p.Properties.IsZero() {
		b.WriteString(" props=" + p.Properties.String())
	}
	return b.String()
}

// publishBox holds a small PUBLISH and its bytes in one allocation: the
// Reader copies a body of up to len(buf) bytes into buf and decodes the
// topic and payload as views of it.
type publishBox struct {
	p   Publish
	buf [smallPublish]byte
}

// smallPublish makes a publishBox fill the 480-byte size class.
const smallPublish = 480 - unsafe.Sizeof(Publish{})
