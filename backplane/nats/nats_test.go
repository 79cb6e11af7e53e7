package nats

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/backplane/backplanetest"
	"github.com/ternmq/tern/message"
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

// TestServerRestart restarts the NATS server (same port, same store
// directory) under two nodes: nats.go reconnects and subscribes again, the
// nodes forward again and the retained messages kept by JetStream are there,
// without restarting the nodes.
func TestServerRestart(t *testing.T) {
	dir := t.TempDir()
	port := mqtttest.FreePort(t)
	start := func() *server.Server {
		s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true,
			StoreDir: dir, NoLog: true, NoSigs: true})
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("embedded NATS server not ready after 10s")
		}
		return s
	}
	s := start()
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	got := make(chan string, 100)
	mk := func(id string, on func(context.Context, backplane.Delivery)) *Node {
		nc := connect(t, s.ClientURL())
		t.Cleanup(nc.Close)
		n, err := Join(context.Background(), nc, Config{Config: backplane.Config{ID: id, Lease: 300 * time.Millisecond, OnMessage: on}})
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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Subscribe(ctx, "x/+"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetRetained(ctx, &message.Message{Topic: "x/r", Payload: []byte("kept"), Retain: true}); err != nil {
		t.Fatal(err)
	}
	reach := func(what string) {
		t.Helper()
		for i := 0; ; i++ {
			p := fmt.Sprintf("%s-%d", what, i)
			_ = a.Forward(ctx, &message.Message{Topic: "x/1", Payload: []byte(p)})
			select {
			case s := <-got:
				if strings.HasPrefix(s, what) {
					return
				}
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				t.Fatalf("%s: b never got a message from a", what)
			}
		}
	}
	reach("before")
	s.Shutdown()
	s.WaitForShutdown()
	s = start()
	reach("after")
	for {
		ms, err := b.MatchRetained(ctx, "x/#")
		if err == nil && len(ms) == 1 && string(ms[0].Payload) == "kept" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("retained after the restart: %v, %v", ms, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startCluster runs three embedded NATS servers joined by routes into one
// cluster with JetStream, on free loopback ports, until the test ends.
func startCluster(t testing.TB) []*server.Server {
	t.Helper()
	const n = 3
	clusterPorts := make([]int, n)
	for i := range clusterPorts {
		clusterPorts[i] = mqtttest.FreePort(t)
	}
	var routes []*url.URL
	for _, p := range clusterPorts {
		u, _ := url.Parse(fmt.Sprintf("nats://127.0.0.1:%d", p))
		routes = append(routes, u)
	}
	var servers []*server.Server
	for i := range n {
		opts := &server.Options{ServerName: fmt.Sprintf("s%d", i), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			// NoAdvertise: a client cut off from its server must not fail over
			// to another one, so that the test partitions a node from the engine.
			Cluster: server.ClusterOpts{Name: "tern-test", Host: "127.0.0.1", Port: clusterPorts[i], NoAdvertise: true},
			Routes:  routes}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("embedded NATS server not ready after 10s")
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := 0
		for _, s := range servers {
			if s.NumRoutes() >= n-1 && s.JetStreamIsCurrent() {
				ok++
			}
		}
		if ok == n {
			return servers
		}
		if time.Now().After(deadline) {
			t.Fatal("the NATS cluster did not form within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clusterHarness spreads nodes over the servers of a NATS cluster, each
// through its own cut proxy.
type clusterHarness struct {
	cluster
	addrs    []string // the servers' client addresses
	replicas int      // of the buckets; 0: 1
	next     int
}

func (c *clusterHarness) Join(t *testing.T, cfg backplane.Config) backplane.Node {
	t.Helper()
	c.addr = c.addrs[c.next%len(c.addrs)]
	c.next++
	// JetStream may still be electing its leaders: retry the join briefly.
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: c.addr})
		nc := connect(t, "nats://"+p.Addr)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := Join(ctx, nc, Config{Config: cfg, Prefix: c.prefix, Storage: jetstream.MemoryStorage, Replicas: c.replicas})
		cancel()
		if err != nil {
			nc.Close()
			if time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				continue
			}
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
}

func TestConformanceNATSCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster; not with -short")
	}
	var addrs []string
	for _, s := range startCluster(t) {
		addrs = append(addrs, s.Addr().String())
	}
	i := 0
	backplanetest.Run(t, func(t *testing.T) backplanetest.Cluster {
		i++
		return &clusterHarness{cluster: cluster{prefix: fmt.Sprintf("c%d", i), nodes: map[string]*member{}}, addrs: addrs}
	})
}

// TestConformanceDebianCluster runs the suite on an external cluster of
// three of Debian's nats-server processes, the nodes spread over them,
// the buckets of 3 replicas.
func TestConformanceDebianCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster; not with -short")
	}
	c := mqtttest.StartNATSCluster(t, 3, mqtttest.NATSServerOptions{})
	var addrs []string
	for _, s := range c.Servers {
		addrs = append(addrs, s.Addr)
	}
	i := 0
	backplanetest.Run(t, func(t *testing.T) backplanetest.Cluster {
		i++
		return &clusterHarness{cluster: cluster{prefix: fmt.Sprintf("d%d", i), nodes: map[string]*member{}}, addrs: addrs, replicas: 3}
	})
}

// benchJoin joins nodes of one cluster (one prefix), each to the next of
// addrs in turn, directly or through a cut proxy that counts the bytes.
func benchJoin(proxied bool, addrs ...string) backplanetest.BenchJoin {
	prefix := fmt.Sprintf("bench%d", time.Now().UnixNano())
	next := 0
	return func(b *testing.B, id string, on func(context.Context, backplane.Delivery)) (backplane.Node, func() (int64, int64)) {
		addr := addrs[next%len(addrs)]
		next++
		target, traffic := addr, func() (int64, int64) { return 0, 0 }
		if proxied {
			p := mqtttest.StartCutProxy(b, mqtttest.CutProxyConfig{Target: addr})
			target, traffic = p.Addr, p.Traffic
		}
		nc := connect(b, "nats://"+target)
		n, err := Join(context.Background(), nc, Config{Config: backplane.Config{ID: id, OnMessage: on}, Prefix: prefix, Storage: jetstream.MemoryStorage})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Close(ctx)
			nc.Close()
		})
		if !proxied {
			return n, nil
		}
		return n, traffic
	}
}

