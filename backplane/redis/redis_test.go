package redis

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/backplane/backplanetest"
	"github.com/ternmq/tern/mqtttest"
)

func TestMain(m *testing.M) { mqtttest.VerifyTestMain(m) }

// cluster is one back plane on a shared Redis, isolated by its prefix; each
// node reaches Redis through its own CutProxy, so that it can be
// partitioned.
type cluster struct {
	addr   string
	prefix string
	mu     sync.Mutex
	nodes  map[string]*member
}

type member struct {
	n     *Node
	rdb   *goredis.Client
	proxy *mqtttest.CutProxy
}

func client(addr string) *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: 1, PoolSize: 8})
}

func (c *cluster) Join(t *testing.T, cfg backplane.Config) backplane.Node {
	t.Helper()
	p := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: c.addr})
	rdb := client(p.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Join(ctx, rdb, Config{Config: cfg, Prefix: c.prefix})
	if err != nil {
		rdb.Close()
		t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[cfg.ID] = &member{n, rdb, p}
	c.mu.Unlock()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Refuse(false)
		_ = n.Close(ctx)
		rdb.Close()
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
	m.proxy.CutNow()
}

func TestConformance(t *testing.T) {
	r := mqtttest.StartRedis(t, mqtttest.RedisOptions{})
	i := 0
	backplanetest.Run(t, func(t *testing.T) backplanetest.Cluster {
		i++
		return &cluster{addr: r.Addr, prefix: fmt.Sprintf("t%d", i), nodes: map[string]*member{}}
	})
}
