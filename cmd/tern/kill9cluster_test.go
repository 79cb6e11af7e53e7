package main

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// TestKill9ClusterRedis is testKill9Cluster on a real redis-server.
func TestKill9ClusterRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real broker processes")
	}
	r := mqtttest.StartRedis(t, mqtttest.RedisOptions{})
	testKill9Cluster(t, r.URL)
}

// TestKill9ClusterNATS is testKill9Cluster on a NATS server with
// JetStream on disk (the nats-server module, in the test's process, which
// is not killed).
func TestKill9ClusterNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real broker processes")
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
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
	testKill9Cluster(t, s.ClientURL())
}

// testKill9Cluster runs three tern broker processes as one cluster on the
// engine at url, each with a durable store in its own data directory.
// Publishers (QoS 1 on MQTT 3.1.1, QoS 2 on 5.0 and 3.1.1, one message at
// a time) are on node A, persistent subscribers (3.1.1 and 5.0) on node
// B; node C is spare. Under load, B is killed with SIGKILL and started
// again with the same node name and data directory (its subscribers
// reconnect to it); then A is killed and not restarted: its publishers
// move to C and complete the message in hand (a QoS 2 message without its
// PUBREC is dropped, since C has no session for them). At the end every
// acknowledged QoS 1 message reached each subscriber at least once, every
// acknowledged QoS 2 message exactly once, each publisher's in order.
func testKill9Cluster(t *testing.T, url string) {
	ternBinary(t)
	base := t.TempDir()
	ports := map[string]string{"a": freePort(t), "b": freePort(t), "c": freePort(t)}
	addr := func(n string) string { return "127.0.0.1:" + ports[n] }
	start := func(n string) *brokerProc {
		return startBroker(t, "", "-p", ports[n], "--data-dir", filepath.Join(base, n), "--sys-interval", "0s",
			"--max-queued", "1000000", "--cluster", url, "--node", "k9-"+n)
	}
	nodes := map[string]*brokerProc{"a": start("a"), "b": start("b"), "c": start("c")}
	for n, b := range nodes {
		b.waitLog(`msg="joined the back plane" .*node=k9-` + n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subs := []*k9sub{
		{t: t, addr: addr("b"), id: "sub-v5", v: packet.V5, got: map[string][]int{}},
		{t: t, addr: addr("b"), id: "sub-v311", v: packet.V311, got: map[string][]int{}},
	}
	var wg sync.WaitGroup
	for _, s := range subs {
		s.connectOnce()
		wg.Add(1)
		go func() { defer wg.Done(); s.run(ctx) }()
	}
	// The subscriptions on B reach A asynchronously: wait until a probe
	// published on A arrives on B.
	probe := mqtttest.DialRaw(t, addr("b"), packet.V5)
	probe.Connect(&packet.Connect{ClientID: "probe", CleanStart: true, KeepAlive: 60})
	probe.Subscribe(1, "k9/+", 0)
	pp := mqtttest.DialRaw(t, addr("a"), packet.V5)
	pp.Connect(&packet.Connect{ClientID: "probe-pub", CleanStart: true, KeepAlive: 60})
	for i := 0; ; i++ {
		if i == 200 {
			t.Fatal("the subscriptions on B never reached A")
		}
		pp.Send(&packet.Publish{Topic: "k9/probe", Payload: []byte("0")})
		if _, err := probe.RecvTimeout(50 * time.Millisecond); err == nil {
			break
		}
	}
	probe.Close()
	pp.Close()

	alt := []string{addr("c")}
	pubs := []*k9pub{
		{t: t, addr: addr("a"), alt: alt, id: "pub-q1", qos: 1, v: packet.V311},
		{t: t, addr: addr("a"), alt: alt, id: "pub-q2", qos: 2, v: packet.V5},
		{t: t, addr: addr("a"), alt: alt, id: "pub-q2b", qos: 2, v: packet.V311},
	}
	pctx, pstop := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	for _, p := range pubs {
		pwg.Add(1)
		go func() { defer pwg.Done(); p.run(pctx) }()
	}

	time.Sleep(1500 * time.Millisecond)
	nodes["b"].kill()
	t.Logf("B killed: acknowledged so far %v", acked(pubs))
	time.Sleep(500 * time.Millisecond) // A goes on forwarding to B's queue meanwhile
	nodes["b"] = start("b")            // waits for its previous lease to lapse
	nodes["b"].waitLog(`msg="joined the back plane" .*node=k9-b`)
	t.Logf("B back: acknowledged so far %v", acked(pubs))
	time.Sleep(1500 * time.Millisecond)
	nodes["a"].kill()
	t.Logf("A killed: acknowledged so far %v", acked(pubs))
	time.Sleep(3 * time.Second) // the publishers move to C and go on
	pstop()
	pwg.Wait()

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !(subs[0].complete(pubs) && subs[1].complete(pubs)) {
		time.Sleep(100 * time.Millisecond)
	}
	// A little longer, for duplicates to show.
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()
	total := 0
	for _, p := range pubs {
		total += len(p.acked)
	}
	t.Logf("%d messages acknowledged (%v)", total, acked(pubs))
	for _, s := range subs {
		s.check(pubs)
	}
	if t.Failed() {
		for _, n := range []string{"b", "c"} {
			t.Logf("node %s's log:\n%s", n, nodes[n])
		}
	}
	if total == 0 {
		t.Fatal("no message was acknowledged")
	}
	for _, n := range []string{"b", "c"} {
		nodes[n].stop()
	}
}
