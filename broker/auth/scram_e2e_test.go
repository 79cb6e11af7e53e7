package auth

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/internal/scram"
	"github.com/ternmq/tern/packet"
)

// The end-to-end tests run the SCRAM methods in a real broker on a
// loopback port and speak MQTT 5 to it packet by packet.

// startBroker runs srv on a loopback TCP port until the test ends and
// returns the address.
func startBroker(t *testing.T, srv *broker.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startBrokerOn(t, srv, l)
}

// startBrokerOn runs srv on l, a listener of the test's making, until the
// test ends and returns its address.
func startBrokerOn(t *testing.T, srv *broker.Server, l net.Listener) string {
	t.Helper()
	if srv.Logger == nil {
		var h slog.Handler = slog.NewTextHandler(io.Discard, nil)
		if os.Getenv("TERN_TEST_LOG") != "" {
			h = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
		}
		srv.Logger = slog.New(h)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-errc; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return l.Addr().String()
}

// connackCode sends cp with protocol version v on a new connection to
// addr (over TLS when tc is set) and returns the return or reason code
// byte of the CONNACK, read from the wire.
func connackCode(t *testing.T, addr string, tc *tls.Config, v packet.Version, cp *packet.Connect) packet.ReasonCode {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	var nc net.Conn
	var err error
	if tc != nil {
		nc, err = tls.DialWithDialer(d, "tcp", addr, tc)
	} else {
		nc, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	cp.Version = v
	w := packet.NewWriter(nc)
	w.Version = v
	if err := w.WritePacket(cp); err != nil {
		t.Fatalf("send CONNECT: %v", err)
	}
	// Fixed header 0x20, Remaining Length (a variable byte integer), then
	// the acknowledge flags and the code.
	r := bufio.NewReader(nc)
	first, err := r.ReadByte()
	if err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	if first != 0x20 {
		t.Fatalf("first byte 0x%02x, want a CONNACK (0x20)", first)
	}
	n, shift := 0, 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			t.Fatalf("read CONNACK length: %v", err)
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
		shift += 7
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil || n < 2 {
		t.Fatalf("read CONNACK body (%d bytes): %v", n, err)
	}
	return packet.ReasonCode(body[1])
}

// mqttConn speaks MQTT 5 packet by packet.
type mqttConn struct {
	t  *testing.T
	nc net.Conn
	r  *packet.Reader
	w  *packet.Writer
}

func dialMQTT(t *testing.T, addr string) *mqttConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &mqttConn{t: t, nc: nc, r: packet.NewReader(nc), w: packet.NewWriter(nc)}
	c.r.Version, c.w.Version = packet.V5, packet.V5
	return c
}

func (c *mqttConn) send(p packet.Packet) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.w.WritePacket(p); err != nil {
		c.t.Fatalf("send %v: %v", p.Type(), err)
	}
}

func (c *mqttConn) recv() packet.Packet {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := c.r.ReadPacket()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return p
}

// expectClosed checks that the broker closes the connection.
func (c *mqttConn) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		p, err := c.r.ReadPacket()
		if err == nil {
			c.t.Errorf("unexpected %v before the close", p.Type())
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatal("the broker did not close the connection")
		}
		return
	}
}

// connectSCRAM sends a CONNECT with the client-first-message and runs the
// exchange up to the CONNACK, which it returns. A CONNACK in place of the
// AUTH (a refusal at the first step) is returned as is.
func (c *mqttConn) connectSCRAM(method string, sc *scram.Client, cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	first, err := sc.First()
	if err != nil {
		c.t.Fatal(err)
	}
	cp.Version = packet.V5
	cp.CleanStart = true
	cp.Properties.AuthMethod = method
	cp.Properties.AuthData = first
	c.send(cp)
	var auth *packet.Auth
	switch p := c.recv().(type) {
	case *packet.Connack:
		return p
	case *packet.Auth:
		auth = p
	default:
		c.t.Fatalf("want AUTH after CONNECT, got %v", p.Type())
	}
	// [v5 MQTT-4.12.0-2] the server asks for more with 0x18;
	// [v5 MQTT-4.12.0-5] in every AUTH the method is the CONNECT's.
	if auth.ReasonCode != packet.ContinueAuthentication || auth.Properties.AuthMethod != method {
		c.t.Fatalf("AUTH reason %v method %q, want 0x18 and %q", auth.ReasonCode, auth.Properties.AuthMethod, method)
	}
	final, err := sc.Final(auth.Properties.AuthData)
	if err != nil {
		c.t.Fatalf("server-first-message %q: %v", auth.Properties.AuthData, err)
	}
	// [v5 MQTT-4.12.0-3] the client answers with 0x18 and the same method.
	c.send(&packet.Auth{ReasonCode: packet.ContinueAuthentication,
		Properties: packet.Properties{AuthMethod: method, AuthData: final}})
	p := c.recv()
	ack, ok := p.(*packet.Connack)
	if !ok {
		c.t.Fatalf("want CONNACK after the client-final-message, got %v", p.Type())
	}
	return ack
}

