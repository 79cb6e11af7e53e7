package broker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ternmq/tern/backplane"
	bpredis "github.com/ternmq/tern/backplane/redis"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
	storeredis "github.com/ternmq/tern/store/redis"
)

// sharedRedis is a real Redis (or Redis Cluster) that three Tern nodes
// use as back plane and session store.
type sharedRedis struct {
	client func() goredis.UniversalClient
	prefix string
	addr   string // a single Redis's address; "" for a cluster
	lease  time.Duration
}

func startSharedRedis(t *testing.T, cluster bool) sharedRedis {
	prefix := fmt.Sprintf("t%d", time.Now().UnixNano())
	if cluster {
		if testing.Short() {
			t.Skip("a Redis Cluster takes seconds to form")
		}
		rc := mqtttest.StartRedisCluster(t, 3)
		rc.WaitAllOK(t)
		return sharedRedis{prefix: prefix, client: func() goredis.UniversalClient {
			return goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: rc.Addrs, DialTimeout: time.Second,
				ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
		}}
	}
	r := mqtttest.StartRedis(t, mqtttest.RedisOptions{})
	return sharedRedis{prefix: prefix, addr: r.Addr, client: func() goredis.UniversalClient {
		return goredis.NewClient(&goredis.Options{Addr: r.Addr, DialTimeout: time.Second,
			ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	}}
}

// node starts a Tern node with the Redis back plane and the Redis
// session store.
func (sr sharedRedis) node(t *testing.T, name, prefix string) *mqtttest.Broker {
	return sr.nodeOn(t, name, prefix, sr.client())
}

// nodeOn is node with its own Redis client.
func (sr sharedRedis) nodeOn(t *testing.T, name, prefix string, rdb goredis.UniversalClient) *mqtttest.Broker {
	t.Cleanup(func() { rdb.Close() }) // after the broker and the store
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := storeredis.Open(ctx, rdb, storeredis.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	id := strings.ReplaceAll(nodeName(t, name), ".", "")
	return mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{
		Backplane: func(ctx context.Context, cfg backplane.Config) (backplane.Node, error) {
			cfg.ID = id
			if sr.lease > 0 {
				cfg.Lease = sr.lease
			}
			return bpredis.Join(ctx, rdb, bpredis.Config{Config: cfg, Prefix: prefix})
		},
		Store:       st,
		SysInterval: -1,
	}})
}

// sharedEngine is a back plane and session store the shared-session
// tests run on: three starts three nodes sharing both, on names of the
// test's own.
type sharedEngine interface {
	three(t *testing.T) [3]*mqtttest.Broker
}

// three starts three nodes on keys of the test's own.
func (sr sharedRedis) three(t *testing.T) [3]*mqtttest.Broker {
	p := fmt.Sprintf("%s-%d", sr.prefix, time.Now().UnixNano())
	return [3]*mqtttest.Broker{sr.node(t, "a", p), sr.node(t, "b", p), sr.node(t, "c", p)}
}

// persistentConnect connects a client of version v with a persistent
// session.
func persistentConnect(t *testing.T, addr string, v packet.Version, id string) (*mqtttest.RawClient, *packet.Connack) {
	t.Helper()
	c := mqtttest.DialRaw(t, addr, v)
	cp := &packet.Connect{ClientID: id, KeepAlive: 60}
	if v == packet.V5 {
		cp.Properties.SessionExpiry = 3600
	}
	return c, c.Connect(cp)
}

// receiver is the application side of a raw client: it completes QoS 1
// and 2 deliveries and records each message once (a QoS 2 message is
// the application's at PUBLISH, once per packet id until its PUBREL).
type receiver struct {
	c       *mqtttest.RawClient
	got     []string
	pending map[uint16]bool // QoS 2 packet ids received, PUBREL not yet
	dups    int             // QoS 2 messages received twice (exactly once broken)
}

func newReceiver(c *mqtttest.RawClient) *receiver {
	return &receiver{c: c, pending: map[uint16]bool{}}
}

// recv handles packets until it has n messages or nothing comes for
// quiet.
func (r *receiver) recv(t *testing.T, n int, quiet time.Duration) {
	t.Helper()
	for len(r.got) < n {
		p, err := r.c.RecvTimeout(quiet)
		if err != nil {
			t.Fatalf("after %d of %d messages %v: %v", len(r.got), n, r.got, err)
		}
		r.handle(p)
	}
}

func (r *receiver) handle(p packet.Packet) {
	switch p := p.(type) {
	case *packet.Publish:
		switch p.QoS {
		case 0:
			r.got = append(r.got, string(p.Payload))
		case 1:
			r.got = append(r.got, string(p.Payload))
			r.c.Send(&packet.Puback{PacketID: p.PacketID})
		case 2:
			if !r.pending[p.PacketID] {
				r.pending[p.PacketID] = true
				r.got = append(r.got, string(p.Payload))
			}
			r.c.Send(&packet.Pubrec{PacketID: p.PacketID})
		}
	case *packet.Pubrel:
		delete(r.pending, p.PacketID)
		r.c.Send(&packet.Pubcomp{PacketID: p.PacketID})
	}
}

// publish sends a QoS 1 or 2 message and completes its exchange.
func publish(t *testing.T, c *mqtttest.RawClient, id uint16, topic, payload string, qos byte) {
	t.Helper()
	c.Send(&packet.Publish{Topic: topic, QoS: qos, PacketID: id, Payload: []byte(payload)})
	switch qos {
	case 1:
		if a := mqtttest.Expect[*packet.Puback](c); a.ReasonCode >= 0x80 {
			t.Fatalf("PUBACK %v", a.ReasonCode)
		}
	case 2:
		if a := mqtttest.Expect[*packet.Pubrec](c); a.ReasonCode >= 0x80 {
			t.Fatalf("PUBREC %v", a.ReasonCode)
		}
		c.Send(&packet.Pubrel{PacketID: id})
		mqtttest.Expect[*packet.Pubcomp](c)
	}
}

// runSharedSession runs the engine-independent shared-session tests on e.
func runSharedSession(t *testing.T, e sharedEngine) {
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		t.Run(v.String()+"-resume", func(t *testing.T) { testSharedResume(t, e, v) })
		t.Run(v.String()+"-takeover", func(t *testing.T) { testSharedTakeover(t, e, v, false) })
		t.Run(v.String()+"-move-offline", func(t *testing.T) { testSharedTakeover(t, e, v, true) })
	}
	t.Run("qos2-both-ways-5.0", func(t *testing.T) { testSharedQoS2(t, e, packet.V5) })
	t.Run("qos2-both-ways-3.1.1", func(t *testing.T) { testSharedQoS2(t, e, packet.V311) })
	t.Run("clean-start", func(t *testing.T) { testSharedCleanStart(t, e) })
}

