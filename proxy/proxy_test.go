package proxy_test

import (
	"testing"

	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/proxy"
)

// TestPassThrough: every version, every QoS, through the proxy with no
// filter, with Tern's client at both ends.
func TestPassThrough(t *testing.T) {
	e := newEnv(t, nil)
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			sub := e.connect(t, "sub-"+v.String(), v)
			pub := e.connect(t, "pub-"+v.String(), v)
			ch := collect(t, sub, "pt/"+v.String()+"/#", 2)
			for qos := byte(0); qos <= 2; qos++ {
				topic := "pt/" + v.String() + "/q" + string('0'+qos)
				publish(t, pub, topic, "hello", qos)
				expectMsg(t, ch, topic, "hello")
			}
		})
	}
	if n := len(e.upstreamTopics()); n != 9 {
		t.Fatalf("upstream got %d PUBLISHes, want 9", n)
	}
}

// TestMaxPacketSize: the proxy's limit is announced to MQTT 5 peers and
// enforced on clients of every version with 0x95.
func TestMaxPacketSize(t *testing.T) {
	e := newEnvP(t, nil, &proxy.Server{MaxPacketSize: 1024})
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			c := mqtttest.DialRaw(t, e.proxy.Addr, v)
			ack := c.Connect(&packet.Connect{ClientID: "big", CleanStart: true, Properties: packet.Properties{MaximumPacketSize: 1 << 20}})
			if v == packet.V5 && ack.Properties.MaximumPacketSize != 1024 {
				t.Fatalf("CONNACK Maximum Packet Size %d, want the proxy's 1024", ack.Properties.MaximumPacketSize)
			}
			c.Send(&packet.Publish{Topic: "big", QoS: 1, PacketID: 1, Payload: make([]byte, 2000)})
			got := c.ExpectClosed()
			if v == packet.V5 {
				expectDisconnect(t, got, packet.PacketTooLarge)
			}
		})
	}
	// The upstream was told the limit too.
	for _, p := range e.tap.Packets(mqtttest.ClientToServer) {
		if cp, ok := p.(*packet.Connect); ok && cp.Version == packet.V5 && cp.Properties.MaximumPacketSize != 1024 {
			t.Fatalf("upstream CONNECT Maximum Packet Size %d, want 1024", cp.Properties.MaximumPacketSize)
		}
	}
	for _, topic := range e.upstreamTopics() {
		t.Fatalf("a PUBLISH on %s reached the upstream", topic)
	}
}

func expectDisconnect(t *testing.T, got []packet.Packet, code packet.ReasonCode) {
	t.Helper()
	if len(got) == 0 {
		t.Fatalf("closed without DISCONNECT, want DISCONNECT %s", code)
	}
	d, ok := got[len(got)-1].(*packet.Disconnect)
	if !ok || d.ReasonCode != code {
		t.Fatalf("got %v, want DISCONNECT %s", got[len(got)-1], code)
	}
}
