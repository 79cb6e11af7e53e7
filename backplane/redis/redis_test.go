package redis

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/backplane/backplanetest"
	"github.com/ternmq/tern/message"
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

// clusterCluster is one back plane on a 3-master Redis Cluster. Nodes talk
// to the masters directly (the cluster client learns their addresses from
// Redis), so partitions are not simulated here.
type clusterCluster struct {
	addrs  []string
	prefix string
	mu     sync.Mutex
	nodes  map[string]*Node
}

func (c *clusterCluster) Join(t *testing.T, cfg backplane.Config) backplane.Node {
	t.Helper()
	rdb := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.addrs, DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Join(ctx, rdb, Config{Config: cfg, Prefix: c.prefix})
	if err != nil {
		rdb.Close()
		t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[cfg.ID] = n
	c.mu.Unlock()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Close(ctx)
		rdb.Close()
	})
	return n
}

func (c *clusterCluster) Partition(t *testing.T, id string) bool { return false }
func (c *clusterCluster) Heal(t *testing.T, id string)           {}
func (c *clusterCluster) Kill(t *testing.T, id string) {
	c.mu.Lock()
	n := c.nodes[id]
	c.mu.Unlock()
	n.abandon()
}

func TestConformanceRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-master Redis Cluster; not with -short")
	}
	rc := mqtttest.StartRedisCluster(t, 3)
	i := 0
	backplanetest.Run(t, func(t *testing.T) backplanetest.Cluster {
		i++
		return &clusterCluster{addrs: rc.Addrs, prefix: fmt.Sprintf("c%d", i), nodes: map[string]*Node{}}
	})
}

// TestRedisRestart restarts Redis empty under two nodes: they notice they
// are no longer members, announce their interest again and forward again,
// without being restarted themselves.
func TestRedisRestart(t *testing.T) {
	r := mqtttest.StartRedis(t, mqtttest.RedisOptions{})
	got := make(chan string, 100)
	mk := func(id string, on func(context.Context, backplane.Delivery)) *Node {
		rdb := client(r.Addr)
		t.Cleanup(func() { rdb.Close() })
		n, err := Join(context.Background(), rdb, Config{Config: backplane.Config{ID: id, Lease: 300 * time.Millisecond, OnMessage: on}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = n.Close(ctx)
		})
		return n
	}
	a := mk("a", nil)
	b := mk("b", func(_ context.Context, d backplane.Delivery) { got <- string(d.Message.Payload) })
	if err := b.Subscribe(context.Background(), "x/+"); err != nil {
		t.Fatal(err)
	}
	reach := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; ; i++ {
			p := fmt.Sprintf("%s-%d", what, i)
			_ = a.Forward(context.Background(), &message.Message{Topic: "x/1", Payload: []byte(p)})
			select {
			case s := <-got:
				if s == p || len(s) > len(what) && s[:len(what)] == what {
					return
				}
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: b never got a message from a", what)
			}
		}
	}
	reach("before")
	r.Restart()
	reach("after")
}

func benchJoin(addr string, proxied bool) backplanetest.BenchJoin {
	prefix := fmt.Sprintf("bench%d", time.Now().UnixNano())
	return func(b *testing.B, id string, on func(context.Context, backplane.Delivery)) (backplane.Node, func() (int64, int64)) {
		target, traffic := addr, func() (int64, int64) { return 0, 0 }
		if proxied {
			p := mqtttest.StartCutProxy(b, mqtttest.CutProxyConfig{Target: addr})
			target, traffic = p.Addr, p.Traffic
		}
		rdb := goredis.NewClient(&goredis.Options{Addr: target, PoolSize: 32})
		n, err := Join(context.Background(), rdb, Config{Config: backplane.Config{ID: id, OnMessage: on}, Prefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Close(ctx)
			rdb.Close()
		})
		if !proxied {
			return n, nil
		}
		return n, traffic
	}
}

// BenchmarkForward: messages/s from node pub to node sub through one Redis,
// and the bytes per message each node exchanges with Redis.
func BenchmarkForward(b *testing.B) {
	r := mqtttest.StartRedis(b, mqtttest.RedisOptions{})
	for _, proxied := range []bool{false, true} {
		for _, size := range []int{64, 1024} {
			for _, par := range []int{0, 8} {
				name := fmt.Sprintf("proxied=%v/payload=%d/publishers=%d", proxied, size, max(1, par*runtime.GOMAXPROCS(0)))
				b.Run(name, func(b *testing.B) {
					backplanetest.BenchForward(b, benchJoin(r.Addr, proxied), size, par)
				})
			}
		}
	}
}

// BenchmarkLatency: p50/p99 from Forward on node pub to the handler on node
// sub at a fixed 20,000 msgs/s (run with -benchtime 40000x for 2 s).
func BenchmarkLatency(b *testing.B) {
	r := mqtttest.StartRedis(b, mqtttest.RedisOptions{})
	backplanetest.BenchLatency(b, benchJoin(r.Addr, false), 64, 20000)
}

func TestJoinBadConfig(t *testing.T) {
	r := mqtttest.StartRedis(t, mqtttest.RedisOptions{})
	rdb := client(r.Addr)
	defer rdb.Close()
	ctx := context.Background()
	for _, cfg := range []Config{
		{Prefix: "a{b}"},
		{Config: backplane.Config{ID: "a/b"}},
		{Config: backplane.Config{Lease: time.Millisecond}},
	} {
		if n, err := Join(ctx, rdb, cfg); err == nil {
			n.Close(ctx)
			t.Errorf("Join(%+v) accepted a bad config", cfg)
		} else {
			t.Log(err)
		}
	}
	if _, err := Join(ctx, nil, Config{}); err == nil {
		t.Error("Join with a nil client")
	}
	n, err := Join(ctx, rdb, Config{Config: backplane.Config{ID: "dup"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(ctx)
	if n2, err := Join(ctx, rdb, Config{Config: backplane.Config{ID: "dup"}}); err == nil {
		n2.Close(ctx)
		t.Error("a second node with a live node's ID joined")
	}
	// Unreachable Redis: an explicit error, not a hang.
	dead := client(mqtttest.FreeAddr(t))
	defer dead.Close()
	if _, err := Join(ctx, dead, Config{}); !errors.Is(err, backplane.ErrUnreachable) {
		t.Errorf("Join on a Redis that is not there: %v, want ErrUnreachable", err)
	}
}
