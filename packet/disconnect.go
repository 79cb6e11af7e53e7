package packet

import "fmt"

// Disconnect is the DISCONNECT packet (section 3.14). In MQTT 5 either
// side may send it, with a reason code; in 3.1 / 3.1.1 only the client
// sends it and it carries nothing.
type Disconnect struct {
	ReasonCode ReasonCode // MQTT 5 only
	Properties Properties // MQTT 5: SessionExpiry, ReasonString, ServerReference, User
}

func (*Disconnect) Type() Type { return DISCONNECT }

func (p *Disconnect) decode(d *decoder, flags byte) error {
	if d.v == V5 && d.remaining() > 0 {
		p.ReasonCode = ReasonCode(d.u8())
		if d.err == nil && !disconnectCodes.has(p.ReasonCode) {
			return malformed(DISCONNECT, "v5 MQTT-3.14.2-1", "reason code not allowed: "+p.ReasonCode.String()) // [v5 MQTT-3.14.2-1]
		}
		if d.remaining() > 0 {
			p.Properties.decode(d, DISCONNECT)
		}
	}
	return d.end()
}

// Append leaves off the reason code and properties when the code is 0
// and there are no properties (section 3.14.2.1).
func (p *Disconnect) Append(dst []byte, v Version) ([]byte, error) {
	e := encoder{t: DISCONNECT}
	start := len(dst)
	dst, off := header(dst, DISCONNECT, 0)
	if v == V5 {
		e.code(disconnectCodes, p.ReasonCode)
		hasProps := !p.Properties.IsZero()
		if p.ReasonCode != 0 || hasProps {
			dst = append(dst, byte(p.ReasonCode))
			if hasProps {
				dst = p.Properties.append(dst, DISCONNECT, &e)
			}
		}
	}
	return finish(dst, start, off, &e)
}

func (p *Disconnect) String() string {
	s := "DISCONNECT"
	if p.ReasonCode != 0 {
		s += fmt.Sprintf(" code=0x%02x(%s)", byte(p.ReasonCode), p.ReasonCode.Text(DISCONNECT, V5))
	}
	if !p.Properties.IsZero() {
		s += " props=" + p.Properties.String()
	}
	return s
}

// Auth is the MQTT 5 AUTH packet (section 3.15) of enhanced authentication.
type Auth struct {
	ReasonCode ReasonCode // Success, ContinueAuthentication or ReAuthenticate
	Properties Properties // AuthMethod, AuthData, ReasonString, User
}

func (*Auth) Type() Type { return AUTH }

func (p *Auth) decode(d *decoder, flags byte) error {
	if d.remaining() > 0 {
		p.ReasonCode = ReasonCode(d.u8())
		if d.err == nil && !authCodes.has(p.ReasonCode) {
			return malformed(AUTH, "v5 MQTT-3.15.2-1", "reason code not allowed: "+p.ReasonCode.String()) // [v5 MQTT-3.15.2-1]
		}
		if d.remaining() > 0 {
			p.Properties.decode(d, AUTH)
			d.authPair(&p.Properties)
		}
	}
	return d.end()
}

func (p *Auth) Append(dst []byte, v Version) ([]byte, error) {
	if v != V5 {
		return dst, encErr(AUTH, "AUTH exists only in MQTT 5")
	}
	e := encoder{t: AUTH}
	e.code(authCodes, p.ReasonCode)
	start := len(dst)
	dst, off := header(dst, AUTH, 0)
	hasProps := !p.Properties.IsZero()
	if p.ReasonCode != 0 || hasProps {
		dst = append(dst, byte(p.ReasonCode))
		if hasProps {
			dst = p.Properties.append(dst, AUTH, &e)
		}
	}
	return finish(dst, start, off, &e)
}

func (p *Auth) String() string {
	s := fmt.Sprintf("AUTH code=0x%02x(%s)", byte(p.ReasonCode), p.ReasonCode)
	if !p.Properties.IsZero() {
		s += " props=" + p.Properties.String()
	}
	return s
}
