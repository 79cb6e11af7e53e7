package client_test

import (
	"context"
	"io"
	"iter"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	goleak.VerifyTestMain(m)
}

// quiet is a discarding logger.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startTern runs an in-process Tern broker on a free loopback port and
// returns its URL; it is shut down at the end of the test.
func startTern(t testing.TB, srv *broker.Server) (*broker.Server, string) {
	t.Helper()
	if srv == nil {
		srv = &broker.Server{}
	}
	srv.Listeners = []broker.Listener{{Addr: "127.0.0.1:0"}}
	if srv.Logger == nil {
		srv.Logger = quiet()
	}
	srv.SysInterval = -1
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
	return srv, "mqtt://" + addrs[0].(*net.TCPAddr).String()
}

// connect makes a client of cfg and connects it; it is disconnected at
// the end of the test.
func connect(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Disconnect(ctx)
	})
	return c
}

// ctx returns a context that ends with the test or after 20 s.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// iterPull is iter.Pull for a Messages sequence.
func iterPull(seq func(func(*client.Message) bool)) (func() (*client.Message, bool), func()) {
	return iter.Pull(iter.Seq[*client.Message](seq))
}
