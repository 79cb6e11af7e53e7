package broker

import (
	"context"
	"errors"

	"github.com/ternmq/tern/packet"
)

// AuthMethod is one MQTT 5 enhanced authentication method (section
// 4.12): a challenge / response exchange carried in the Authentication
// Data of CONNECT, AUTH and CONNACK, such as SCRAM-SHA-256. Set methods in
// Server.AuthMethods under the name clients put in their Authentication
// Method property.
//
// The broker calls Start once per exchange, at CONNECT or when a
// connected client re-authenticates, and then the exchange's Next for
// each Authentication Data the client sends, the first being the one in
// the CONNECT (or in the AUTH that starts a re-authentication).
type AuthMethod interface {
	Start(ctx context.Context, req *AuthRequest) (AuthExchange, error)
}

// AuthExchange is one authentication conversation with one client. Its
// methods are called one at a time (not always from the same goroutine),
// each with a context that ends after Server.HookTimeout (see
// NonBlocking).
type AuthExchange interface {
	// Next takes the client's Authentication Data (nil when it sent
	// none) and returns the data to send back. done false: out goes to
	// the client in an AUTH "continue authentication" and the client's
	// next AUTH comes to Next. done true: the client is authenticated and
	// out goes in the CONNACK (or, when re-authenticating, in the AUTH
	// "success"). An error refuses the client: a *Refusal chooses the
	// reason code, any other error means 0x87 Not authorized (it is
	// logged, not sent). Next may set the AuthRequest's Username that
	// Start was given (the identity the exchange proved); the broker uses
	// it from then on.
	Next(ctx context.Context, in []byte) (out []byte, done bool, err error)
}

// ErrBadAuthMethod refuses an exchange with 0x8C Bad authentication method.
var ErrBadAuthMethod error = &Refusal{Code: packet.BadAuthenticationMethod, Reason: "unsupported authentication method"}

var errAuthAborted = errors.New("authentication exchange aborted")

// connectAuth runs the enhanced authentication exchange of a CONNECT
// (section 4.12): AUTH packets with reason code 0x18 go back and forth
// until the method is done; the data of its last step goes in the
// CONNACK, which the caller sends. The connect timeout bounds the whole
// exchange, and HookTimeout each call of the method. errAuthAborted means the connection ended or broke the
// protocol, and has been dealt with.
func (c *conn) connectAuth(ctx context.Context, req *AuthRequest, cp *packet.Connect) ([]byte, error) {
	name := cp.Properties.AuthMethod
	req.AuthMethod = name
	m := c.srv.AuthMethods[name]
	if m == nil {
		// [v5 MQTT-4.12.0-1] an unsupported method: CONNACK 0x8C and close.
		return nil, ErrBadAuthMethod
	}
	ex, err := c.srv.authStart(ctx, m, req)
	if err != nil {
		return nil, err
	}
	data := cp.Properties.AuthData
	for {
		out, done, err := c.srv.authNext(ctx, m, ex, &c.info, data)
		if err != nil || done {
			return out, err
		}
		// [v5 MQTT-4.12.0-2] continue the exchange with AUTH 0x18.
		a := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
		a.Properties.AuthMethod = name
		a.Properties.AuthData = out
		c.writeDirect(a)
		p, err := c.r.ReadPacket()
		if err != nil {
			c.connectFailed(err)
			return nil, errAuthAborted
		}
		if c.trace {
			c.log.Log(context.Background(), LevelTrace, "recv", "remote", logAddr{c.info.RemoteAddr}, "packet", p.String())
		}
		ap, ok := p.(*packet.Auth)
		switch {
		case !ok:
			// [v5 MQTT-4.12.0-3] [v5 MQTT-3.1.2-30] the client answers an
			// AUTH with AUTH (or gives up with DISCONNECT); anything else is
			// a protocol error.
			c.log.Info("connection closed: expected AUTH during authentication", "remote", logAddr{c.info.RemoteAddr}, "packet", p.Type())
			if _, isDisc := p.(*packet.Disconnect); !isDisc {
				// No DISCONNECT before a successful CONNACK [v5 MQTT-3.14.0-1]:
				// a refusing CONNACK says why [v5 MQTT-4.12.0-4].
				c.writeDirect(&packet.Connack{ReasonCode: packet.ProtocolErrorCode,
					Properties: packet.Properties{ReasonString: "expected AUTH, got " + p.Type().String()}})
			}
			return nil, errAuthAborted
		case ap.ReasonCode != packet.ContinueAuthentication || ap.Properties.AuthMethod != name:
			// [v5 MQTT-4.12.0-5] the same method throughout; [v5 MQTT-3.15.2-1].
			c.log.Info("connection closed: bad AUTH during authentication", "remote", logAddr{c.info.RemoteAddr},
				"code", ap.ReasonCode.String(), "method", ap.Properties.AuthMethod)
			c.writeDirect(&packet.Connack{ReasonCode: packet.ProtocolErrorCode,
				Properties: packet.Properties{ReasonString: "AUTH must continue the exchange (0x18) with the CONNECT's method"}})
			return nil, errAuthAborted
		}
		data = ap.Properties.AuthData
	}
}

