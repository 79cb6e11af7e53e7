package broker

import (
	"testing"

	"github.com/ternmq/tern/packet"
)

func TestSmokePubSub(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			addr := startServer(t, &Server{})
			sub := dialRaw(t, addr, v)
			sub.connect(&packet.Connect{ClientID: "sub", CleanStart: true})
			sub.subscribe(1, "a/+", 1)
			pub := dialRaw(t, addr, v)
			pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
			pub.send(&packet.Publish{Topic: "a/b", QoS: 1, PacketID: 7, Payload: []byte("hi")})
			if ack, ok := pub.recv().(*packet.Puback); !ok || ack.PacketID != 7 {
				t.Fatalf("want PUBACK 7, got %v", ack)
			}
			got := sub.expectPublish()
			if got.Topic != "a/b" || string(got.Payload) != "hi" || got.QoS != 1 {
				t.Fatalf("got %v", got)
			}
			sub.send(&packet.Puback{PacketID: got.PacketID})
		})
	}
}
