package broker

// MQTT 5 enhanced authentication (section 4.12): the AUTH exchange at
// CONNECT and re-authentication of a connected client, black-box over
// loopback sockets, with a small challenge / response method defined
// here: the client names a user in the CONNECT's Authentication Data, the
// server answers with a binary nonce, and the client must send the nonce
// reversed followed by a shared secret.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// ---- the test method (prefixed v5a) ----

const (
	v5aMethodName = "TERN-TEST-CHALLENGE"
	v5aSecret     = "s3cr\x00t"
)

// v5aMethod is a two-step challenge / response AuthMethod. Data "one-step"
// is accepted at once; "banned" is refused with 0x8A at the first step.
type v5aMethod struct {
	wrong error // returned for a wrong answer; nil: a plain error (0x87)

	mu     sync.Mutex
	n      int
	starts []v5aStart // what Start was given, in order
}

// v5aStart is a copy of what one call of Start saw.
type v5aStart struct {
	reauth           bool
	method, clientID string
	username         string
	connect          *packet.Connect
	password         []byte
}

func (m *v5aMethod) Start(_ context.Context, req *AuthRequest) (AuthExchange, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	st := v5aStart{reauth: req.Reauth, method: req.AuthMethod, clientID: req.ClientID, username: req.Username, connect: req.Connect, password: req.Password}
	m.starts = append(m.starts, st)
	return &v5aExchange{m: m, req: req, seq: byte(m.n)}, nil
}

func (m *v5aMethod) startsSeen() []v5aStart {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.starts)
}

type v5aExchange struct {
	m     *v5aMethod
	req   *AuthRequest
	seq   byte
	step  int
	name  string
	nonce []byte
}

func (x *v5aExchange) Next(_ context.Context, in []byte) ([]byte, bool, error) {
	x.step++
	switch x.step {
	case 1:
		x.name = string(in)
		switch x.name {
		case "":
			return nil, false, errors.New("no user named")
		case "one-step":
			x.req.Username = x.name
			return []byte("fast"), true, nil
		case "banned":
			return nil, false, &Refusal{Code: packet.Banned, Reason: "banned"}
		}
		// Binary, with zero bytes, and different for every exchange.
		x.nonce = []byte{0x00, x.seq, 0xff, 'n', 0x00, 0x80, x.seq ^ 0x5a}
		return x.nonce, false, nil
	case 2:
		if !bytes.Equal(in, v5aAnswer(x.nonce)) {
			if x.m.wrong != nil {
				return nil, false, x.m.wrong
			}
			return nil, false, errors.New("wrong answer")
		}
		x.req.Username = x.name
		return []byte("welcome " + x.name), true, nil
	}
	return nil, false, errors.New("exchange already over")
}

// v5aAnswer is the right answer to a nonce: reversed, then the secret.
func v5aAnswer(nonce []byte) []byte {
	a := slices.Clone(nonce)
	slices.Reverse(a)
	return append(a, v5aSecret...)
}

// v5aUserAuthz lets a user subscribe under users/ only to
// users/{user name}/#; other filters are open to all.
type v5aUserAuthz struct{}

func (v5aUserAuthz) Authorize(_ context.Context, c *ClientInfo, a Action, topic string) bool {
	if a != ActionSubscribe || !strings.HasPrefix(topic, "users/") {
		return true
	}
	return c.Username != "" && topic == "users/"+c.Username+"/#"
}

// ---- client side helpers ----

// v5aServer starts a server with the test method (and any others) and
// v5aUserAuthz.
func v5aServer(t *testing.T, m *v5aMethod, mod func(*Server)) (*Server, string) {
	t.Helper()
	srv := &Server{AuthMethods: map[string]AuthMethod{v5aMethodName: m}, Authorizer: v5aUserAuthz{}}
	if mod != nil {
		mod(srv)
	}
	return srv, ptNewServer(t, srv)
}

// v5aConnectPacket is a CONNECT asking for the test method as user name
// (the CONNECT's own User Name is "mallory": the exchange decides).
func v5aConnectPacket(id, name string) *packet.Connect {
	cp := &packet.Connect{Version: packet.V5, ClientID: id, CleanStart: true, Username: "mallory"}
	cp.Properties.AuthMethod = v5aMethodName
	cp.Properties.AuthData = []byte(name)
	return cp
}