// onAuth handles an AUTH from a connected client: the start (0x19) or a
// step (0x18) of a re-authentication (section 4.12.1).
func (c *conn) onAuth(p *packet.Auth) error {
	srv := c.srv
	if c.authMethod == "" {
		// [v5 MQTT-4.12.0-7] a client that did not authenticate with a
		// method at CONNECT never sends AUTH, and is sent none
		// [v5 MQTT-4.12.0-6]: it gets DISCONNECT 0x82, not an AUTH.
		return protocolError(packet.AUTH, "v5 MQTT-4.12.0-7", "AUTH without enhanced authentication at CONNECT")
	}
	if p.Properties.AuthMethod != c.authMethod {
		// [v5 MQTT-4.12.1-1] [v5 MQTT-4.12.0-5] the same method throughout.
		return protocolError(packet.AUTH, "v5 MQTT-4.12.1-1", "AUTH with another authentication method than the CONNECT's")
	}
	switch {
	case p.ReasonCode == packet.ReAuthenticate && c.reauth == nil:
		m := srv.AuthMethods[c.authMethod]
		req := &AuthRequest{ClientInfo: c.info, AuthMethod: c.authMethod, Reauth: true}
		ex, err := srv.authStart(srv.ctx, m, req)
		if err != nil {
			return c.authFailed(err)
		}
		c.reauth = ex
		c.reauthReq = req
	case p.ReasonCode == packet.ContinueAuthentication && c.reauth != nil:
	default:
		return protocolError(packet.AUTH, "noid:auth-out-of-sequence", "AUTH "+p.ReasonCode.String()+" out of sequence")
	}
	out, done, err := srv.authNext(srv.ctx, srv.AuthMethods[c.authMethod], c.reauth, &c.info, p.Properties.AuthData)
	if err != nil {
		c.reauth = nil
		return c.authFailed(err)
	}
	a := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
	a.Properties.AuthMethod = c.authMethod
	a.Properties.AuthData = out
	if done {
		a.ReasonCode = packet.Success
		c.reauth = nil
		if u := c.reauthReq.Username; u != c.info.Username {
			c.log.Info("re-authenticated as another user", "client", c.info.ClientID, "was", c.info.Username, "now", u)
		}
		c.setUsername(c.reauthReq.Username)
		c.log.Debug("client re-authenticated", "client", c.info.ClientID, "method", c.authMethod)
	}
	c.send(ctrlPkt{p: a})
	return nil
}

// authFailed ends a connection whose re-authentication failed: DISCONNECT
// with the refusal's reason code [v5 MQTT-4.12.1-2].
func (c *conn) authFailed(err error) error {
	code := refusalCode(err)
	if !code.ValidFor(packet.DISCONNECT) {
		code = packet.NotAuthorized // e.g. 0x86 is a CONNACK code only [v5 MQTT-3.14.2-1]
	}
	c.log.Info("re-authentication failed", "client", c.info.ClientID, "code", code.String(), "err", err)
	return &packet.ProtocolError{Code: code, Packet: packet.AUTH, Spec: "v5 MQTT-4.12.1-2", Msg: "re-authentication failed"}
}
