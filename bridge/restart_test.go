package bridge_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ternmq/tern/bridge"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// persistentSub connects a client with a persistent session to url and
// subscribes it; it reconnects by itself across a restart of the broker.
func persistentSub(t *testing.T, url, id, filter string, qos byte) *mqtttest.Collector {
	t.Helper()
	col := &mqtttest.Collector{}
	c := mqtttest.Connect(t, client.Config{Servers: []string{url}, ClientID: id, SessionExpiry: 0xFFFFFFFF,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, OnMessage: col.Handle})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := c.Subscribe(ctx, filter, qos, col.Handle); err != nil {
		t.Fatal(err)
	}
	return col
}

// publishBurst publishes n messages without waiting and returns their
// tokens.
func publishBurst(c *client.Client, topicName, prefix string, from, n int, qos byte) []*client.Token {
	var toks []*client.Token
	for i := from; i < from+n; i++ {
		toks = append(toks, c.PublishAsync(&message.Message{Topic: topicName, Payload: []byte(fmt.Sprintf("%s%d", prefix, i)), QoS: qos}))
	}
	return toks
}

func waitTokens(t *testing.T, toks []*client.Token) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for i, tok := range toks {
		if _, err := tok.Wait(ctx); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

// The remote, a Tern broker with a durable store, is shut down while the
// bridge carries messages both ways, stays down while more are published
// locally, and comes back on its data directory: every message published
// and acknowledged arrives, QoS 2 exactly once.
func TestTernRemoteRestart(t *testing.T) {
	for _, tc := range []struct {
		v   packet.Version
		qos byte
	}{{packet.V5, 1}, {packet.V5, 2}, {packet.V311, 1}, {packet.V311, 2}} {
		t.Run(fmt.Sprintf("%v-qos%d", tc.v, tc.qos), func(t *testing.T) {
			mqtttest.LeakCheck(t)
			a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
			remote := mqtttest.StartDurableBroker(t, quietLogger(t))
			br := startBridge(t, a.Server, bridge.Config{Name: "r", Remote: remote.URL, Version: tc.v, Logger: quietLogger(t),
				Topics: []bridge.Mapping{
					{Topic: "out/#", Direction: bridge.Out, QoS: tc.qos},
					{Topic: "in/#", Direction: bridge.In, QoS: tc.qos},
				}})
			waitConnected(t, br)
			onRemote := persistentSub(t, remote.URL, "sub-remote", "out/#", tc.qos)
			onLocal := subscribe(t, a.URL, "in/#", tc.qos, packet.V5)
			pa := publisher(t, a.URL, packet.V5)
			pr := mqtttest.Connect(t, client.Config{Servers: []string{remote.URL}, ClientID: "pub-remote", SessionExpiry: 0xFFFFFFFF,
				BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})

			const n = 100
			// Mid-flow: a burst each way, and the remote goes down under it.
			toks := publishBurst(pa, "out/x", "o", 0, n, tc.qos)
			rtoks := publishBurst(pr, "in/x", "i", 0, n, tc.qos)
			waitTokens(t, toks)
			waitUntil(t, "the flow to start both ways", func() bool { return onRemote.Count() >= 10 && onLocal.Count() >= 10 })
			t.Logf("stopping the remote with %d of %d out and %d of %d in delivered", onRemote.Count(), n, onLocal.Count(), n)
			remote.Stop()
			waitUntil(t, "the bridge to see the remote gone", func() bool { return !br.Status().Connected })
			// Published locally while the remote is down.
			waitTokens(t, publishBurst(pa, "out/x", "o", n, n, tc.qos))
			remote.Start()
			waitConnected(t, br)
			waitTokens(t, rtoks)
			waitTokens(t, publishBurst(pa, "out/x", "o", 2*n, n, tc.qos))
			waitTokens(t, publishBurst(pr, "in/x", "i", n, n, tc.qos))

			waitUntil(t, "every message on the remote", func() bool { return len(onRemote.Payloads()) >= 3*n })
			waitUntil(t, "every message on the local broker", func() bool { return len(onLocal.Payloads()) >= 2*n })
			time.Sleep(200 * time.Millisecond) // duplicates, if any, have time to arrive
			checkPayloads(t, onRemote.Payloads(), "o", 3*n, tc.qos == 2)
			checkPayloads(t, onLocal.Payloads(), "i", 2*n, tc.qos == 2)
			t.Logf("status %+v; remote subscriber got %d for %d, local %d for %d", br.Status(), onRemote.Count(), 3*n, onLocal.Count(), 2*n)
		})
	}
}

// The local broker, durable, restarts with its bridge (Config.Dir in its
// data directory) while the remote is down: the messages published
// locally before the restart, queued in the bridge's session, reach the
// remote when it comes back.
func TestLocalRestartWithDir(t *testing.T) {
	mqtttest.LeakCheck(t)
	remote := mqtttest.StartDurableBroker(t, quietLogger(t))
	onRemote := persistentSub(t, remote.URL, "sub-remote", "out/#", 2)
	local := mqtttest.StartDurableBroker(t, quietLogger(t))
	// MaxQueued 5: while the remote is down, most of the messages the
	// bridge took from the local broker wait in its subscription, not yet
	// handed to the remote side when the broker restarts.
	cfg := bridge.Config{Name: "durable", Remote: remote.URL, Dir: filepath.Join(local.Dir, "bridges", "durable"), Logger: quietLogger(t), MaxQueued: 5,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Topics: []bridge.Mapping{{Topic: "out/#", QoS: 2}}}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	br, err := bridge.Start(ctx, local.Server, cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitConnected(t, br)
	pub := mqtttest.Connect(t, client.Config{Servers: []string{local.URL}, ClientID: "pub-local", SessionExpiry: 0xFFFFFFFF,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	const n = 50
	waitTokens(t, publishBurst(pub, "out/x", "o", 0, n, 2))
	waitUntil(t, "the first messages on the remote", func() bool { return onRemote.Count() >= n })
	remote.Stop()
	waitUntil(t, "the bridge to see the remote gone", func() bool { return !br.Status().Connected })
	waitTokens(t, publishBurst(pub, "out/x", "o", n, n, 2))
	if err := br.Close(ctx); err != nil {
		t.Fatal(err)
	}
	local.Stop()
	local.Start()
	br, err = bridge.Start(ctx, local.Server, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { br.Close(context.Background()) })
	remote.Start()
	waitConnected(t, br)
	waitUntil(t, "every message on the remote", func() bool { return len(onRemote.Payloads()) >= 2*n })
	time.Sleep(200 * time.Millisecond)
	checkPayloads(t, onRemote.Payloads(), "o", 2*n, true)
}

// While the remote is down, what the bridge has not taken waits in its
// session on the local broker, bounded by MaxQueuedMessages: beyond it the
// broker's QueuePolicy drops (here the newest), counted; what was kept
// arrives when the remote is back, and received + dropped = published.
func TestQueueBoundWhileRemoteDown(t *testing.T) {
	mqtttest.LeakCheck(t)
	remote := mqtttest.StartDurableBroker(t, quietLogger(t))
	onRemote := persistentSub(t, remote.URL, "sub-remote", "out/#", 1)
	remote.Stop()
	a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1, MaxQueuedMessages: 10, MaxInflight: 5}})
	br := startBridge(t, a.Server, bridge.Config{Name: "bounded", Remote: remote.URL, Logger: quietLogger(t),
		Topics: []bridge.Mapping{{Topic: "out/#", QoS: 1}}})
	pub := publisher(t, a.URL, packet.V5)
	const n = 50
	waitTokens(t, publishBurst(pub, "out/x", "o", 0, n, 1))
	waitUntil(t, "drops", func() bool { return a.Server.Stats().DroppedQueueFull > 0 })
	remote.Start()
	waitConnected(t, br)
	waitUntil(t, "the kept messages on the remote", func() bool {
		return uint64(len(onRemote.Payloads()))+a.Server.Stats().DroppedQueueFull >= n
	})
	time.Sleep(200 * time.Millisecond)
	got, dropped := onRemote.Payloads(), a.Server.Stats().DroppedQueueFull
	if uint64(len(got))+dropped != n {
		t.Errorf("%d received + %d dropped, want %d", len(got), dropped, n)
	}
	for i := range 5 { // the first ones went into the window before the queue filled
		if got[fmt.Sprintf("o%d", i)] == 0 {
			t.Errorf("o%d lost: %v", i, got)
		}
	}
	t.Logf("%d of %d carried, %d dropped by the local broker's full queue", len(got), n, dropped)
}

// A mapping removed between two starts (Config.Dir kept) has its
// subscription removed from the bridge's persistent sessions, on both
// sides.
func TestRemovedMappingUnsubscribed(t *testing.T) {
	mqtttest.LeakCheck(t)
	a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	dir := t.TempDir()
	run := func(out, in string) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		br, err := bridge.Start(ctx, a.Server, bridge.Config{Name: "m", Remote: b.URL, Dir: dir, Logger: quietLogger(t),
			BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
			Topics: []bridge.Mapping{{Topic: out, Direction: bridge.Out, QoS: 1}, {Topic: in, Direction: bridge.In, QoS: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		waitConnected(t, br)
		waitUntil(t, "one subscription on each side", func() bool {
			return a.Server.Stats().Subscriptions == 1 && b.Server.Stats().Subscriptions == 1
		})
		if err := br.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	run("a/#", "x/#")
	run("b/#", "y/#")
	// Only the new mappings are carried.
	onB := subscribe(t, b.URL, "#", 1, packet.V5)
	br := startBridge(t, a.Server, bridge.Config{Name: "m", Remote: b.URL, Dir: dir, Logger: quietLogger(t),
		Topics: []bridge.Mapping{{Topic: "b/#", Direction: bridge.Out, QoS: 1}, {Topic: "y/#", Direction: bridge.In, QoS: 1}}})
	waitConnected(t, br)
	pa := publisher(t, a.URL, packet.V5)
	publish(t, pa, "a/1", "old", 1)
	publish(t, pa, "b/1", "new", 1)
	waitUntil(t, "the new mapping's message", func() bool { return onB.Count() >= 1 })
	if got := onB.Payloads(); got["old"] != 0 || got["new"] != 1 {
		t.Errorf("on B: %v", got)
	}
}