// v5aChallenge reads the server's AUTH 0x18 and returns its data
// [v5 MQTT-4.12.0-2] [v5 MQTT-4.12.0-5].
func v5aChallenge(t *testing.T, c *rawClient) []byte {
	t.Helper()
	p := c.recv()
	a, ok := p.(*packet.Auth)
	if !ok {
		t.Fatalf("got %v, want AUTH 0x18", p)
	}
	if a.ReasonCode != packet.ContinueAuthentication {
		t.Fatalf("AUTH reason code 0x%02x, want 0x18 [v5 MQTT-4.12.0-2]", byte(a.ReasonCode))
	}
	if a.Properties.AuthMethod != v5aMethodName {
		t.Fatalf("AUTH method %q, want %q [v5 MQTT-4.12.0-5]", a.Properties.AuthMethod, v5aMethodName)
	}
	if len(a.Properties.AuthData) == 0 {
		t.Fatal("AUTH without the challenge")
	}
	return a.Properties.AuthData
}

// v5aAuth sends an AUTH with the test method.
func v5aAuth(c *rawClient, code packet.ReasonCode, method string, data []byte) {
	a := &packet.Auth{ReasonCode: code}
	a.Properties.AuthMethod = method
	a.Properties.AuthData = data
	c.send(a)
}

// v5aLogin connects through the whole exchange as user name and checks
// the CONNACK [v5 MQTT-4.12.0-5].
func v5aLogin(t *testing.T, addr, id, name string) (*rawClient, *packet.Connack) {
	t.Helper()
	c := dialRaw(t, addr, packet.V5)
	c.send(v5aConnectPacket(id, name))
	nonce := v5aChallenge(t, c)
	v5aAuth(c, packet.ContinueAuthentication, v5aMethodName, v5aAnswer(nonce))
	p := c.recv()
	ack, ok := p.(*packet.Connack)
	if !ok || ack.ReasonCode != packet.Success {
		t.Fatalf("got %v, want CONNACK 0x00", p)
	}
	if ack.Properties.AuthMethod != v5aMethodName || string(ack.Properties.AuthData) != "welcome "+name {
		t.Fatalf("CONNACK properties %v, want method %q and data %q [v5 MQTT-4.12.0-5]", &ack.Properties, v5aMethodName, "welcome "+name)
	}
	return c, ack
}

// v5aRawPacket is one packet read as bytes: its type and body.
type v5aRawPacket struct {
	t    packet.Type
	body []byte
}

// v5aRawUntilClosed reads c's connection as bytes until the server closes
// it and splits what came into packets, so that a packet the codec would
// refuse (a DISCONNECT with a reason code DISCONNECT may not carry, say)
// is seen as it is. c's Reader must hold nothing unread.
func v5aRawUntilClosed(t *testing.T, c *rawClient) []v5aRawPacket {
	t.Helper()
	if c.r.Buffered() != 0 {
		t.Fatalf("%d bytes buffered", c.r.Buffered())
	}
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c.nc)
	if isTimeout(err) {
		t.Fatalf("connection still open (received % x)", b)
	}
	var ps []v5aRawPacket
	for len(b) > 0 {
		typ := packet.Type(b[0] >> 4)
		n, i, mul := 0, 1, 1
		for ; i < len(b) && i < 5; i++ {
			n += int(b[i]&0x7f) * mul
			mul *= 128
			if b[i]&0x80 == 0 {
				break
			}
		}
		i++
		if i+n > len(b) {
			t.Fatalf("truncated packet % x", b)
		}
		ps = append(ps, v5aRawPacket{typ, b[i : i+n]})
		b = b[i+n:]
	}
	return ps
}

