package broker

import (
	"testing"

	"github.com/ternmq/tern/packet"
)

// BenchmarkPublishDeliver measures one message from a publisher to one
// subscriber through the broker over loopback TCP, one at a time (the
// publisher waits for the subscriber to receive it): the cost per
// message of the whole path, allocations included (both clients' too).
//
//	go test -run '^$' -bench PublishDeliver -benchmem ./broker/
func BenchmarkPublishDeliver(b *testing.B) {
	for _, tc := range []struct {
		name string
		v    packet.Version
		qos  byte
	}{{"v3.1.1/qos0", packet.V311, 0}, {"v3.1.1/qos1", packet.V311, 1}, {"v5/qos1", packet.V5, 1}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := &Server{SysInterval: -1}
			addr := startServer(b, srv)
			sub := dialRaw(b, addr, tc.v)
			sub.connect(&packet.Connect{ClientID: "sub", CleanStart: true})
			sub.subscribe(1, "bench/t", tc.qos)
			pub := dialRaw(b, addr, tc.v)
			pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
			payload := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				id := uint16(i%65535 + 1)
				pub.send(&packet.Publish{Topic: "bench/t", Payload: payload, QoS: tc.qos, PacketID: id})
				if tc.qos > 0 {
					pub.recv() // PUBACK
				}
				p := sub.expectPublish()
				if p.QoS > 0 {
					sub.send(&packet.Puback{PacketID: p.PacketID})
				}
			}
		})
	}
}
