package client_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// TestMosquittoPubSub: QoS 0, 1 and 2 both ways, MQTT 3.1, 3.1.1 and 5,
// against the real Mosquitto broker (Debian package mosquitto).
func TestMosquittoPubSub(t *testing.T) {
	m := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	for _, v := range versions {
		for _, subQoS := range []byte{0, 1, 2} {
			t.Run(fmt.Sprintf("v%d/sub%d", v, subQoS), func(t *testing.T) {
				testPubSub(t, m.URL, v, subQoS)
			})
		}
	}
}

// TestMosquittoRestart: Mosquitto restarted (losing every session, as
// persistence is off) under two clients: QoS 1 and 2 messages published
// meanwhile are sent and acknowledged after the reconnect, and the
// subscriber subscribes again by itself.
func TestMosquittoRestart(t *testing.T) {
	m := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			up := make(chan struct{}, 10)
			got := newCounter()
			sub := connect(t, client.Config{Servers: []string{m.URL}, Version: v, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
				OnConnectionUp: func(*client.Connack) { up <- struct{}{} }})
			<-up
			if _, err := sub.Subscribe(ctx(t), "restart", 2, got.handler); err != nil {
				t.Fatal(err)
			}
			pub := connect(t, client.Config{Servers: []string{m.URL}, Version: v, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
			m.Restart()
			toks := []*client.Token{
				pub.PublishAsync(&message.Message{Topic: "restart", Payload: []byte("1"), QoS: 1}),
				pub.PublishAsync(&message.Message{Topic: "restart", Payload: []byte("2"), QoS: 2}),
			}
			for _, tok := range toks {
				if _, err := tok.Wait(ctx(t)); err != nil {
					t.Fatal(err)
				}
			}
			<-up // the subscriber is back; its SUBSCRIBE is on its way
			for i := 0; got.count("probe") == 0; i++ {
				if _, err := pub.Publish(ctx(t), &message.Message{Topic: "restart", Payload: []byte("probe"), QoS: 1}); err != nil {
					t.Fatal(err)
				}
				select {
				case <-got.ch:
				case <-time.After(50 * time.Millisecond):
				}
				if i > 200 {
					t.Fatal("the subscriber did not subscribe again")
				}
			}
		})
	}
}