// v5aExpectDisconnect waits for the server to close c and checks that it
// sent a DISCONNECT with one of codes as its last packet.
func v5aExpectDisconnect(t *testing.T, c *rawClient, why string, codes ...packet.ReasonCode) {
	t.Helper()
	ps := v5aRawUntilClosed(t, c)
	if len(ps) == 0 {
		t.Fatalf("%s: connection closed without DISCONNECT, want DISCONNECT % x", why, codes)
	}
	last := ps[len(ps)-1]
	if last.t != packet.DISCONNECT || len(last.body) == 0 {
		t.Fatalf("%s: last packet %v % x, want DISCONNECT % x", why, last.t, last.body, codes)
	}
	if !slices.Contains(codes, packet.ReasonCode(last.body[0])) {
		t.Fatalf("%s: DISCONNECT 0x%02x, want % x", why, last.body[0], codes)
	}
}

// ---- at CONNECT ----

// TestV5AuthConnectExchange: a CONNECT with the method gets an AUTH 0x18
// with the server's challenge [v5 MQTT-4.12.0-2]; the client's AUTH 0x18
// with the right answer gets CONNACK 0x00 carrying the method and the
// data of the last step [v5 MQTT-4.12.0-5]; the user name the exchange
// proved, not the CONNECT's, is what the Authorizer sees; an Authenticator
// that would refuse the client is not asked (Server.AuthMethods). A
// method that is done at its first step answers with the CONNACK at once.
func TestV5AuthConnectExchange(t *testing.T) {
	t.Parallel()
	m := &v5aMethod{}
	srv, addr := v5aServer(t, m, func(s *Server) { s.Authenticator = ptAuthn{ErrNotAuthorized} })
	c, ack := v5aLogin(t, addr, "v5a-alice", "alice")
	if ack.SessionPresent {
		t.Error("Session Present 1 on a clean start")
	}
	sa := v5aSubscribe(t, c, 1, "users/alice/#", "users/mallory/#")
	if !slices.Equal(sa, []packet.ReasonCode{packet.GrantedQoS1, packet.NotAuthorized}) {
		t.Fatalf("SUBACK codes % x, want [01 87]: the Authorizer must see user alice", sa)
	}
	srv.Publish("users/alice/x", []byte("hi"), 1, false)
	if p := c.expectPublish(); string(p.Payload) != "hi" {
		t.Fatalf("got %v", p)
	} else {
		ptAck(t, c, p)
	}
	ptPublish(t, c, &packet.Publish{Topic: "anywhere", QoS: 1, PacketID: 9, Payload: []byte("x")})

	t.Run("one step", func(t *testing.T) {
		c := dialRaw(t, addr, packet.V5)
		c.send(v5aConnectPacket("v5a-fast", "one-step"))
		p := c.recv()
		ack, ok := p.(*packet.Connack)
		if !ok || ack.ReasonCode != packet.Success {
			t.Fatalf("got %v, want CONNACK 0x00 without AUTH", p)
		}
		if ack.Properties.AuthMethod != v5aMethodName || string(ack.Properties.AuthData) != "fast" {
			t.Fatalf("CONNACK properties %v, want the method and data \"fast\" [v5 MQTT-4.12.0-5]", &ack.Properties)
		}
	})
}

// v5aSubscribe subscribes c to filters at QoS 1 and returns the codes.
func v5aSubscribe(t *testing.T, c *rawClient, pid uint16, filters ...string) []packet.ReasonCode {
	t.Helper()
	var subs []packet.Subscription
	for _, f := range filters {
		subs = append(subs, packet.Subscription{Filter: f, QoS: 1})
	}
	c.send(&packet.Subscribe{PacketID: pid, Subscriptions: subs})
	p := c.recv()
	sa, ok := p.(*packet.Suback)
	if !ok || sa.PacketID != pid {
		t.Fatalf("want SUBACK %d, got %v", pid, p)
	}
	return sa.ReasonCodes
}

