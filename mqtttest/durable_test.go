package mqtttest_test

import (
	"context"
	"testing"
	"time"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
)

// A retained message survives a Stop and Start of a DurableBroker, on the
// same address.
func TestDurableBroker(t *testing.T) {
	b := mqtttest.StartDurableBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	pub := mqtttest.Connect(t, client.Config{Servers: []string{b.URL}})
	if _, err := pub.Publish(ctx, &message.Message{Topic: "kept", Payload: []byte("x"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	b.Stop()
	b.Start()
	col := &mqtttest.Collector{}
	sub := mqtttest.Connect(t, client.Config{Servers: []string{b.URL}})
	if _, err := sub.Subscribe(ctx, "kept", 1, col.Handle); err != nil {
		t.Fatal(err)
	}
	for col.Count() == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the retained message did not survive the restart")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if got := col.Payloads(); got["x"] != 1 {
		t.Fatalf("got %v", got)
	}
}
