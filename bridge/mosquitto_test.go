package bridge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ternmq/tern/bridge"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// Tern ↔ Debian's mosquitto, both directions, QoS 0, 1 and 2, MQTT 5,
// 3.1.1 and 3.1, with a mapping "both" whose messages must not come back.
func TestMosquittoBothDirections(t *testing.T) {
	for _, v := range []packet.Version{packet.V5, packet.V311, packet.V31} {
		t.Run(v.String(), func(t *testing.T) {
			mqtttest.LeakCheck(t)
			mosq := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
			a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
			br := startBridge(t, a.Server, bridge.Config{
				Name: "mosq", Remote: mosq.URL, Version: v, Logger: quietLogger(t),
				Topics: []bridge.Mapping{
					{Topic: "up/#", Direction: bridge.Out, QoS: 2, LocalPrefix: "dev/", RemotePrefix: "site1/"},
					{Topic: "down/#", Direction: bridge.In, QoS: 2, RemotePrefix: "site1/"},
					{Topic: "chat/#", Direction: bridge.Both, QoS: 2},
				},
			})
			waitConnected(t, br)
			onMosq := subscribe(t, mosq.URL, "site1/up/#", 2, packet.V311)
			onTern := subscribe(t, a.URL, "down/#", 2, packet.V5)
			chatMosq := subscribe(t, mosq.URL, "chat/#", 2, packet.V5)
			chatTern := subscribe(t, a.URL, "chat/#", 2, packet.V311)
			pa, pm := publisher(t, a.URL, packet.V5), publisher(t, mosq.URL, packet.V5)
			const n = 20
			for qos := byte(0); qos <= 2; qos++ {
				for i := range n {
					publish(t, pa, fmt.Sprintf("dev/up/q%d", qos), fmt.Sprintf("a%d-%d", qos, i), qos)
					publish(t, pm, fmt.Sprintf("site1/down/q%d", qos), fmt.Sprintf("m%d-%d", qos, i), qos)
				}
				publish(t, pa, "chat/tern", fmt.Sprintf("ct%d", qos), qos)
				publish(t, pm, "chat/mosq", fmt.Sprintf("cm%d", qos), qos)
			}
			waitUntil(t, "messages on mosquitto", func() bool { return onMosq.Count() >= 3*n })
			waitUntil(t, "messages on Tern", func() bool { return onTern.Count() >= 3*n })
			for qos := range 3 {
				checkPayloads(t, onMosq.Payloads(), fmt.Sprintf("a%d-", qos), n, true)
				checkPayloads(t, onTern.Payloads(), fmt.Sprintf("m%d-", qos), n, true)
			}
			if ts := onMosq.Topics(); ts[0] != "site1/up/q0" {
				t.Errorf("topic on mosquitto %q, want site1/up/q0", ts[0])
			}
			expectExactly(t, "chat on mosquitto", chatMosq, 6)
			expectExactly(t, "chat on Tern", chatTern, 6)
			if st := br.Status(); st.Dropped != 0 {
				t.Errorf("status %+v: dropped", st)
			}
		})
	}
}