// TestV5AuthConnectRefused: the server refuses at any step with a CONNACK
// >= 0x80 and closes the connection [v5 MQTT-4.12.0-4] [v5 MQTT-3.2.2-6]
// [v5 MQTT-3.2.2-7]: a wrong answer gets 0x87 (a plain error from the
// method), or the code of the method's Refusal (0x86); a Refusal at the
// first step (0x8A) comes before any AUTH.
func TestV5AuthConnectRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		wrong error
		user  string
		want  packet.ReasonCode
	}{
		{"wrong answer", nil, "alice", packet.NotAuthorized},
		{"wrong answer, Refusal 0x86", ErrBadCredentials, "alice", packet.BadUserNameOrPassword},
		{"refused at the first step", nil, "banned", packet.Banned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, addr := v5aServer(t, &v5aMethod{wrong: tc.wrong}, nil)
			c := dialRaw(t, addr, packet.V5)
			c.send(v5aConnectPacket("v5a-refused", tc.user))
			if tc.user != "banned" {
				nonce := v5aChallenge(t, c)
				v5aAuth(c, packet.ContinueAuthentication, v5aMethodName, append(v5aAnswer(nonce), '!'))
			}
			p := c.recv()
			ack, ok := p.(*packet.Connack)
			if !ok || ack.ReasonCode != tc.want || ack.SessionPresent {
				t.Fatalf("got %v, want CONNACK 0x%02x [v5 MQTT-4.12.0-4]", p, byte(tc.want))
			}
			if got := c.expectClosed(); len(got) != 0 {
				t.Fatalf("packets after the refusal: %v [v5 MQTT-3.2.2-7]", got)
			}
		})
	}
}

// TestV5AuthUnknownMethod: a CONNECT asking for a method the server does
// not have gets CONNACK 0x8C Bad authentication method and the connection
// is closed [v5 MQTT-4.12.0-1].
func TestV5AuthUnknownMethod(t *testing.T) {
	t.Parallel()
	_, addr := v5aServer(t, &v5aMethod{}, nil)
	c := dialRaw(t, addr, packet.V5)
	cp := v5aConnectPacket("v5a-unknown", "alice")
	cp.Properties.AuthMethod = "SCRAM-SHA-1024"
	ack := ptRefused(t, c, cp)
	if ack.ReasonCode != packet.BadAuthenticationMethod {
		t.Fatalf("CONNACK 0x%02x, want 0x8C [v5 MQTT-4.12.0-1]", byte(ack.ReasonCode))
	}
}

// v5aExchangeBreaks are the ways a client can break the exchange at
// CONNECT, where it may send only AUTH 0x18 with the same method, or
// DISCONNECT [v5 MQTT-3.1.2-30] [v5 MQTT-4.12.0-3] [v5 MQTT-4.12.0-5].
var v5aExchangeBreaks = []struct {
	name string
	send func(c *rawClient, nonce []byte)
}{
	{"PUBLISH instead of AUTH", func(c *rawClient, _ []byte) {
		c.send(&packet.Publish{Topic: "v5a/sneaky", QoS: 1, PacketID: 1, Payload: []byte("x")})
	}},
	{"SUBSCRIBE instead of AUTH", func(c *rawClient, _ []byte) {
		c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "#"}}})
	}},
	{"PINGREQ instead of AUTH", func(c *rawClient, _ []byte) { c.send(&packet.Pingreq{}) }},
	{"second CONNECT", func(c *rawClient, _ []byte) { c.send(v5aConnectPacket("v5a-perr", "alice")) }},
	{"AUTH with another method", func(c *rawClient, nonce []byte) {
		v5aAuth(c, packet.ContinueAuthentication, "OTHER", v5aAnswer(nonce))
	}},
	{"AUTH 0x19 during the exchange", func(c *rawClient, nonce []byte) {
		v5aAuth(c, packet.ReAuthenticate, v5aMethodName, v5aAnswer(nonce))
	}},
	{"AUTH 0x00 from the client", func(c *rawClient, nonce []byte) {
		v5aAuth(c, packet.Success, v5aMethodName, v5aAnswer(nonce))
	}},
}

