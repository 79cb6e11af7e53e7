package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/ternmq/tern/internal/scram"
	"github.com/ternmq/tern/packet"
)

// AuthMethod is an MQTT 5 enhanced authentication method (Config.Auth).
type AuthMethod interface {
	// Name is the Authentication Method, e.g. "SCRAM-SHA-256".
	Name() string
	// Begin starts one exchange (one per connection and per
	// re-authentication) and returns the Authentication Data of the
	// CONNECT or AUTH that opens it.
	Begin() (AuthExchange, []byte, error)
}

// AuthExchange is one run of an AuthMethod.
type AuthExchange interface {
	// Next answers the Authentication Data of the server's AUTH 0x18
	// Continue authentication.
	Next(challenge []byte) ([]byte, error)
	// Done checks the Authentication Data of the server's success
	// (CONNACK 0, or AUTH 0 after re-authentication).
	Done(final []byte) error
}

// SCRAM returns the SCRAM-SHA-256 or SCRAM-SHA-512 (RFC 5802, 7677)
// method for username and password: the password itself never travels,
// and the server proves it knows the credentials too.
func SCRAM(mechanism, username, password string) AuthMethod {
	return &scramMethod{mech: mechanism, user: username, pass: password}
}

type scramMethod struct{ mech, user, pass string }

func (m *scramMethod) Name() string { return m.mech }

func (m *scramMethod) Begin() (AuthExchange, []byte, error) {
	var mech *scram.Mechanism
	switch m.mech {
	case "SCRAM-SHA-256":
		mech = scram.SHA256
	case "SCRAM-SHA-512":
		mech = scram.SHA512
	default:
		return nil, nil, fmt.Errorf("SCRAM mechanism %q: use SCRAM-SHA-256 or SCRAM-SHA-512", m.mech)
	}
	cl := scram.NewClient(mech, m.user, m.pass)
	first, err := cl.First()
	if err != nil {
		return nil, nil, err
	}
	return scramExchange{cl}, first, nil
}

type scramExchange struct{ cl *scram.Client }

func (x scramExchange) Next(b []byte) ([]byte, error) { return x.cl.Final(b) }
func (x scramExchange) Done(b []byte) error           { return x.cl.Verify(b) }

// authOp is a re-authentication in progress.
type authOp struct {
	cn   *conn
	ex   AuthExchange
	done chan struct{}
	err  error
}

func (a *authOp) finish(err error) {
	a.err = err
	close(a.done)
}

// Reauthenticate runs Config.Auth again on the live connection (MQTT 5
// re-authentication, AUTH 0x19) and waits for the server's verdict. A
// server that refuses ends the connection with a DISCONNECT; the
// client then reconnects, authenticating afresh.
func (c *Client) Reauthenticate(ctx context.Context) error {
	if c.cfg.Auth == nil {
		return errors.New("client: Reauthenticate: no Config.Auth")
	}
	c.mu.Lock()
	cn := c.cn
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case cn == nil:
		err := c.notConnectedLocked()
		c.mu.Unlock()
		return err
	case c.auth != nil:
		c.mu.Unlock()
		return errors.New("client: Reauthenticate: one is in progress")
	}
	ex, data, err := c.cfg.Auth.Begin()
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("client: Config.Auth: %w", err)
	}
	op := &authOp{cn: cn, ex: ex, done: make(chan struct{})}
	c.auth = op
	a := &packet.Auth{ReasonCode: packet.ReAuthenticate}
	a.Properties.AuthMethod = c.cfg.Auth.Name() // [v5 MQTT-4.12.1-1]
	a.Properties.AuthData = data
	cn.ctrl = append(cn.ctrl, a)
	c.mu.Unlock()
	cn.signal()
	select {
	case <-op.done:
		return op.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handleAuth takes an AUTH during a re-authentication.
func (c *Client) handleAuth(cn *conn, p *packet.Auth) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	op := c.auth
	if op == nil || op.cn != cn || p.Properties.AuthMethod != c.cfg.Auth.Name() {
		return &packet.ProtocolError{Code: packet.ProtocolErrorCode, Packet: packet.AUTH, Spec: "v5 noid:unexpected-auth", Msg: "AUTH without a re-authentication in progress"}
	}
	switch p.ReasonCode {
	case packet.ContinueAuthentication:
		data, err := op.ex.Next(p.Properties.AuthData)
		if err != nil {
			c.auth = nil
			op.finish(err)
			return &packet.ProtocolError{Code: packet.NotAuthorized, Packet: packet.AUTH, Spec: "v5 noid:auth-failed", Msg: err.Error()}
		}
		a := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
		a.Properties.AuthMethod = c.cfg.Auth.Name()
		a.Properties.AuthData = data
		cn.ctrl = append(cn.ctrl, a)
		cn.signal()
	case packet.Success:
		c.auth = nil
		op.finish(op.ex.Done(p.Properties.AuthData))
	default:
		return &packet.ProtocolError{Code: packet.ProtocolErrorCode, Packet: packet.AUTH, Spec: "v5 MQTT-3.15.2-1", Msg: "AUTH with a reason code a server does not send"}
	}
	return nil
}
