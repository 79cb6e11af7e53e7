package broker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/ternmq/tern/packet"
)

// Hook calls with a deadline. Every call of an Authenticator, Authorizer,
// ReceiveAuthorizer or AuthMethod goes through here: a hook that is not
// NonBlocking runs on a goroutine of its own, with a context whose
// deadline is Server.HookTimeout, and the connection waits for its
// answer or for the deadline, whichever comes first. A hook that overruns
// is taken as a refusal and logged; the connection goes on. A hook that
// panics is a fault of the server's own while it processes the packet: the
// panic is passed on to the connection's goroutine, whose guard closes that
// connection, and only that one [v3 MQTT-4.8.0-2], as it does for a
// NonBlocking hook called directly.

// errHookTimeout is what a hook that overran its deadline amounts to. At
// CONNECT it refuses the client with 0x88 Server unavailable (3.1.1:
// return code 3): the broker, not the client, is at fault, and the
// client may try again later.
var errHookTimeout error = &Refusal{Code: packet.ServerUnavailable, Reason: "authentication did not answer in time"}

// hookPanic is the panic passed on to the caller of a hook that panicked.
type hookPanic struct {
	hook string
	val  any
}

func (p hookPanic) String() string { return fmt.Sprintf("hook %s panicked: %v", p.hook, p.val) }

// nonBlocking reports whether hook promises to answer at once.
func nonBlocking(hook any) bool {
	nb, ok := hook.(NonBlocking)
	return ok && nb.NonBlocking()
}

// hookCall says which hook is called, for whom and about what, for the
// log lines of callHook.
type hookCall struct {
	hook         any
	method       string
	client, user string
	key, value   string // e.g. "topic" and the topic; "" for none
	action       Action // 0 for none
}

func (hc *hookCall) attrs(more ...any) []any {
	a := append([]any{"hook", fmt.Sprintf("%T.%s", hc.hook, hc.method), "client", hc.client, userAttr(hc.user)}, more...)
	if hc.action != 0 {
		a = append(a, "action", hc.action.String())
	}
	if hc.key != "" {
		a = append(a, hc.key, hc.value)
	}
	return a
}

// callHook runs fn, the call hc describes, on a goroutine of its own
// with a context derived from parent that ends after HookTimeout, and
// waits for its result or for the context to end. It returns
// errHookTimeout (after logging which hook, for whom, and the deadline)
// when the deadline passed first, parent's error when parent ended
// first (the server is closing); when fn panics, callHook panics. fn
// may go on running after callHook returns: it must not share anything
// with the caller that the caller changes afterwards.
func callHook[T any](srv *Server, parent context.Context, hc hookCall, fn func(context.Context) T) (T, error) {
	type result struct {
		v     T
		panic any
	}
	ctx, cancel := context.WithTimeout(parent, srv.cfg.hookTimeout)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r.panic = p
				srv.cfg.log.Error("panic in hook; closing the connection", hc.attrs("panic", fmt.Sprint(p), "stack", string(debug.Stack()))...)
			}
			ch <- r
		}()
		r.v = fn(ctx)
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
	}
	var zero T
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		// Late, or the context ended while it answered: a hook that
		// overruns refuses, whatever it said.
		srv.cfg.log.Warn("hook did not answer in time; refused", hc.attrs("timeout", srv.cfg.hookTimeout)...)
		return zero, errHookTimeout
	case parent.Err() != nil:
		return zero, parent.Err()
	case r.panic != nil:
		panic(hookPanic{fmt.Sprintf("%T.%s", hc.hook, hc.method), r.panic})
	}
	return r.v, nil
}

// authorize asks the Authorizer whether the client may take action a on
// topic. A hook that overruns HookTimeout refuses.
func (srv *Server) authorize(c *ClientInfo, a Action, topic string) bool {
	az := srv.cfg.authz
	if srv.authzFast {
		return az.Authorize(srv.ctx, c, a, topic)
	}
	info := *c // the hook may outlive the call, and c changes
	hc := hookCall{hook: az, method: "Authorize", client: c.ClientID, user: c.Username, action: a, key: "topic", value: topic}
	ok, err := callHook(srv, srv.ctx, hc, func(ctx context.Context) bool {
		return az.Authorize(ctx, &info, a, topic)
	})
	return ok && err == nil
}

// authorizeReceive asks a ReceiveAuthorizer whether the client of info
// may receive a message on topic.
func (srv *Server) authorizeReceive(ra ReceiveAuthorizer, info *ClientInfo, topic string) bool {
	if srv.authzFast {
		return ra.AuthorizeReceive(info, topic)
	}
	hc := hookCall{hook: ra, method: "AuthorizeReceive", client: info.ClientID, user: info.Username, action: ActionReceive, key: "topic", value: topic}
	ok, err := callHook(srv, srv.ctx, hc, func(context.Context) bool {
		return ra.AuthorizeReceive(info, topic)
	})
	return ok && err == nil
}

// authenticate asks the Authenticator about req, within ctx (the connect
// timeout) and HookTimeout. After an error the caller must not read req:
// an overrunning hook may still be changing it.
func (srv *Server) authenticate(ctx context.Context, req *AuthRequest) error {
	an := srv.cfg.authn
	if srv.authnFast {
		return an.Authenticate(ctx, req)
	}
	hc := hookCall{hook: an, method: "Authenticate", client: req.ClientID, user: req.Username}
	err, herr := callHook(srv, ctx, hc, func(ctx context.Context) error {
		return an.Authenticate(ctx, req)
	})
	if herr != nil {
		return herr
	}
	return err
}

// authStart starts an enhanced authentication exchange with method m.
func (srv *Server) authStart(ctx context.Context, m AuthMethod, req *AuthRequest) (AuthExchange, error) {
	if nonBlocking(m) {
		return m.Start(ctx, req)
	}
	type started struct {
		ex  AuthExchange
		err error
	}
	hc := hookCall{hook: m, method: "Start", client: req.ClientID, user: req.Username, key: "method", value: req.AuthMethod}
	r, err := callHook(srv, ctx, hc, func(ctx context.Context) started {
		ex, err := m.Start(ctx, req)
		return started{ex, err}
	})
	if err != nil {
		return nil, err
	}
	return r.ex, r.err
}

// authNext runs one step of an enhanced authentication exchange of
// method m.
func (srv *Server) authNext(ctx context.Context, m AuthMethod, ex AuthExchange, who *ClientInfo, in []byte) ([]byte, bool, error) {
	if nonBlocking(m) {
		return ex.Next(ctx, in)
	}
	type step struct {
		out  []byte
		done bool
		err  error
	}
	hc := hookCall{hook: ex, method: "Next", client: who.ClientID, user: who.Username}
	r, err := callHook(srv, ctx, hc, func(ctx context.Context) step {
		out, done, err := ex.Next(ctx, in)
		return step{out, done, err}
	})
	if err != nil {
		return nil, false, err
	}
	return r.out, r.done, r.err
}