// TestV5AuthConnectProtocolErrors: a client that breaks the exchange at
// CONNECT [v5 MQTT-3.1.2-30] [v5 MQTT-4.12.0-3] [v5 MQTT-4.12.0-5] is
// closed [v5 MQTT-4.13.1-1], is never accepted, and nothing it sent takes
// effect; a DISCONNECT during the exchange just ends it.
func TestV5AuthConnectProtocolErrors(t *testing.T) {
	t.Parallel()
	srv, addr := v5aServer(t, &v5aMethod{}, nil)
	watch, _ := ptConnect(t, addr, packet.V5, "v5a-watch", true)
	if sa := watch.subscribe(1, "v5a/#", 1); sa.ReasonCodes[0] != packet.GrantedQoS1 {
		t.Fatalf("watcher SUBACK %v", sa)
	}
	for _, tc := range v5aExchangeBreaks {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr, packet.V5)
			c.send(v5aConnectPacket("v5a-perr", "alice"))
			tc.send(c, v5aChallenge(t, c))
			for _, p := range c.expectClosed() {
				if ack, ok := p.(*packet.Connack); ok && ack.ReasonCode < 0x80 {
					t.Fatalf("CONNACK %v accepts the connection", p)
				}
			}
		})
	}
	t.Run("DISCONNECT during the exchange", func(t *testing.T) {
		c := dialRaw(t, addr, packet.V5)
		c.send(v5aConnectPacket("v5a-perr", "alice"))
		v5aChallenge(t, c)
		c.send(&packet.Disconnect{})
		if got := c.expectClosed(); len(got) != 0 {
			t.Fatalf("got %v after DISCONNECT", got)
		}
	})
	// Nothing the refused connections sent was published or subscribed.
	if got := ptDrain(t, srv, watch, "v5a/marker"); len(got) != 0 {
		t.Fatalf("published during a failed exchange: %v", got)
	}
	ptWaitConnected(t, srv, 1)
	if st := srv.Stats(); st.Subscriptions != 1 {
		t.Fatalf("%d subscriptions, want 1 (the watcher's)", st.Subscriptions)
	}
}

// TestV5AuthConnectNoDisconnectBeforeConnack: when a client breaks the
// exchange at CONNECT, the server, which has not sent a CONNACK yet, may
// not answer with DISCONNECT [v5 MQTT-3.14.0-1]: it closes the connection,
// optionally after a CONNACK >= 0x80 (0x82 Protocol Error)
// [v5 MQTT-4.12.0-4] [v5 MQTT-4.13.1-1].
func TestV5AuthConnectNoDisconnectBeforeConnack(t *testing.T) {
	t.Parallel()
	_, addr := v5aServer(t, &v5aMethod{}, nil)
	for _, tc := range v5aExchangeBreaks {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr, packet.V5)
			c.send(v5aConnectPacket("v5a-nodisc", "alice"))
			tc.send(c, v5aChallenge(t, c))
			got := c.expectClosed()
			for _, p := range got {
				switch p := p.(type) {
				case *packet.Connack:
					if p.ReasonCode < 0x80 {
						t.Fatalf("CONNACK %v accepts the connection", p)
					}
				default:
					t.Fatalf("got %v before any CONNACK, want a CONNACK 0x82 (or nothing) and the close: no DISCONNECT before a successful CONNACK [v5 MQTT-3.14.0-1]", got)
				}
			}
		})
	}
}

// TestV5AuthConnectTimeout: the connect timeout bounds the whole
// exchange: a client that never answers the challenge is closed
// (noid:connect-timeout, Server.ConnectTimeout).
func TestV5AuthConnectTimeout(t *testing.T) {
	t.Parallel()
	_, addr := v5aServer(t, &v5aMethod{}, func(s *Server) { s.ConnectTimeout = 300 * time.Millisecond })
	c := dialRaw(t, addr, packet.V5)
	c.send(v5aConnectPacket("v5a-slow", "alice"))
	v5aChallenge(t, c)
	for _, p := range c.expectClosed() {
		if ack, ok := p.(*packet.Connack); !ok || ack.ReasonCode < 0x80 {
			t.Fatalf("got %v, want the close (or a refusing CONNACK)", p)
		}
	}
}

