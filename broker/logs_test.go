package broker

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// TestLogUserAndRemote checks the connect, refusal and disconnect lines:
// they name the user (and leave "user" out for a client without one),
// and the remote address is the string "127.0.0.1:port" in JSON, not an
// object.
func TestLogUserAndRemote(t *testing.T) {
	var lc logCapture
	srv := &Server{SysInterval: -1, Logger: lc.logger(slog.LevelInfo), Authenticator: passwordAuthn{"alice": "pw"}}
	addr := startServer(t, srv)

	alice := dialRaw(t, addr, packet.V311)
	alice.connect(&packet.Connect{ClientID: "a1", CleanStart: true, Username: "alice", Password: []byte("pw")})
	aliceAddr := alice.nc.LocalAddr().String()

	bob := dialRaw(t, addr, packet.V5)
	bob.send(&packet.Connect{Version: packet.V5, ClientID: "b1", CleanStart: true, Username: "bob", Password: []byte("x")})
	if ack, ok := bob.recv().(*packet.Connack); !ok || ack.ReasonCode != packet.BadUserNameOrPassword {
		t.Fatalf("bob: want CONNACK 0x86, got %v", ack)
	}
	bobAddr := bob.nc.LocalAddr().String()

	alice.send(&packet.Disconnect{})
	alice.expectClosed()

	connected := lc.waitFor(t, "client connected", 1)[0]
	if connected["user"] != "alice" || connected["remote"] != aliceAddr || connected["client"] != "a1" {
		t.Errorf("connect line: %v; want user alice, remote %q", connected, aliceAddr)
	}
	refused := lc.waitFor(t, "connection refused", 1)[0]
	if refused["user"] != "bob" || refused["remote"] != bobAddr {
		t.Errorf("refusal line: %v; want user bob, remote %q", refused, bobAddr)
	}
	gone := lc.waitFor(t, "client disconnected", 1)[0]
	if gone["user"] != "alice" || gone["remote"] != aliceAddr {
		t.Errorf("disconnect line: %v; want user alice, remote %q", gone, aliceAddr)
	}

	// No user name: no "user" attribute.
	srv2 := &Server{SysInterval: -1, Logger: lc.logger(slog.LevelInfo)}
	anon := dialRaw(t, startServer(t, srv2), packet.V311)
	anon.connect(&packet.Connect{ClientID: "anon", CleanStart: true})
	for _, l := range lc.waitFor(t, "client connected", 2) {
		if l["client"] == "anon" {
			if _, ok := l["user"]; ok {
				t.Errorf("client without a user name logged with user %v", l["user"])
			}
		}
	}
}

// passwordAuthn accepts the users in the map with their passwords.
type passwordAuthn map[string]string

func (p passwordAuthn) Authenticate(_ context.Context, req *AuthRequest) error {
	if pw, ok := p[req.Username]; !ok || pw != string(req.Password) {
		return ErrBadCredentials
	}
	return nil
}

// TestLogRemoteText: the text handler writes the same string.
func TestLogRemoteText(t *testing.T) {
	var buf logCapture
	srv := &Server{SysInterval: -1, Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	c := dialRaw(t, startServer(t, srv), packet.V311)
	c.connect(&packet.Connect{ClientID: "t1", CleanStart: true, Username: "carol"})
	want := "user=carol remote=" + c.nc.LocalAddr().String() + " "
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.text(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in\n%s", want, buf.text())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLogShutdownQuiet: Shutdown and Close log each client's end as the
// server shutting down, never as "use of closed network connection".
func TestLogShutdownQuiet(t *testing.T) {
	for _, stop := range []string{"Shutdown", "Close"} {
		t.Run(stop, func(t *testing.T) {
			var lc logCapture
			srv := &Server{SysInterval: -1, Logger: lc.logger(LevelTrace)}
			addr := startServer(t, srv)
			var clients []*rawClient
			for i, v := range []packet.Version{packet.V31, packet.V311, packet.V5, packet.V5, packet.V311} {
				c := dialRaw(t, addr, v)
				c.connect(&packet.Connect{ClientID: "c" + string(rune('0'+i)), CleanStart: i%2 == 0, KeepAlive: 30})
				c.subscribe(1, "x/#", 1)
				clients = append(clients, c)
			}
			if stop == "Shutdown" {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := srv.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				srv.Close()
			}
			for _, c := range clients {
				c.expectClosed()
			}
			lines := lc.find(t, "client disconnected")
			if len(lines) != len(clients) {
				t.Fatalf("%d disconnect lines for %d clients:\n%s", len(lines), len(clients), lc.text())
			}
			for _, l := range lines {
				if l["reason"] != packet.ServerShuttingDown.String() {
					t.Errorf("disconnect line %v: want reason %q", l, packet.ServerShuttingDown.String())
				}
			}
			if bytes.Contains([]byte(lc.text()), []byte("use of closed network connection")) {
				t.Errorf("log mentions the closed connection:\n%s", lc.text())
			}
		})
	}
}