func TestSharedSessionRedis(t *testing.T) {
	mqtttest.NeedBinary(t, "redis-server", "redis-server")
	for _, cluster := range []bool{false, true} {
		name := "single"
		if cluster {
			name = "cluster"
		}
		t.Run(name, func(t *testing.T) {
			sr := startSharedRedis(t, cluster)
			runSharedSession(t, sr)
			if !cluster {
				t.Run("old-node-cut-off", func(t *testing.T) { testSharedNodeCutOff(t, sr) })
				t.Run("dead-node-adopted", func(t *testing.T) { testSharedAdopt(t, sr) })
			}
		})
	}
}

// TestSharedSessionNATS runs the shared-session tests on backplane/nats
// and store/jetstream: on one embedded NATS server, and on a cluster of
// three (each node on its own server, the streams with three replicas).
func TestSharedSessionNATS(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		name := "single"
		if cluster {
			name = "cluster"
		}
		t.Run(name, func(t *testing.T) {
			runSharedSession(t, startSharedNATS(t, cluster))
		})
	}
}

// testSharedResume: a persistent subscriber on A goes offline, messages
// are published at QoS 1 and 2 on C, the subscriber reconnects to B: its
// session is present there with every message, in order, once.
func testSharedResume(t *testing.T, sr sharedEngine, v packet.Version) {
	bs := sr.three(t)
	sub, ack := persistentConnect(t, bs[0].Addr, v, "resume")
	if ack.SessionPresent {
		t.Fatal("session present on the first connection")
	}
	sub.Subscribe(1, "resume/#", 2)
	sub.Send(&packet.Disconnect{})
	sub.Close()
	settle(t, bs[2], bs[0])

	pub := mqtttest.DialRaw(t, bs[2].Addr, v)
	pub.Connect(&packet.Connect{ClientID: "resume-pub", CleanStart: true, KeepAlive: 60})
	var want []string
	for i := range 6 {
		p := fmt.Sprint("m", i)
		publish(t, pub, uint16(i+1), "resume/x", p, byte(1+i%2))
		want = append(want, p)
	}

	began := time.Now()
	sub, ack = persistentConnect(t, bs[1].Addr, v, "resume")
	if !ack.SessionPresent {
		t.Fatal("session not present on node B")
	}
	t.Logf("CONNACK of the moved session (offline on A, %d messages queued) after %v", len(want), time.Since(began))
	r := newReceiver(sub)
	r.recv(t, len(want), 5*time.Second)
	if fmt.Sprint(r.got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", r.got, want)
	}
	// The subscription came along: a new message reaches B.
	publish(t, pub, 20, "resume/y", "after", 2)
	r.recv(t, len(want)+1, 5*time.Second)
	drain(t, r)
	if r.got[len(want)] != "after" || len(r.got) != len(want)+1 {
		t.Fatalf("got %v after the move", r.got)
	}
}