// TestV5AuthNoMethod: a CONNECT without an Authentication Method goes to
// the Authenticator, gets no AUTH and no Authentication Method or Data in
// the CONNACK [v5 MQTT-4.12.0-6], also on a server with methods.
func TestV5AuthNoMethod(t *testing.T) {
	t.Parallel()
	_, addr := v5aServer(t, &v5aMethod{}, func(s *Server) { s.Authenticator = ptAuthn{ErrBadCredentials} })
	c := dialRaw(t, addr, packet.V5)
	ack := c.connect(&packet.Connect{ClientID: "v5a-plain", CleanStart: true, Username: "good"})
	if ack.Properties.AuthMethod != "" || ack.Properties.Has(packet.PropAuthMethod) || ack.Properties.Has(packet.PropAuthData) {
		t.Fatalf("CONNACK properties %v carry authentication [v5 MQTT-4.12.0-6]", &ack.Properties)
	}
	c.send(&packet.Pingreq{})
	if p := c.recv(); p.Type() != packet.PINGRESP {
		t.Fatalf("got %v, want PINGRESP", p)
	}
	bad := dialRaw(t, addr, packet.V5)
	if ack := ptRefused(t, bad, &packet.Connect{ClientID: "v5a-plain2", CleanStart: true, Username: "bad"}); ack.ReasonCode != packet.BadUserNameOrPassword {
		t.Fatalf("CONNACK 0x%02x, want 0x86 from the Authenticator", byte(ack.ReasonCode))
	}
}

// ---- re-authentication ----

// TestV5AuthReauth: a connected client re-authenticates with AUTH 0x19
// and the same method, the exchange continues with AUTH 0x18 and ends
// with AUTH 0x00 carrying the method and the last data (section 4.12.1)
// [v5 MQTT-4.12.0-2] [v5 MQTT-4.12.0-5]; other packets keep flowing
// during the exchange (section 4.12.1); the user name the new exchange
// proved is what the Authorizer sees from then on; publishing works
// afterwards; a client can re-authenticate again.
func TestV5AuthReauth(t *testing.T) {
	t.Parallel()
	_, addr := v5aServer(t, &v5aMethod{}, nil)
	c, _ := v5aLogin(t, addr, "v5a-re", "alice")
	pid := uint16(0)
	reauth := func(name string) {
		t.Helper()
		v5aAuth(c, packet.ReAuthenticate, v5aMethodName, []byte(name))
		nonce := v5aChallenge(t, c)
		pid++
		ptPublish(t, c, &packet.Publish{Topic: "v5a/during", QoS: 1, PacketID: pid, Payload: []byte("during")})
		v5aAuth(c, packet.ContinueAuthentication, v5aMethodName, v5aAnswer(nonce))
		p := c.recv()
		a, ok := p.(*packet.Auth)
		if !ok || a.ReasonCode != packet.Success {
			t.Fatalf("got %v, want AUTH 0x00", p)
		}
		if a.Properties.AuthMethod != v5aMethodName || string(a.Properties.AuthData) != "welcome "+name {
			t.Fatalf("AUTH properties %v, want the method and %q [v5 MQTT-4.12.0-5]", &a.Properties, "welcome "+name)
		}
		pid++
		ptPublish(t, c, &packet.Publish{Topic: "v5a/after", QoS: 1, PacketID: pid, Payload: []byte("after")})
	}
	reauth("bob")
	if sa := v5aSubscribe(t, c, 100, "users/bob/#", "users/alice/#"); !slices.Equal(sa, []packet.ReasonCode{packet.GrantedQoS1, packet.NotAuthorized}) {
		t.Fatalf("SUBACK codes % x after re-authenticating as bob, want [01 87]", sa)
	}
	reauth("alice")
	if sa := v5aSubscribe(t, c, 101, "users/bob/#", "users/alice/#"); !slices.Equal(sa, []packet.ReasonCode{packet.NotAuthorized, packet.GrantedQoS1}) {
		t.Fatalf("SUBACK codes % x after re-authenticating as alice, want [87 01]", sa)
	}
}