// connectedUsers records the user name of each connected client.
type connectedUsers struct {
	mu    sync.Mutex
	users map[string]string // client id -> user name
}

func (u *connectedUsers) Observe(e broker.Event) {
	if e.Kind == broker.EventConnect {
		u.mu.Lock()
		u.users[e.Client.ClientID] = e.Client.Username
		u.mu.Unlock()
	}
}

func (u *connectedUsers) get(id string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.users[id]
}

func TestSCRAMEndToEnd(t *testing.T) {
	pf := scramFile(t) // alice/pencil with both mechanisms; bob without SCRAM
	obs := &connectedUsers{users: map[string]string{}}
	addr := startBroker(t, &broker.Server{
		Authenticator: pf,
		AuthMethods:   pf.SCRAMMethods(),
		Observers:     []broker.Observer{obs},
	})

	for _, mech := range scram.Mechanisms() {
		t.Run(mech.Name(), func(t *testing.T) {
			c := dialMQTT(t, addr)
			sc := scram.NewClient(mech, "alice", "pencil")
			id := "e2e-" + mech.Name()
			ack := c.connectSCRAM(mech.Name(), sc, &packet.Connect{ClientID: id})
			if ack.ReasonCode != packet.Success {
				t.Fatalf("CONNACK 0x%02x (%s), want 0", byte(ack.ReasonCode), ack.Properties.ReasonString)
			}
			// [v5 MQTT-4.12.0-5] a successful CONNACK carries the method;
			// its data is the server-final-message.
			if ack.Properties.AuthMethod != mech.Name() {
				t.Errorf("CONNACK method %q", ack.Properties.AuthMethod)
			}
			if err := sc.Verify(ack.Properties.AuthData); err != nil {
				t.Fatalf("server-final-message %q: %v", ack.Properties.AuthData, err)
			}
			// The proved user name is the connection's.
			c.send(&packet.Pingreq{})
			if _, ok := c.recv().(*packet.Pingresp); !ok {
				t.Fatal("want PINGRESP")
			}
			if u := obs.get(id); u != "alice" {
				t.Errorf("connection's user name %q, want alice", u)
			}
			c.send(&packet.Disconnect{})
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		c := dialMQTT(t, addr)
		ack := c.connectSCRAM(SCRAMSHA256, scram.NewClient(scram.SHA256, "alice", "guess"), &packet.Connect{ClientID: "e2e-wrong"})
		// [v5 MQTT-4.12.0-4] refused at the last step, then closed.
		if ack.ReasonCode != packet.BadUserNameOrPassword {
			t.Errorf("CONNACK 0x%02x, want 0x86", byte(ack.ReasonCode))
		}
		if len(ack.Properties.AuthData) != 0 {
			t.Errorf("a refusal carries Authentication Data %q", ack.Properties.AuthData)
		}
		c.expectClosed()
	})

	t.Run("user without SCRAM credentials", func(t *testing.T) {
		c := dialMQTT(t, addr)
		ack := c.connectSCRAM(SCRAMSHA256, scram.NewClient(scram.SHA256, "bob", "pencil"), &packet.Connect{ClientID: "e2e-bob"})
		if ack.ReasonCode != packet.BadUserNameOrPassword {
			t.Errorf("CONNACK 0x%02x, want 0x86", byte(ack.ReasonCode))
		}
		c.expectClosed()
	})

	t.Run("unknown method", func(t *testing.T) {
		c := dialMQTT(t, addr)
		ack := c.connectSCRAM("SCRAM-SHA-1", scram.NewClient(scram.SHA256, "alice", "pencil"), &packet.Connect{ClientID: "e2e-sha1"})
		// [v5 MQTT-4.12.0-1] an unsupported method: 0x8C, then closed.
		if ack.ReasonCode != packet.BadAuthenticationMethod {
			t.Errorf("CONNACK 0x%02x, want 0x8C", byte(ack.ReasonCode))
		}
		c.expectClosed()
	})

	t.Run("malformed client-first-message", func(t *testing.T) {
		c := dialMQTT(t, addr)
		c.send(&packet.Connect{Version: packet.V5, ClientID: "e2e-bad", CleanStart: true,
			Properties: packet.Properties{AuthMethod: SCRAMSHA256, AuthData: []byte("p=tls-unique,,n=alice,r=abc")}})
		ack, ok := c.recv().(*packet.Connack)
		if !ok || ack.ReasonCode != packet.NotAuthorized {
			t.Fatalf("want CONNACK 0x87, got %#v", ack)
		}
		c.expectClosed()
	})

	t.Run("re-authentication", func(t *testing.T) {
		c := dialMQTT(t, addr)
		ack := c.connectSCRAM(SCRAMSHA256, scram.NewClient(scram.SHA256, "alice", "pencil"), &packet.Connect{ClientID: "e2e-reauth"})
		if ack.ReasonCode != packet.Success {
			t.Fatalf("CONNACK 0x%02x", byte(ack.ReasonCode))
		}
		// reauth runs one re-authentication and returns the broker's
		// answer to the client-final-message.
		reauth := func(sc *scram.Client) packet.Packet {
			first, _ := sc.First()
			// [v5 MQTT-4.12.1-1] the method the connection used.
			c.send(&packet.Auth{ReasonCode: packet.ReAuthenticate,
				Properties: packet.Properties{AuthMethod: SCRAMSHA256, AuthData: first}})
			p := c.recv()
			a, ok := p.(*packet.Auth)
			if !ok || a.ReasonCode != packet.ContinueAuthentication {
				t.Fatalf("want AUTH 0x18, got %#v", p)
			}
			final, err := sc.Final(a.Properties.AuthData)
			if err != nil {
				t.Fatal(err)
			}
			c.send(&packet.Auth{ReasonCode: packet.ContinueAuthentication,
				Properties: packet.Properties{AuthMethod: SCRAMSHA256, AuthData: final}})
			return c.recv()
		}
		sc := scram.NewClient(scram.SHA256, "alice", "pencil")
		p := reauth(sc)
		a, ok := p.(*packet.Auth)
		if !ok || a.ReasonCode != packet.Success {
			t.Fatalf("want AUTH 0 after re-authentication, got %#v", p)
		}
		if err := sc.Verify(a.Properties.AuthData); err != nil {
			t.Errorf("re-authentication server-final-message: %v", err)
		}
		// Re-authenticating as another user is refused at the
		// client-first-message: [v5 MQTT-4.12.1-2] DISCONNECT and close.
		first, _ := scram.NewClient(scram.SHA256, "user", "pencil").First()
		c.send(&packet.Auth{ReasonCode: packet.ReAuthenticate,
			Properties: packet.Properties{AuthMethod: SCRAMSHA256, AuthData: first}})
		if d, ok := c.recv().(*packet.Disconnect); !ok || d.ReasonCode != packet.NotAuthorized {
			t.Errorf("re-authentication as another user: want DISCONNECT 0x87, got %#v", d)
		}
		c.expectClosed()
	})

	t.Run("password login still works", func(t *testing.T) {
		c := dialMQTT(t, addr)
		c.send(&packet.Connect{Version: packet.V5, ClientID: "e2e-pw", CleanStart: true, Username: "alice", Password: []byte("pencil")})
		ack, ok := c.recv().(*packet.Connack)
		if !ok || ack.ReasonCode != packet.Success {
			t.Fatalf("want CONNACK 0, got %#v", ack)
		}
		c.send(&packet.Disconnect{})
	})
}
