package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/transport"
)

// startBroker runs an in-process Tern broker with the listeners given and
// returns their addresses; the test's cleanup shuts it down.
func startBroker(t testing.TB, ls ...broker.Listener) []net.Addr {
	t.Helper()
	srv := &broker.Server{Listeners: ls, MaxQueuedMessages: 1 << 20, MaxInflight: 65535,
		Logger: slog.New(slog.DiscardHandler)}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	<-srv.Ready()
	addrs := srv.Addrs()
	if addrs == nil {
		t.Fatal(<-errc)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-errc; !errors.Is(err, broker.ErrServerClosed) {
			t.Error(err)
		}
	})
	return addrs
}

// verifyNoLeaks checks, after every cleanup of t (the broker's
// shutdown included), that t left no goroutine behind.
func verifyNoLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// TestTransports runs a QoS 1 fan-in over every transport bench dials, to
// one Tern broker: TCP, TLS with a client certificate the listener
// requires, WebSocket, secure WebSocket with a client certificate, and a
// unix socket; MQTT 3.1.1 and 5.0.
func TestTransports(t *testing.T) {
	verifyNoLeaks(t)
	dir := t.TempDir()
	pki, err := testpki.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.Client("bench")
	if err != nil {
		t.Fatal(err)
	}
	requireCert := &transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile, ClientCAFile: pki.CAFile, ClientAuth: transport.ClientAuthRequire}
	sock := filepath.Join(dir, "tern.sock")
	addrs := startBroker(t,
		broker.Listener{Type: "tcp", Addr: "127.0.0.1:0"},
		broker.Listener{Type: "tls", Addr: "127.0.0.1:0", TLS: requireCert},
		broker.Listener{Type: "ws", Addr: "127.0.0.1:0"},
		broker.Listener{Type: "wss", Addr: "127.0.0.1:0", Path: "/ws", TLS: requireCert},
		broker.Listener{Type: "unix", Addr: sock},
	)
	withCert := pki.ClientConfig(cert)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name string
		url  string
		tls  *tls.Config
	}{
		{"tcp", "tcp://" + addrs[0].String(), nil},
		{"mqtts", "mqtts://" + addrs[1].String(), withCert},
		{"ws", "ws://" + addrs[2].String(), nil},
		{"wss", "wss://" + addrs[3].String() + "/ws", withCert},
		{"unix", "unix://" + sock, nil},
	} {
		for _, v := range []packet.Version{packet.V311, packet.V5} {
			t.Run(tc.name+"/v"+string(rune('0'+v)), func(t *testing.T) {
				res, err := Run(ctx, Config{Scenario: FanIn, URL: tc.url, TLS: tc.tls, Protocol: v, QoS: 1,
					Publishers: 2, Count: 300, Rate: -1, Drain: 10 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				if res.Delivered != 300 || res.Loss != 0 || res.Errors != 0 {
					t.Errorf("delivered %d, loss %d, errors %d (%s)", res.Delivered, res.Loss, res.Errors, res.FirstError)
				}
			})
		}
	}
	// The TLS listeners refuse a client without a certificate.
	_, err = Run(ctx, Config{Scenario: Connect, URL: "mqtts://" + addrs[1].String(), TLS: pki.ClientConfig(),
		Connections: 1, ConnectTimeout: 10 * time.Second})
	if err == nil {
		t.Error("mqtts:// without a client certificate: connected to a listener that requires one")
	}
	// Without the CA, the server's certificate is not trusted.
	_, err = Run(ctx, Config{Scenario: Connect, URL: "mqtts://" + addrs[1].String(), Connections: 1})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("mqtts:// without the CA: %v, want a certificate error", err)
	}
}