// drain handles what else comes in a short while (PUBRELs) and fails on
// any further message.
func drain(t *testing.T, r *receiver) {
	t.Helper()
	n := len(r.got)
	for {
		p, err := r.c.RecvTimeout(300 * time.Millisecond)
		if err != nil {
			break
		}
		r.handle(p)
	}
	if len(r.got) != n {
		t.Fatalf("messages after the last expected: %v", r.got[n:])
	}
}

// testSharedTakeover: the subscriber is connected to A (or, offline,
// has its session there) while messages flow at QoS 2 from C and
// connects to B: A closes its connection (0x8E for MQTT 5) and B has the
// session, with every message exactly once and in order, those published
// during the move included.
func testSharedTakeover(t *testing.T, sr sharedEngine, v packet.Version, offline bool) {
	bs := sr.three(t)
	old, _ := persistentConnect(t, bs[0].Addr, v, "taken")
	old.Subscribe(1, "take/#", 2)
	if offline {
		old.Send(&packet.Disconnect{})
		old.ExpectClosed()
	}
	settle(t, bs[2], bs[0])

	const n = 60
	var want []string
	for i := range n {
		want = append(want, fmt.Sprint("t", i))
	}
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	start := make(chan struct{})
	wg.Add(1)
	go func() { // C's in-process client publishes while the client moves
		defer wg.Done()
		<-start
		for i := range n {
			if err := bs[2].Server.Publish("take/x", []byte(want[i]), 2, false); err != nil {
				errc <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	close(start)
	time.Sleep(20 * time.Millisecond) // some messages before the move, some during and after; asserted either way
	began := time.Now()
	nw, ack := persistentConnect(t, bs[1].Addr, v, "taken")
	if !ack.SessionPresent {
		t.Fatal("session not present on node B")
	}
	t.Logf("CONNACK of the moved session (offline %v) after %v", offline, time.Since(began))
	var got []packet.Packet
	if !offline {
		got = old.ExpectClosed()
	}
	if v == packet.V5 && !offline {
		var last packet.Packet
		if len(got) > 0 {
			last = got[len(got)-1]
		}
		if d, ok := last.(*packet.Disconnect); !ok || d.ReasonCode != packet.SessionTakenOver {
			t.Fatalf("old connection ended with %v, want DISCONNECT 0x8E", last)
		}
	}
	r := newReceiver(nw)
	r.recv(t, n, 10*time.Second)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	drain(t, r)
	if fmt.Sprint(r.got) != fmt.Sprint(want) {
		t.Fatalf("got %v,\nwant %v", r.got, want)
	}
}

// testSharedQoS2: QoS 2 state moves both ways. Outbound: a message the
// client got on A and PUBREC'd is released on B with PUBREL, not sent
// again. Inbound: a QoS 2 PUBLISH the client sent on A and not released
// is a duplicate on B: delivered once.
func testSharedQoS2(t *testing.T, sr sharedEngine, v packet.Version) {
	bs := sr.three(t)
	watch := mqtttest.DialRaw(t, bs[2].Addr, packet.V5)
	watch.Connect(&packet.Connect{ClientID: "q2-watch", CleanStart: true, KeepAlive: 60})
	watch.Subscribe(1, "up/#", 2)
	settle(t, bs[0], bs[2])

	c, _ := persistentConnect(t, bs[0].Addr, v, "q2")
	c.Subscribe(1, "down/#", 2)
	// Inbound: PUBLISH, PUBREC, and the connection drops before PUBREL.
	c.Send(&packet.Publish{Topic: "up/1", QoS: 2, PacketID: 7, Payload: []byte("once")})
	mqtttest.Expect[*packet.Pubrec](c)
	// Outbound: a message from the inline client of A, PUBREC'd.
	if err := bs[0].Server.Publish("down/1", []byte("released"), 2, false); err != nil {
		t.Fatal(err)
	}
	p := c.ExpectPublish()
	c.Send(&packet.Pubrec{PacketID: p.PacketID})
	mqtttest.Expect[*packet.Pubrel](c)
	time.Sleep(100 * time.Millisecond) // the PUBREC stored (written before the PUBREL is sent, asserted either way)
	c.Close()

	c, ack := persistentConnect(t, bs[1].Addr, v, "q2")
	if !ack.SessionPresent {
		t.Fatal("session not present on node B")
	}
	rel := mqtttest.Expect[*packet.Pubrel](c) // not the PUBLISH again
	if rel.PacketID != p.PacketID {
		t.Fatalf("PUBREL of %d, want %d", rel.PacketID, p.PacketID)
	}
	c.Send(&packet.Pubcomp{PacketID: rel.PacketID})
	c.Send(&packet.Publish{Topic: "up/1", QoS: 2, PacketID: 7, Dup: true, Payload: []byte("once")})
	mqtttest.Expect[*packet.Pubrec](c)
	c.Send(&packet.Pubrel{PacketID: 7})
	mqtttest.Expect[*packet.Pubcomp](c)

	r := newReceiver(watch)
	r.recv(t, 1, 5*time.Second)
	drain(t, r)
	if fmt.Sprint(r.got) != "[once]" {
		t.Fatalf("watcher got %v, want [once]", r.got)
	}
	c.NoPacket(200 * time.Millisecond)
}

// testSharedCleanStart: a clean start on C deletes the session stored by
// A: a later resume on B finds none.
func testSharedCleanStart(t *testing.T, sr sharedEngine) {
	bs := sr.three(t)
	c, _ := persistentConnect(t, bs[0].Addr, packet.V5, "clean")
	c.Subscribe(1, "clean/#", 1)
	c.Send(&packet.Disconnect{})
	c.Close()

	c = mqtttest.DialRaw(t, bs[2].Addr, packet.V5)
	if ack := c.Connect(&packet.Connect{ClientID: "clean", CleanStart: true, KeepAlive: 60}); ack.SessionPresent {
		t.Fatal("session present after a clean start")
	}
	c.Send(&packet.Disconnect{})
	c.Close()
	c, ack := persistentConnect(t, bs[1].Addr, packet.V5, "clean")
	if ack.SessionPresent {
		t.Fatal("session present on B after a clean start on C")
	}
}

// testSharedNodeCutOff: the node that has an offline session is cut off
// from Redis (as if it died) after it stored a message for the session;
// the client reconnects to B, which waits for the old node at most
// handoffTimeout and then resumes the session as stored, the message
// included: acknowledged on C, kept by A, delivered by B.
func testSharedNodeCutOff(t *testing.T, sr sharedRedis) {
	p := fmt.Sprintf("%s-%d", sr.prefix, time.Now().UnixNano())
	proxy := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: sr.addr})
	a := sr.nodeOn(t, "a", p, goredis.NewClient(&goredis.Options{Addr: proxy.Addr, DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: 1}))
	t.Cleanup(func() { proxy.Refuse(false) }) // before A shuts down
	b, c := sr.node(t, "b", p), sr.node(t, "c", p)

	sub, _ := persistentConnect(t, a.Addr, packet.V5, "cut")
	sub.Subscribe(1, "cut/#", 1)
	sub.Send(&packet.Disconnect{})
	sub.ExpectClosed()
	settle(t, c, a)
	pub := mqtttest.DialRaw(t, c.Addr, packet.V5)
	pub.Connect(&packet.Connect{ClientID: "cut-pub", CleanStart: true, KeepAlive: 60})
	publish(t, pub, 1, "cut/x", "kept", 1)

	// A queues it for the offline session in Redis (asynchronously: C's
	// PUBACK means the back plane has it). Wait until it is stored.
	rdb := sr.client()
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := storeredis.Open(ctx, rdb, storeredis.Config{Prefix: p})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for {
		ss, ok, err := st.LoadSession(ctx, "cut")
		if err != nil {
			t.Fatal(err)
		}
		if ok && len(ss.Queue) == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the message was never stored for the offline session")
		case <-time.After(20 * time.Millisecond):
		}
	}
	proxy.Refuse(true)
	proxy.CutNow()

	sub = mqtttest.DialRaw(t, b.Addr, packet.V5)
	sub.Timeout = 15 * time.Second // B waits for A up to handoffTimeout (5s)
	cp := &packet.Connect{ClientID: "cut", KeepAlive: 60}
	cp.Properties.SessionExpiry = 3600
	if ack := sub.Connect(cp); !ack.SessionPresent {
		t.Fatal("session not present on B")
	}
	got := sub.ExpectPublish()
	if string(got.Payload) != "kept" {
		t.Fatalf("got %v", got)
	}
	sub.Send(&packet.Puback{PacketID: got.PacketID})
}

