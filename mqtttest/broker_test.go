package mqtttest_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

func TestStartBrokerTCP(t *testing.T) {
	t.Parallel()
	b := mqtttest.StartBroker(t)
	if !strings.HasPrefix(b.Addr, "127.0.0.1:") || b.URL != "tcp://"+b.Addr || net.JoinHostPort(b.Host, b.Port) != b.Addr {
		t.Fatalf("Addr %q URL %q Host %q Port %q", b.Addr, b.URL, b.Host, b.Port)
	}
	for _, v := range []packet.Version{packet.V31, packet.V311, packet.V5} {
		sub := mqtttest.DialRaw(t, b.Addr, v)
		sub.Connect(&packet.Connect{ClientID: "sub-" + v.String(), CleanStart: true})
		sub.Subscribe(1, "t/"+v.String(), 1)
		if err := b.Server.Publish("t/"+v.String(), []byte("hello"), 1, false); err != nil {
			t.Fatal(err)
		}
		pub := sub.ExpectPublish()
		if pub.Topic != "t/"+v.String() || string(pub.Payload) != "hello" || pub.QoS != 1 {
			t.Fatalf("%v: got %v", v, pub)
		}
		sub.Send(&packet.Puback{PacketID: pub.PacketID})
		sub.NoPacket(50 * time.Millisecond)
	}
	// Connections left open are the cleanup's to end, and its check
	// finds their goroutines gone.
	if got := b.Server.Stats().ClientsConnected; got != 3 {
		t.Fatalf("ClientsConnected = %d, want 3", got)
	}
	if !strings.Contains(b.Log(), "client connected") {
		t.Fatalf("the broker's log was not kept:\n%s", b.Log())
	}
}

func TestStartBrokerMem(t *testing.T) {
	t.Parallel()
	srv := &broker.Server{ReceiveMaximum: 3}
	b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: srv, Mem: true})
	if b.Server != srv {
		t.Fatal("Broker.Server is not the given server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	nc, err := b.DialMem(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := mqtttest.NewRawClient(t, nc, packet.V5)
	ack := c.Connect(&packet.Connect{ClientID: "mem", CleanStart: true})
	if ack.Properties.ReceiveMaximum != 3 {
		t.Fatalf("CONNACK Receive Maximum %d, want the configured ReceiveMaximum 3", ack.Properties.ReceiveMaximum)
	}
	c.Send(&packet.Disconnect{})
	c.ExpectClosed()
}

func TestStartBrokerNoMem(t *testing.T) {
	t.Parallel()
	b := mqtttest.StartBroker(t)
	_, err := b.DialMem(context.Background())
	if err == nil || !strings.Contains(err.Error(), "BrokerConfig.Mem") {
		t.Fatalf("DialMem without Mem: %v, want an error naming BrokerConfig.Mem", err)
	}
}

// TestStartBrokerShutdownDisconnects: the cleanup shuts the broker down,
// which an MQTT 5 client sees as DISCONNECT 0x8B (Server shutting down).
// The subtest's cleanup runs before the outer test reads.
func TestStartBrokerShutdownDisconnects(t *testing.T) {
	t.Parallel()
	var addr string
	var c *mqtttest.RawClient
	t.Run("broker", func(st *testing.T) {
		b := mqtttest.StartBroker(st)
		addr = b.Addr
		c = mqtttest.DialRaw(t, b.Addr, packet.V5) // closed by the outer test
		c.Connect(&packet.Connect{ClientID: "x", CleanStart: true})
	})
	got := c.ExpectClosed()
	if len(got) != 1 {
		t.Fatalf("got %v, want one DISCONNECT", got)
	}
	if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.ServerShuttingDown {
		t.Fatalf("got %v, want DISCONNECT 0x8B", got[0])
	}
	if nc, err := net.DialTimeout("tcp", addr, mqtttest.DefaultTimeout); err == nil {
		nc.Close()
		t.Fatalf("%s still accepts connections after the test ended", addr)
	}
}

func TestStartBrokerBadConfig(t *testing.T) {
	t.Parallel()
	ft := &fakeT{TB: t}
	ft.run(func() {
		mqtttest.StartBroker(ft, mqtttest.BrokerConfig{Server: &broker.Server{MaxInflight: -1}})
	})
	if !ft.failed || !strings.Contains(ft.msg, "MaxInflight") {
		t.Fatalf("StartBroker with a bad Server: failed %v, message %q; want a failure naming MaxInflight", ft.failed, ft.msg)
	}
	ft = &fakeT{TB: t}
	ft.run(func() { mqtttest.StartBroker(ft, mqtttest.BrokerConfig{}, mqtttest.BrokerConfig{}) })
	if !ft.failed || !strings.Contains(ft.msg, "at most one") {
		t.Fatalf("StartBroker with two configs: failed %v, message %q", ft.failed, ft.msg)
	}
}
