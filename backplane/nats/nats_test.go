package nats

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/backplane/backplanetest"
	"github.com/ternmq/tern/mqtttest"
)

func TestMain(m *testing.M) { mqtttest.VerifyTestMain(m) }

// startServer runs an embedded NATS server with JetStream on a free
// loopback port until the test ends.
func startServer(t testing.TB) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS server not ready after 10s")
	}
	return s
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectBufSize(-1), nats.ReconnectJitter(0, 0), nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

type cluster struct {
	addr   string
	prefix string
	mu     sync.Mutex
	nodes  map[string]*member
}

type member struct {
	n     *Node
	nc    *nats.Conn
	proxy *mqtttest.CutProxy
}

func (c *cluster) Join(t *testing.T, cfg backplane.Config) backplane.Node {
	t.Helper()
	p := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: c.addr})
	nc := connect(t, "nats://"+p.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Join(ctx, nc, Config{Config: cfg, Prefix: c.prefix, Storage: jetstream.MemoryStorage})
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[cfg.ID] = &member{n, nc, p}
	c.mu.Unlock()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Refuse(false)
		_ = n.Close(ctx)
		nc.Close()
	})
	return n
}

func (c *cluster) get(id string) *member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *cluster) Partition(t *testing.T, id string) bool {
	m := c.get(id)
	m.proxy.Refuse(true)
	m.proxy.CutNow()
	return true
}

func (c *cluster) Heal(t *testing.T, id string) { c.get(id).proxy.Refuse(false) }

func (c *cluster) Kill(t *testing.T, id string) {
	m := c.get(id)
	m.n.abandon()
	m.nc.Close()
}

func TestConformance(t *testing.T) {
	s := startServer(t)
	i := 0
	backplanetest.Run(t, func(t *testing.T) backplanetest.Cluster {
		i++
		return &cluster{addr: s.Addr().String(), prefix: fmt.Sprintf("t%d", i), nodes: map[string]*member{}}
	})
}