// BenchmarkForward: messages/s from node pub to node sub through one
// embedded NATS server, and the bytes per message each node exchanges with
// it.
func BenchmarkForward(b *testing.B) {
	s := startServer(b)
	for _, proxied := range []bool{false, true} {
		for _, size := range []int{64, 1024} {
			for _, par := range []int{0, 8} {
				name := fmt.Sprintf("proxied=%v/payload=%d/publishers=%d", proxied, size, max(1, par*runtime.GOMAXPROCS(0)))
				b.Run(name, func(b *testing.B) {
					backplanetest.BenchForward(b, benchJoin(proxied, s.Addr().String()), size, par)
				})
			}
		}
	}
}

// BenchmarkLatency: p50/p99 from Forward on node pub to the handler on node
// sub at a fixed 20,000 msgs/s (run with -benchtime 40000x for 2 s).
func BenchmarkLatency(b *testing.B) {
	s := startServer(b)
	backplanetest.BenchLatency(b, benchJoin(false, s.Addr().String()), 64, 20000)
}

// BenchmarkForwardCluster: as BenchmarkForward, with the nodes on different
// servers of a 3-server NATS cluster (pub on s0, idle on s1, sub on s2), so
// every message crosses a route.
func BenchmarkForwardCluster(b *testing.B) {
	var addrs []string
	for _, s := range startCluster(b) {
		addrs = append(addrs, s.Addr().String())
	}
	for _, proxied := range []bool{false, true} {
		for _, par := range []int{0, 8} {
			name := fmt.Sprintf("proxied=%v/payload=64/publishers=%d", proxied, max(1, par*runtime.GOMAXPROCS(0)))
			b.Run(name, func(b *testing.B) {
				backplanetest.BenchForward(b, benchJoin(proxied, addrs...), 64, par)
			})
		}
	}
}

func TestJoinBadConfig(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s.ClientURL())
	defer nc.Close()
	ctx := context.Background()
	for _, cfg := range []Config{
		{Prefix: "a.b"},
		{Replicas: -1},
		{Config: backplane.Config{ID: "a b"}},
		{Config: backplane.Config{Lease: -time.Second}},
	} {
		if n, err := Join(ctx, nc, cfg); err == nil {
			n.Close(ctx)
			t.Errorf("Join(%+v) accepted a bad config", cfg)
		} else {
			t.Log(err)
		}
	}
	if _, err := Join(ctx, nil, Config{}); err == nil {
		t.Error("Join with a nil connection")
	}
	// The same ID twice while the first is live.
	n, err := Join(ctx, nc, Config{Config: backplane.Config{ID: "dup"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(ctx)
	if n2, err := Join(ctx, nc, Config{Config: backplane.Config{ID: "dup"}}); err == nil {
		n2.Close(ctx)
		t.Error("a second node with a live node's ID joined")
	}
}
