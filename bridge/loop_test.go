package bridge_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ternmq/tern/bridge"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// quiet waits a while for stray messages (a loop would make them) and
// checks that col got exactly n. The wait only gives a loop time to
// show; the test passes or fails on counts.
func expectExactly(t *testing.T, what string, col *mqtttest.Collector, n int) {
	t.Helper()
	waitUntil(t, what, func() bool { return col.Count() >= n })
	time.Sleep(300 * time.Millisecond)
	if got := col.Count(); got != n {
		t.Errorf("%s: %d messages, want exactly %d (a loop?): %v", what, got, n, col.Payloads())
	}
}

// Two bridges in opposite directions on the same topics, one on each
// broker (A→B on A, B→A on B), MQTT 5: each message crosses once.
func TestNoLoopTwoBridges(t *testing.T) {
	mqtttest.LeakCheck(t)
	a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	ab := startBridge(t, a.Server, bridge.Config{Name: "a-to-b", Remote: b.URL, Logger: quietLogger(t),
		Topics: []bridge.Mapping{{Topic: "t/#", Direction: bridge.Out, QoS: 1}}})
	ba := startBridge(t, b.Server, bridge.Config{Name: "b-to-a", Remote: a.URL, Logger: quietLogger(t),
		Topics: []bridge.Mapping{{Topic: "t/#", Direction: bridge.Out, QoS: 1}}})
	waitConnected(t, ab)
	waitConnected(t, ba)
	onA := subscribe(t, a.URL, "t/#", 1, packet.V5)
	onB := subscribe(t, b.URL, "t/#", 1, packet.V311)
	pa, pb := publisher(t, a.URL, packet.V5), publisher(t, b.URL, packet.V311)
	const n = 20
	for i := range n {
		publish(t, pa, "t/a", fmt.Sprintf("a%d", i), 1)
		publish(t, pb, "t/b", fmt.Sprintf("b%d", i), 1)
	}
	expectExactly(t, "messages on A", onA, 2*n)
	expectExactly(t, "messages on B", onB, 2*n)
	checkPayloads(t, onA.Payloads(), "a", n, true)
	checkPayloads(t, onA.Payloads(), "b", n, true)
	checkPayloads(t, onB.Payloads(), "a", n, true)
	checkPayloads(t, onB.Payloads(), "b", n, true)
	for _, br := range []*bridge.Bridge{ab, ba} {
		waitUntil(t, br.Name()+"'s counters", func() bool { st := br.Status(); return st.Out == n && st.Suppressed == n })
	}
}

// One bridge with a mapping "both" on the same topics, each protocol
// version: the bridge's own messages do not come back (No Local with MQTT
// 5, the echo table with 3.1.1).
func TestNoEchoBoth(t *testing.T) {
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		t.Run(v.String(), func(t *testing.T) {
			mqtttest.LeakCheck(t)
			a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
			b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
			br := startBridge(t, a.Server, bridge.Config{Name: "both", Remote: b.URL, Version: v, Logger: quietLogger(t),
				Topics: []bridge.Mapping{{Topic: "t/#", Direction: bridge.Both, QoS: 2}}})
			waitConnected(t, br)
			onA := subscribe(t, a.URL, "t/#", 2, packet.V5)
			onB := subscribe(t, b.URL, "t/#", 2, packet.V5)
			pa, pb := publisher(t, a.URL, packet.V5), publisher(t, b.URL, packet.V5)
			const n = 20
			for i := range n {
				publish(t, pa, "t/a", fmt.Sprintf("a%d", i), 2)
				publish(t, pb, "t/b", fmt.Sprintf("b%d", i), 2)
			}
			expectExactly(t, "messages on A", onA, 2*n)
			expectExactly(t, "messages on B", onB, 2*n)
			waitUntil(t, "the counters", func() bool { st := br.Status(); return st.In == n && st.Out == n })
		})
	}
}