// testSharedAdopt: node A, with an offline session, dies (cut off from
// Redis for good); the node that finds the death adopts the session:
// messages published afterwards on C are queued for it, and the client
// gets them on B.
func testSharedAdopt(t *testing.T, sr sharedRedis) {
	sr.lease = 600 * time.Millisecond
	p := fmt.Sprintf("%s-%d", sr.prefix, time.Now().UnixNano())
	proxy := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: sr.addr})
	a := sr.nodeOn(t, "a", p, goredis.NewClient(&goredis.Options{Addr: proxy.Addr, DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: 1}))
	t.Cleanup(func() { proxy.Refuse(false) }) // before A shuts down
	b, c := sr.node(t, "b", p), sr.node(t, "c", p)

	sub, _ := persistentConnect(t, a.Addr, packet.V5, "orphan")
	sub.Subscribe(1, "adopt/#", 1)
	sub.Send(&packet.Disconnect{})
	sub.ExpectClosed()
	proxy.Refuse(true)
	proxy.CutNow()

	rdb := sr.client()
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := storeredis.Open(ctx, rdb, storeredis.Config{Prefix: p})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	queued := func() int {
		ss, _, err := st.LoadSession(ctx, "orphan")
		if err != nil {
			t.Fatal(err)
		}
		return len(ss.Queue)
	}
	// Without adoption nobody has the session's subscription and nothing
	// is queued: publish until something is.
	var sent []string
	for queued() == 0 {
		if ctx.Err() != nil {
			t.Fatal("no node adopted the dead node's session: nothing queued for it")
		}
		m := fmt.Sprint("p", len(sent))
		if err := c.Server.Publish("adopt/x", []byte(m), 1, false); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.Server.Publish("adopt/x", []byte("final"), 1, false); err != nil {
		t.Fatal(err)
	}
	sub, ack := persistentConnect(t, b.Addr, packet.V5, "orphan")
	if !ack.SessionPresent {
		t.Fatal("adopted session not present on B")
	}
	r := newReceiver(sub)
	for len(r.got) == 0 || r.got[len(r.got)-1] != "final" {
		r.recv(t, len(r.got)+1, 10*time.Second)
	}
	seen := map[string]bool{}
	for _, m := range r.got {
		if seen[m] {
			t.Fatalf("%s twice in %v", m, r.got)
		}
		seen[m] = true
	}

	// A comes back: taken for dead, it keeps none of its sessions (the
	// one it had is another node's now).
	sub.Close()
	proxy.Refuse(false)
	for deadline := time.Now().Add(15 * time.Second); a.Server.Stats().Sessions > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("node A still holds %d sessions after it came back", a.Server.Stats().Sessions)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
