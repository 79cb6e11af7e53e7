package bridge_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmq/tern/bridge"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
)

// BenchmarkBridge measures the messages a bridge carries per second from
// one Tern broker to another over TCP loopback, at each QoS: b.N messages
// published on A as fast as A takes them, timed until the last arrives on
// B.
func BenchmarkBridge(b *testing.B) {
	for qos := byte(0); qos <= 2; qos++ {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			a := mqtttest.StartBroker(b, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1, MaxQueuedMessages: 1 << 20}})
			r := mqtttest.StartBroker(b, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1, MaxQueuedMessages: 1 << 20}})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			br, err := bridge.Start(ctx, a.Server, bridge.Config{Name: "bench", Remote: r.URL, Logger: discard(),
				Topics: []bridge.Mapping{{Topic: "b/#", QoS: qos}}})
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close(ctx)
			for !br.Status().Connected {
				time.Sleep(5 * time.Millisecond)
			}
			var got atomic.Int64
			done := make(chan struct{})
			n := int64(b.N)
			sub := mqtttest.Connect(b, client.Config{Servers: []string{r.URL}, MaxBuffered: 1 << 16})
			if _, err := sub.Subscribe(ctx, "b/#", qos, func(*client.Message) {
				if got.Add(1) == n {
					close(done)
				}
			}); err != nil {
				b.Fatal(err)
			}
			pub := mqtttest.Connect(b, client.Config{Servers: []string{a.URL}, MaxQueued: 1 << 16})
			payload := make([]byte, 64)
			b.ResetTimer()
			start := time.Now()
			var last *client.Token
			for i := 0; i < b.N; i++ {
				last = pub.PublishAsync(&message.Message{Topic: "b/x", Payload: payload, QoS: max(qos, 1)})
				if i%1000 == 999 {
					last.Wait(ctx)
				}
			}
			// QoS 0 messages the bridge could not keep up with are
			// dropped, and counted.
			for got.Load()+int64(br.Status().Dropped) < n {
				select {
				case <-done:
				case <-time.After(time.Millisecond):
				case <-ctx.Done():
					b.Fatalf("%d of %d arrived; bridge %+v", got.Load(), b.N, br.Status())
				}
			}
			if d := br.Status().Dropped; d > 0 {
				b.ReportMetric(float64(d), "dropped")
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
