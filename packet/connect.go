package packet

import (
	"fmt"
	"strings"
)

// Connect is the CONNECT packet (section 3.1), the first packet a client
// sends. Version selects the protocol name and level on the wire.
type Connect struct {
	Version      Version // V31, V311 or V5
	ProtocolName string  // as received; when encoding, empty means Version.ProtocolName()
	CleanStart   bool    // Clean Session in 3.1 / 3.1.1
	KeepAlive    uint16  // seconds; 0 turns keep alive off
	ClientID     string
	Will         *Will // nil when the client has no will

	UsernameFlag bool // a user name is present (set implicitly by a non-empty Username)
	Username     string
	PasswordFlag bool // a password is present (set implicitly by a non-empty Password)
	Password     []byte

	Properties Properties // MQTT 5 only
}

// Will is the will message of a CONNECT.
type Will struct {
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	Properties Properties // MQTT 5 will properties
}

func (*Connect) Type() Type { return CONNECT }

// HasUsername reports whether the CONNECT carries a user name.
func (p *Connect) HasUsername() bool { return p.UsernameFlag || p.Username != "" }

// HasPassword reports whether the CONNECT carries a password.
func (p *Connect) HasPassword() bool { return p.PasswordFlag || len(p.Password) > 0 }

func (p *Connect) decode(d *decoder, flags byte) error {
	// The protocol name and level come first; the level decides how the
	// rest is read, so d.v is set from it, not from the Reader.
	p.ProtocolName = d.str()
	p.Version = Version(d.u8())
	if d.err != nil {
		return d.err
	}
	d.v = p.Version
	if p.ProtocolName != "MQTT" && p.ProtocolName != "MQIsdp" {
		// [v5 MQTT-3.1.2-1] [v3 MQTT-3.1.2-1] not MQTT: the server closes
		// the connection (a 5.0 server may answer 0x84 first) and does
		// not go on as MQTT. ErrProtocolName matches this error.
		return &ProtocolError{Code: UnsupportedProtocolVersion, Packet: CONNECT, Spec: "v5 MQTT-3.1.2-1",
			Msg: fmt.Sprintf("unsupported protocol %q level %d", p.ProtocolName, p.Version)}
	}
	if !(p.Version == V31 && p.ProtocolName == "MQIsdp") && !((p.Version == V311 || p.Version == V5) && p.ProtocolName == "MQTT") {
		// [v3 MQTT-3.1.2-2] a known protocol name with a level the server
		// does not support: return code 1 (unacceptable protocol version)
		// or 0x84, then the close.
		return &ProtocolError{Code: UnsupportedProtocolVersion, Packet: CONNECT, Spec: "v5 MQTT-3.1.2-2",
			Msg: fmt.Sprintf("unsupported protocol %q level %d", p.ProtocolName, p.Version)}
	}
	cf := d.u8()
	p.KeepAlive = d.u16()
	if d.err != nil {
		return d.err
	}
	if cf&0x01 != 0 {
		return malformed(CONNECT, versioned(d.v, "MQTT-3.1.2-3", "MQTT-3.1.2-3"), "reserved connect flag is set")
	}
	p.CleanStart = cf&0x02 != 0
	willFlag := cf&0x04 != 0
	willQoS := (cf >> 3) & 0x03
	willRetain := cf&0x20 != 0
	p.PasswordFlag = cf&0x40 != 0
	p.UsernameFlag = cf&0x80 != 0
	// Will Flag 0: Will QoS and Will Retain are 0 and there are no will
	// fields [v3 MQTT-3.1.2-11] (read below only with the flag set).
	if !willFlag && willQoS != 0 {
		// [v5 MQTT-3.1.2-11] [v3 MQTT-3.1.2-13]
		return malformed(CONNECT, versioned(d.v, "MQTT-3.1.2-11", "MQTT-3.1.2-13"), "will QoS set without the will flag")
	}
	if !willFlag && willRetain {
		// [v5 MQTT-3.1.2-13] [v3 MQTT-3.1.2-15]
		return malformed(CONNECT, versioned(d.v, "MQTT-3.1.2-13", "MQTT-3.1.2-15"), "will retain set without the will flag")
	}
	if willQoS == 3 {
		// [v5 MQTT-3.1.2-12] [v3 MQTT-3.1.2-14]
		return malformed(CONNECT, versioned(d.v, "MQTT-3.1.2-12", "MQTT-3.1.2-14"), "will QoS 3")
	}
	if d.v != V5 && p.PasswordFlag && !p.UsernameFlag {
		return malformed(CONNECT, "v3 MQTT-3.1.2-22", "password flag set without the user name flag") // [v3 MQTT-3.1.2-22]
	}
	if d.v == V5 {
		p.Properties.decode(d, CONNECT)
		d.authPair(&p.Properties)
	}
	// Payload order [v5 MQTT-3.1.3-1] [v3 MQTT-3.1.3-1]: client id first
	// [MQTT-3.1.3-3], a UTF-8 string [MQTT-3.1.3-4].
	p.ClientID = d.str()
	if willFlag {
		// [v5 MQTT-3.1.2-9] [v3 MQTT-3.1.2-9]
		w := &Will{QoS: willQoS, Retain: willRetain}
		if d.v == V5 {
			w.Properties.decode(d, willContext)
		}
		w.Topic = d.str() // [v5 MQTT-3.1.3-11] [v3 MQTT-3.1.3-10]
		w.Payload = d.bin()
		if d.err == nil && (w.Topic == "" || hasWildcard(w.Topic)) {
			// [v5 MQTT-3.1.3-11] the will topic is a topic name: non-empty,
			// without wildcards [v5 MQTT-4.7.3-1] [v5 MQTT-4.7.0-1].
			d.fail(protoErr(CONNECT, versioned(d.v, "MQTT-4.7.0-1", "MQTT-4.7.1-1"), "will topic is empty or contains a wildcard"))
		}
		p.Will = w
	}
	if p.UsernameFlag {
		p.Username = d.str() // [v5 MQTT-3.1.2-17] [v5 MQTT-3.1.3-12] [v3 MQTT-3.1.2-19] [v3 MQTT-3.1.3-11]
	}
	if p.PasswordFlag {
		p.Password = d.bin() // [v5 MQTT-3.1.2-19] [v3 MQTT-3.1.2-21]
	}
	// [v5 MQTT-3.1.2-16] [v5 MQTT-3.1.2-18] [v3 MQTT-3.1.2-18] [v3 MQTT-3.1.2-20]:
	// with a flag clear the field is absent, so nothing may follow.
	return d.end()
}