// TestV5AuthReauthRequest: what the method is given (AuthRequest). At
// CONNECT: the client id, the method, the CONNECT and its password; at
// re-authentication: Reauth set, the client id, the method, the user name
// the connection is authenticated as, and, as AuthRequest documents,
// Connect and Password nil.
func TestV5AuthReauthRequest(t *testing.T) {
	t.Parallel()
	m := &v5aMethod{}
	_, addr := v5aServer(t, m, nil)
	c := dialRaw(t, addr, packet.V5)
	cp := v5aConnectPacket("v5a-req", "alice")
	cp.Password = []byte("pw")
	c.send(cp)
	v5aAuth(c, packet.ContinueAuthentication, v5aMethodName, v5aAnswer(v5aChallenge(t, c)))
	if ack, ok := c.recv().(*packet.Connack); !ok || ack.ReasonCode != packet.Success {
		t.Fatalf("want CONNACK 0x00, got %v", ack)
	}
	v5aAuth(c, packet.ReAuthenticate, v5aMethodName, []byte("bob"))
	v5aAuth(c, packet.ContinueAuthentication, v5aMethodName, v5aAnswer(v5aChallenge(t, c)))
	if a, ok := c.recv().(*packet.Auth); !ok || a.ReasonCode != packet.Success {
		t.Fatalf("got %v, want AUTH 0x00", a)
	}
	st := m.startsSeen()
	if len(st) != 2 {
		t.Fatalf("Start called %d times, want 2", len(st))
	}
	for i, s := range st {
		if s.method != v5aMethodName || s.clientID != "v5a-req" || s.reauth != (i == 1) {
			t.Errorf("Start %d saw method %q, client %q, Reauth %v", i, s.method, s.clientID, s.reauth)
		}
	}
	if c := st[0].connect; c == nil || c.ClientID != "v5a-req" || c.Properties.AuthMethod != v5aMethodName || string(st[0].password) != "pw" {
		t.Errorf("at CONNECT: AuthRequest.Connect = %v, Password %q; want the client's CONNECT and its password", c, st[0].password)
	}
	if st[1].connect != nil || st[1].password != nil {
		t.Errorf("at re-authentication: AuthRequest.Connect = %v, Password %q; want nil (hooks.go)", st[1].connect, st[1].password)
	}
	if st[1].username != "alice" {
		t.Errorf("re-authentication Start saw user %q, want alice (the user the connection is authenticated as)", st[1].username)
	}
}

// TestV5AuthReauthFails: a failed re-authentication ends the connection
// with a DISCONNECT carrying a fitting reason code [v5 MQTT-4.12.1-2]: a
// plain error from the method gives 0x87, a Refusal its own code. 0x86
// Bad User Name or Password and 0x8A Banned are CONNACK codes that a
// DISCONNECT may not carry [v5 MQTT-3.14.2-1] (Table 3-10): for those a
// DISCONNECT with a code it may carry (0x87, 0x80, 0x98) is expected.
func TestV5AuthReauthFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		wrong error
		user  string
		want  []packet.ReasonCode
	}{
		{"wrong answer", nil, "bob", []packet.ReasonCode{packet.NotAuthorized}},
		{"Refusal 0x87", ErrNotAuthorized, "bob", []packet.ReasonCode{packet.NotAuthorized}},
		// 0x86 and 0x8A exist in CONNACK but not in DISCONNECT (Table
		// 3-10): a DISCONNECT with a code it may carry is expected.
		{"Refusal 0x86", ErrBadCredentials, "bob", []packet.ReasonCode{packet.NotAuthorized, packet.UnspecifiedError}},
		{"refused at the first step, 0x8A", nil, "banned", []packet.ReasonCode{packet.NotAuthorized, packet.UnspecifiedError, packet.AdministrativeAction}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, addr := v5aServer(t, &v5aMethod{wrong: tc.wrong}, nil)
			c, _ := v5aLogin(t, addr, "v5a-refail", "alice")
			v5aAuth(c, packet.ReAuthenticate, v5aMethodName, []byte(tc.user))
			if tc.user != "banned" {
				nonce := v5aChallenge(t, c)
				v5aAuth(c, packet.ContinueAuthentication, v5aMethodName, append(v5aAnswer(nonce), '?'))
			}
			v5aExpectDisconnect(t, c, "failed re-authentication [v5 MQTT-4.12.1-2]", tc.want...)
			ptWaitConnected(t, srv, 0)
		})
	}
}

