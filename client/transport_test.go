package client_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/transport"
)

// passwords records the password of each CONNECT the broker sees.
type passwords struct {
	mu  sync.Mutex
	got []string
}

func (p *passwords) Authenticate(_ context.Context, req *broker.AuthRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, fmt.Sprintf("%s:%s", req.Username, req.Password))
	return nil
}

func (p *passwords) last() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.got) == 0 {
		return ""
	}
	return p.got[len(p.got)-1]
}

// startListeners runs a Tern broker with TLS, WebSocket and unix
// listeners and returns their URLs by scheme.
func startListeners(t *testing.T, auth broker.Authenticator) (map[string]string, *testpki.PKI) {
	pki, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "mqtt.sock")
	srv := &broker.Server{
		Authenticator: auth,
		Logger:        quiet(),
		SysInterval:   -1,
		Listeners: []broker.Listener{
			{Type: "tls", Addr: "127.0.0.1:0", TLS: &transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile}},
			{Type: "ws", Addr: "127.0.0.1:0"},
			{Type: "unix", Addr: sock},
		},
	}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	<-srv.Ready()
	addrs := srv.Addrs()
	if addrs == nil {
		t.Fatal(<-served)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	return map[string]string{
		"mqtts": "mqtts://" + addrs[0].String(),
		"ws":    "ws://" + addrs[1].String(),
		"unix":  "unix://" + sock,
	}, pki
}

// TestTransports: mqtts:// (verified), ws://, unix://, a custom Dial and
// an already-open Conn.
func TestTransports(t *testing.T) {
	urls, pki := startListeners(t, nil)
	run := func(t *testing.T, cfg client.Config) {
		cfg.Logger = quiet()
		got := newCounter()
		c := connect(t, cfg)
		if _, err := c.Subscribe(ctx(t), "tr", 1, got.handler); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Publish(ctx(t), &message.Message{Topic: "tr", Payload: []byte("x"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		got.wait(t, "x")
	}
	t.Run("mqtts", func(t *testing.T) {
		run(t, client.Config{Servers: []string{urls["mqtts"]}, TLS: pki.ClientConfig()})
	})
	t.Run("ws", func(t *testing.T) { run(t, client.Config{Servers: []string{urls["ws"]}}) })
	t.Run("unix", func(t *testing.T) { run(t, client.Config{Servers: []string{urls["unix"]}}) })
	t.Run("Dial", func(t *testing.T) {
		var dials sync.WaitGroup
		dials.Add(1)
		var once sync.Once
		run(t, client.Config{Servers: []string{"mqtt://example.invalid:1883"}, Dial: func(ctx context.Context, _ string) (net.Conn, error) {
			once.Do(dials.Done)
			var d net.Dialer
			return d.DialContext(ctx, "unix", urls["unix"][len("unix://"):])
		}})
		dials.Wait()
	})
	t.Run("Conn", func(t *testing.T) {
		nc, err := net.Dial("unix", urls["unix"][len("unix://"):])
		if err != nil {
			t.Fatal(err)
		}
		run(t, client.Config{Conn: nc})
	})
}

// TestPasswordNotSentUnverified: over TLS without certificate
// verification the password is left out unless AllowInsecurePassword;
// a certificate that fails verification gets no CONNECT at all.
func TestPasswordNotSentUnverified(t *testing.T) {
	pw := &passwords{}
	urls, pki := startListeners(t, pw)
	insecure := &tls.Config{InsecureSkipVerify: true}
	c := connect(t, client.Config{Servers: []string{urls["mqtts"]}, TLS: insecure, Username: "u", Password: []byte("secret")})
	c.Disconnect(ctx(t))
	if got := pw.last(); got != "u:" {
		t.Fatalf("unverified server got %q, want the user name alone", got)
	}
	c = connect(t, client.Config{Servers: []string{urls["mqtts"]}, TLS: insecure.Clone(), Username: "u", Password: []byte("secret"), AllowInsecurePassword: true})
	c.Disconnect(ctx(t))
	if got := pw.last(); got != "u:secret" {
		t.Fatalf("with AllowInsecurePassword the server got %q", got)
	}
	c = connect(t, client.Config{Servers: []string{urls["mqtts"]}, TLS: pki.ClientConfig(), Username: "u", Password: []byte("verified")})
	c.Disconnect(ctx(t))
	if got := pw.last(); got != "u:verified" {
		t.Fatalf("verified server got %q", got)
	}
	n := len(pw.got)
	bad, _ := client.New(client.Config{Servers: []string{urls["mqtts"]}, Username: "u", Password: []byte("secret"), Logger: quiet()}) // system roots: fails
	if _, err := bad.Connect(ctx(t)); err == nil {
		t.Fatal("connected to a server whose certificate does not verify")
	}
	bad.Disconnect(ctx(t))
	if len(pw.got) != n {
		t.Fatal("credentials reached a server whose certificate did not verify")
	}
}

// TestBeforeConnectEachAttempt: the hook builds every CONNECT, so each
// reconnection carries fresh credentials.
func TestBeforeConnectEachAttempt(t *testing.T) {
	pw := &passwords{}
	_, url := startTern(t, &broker.Server{Authenticator: pw})
	p := newProxy(t, url)
	up := make(chan struct{}, 10)
	n := 0
	connect(t, client.Config{Servers: []string{p.url()}, BackoffMin: time.Millisecond,
		OnConnectionUp: func(*client.Connack) { up <- struct{}{} },
		BeforeConnect: func(_ context.Context, c *packet.Connect) error {
			n++
			c.Username, c.Password = "token", []byte(fmt.Sprint(n))
			return nil
		}})
	<-up
	p.dropAll()
	<-up
	if got := pw.last(); got != "token:2" {
		t.Fatalf("second connection sent %q", got)
	}
}
