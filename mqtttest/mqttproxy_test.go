package mqtttest_test

import (
	"testing"
	"time"

	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/proxy"
)

// TestTapAndProxy: a client through StartProxy and StartTap to a broker;
// the tap decodes both directions.
func TestTapAndProxy(t *testing.T) {
	b := mqtttest.StartBroker(t)
	tap := mqtttest.StartTap(t, b.Addr)
	px := mqtttest.StartProxy(t, &proxy.Server{Upstreams: []string{tap.URL}}, nil)
	c := mqtttest.DialRaw(t, px.Addr, packet.V5)
	c.Connect(&packet.Connect{ClientID: "tapped", CleanStart: true})
	c.Send(&packet.Publish{Topic: "tap/t", QoS: 1, PacketID: 1, Payload: []byte("x")})
	mqtttest.Expect[*packet.Puback](c)
	c.Close()
	want := map[mqtttest.Direction][]packet.Type{
		mqtttest.ClientToServer: {packet.CONNECT, packet.PUBLISH},
		mqtttest.ServerToClient: {packet.CONNACK, packet.PUBACK},
	}
	for d, types := range want {
		var got []packet.Packet
		for range 500 { // the tap decodes after relaying
			if got = tap.Packets(d); len(got) >= len(types) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(got) != len(types) {
			t.Fatalf("%v: tap decoded %v, want %v", d, got, types)
		}
		for i, p := range got {
			if p.Type() != types[i] {
				t.Fatalf("%v: tap decoded %v, want %v", d, got, types)
			}
		}
	}
	if errs := tap.Errors(); len(errs) != 0 {
		t.Fatal(errs)
	}
}