// TestV5AuthReauthProtocolErrors: AUTH that breaks the rules of section
// 4.12 ends the connection with DISCONNECT 0x82: 0x19 with another method
// [v5 MQTT-4.12.1-1]; 0x18 with no exchange in progress, 0x00 from the
// client, 0x19 while one is in progress (noid:auth-out-of-sequence); any
// AUTH from a client that connected without a method [v5 MQTT-4.12.0-7].
func TestV5AuthReauthProtocolErrors(t *testing.T) {
	t.Parallel()
	srv, addr := v5aServer(t, &v5aMethod{}, nil)
	for _, tc := range []struct {
		name     string
		noMethod bool
		send     func(c *rawClient)
	}{
		{"0x19 with another method", false, func(c *rawClient) {
			v5aAuth(c, packet.ReAuthenticate, "OTHER", []byte("alice"))
		}},
		{"0x19 without a method", false, func(c *rawClient) { v5aAuth(c, packet.ReAuthenticate, "", nil) }},
		{"0x18 with no exchange in progress", false, func(c *rawClient) {
			v5aAuth(c, packet.ContinueAuthentication, v5aMethodName, []byte("alice"))
		}},
		{"0x00 from the client", false, func(c *rawClient) { v5aAuth(c, packet.Success, v5aMethodName, nil) }},
		{"0x19 during a re-authentication", false, func(c *rawClient) {
			v5aAuth(c, packet.ReAuthenticate, v5aMethodName, []byte("bob"))
			v5aChallenge(t, c)
			v5aAuth(c, packet.ReAuthenticate, v5aMethodName, []byte("bob"))
		}},
		{"0x18 with another method during a re-authentication", false, func(c *rawClient) {
			v5aAuth(c, packet.ReAuthenticate, v5aMethodName, []byte("bob"))
			v5aAuth(c, packet.ContinueAuthentication, "OTHER", v5aAnswer(v5aChallenge(t, c)))
		}},
		{"0x19 from a client connected without a method", true, func(c *rawClient) {
			v5aAuth(c, packet.ReAuthenticate, v5aMethodName, []byte("alice"))
		}},
		{"0x18 from a client connected without a method", true, func(c *rawClient) {
			v5aAuth(c, packet.ContinueAuthentication, v5aMethodName, []byte("alice"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *rawClient
			if tc.noMethod {
				c = dialRaw(t, addr, packet.V5)
				c.connect(&packet.Connect{ClientID: "v5a-reperr", CleanStart: true})
			} else {
				c, _ = v5aLogin(t, addr, "v5a-reperr", "alice")
			}
			tc.send(c)
			v5aExpectDisconnect(t, c, tc.name, packet.ProtocolErrorCode)
			ptWaitConnected(t, srv, 0)
		})
	}
}

// TestV5AuthRefusalReasonString: the Reason of the method's Refusal is
// sent as the CONNACK's Reason String when the client asked for problem
// information (Refusal: "sent as the MQTT 5 reason string when the client
// asked for problem information"): Request Problem Information absent
// (it defaults to 1) or 1 [v5 MQTT-3.1.2-29 allows it in CONNACK either way].
func TestV5AuthRefusalReasonString(t *testing.T) {
	t.Parallel()
	_, addr := v5aServer(t, &v5aMethod{wrong: &Refusal{Code: packet.BadUserNameOrPassword, Reason: "nonce mismatch"}}, nil)
	for _, rpi := range []int{-1, 1} {
		name := "Request Problem Information absent"
		if rpi == 1 {
			name = "Request Problem Information 1"
		}
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, addr, packet.V5)
			cp := v5aConnectPacket("v5a-reason", "alice")
			if rpi >= 0 {
				cp.Properties.RequestProblemInfo = byte(rpi)
				cp.Properties.Mark(packet.PropRequestProblemInfo)
			}
			c.send(cp)
			v5aAuth(c, packet.ContinueAuthentication, v5aMethodName, []byte("wrong"+string(v5aChallenge(t, c))))
			p := c.recv()
			ack, ok := p.(*packet.Connack)
			if !ok || ack.ReasonCode != packet.BadUserNameOrPassword {
				t.Fatalf("got %v, want CONNACK 0x86", p)
			}
			if !strings.Contains(ack.Properties.ReasonString, "nonce mismatch") {
				t.Errorf("CONNACK Reason String %q, want the Refusal's reason \"nonce mismatch\"", ack.Properties.ReasonString)
			}
			c.expectClosed()
		})
	}
}
