package mqtttest

import (
	"context"
	"testing"

	"github.com/ternmq/tern/client"
)

// Connect makes a client of cfg and connects it, failing the test if it
// cannot within DefaultTimeout; the client is disconnected at the end of
// the test.
func Connect(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	if _, err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
		defer cancel()
		c.Disconnect(ctx)
	})
	return c
}