// Mosquitto, with persistence, is stopped while the bridge carries
// messages both ways, stays down while more are published on Tern, and is
// started again: every message acknowledged to its publisher arrives, QoS
// 2 exactly once.
func TestMosquittoRestart(t *testing.T) {
	for _, tc := range []struct {
		v   packet.Version
		qos byte
	}{{packet.V5, 1}, {packet.V5, 2}, {packet.V311, 2}} {
		t.Run(fmt.Sprintf("%v-qos%d", tc.v, tc.qos), func(t *testing.T) {
			mqtttest.LeakCheck(t)
			dir := t.TempDir()
			mosq := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{Config: []string{
				"persistence true", "persistence_location " + dir + "/", "autosave_interval 1", "autosave_on_changes true",
			}})
			a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
			br := startBridge(t, a.Server, bridge.Config{Name: "r", Remote: mosq.URL, Version: tc.v, Logger: quietLogger(t),
				Topics: []bridge.Mapping{
					{Topic: "out/#", Direction: bridge.Out, QoS: tc.qos},
					{Topic: "in/#", Direction: bridge.In, QoS: tc.qos},
				}})
			waitConnected(t, br)
			onRemote := persistentSub(t, mosq.URL, "sub-remote", "out/#", tc.qos)
			onLocal := subscribe(t, a.URL, "in/#", tc.qos, packet.V5)
			pa := publisher(t, a.URL, packet.V5)
			pr := mqtttest.Connect(t, client.Config{Servers: []string{mosq.URL}, ClientID: "pub-remote", SessionExpiry: 0xFFFFFFFF,
				BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})

			const n = 100
			toks := publishBurst(pa, "out/x", "o", 0, n, tc.qos)
			rtoks := publishBurst(pr, "in/x", "i", 0, n, tc.qos)
			waitTokens(t, toks)
			waitUntil(t, "the flow to start both ways", func() bool { return onRemote.Count() >= 10 && onLocal.Count() >= 10 })
			t.Logf("stopping the remote with %d of %d out and %d of %d in delivered", onRemote.Count(), n, onLocal.Count(), n)
			mosq.Kill()
			waitUntil(t, "the bridge to see mosquitto gone", func() bool { return !br.Status().Connected })
			waitTokens(t, publishBurst(pa, "out/x", "o", n, n, tc.qos))
			mosq.Restart()
			waitConnected(t, br)
			waitTokens(t, rtoks)
			waitTokens(t, publishBurst(pa, "out/x", "o", 2*n, n, tc.qos))
			waitTokens(t, publishBurst(pr, "in/x", "i", n, n, tc.qos))

			waitUntil(t, "every message on mosquitto", func() bool { return len(onRemote.Payloads()) >= 3*n })
			waitUntil(t, "every message on Tern", func() bool { return len(onLocal.Payloads()) >= 2*n })
			time.Sleep(200 * time.Millisecond)
			checkPayloads(t, onRemote.Payloads(), "o", 3*n, tc.qos == 2)
			checkPayloads(t, onLocal.Payloads(), "i", 2*n, tc.qos == 2)
			t.Logf("status %+v; mosquitto subscriber got %d for %d, Tern %d for %d", br.Status(), onRemote.Count(), 3*n, onLocal.Count(), 2*n)
		})
	}
}

// The bridge reaches mosquitto over TLS, verifying its certificate
// against a CA file, and authenticates with a user name and password.
func TestMosquittoTLS(t *testing.T) {
	mqtttest.LeakCheck(t)
	pki, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mosq := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{
		Listener: []string{"cafile " + pki.CAFile, "certfile " + pki.CertFile, "keyfile " + pki.KeyFile},
		Users:    map[string]string{"bridge": "s3cret", "sub": "sub"},
	})
	a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	br := startBridge(t, a.Server, bridge.Config{Name: "tls", Remote: "mqtts://" + mosq.Addr, Username: "bridge", Password: "s3cret",
		TLS: &bridge.TLS{CAFile: pki.CAFile}, Logger: quietLogger(t), Topics: []bridge.Mapping{{Topic: "t/#", Direction: bridge.Both, QoS: 1}}})
	waitConnected(t, br)
	col := &mqtttest.Collector{}
	sub := mqtttest.Connect(t, client.Config{Servers: []string{"mqtts://" + mosq.Addr}, TLS: pki.ClientConfig(), Username: "sub", Password: []byte("sub")})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := sub.Subscribe(ctx, "t/#", 1, col.Handle); err != nil {
		t.Fatal(err)
	}
	onTern := subscribe(t, a.URL, "t/#", 1, packet.V5)
	publish(t, publisher(t, a.URL, packet.V5), "t/up", "up", 1)
	if _, err := sub.Publish(ctx, &message.Message{Topic: "t/down", Payload: []byte("down"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "up on mosquitto", func() bool { return col.Payloads()["up"] == 1 })
	waitUntil(t, "down on Tern", func() bool { return onTern.Payloads()["down"] == 1 })
}
