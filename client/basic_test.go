package client_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
)

var versions = []packet.Version{packet.V31, packet.V311, packet.V5}

// TestPubSubEveryQoS publishes at QoS 0, 1 and 2 and receives at each
// subscription QoS, for every protocol version, against Tern.
func TestPubSubEveryQoS(t *testing.T) {
	_, url := startTern(t, nil)
	for _, v := range versions {
		for _, subQoS := range []byte{0, 1, 2} {
			t.Run(fmt.Sprintf("v%d/sub%d", v, subQoS), func(t *testing.T) {
				testPubSub(t, url, v, subQoS)
			})
		}
	}
}

func testPubSub(t *testing.T, url string, v packet.Version, subQoS byte) {
	topic := fmt.Sprintf("t/%d/%d", v, subQoS)
	sub := connect(t, client.Config{Servers: []string{url}, Version: v, ClientID: fmt.Sprintf("sub-%d-%d", v, subQoS)})
	pub := connect(t, client.Config{Servers: []string{url}, Version: v, ClientID: fmt.Sprintf("pub-%d-%d", v, subQoS)})
	got := make(chan *client.Message, 10)
	s, err := sub.Subscribe(ctx(t), topic, subQoS, func(m *client.Message) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Codes) != 1 || s.Codes[0] != packet.ReasonCode(subQoS) {
		t.Fatalf("SUBACK codes %v, want [%d]", s.Codes, subQoS)
	}
	for q := byte(0); q <= 2; q++ {
		res, err := pub.Publish(ctx(t), &message.Message{Topic: topic, Payload: []byte{q}, QoS: q})
		if err != nil {
			t.Fatalf("publish QoS %d: %v", q, err)
		}
		if q > 0 && res.PacketID == 0 {
			t.Fatalf("QoS %d result without packet id", q)
		}
		select {
		case m := <-got:
			if m.Payload[0] != q || m.QoS != min(q, subQoS) {
				t.Fatalf("got payload %v QoS %d, want %d QoS %d", m.Payload, m.QoS, q, min(q, subQoS))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("QoS %d message not received", q)
		}
	}
}