func (p *Connect) Append(dst []byte, v Version) ([]byte, error) {
	e := encoder{t: CONNECT}
	if p.Version != 0 {
		v = p.Version // a CONNECT carries its own version
	}
	e.check(v.Valid(), "unsupported protocol version "+v.String())
	name := p.ProtocolName
	if name == "" {
		name = v.ProtocolName()
	}
	e.str(name, "protocol name")
	e.str(p.ClientID, "client identifier")
	var cf byte
	if p.CleanStart {
		cf |= 0x02
	}
	if w := p.Will; w != nil {
		e.check(w.QoS <= 2, "will QoS above 2")
		e.check(w.Topic != "" && !hasWildcard(w.Topic), "will topic must be a topic name without wildcards")
		e.str(w.Topic, "will topic")
		e.bin(w.Payload, "will payload")
		cf |= 0x04 | w.QoS<<3
		if w.Retain {
			cf |= 0x20
		}
	}
	if p.HasPassword() {
		e.check(v == V5 || p.HasUsername(), "a password needs a user name before MQTT 5")
		e.bin(p.Password, "password")
		cf |= 0x40
	}
	if p.HasUsername() {
		e.str(p.Username, "user name")
		cf |= 0x80
	}
	start := len(dst)
	dst, off := header(dst, CONNECT, 0)
	dst = appendString(dst, name)
	dst = append(dst, byte(v), cf)
	dst = appendU16(dst, p.KeepAlive)
	if v == V5 {
		dst = p.Properties.append(dst, CONNECT, &e)
	}
	dst = appendString(dst, p.ClientID)
	if w := p.Will; w != nil {
		if v == V5 {
			dst = w.Properties.append(dst, willContext, &e)
		}
		dst = appendString(dst, w.Topic)
		dst = appendBinary(dst, w.Payload)
	}
	if p.HasUsername() {
		dst = appendString(dst, p.Username)
	}
	if p.HasPassword() {
		dst = appendBinary(dst, p.Password)
	}
	return finish(dst, start, off, &e)
}

func (p *Connect) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CONNECT v%s client=%q clean=%t keepalive=%d", p.Version, p.ClientID, p.CleanStart, p.KeepAlive)
	if p.HasUsername() {
		fmt.Fprintf(&b, " user=%q", p.Username)
	}
	if p.HasPassword() {
		b.WriteString(" password=<redacted>")
	}
	if w := p.Will; w != nil {
		fmt.Fprintf(&b, " will{topic=%q qos=%d retain=%t payload=%dB", w.Topic, w.QoS, w.Retain, len(w.Payload))
		if !w.Properties.IsZero() {
			b.WriteString(" props=" + w.Properties.String())
		}
		b.WriteString("}")
	}
	if !p.Properties.IsZero() {
		b.WriteString(" props=" + p.Properties.String())
	}
	return b.String()
}

// versioned picks the id a rule has in 5.0 or in 3.1.1 and tags it.
func versioned(v Version, v5id, v3id string) string {
	if v == V5 {
		return "v5 " + v5id
	}
	return "v3 " + v3id
}
