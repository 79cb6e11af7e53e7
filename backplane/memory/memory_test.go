package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/backplane/backplanetest"
	"github.com/ternmq/tern/backplane/memory"
	"github.com/ternmq/tern/mqtttest"
)

func TestMain(m *testing.M) { mqtttest.VerifyTestMain(m) }

type cluster struct{ c *memory.Cluster }

func (c cluster) Join(t *testing.T, cfg backplane.Config) backplane.Node {
	n, err := c.c.Join(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return n
}

func (c cluster) Partition(t *testing.T, id string) bool {
	if err := c.c.Partition(id); err != nil {
		t.Fatal(err)
	}
	return true
}

func (c cluster) Heal(t *testing.T, id string) {
	if err := c.c.Heal(id); err != nil {
		t.Fatal(err)
	}
}

func (c cluster) Kill(t *testing.T, id string) {
	if err := c.c.Kill(id); err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) {
	backplanetest.Run(t, func(t *testing.T) backplanetest.Cluster { return cluster{memory.New()} })
}
