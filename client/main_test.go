package client_test

import (
	"context"
	"io"
	"iter"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/mqtttest"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	mqtttest.VerifyTestMain(m)
}

// quiet is a discarding logger.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startTern runs an in-process Tern broker (mqtttest.StartBroker) on a
// free loopback port and returns it and its URL; it is shut down, and
// checked for leftover connection goroutines, at the end of the test.
func startTern(t testing.TB, srv *broker.Server) (*broker.Server, string) {
	t.Helper()
	if srv == nil {
		srv = &broker.Server{}
	}
	srv.SysInterval = -1
	b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: srv})
	return b.Server, b.URL
}

// connect makes a client of cfg and connects it; it is disconnected at
// the end of the test.
func connect(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	return mqtttest.Connect(t, cfg)
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
