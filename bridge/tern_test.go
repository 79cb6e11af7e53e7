package bridge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ternmq/tern/bridge"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// Tern ↔ Tern, both directions, QoS 0, 1 and 2, with prefixes.
func TestTernToTernBothDirections(t *testing.T) {
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		t.Run(v.String(), func(t *testing.T) {
			mqtttest.LeakCheck(t)
			a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
			b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
			br := startBridge(t, a.Server, bridge.Config{
				Name: "ab", Remote: b.URL, Version: v, Logger: quietLogger(t),
				Topics: []bridge.Mapping{
					{Topic: "up/#", Direction: bridge.Out, QoS: 2, RemotePrefix: "site1/"},
					{Topic: "down/#", Direction: bridge.In, QoS: 2, RemotePrefix: "site1/", LocalPrefix: "cloud/"},
				},
			})
			waitConnected(t, br)
			onB := subscribe(t, b.URL, "site1/up/#", 2, packet.V5)
			onA := subscribe(t, a.URL, "cloud/down/#", 2, packet.V5)
			pa, pb := publisher(t, a.URL, packet.V5), publisher(t, b.URL, packet.V5)
			const n = 30
			for qos := byte(0); qos <= 2; qos++ {
				for i := range n {
					publish(t, pa, fmt.Sprintf("up/q%d/x", qos), fmt.Sprintf("a%d-%d", qos, i), qos)
					publish(t, pb, fmt.Sprintf("site1/down/q%d", qos), fmt.Sprintf("b%d-%d", qos, i), qos)
				}
			}
			waitUntil(t, "messages on B", func() bool { return onB.Count() >= 3*n })
			waitUntil(t, "messages on A", func() bool { return onA.Count() >= 3*n })
			for qos := range 3 {
				checkPayloads(t, onB.Payloads(), fmt.Sprintf("a%d-", qos), n, true)
				checkPayloads(t, onA.Payloads(), fmt.Sprintf("b%d-", qos), n, true)
			}
			if ts := onB.Topics(); ts[0] != "site1/up/q0/x" {
				t.Errorf("topic on B %q, want site1/up/q0/x", ts[0])
			}
			if ts := onA.Topics(); ts[0] != "cloud/down/q0" {
				t.Errorf("topic on A %q, want cloud/down/q0", ts[0])
			}
			// The counters follow the acknowledgements, which may come
			// after the subscribers had the messages.
			waitUntil(t, "the counters", func() bool { st := br.Status(); return st.In == 3*n && st.Out == 3*n })
			if st := br.Status(); st.Dropped != 0 {
				t.Errorf("status %+v, want dropped 0", st)
			}
		})
	}
}

// The bridge's state and counters are published under $SYS: connected,
// then disconnected when the remote goes, with a QoS 0 message taken
// meanwhile counted as dropped, and connected again.
func TestSysTopics(t *testing.T) {
	mqtttest.LeakCheck(t)
	a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	remote := mqtttest.StartDurableBroker(t, quietLogger(t))
	br := startBridge(t, a.Server, bridge.Config{
		Name: "sys", Remote: remote.URL, SysInterval: 50 * time.Millisecond, Logger: quietLogger(t),
		Topics: []bridge.Mapping{{Topic: "t/#", QoS: 1}},
	})
	waitConnected(t, br)
	sys := subscribe(t, a.URL, "$SYS/broker/bridges/sys/#", 0, packet.V5)
	pa := publisher(t, a.URL, packet.V5)
	publish(t, pa, "t/1", "x", 1)
	last := func(topic string) string {
		v := ""
		for _, m := range sys.Messages() {
			if m.Topic == topic {
				v = string(m.Payload)
			}
		}
		return v
	}
	const prefix = "$SYS/broker/bridges/sys/"
	waitUntil(t, "state connected", func() bool { return last(prefix+"state") == "connected" })
	waitUntil(t, "out 1", func() bool { return last(prefix+"messages/out") == "1" })
	remote.Stop()
	waitUntil(t, "state disconnected", func() bool { return last(prefix+"state") == "disconnected" })
	publish(t, pa, "t/2", "lost", 0)
	waitUntil(t, "dropped 1", func() bool { return last(prefix+"messages/dropped") == "1" })
	remote.Start()
	waitUntil(t, "state connected again", func() bool { return last(prefix+"state") == "connected" })
	if st := br.Status(); st.Out != 1 || st.Dropped != 1 || !st.Connected {
		t.Errorf("status %+v, want connected, out 1, dropped 1", st)
	}
}

// MQTT 5 properties cross the bridge, the bridge's marker added after the
// message's own User Properties; a retained message stays retained on the
// remote.
func TestPropertiesAndRetain(t *testing.T) {
	mqtttest.LeakCheck(t)
	a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	br := startBridge(t, a.Server, bridge.Config{Name: "props", Remote: b.URL, Logger: quietLogger(t),
		Topics: []bridge.Mapping{{Topic: "p/#", QoS: 1}}})
	waitConnected(t, br)
	onB := subscribe(t, b.URL, "p/#", 1, packet.V5)
	pa := publisher(t, a.URL, packet.V5)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	m := &message.Message{Topic: "p/1", Payload: []byte("x"), QoS: 1, Properties: packet.Properties{
		ContentType: "text/plain", ResponseTopic: "p/reply", CorrelationData: []byte{1, 2}, MessageExpiry: 3600,
		User: []packet.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}}}}
	if _, err := pa.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := pa.Publish(ctx, &message.Message{Topic: "p/retained", Payload: []byte("r"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "both messages on B", func() bool { return onB.Count() >= 2 })
	got := onB.Messages()[0]
	p := got.Properties
	wantUser := []packet.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}, {Key: bridge.MarkerKey, Value: "props"}}
	if p.ContentType != "text/plain" || p.ResponseTopic != "p/reply" || string(p.CorrelationData) != "\x01\x02" ||
		p.MessageExpiry == 0 || p.MessageExpiry > 3600 || fmt.Sprint(p.User) != fmt.Sprint(wantUser) {
		t.Errorf("properties on B: %+v", p)
	}
	late := subscribe(t, b.URL, "p/retained", 1, packet.V5)
	waitUntil(t, "the retained message for a later subscriber on B", func() bool { return late.Count() == 1 })
	if m := late.Messages()[0]; !m.Retain || string(m.Payload) != "r" {
		t.Errorf("retained on B: %+v", m)
	}
}

// A remote whose CONNACK says Maximum QoS 1 and Retain Available 0 gets
// the messages at QoS 1 and without the retain flag, not refused.
func TestRemoteLimits(t *testing.T) {
	mqtttest.LeakCheck(t)
	a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1, MaximumQoS: broker.QoS(1), RetainUnavailable: true}})
	br := startBridge(t, a.Server, bridge.Config{Name: "limits", Remote: b.URL, Logger: quietLogger(t),
		Topics: []bridge.Mapping{{Topic: "l/#", QoS: 2}}})
	waitConnected(t, br)
	onB := subscribe(t, b.URL, "l/#", 1, packet.V5)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := publisher(t, a.URL, packet.V5).Publish(ctx, &message.Message{Topic: "l/1", Payload: []byte("x"), QoS: 2, Retain: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the message on B", func() bool { return onB.Count() == 1 })
	if st := br.Status(); st.Dropped != 0 {
		t.Errorf("status %+v", st)
	}
}
