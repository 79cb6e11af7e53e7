package client_test

import (
	"context"
	"fmt"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
)

// BenchmarkPublish measures publish throughput from one client to an
// in-process Tern broker, Tern's client against paho.mqtt.golang, with up
// to 100 publishes outstanding (MQTT 3.1.1 for both).
//
//	go test -run '^$' -bench BenchmarkPublish -benchmem ./client/
func BenchmarkPublish(b *testing.B) {
	_, url := startTern(b, nil)
	payload := make([]byte, 64)
	for _, qos := range []byte{0, 1, 2} {
		b.Run(fmt.Sprintf("tern/qos%d", qos), func(b *testing.B) {
			c := connect(b, client.Config{Servers: []string{url}, Version: 4, MaxQueued: 200})
			m := &message.Message{Topic: "bench", Payload: payload, QoS: qos}
			window := make(chan *client.Token, 100)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if len(window) == cap(window) {
					if _, err := (<-window).Wait(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
				window <- c.PublishAsync(m)
			}
			for len(window) > 0 {
				if _, err := (<-window).Wait(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("paho/qos%d", qos), func(b *testing.B) {
			opts := paho.NewClientOptions().AddBroker(url).SetClientID("paho-bench").SetProtocolVersion(4).SetMaxResumePubInFlight(100)
			c := paho.NewClient(opts)
			if tok := c.Connect(); tok.Wait() && tok.Error() != nil {
				b.Fatal(tok.Error())
			}
			defer c.Disconnect(100)
			window := make(chan paho.Token, 100)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if len(window) == cap(window) {
					if tok := <-window; tok.Wait() && tok.Error() != nil {
						b.Fatal(tok.Error())
					}
				}
				window <- c.Publish("bench", qos, false, payload)
			}
			for len(window) > 0 {
				if tok := <-window; tok.Wait() && tok.Error() != nil {
					b.Fatal(tok.Error())
				}
			}
		})
	}
}
