package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"

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
	eventually(t, "9 PUBLISHes upstream", func() bool { return len(e.upstreamTopics()) >= 9 })
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

// TestShutdown: Shutdown tells MQTT 5 clients 0x8B, closes 3.1.1 ones,
// closes the upstream connections so the broker publishes the wills, and
// leaves no goroutine behind.
func TestShutdown(t *testing.T) {
	mqtttest.LeakCheck(t)
	b := mqtttest.StartBroker(t)
	watcher := mqtttest.DialRaw(t, b.Addr, packet.V311)
	watcher.Connect(&packet.Connect{ClientID: "watcher", CleanStart: true})
	watcher.Subscribe(1, "will/#", 0)
	ps := &proxy.Server{Upstreams: []string{b.URL}}
	l, err := proxy.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- ps.Serve(l) }()
	var cs []*mqtttest.RawClient
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		c := mqtttest.DialRaw(t, l.Addr().String(), v)
		c.Connect(&packet.Connect{ClientID: "sd-" + v.String(), CleanStart: true,
			Will: &packet.Will{Topic: "will/" + v.String(), Payload: []byte("gone")}})
		cs = append(cs, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ps.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, proxy.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if got := cs[0].ExpectClosed(); len(got) != 0 {
		t.Fatalf("3.1.1 client got %v", got)
	}
	expectDisconnect(t, cs[1].ExpectClosed(), packet.ServerShuttingDown)
	wills := map[string]bool{}
	for range 2 {
		p := watcher.ExpectPublish()
		wills[p.Topic] = true
	}
	if !wills["will/3.1.1"] || !wills["will/5.0"] {
		t.Fatalf("wills published: %v", wills)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("the listener still accepts")
	}
}

// TestClientDisconnect: a client's DISCONNECT is passed on, so the broker
// discards its will; a client that just vanishes leaves its will to be
// published.
func TestClientDisconnect(t *testing.T) {
	e := newEnv(t, nil)
	watcher := mqtttest.DialRaw(t, e.broker.Addr, packet.V311)
	watcher.Connect(&packet.Connect{ClientID: "watcher", CleanStart: true})
	watcher.Subscribe(1, "will/#", 0)
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		clean := mqtttest.DialRaw(t, e.proxy.Addr, v)
		clean.Connect(&packet.Connect{ClientID: "clean-" + v.String(), CleanStart: true,
			Will: &packet.Will{Topic: "will/clean", Payload: []byte("x")}})
		clean.Send(&packet.Disconnect{})
		clean.ExpectClosed()
		gone := mqtttest.DialRaw(t, e.proxy.Addr, v)
		gone.Connect(&packet.Connect{ClientID: "gone-" + v.String(), CleanStart: true,
			Will: &packet.Will{Topic: "will/gone", Payload: []byte(v.String())}})
		gone.Close()
		if p := watcher.ExpectPublish(); p.Topic != "will/gone" || string(p.Payload) != v.String() {
			t.Fatalf("got %v, want the will of gone-%v", p, v)
		}
	}
	watcher.NoPacket(100 * time.Millisecond)
}

// TestManyClients: 20 publishers of every version send 50 QoS 1 and 2
// messages each at once through the proxy, with denied ones mixed in;
// one subscriber gets every allowed message.
func TestManyClients(t *testing.T) {
	e := newEnv(t, &broker.Server{SysInterval: -1, MaxQueuedMessages: 10000},
		&proxy.TopicFilter{Up: proxy.Rules{Deny: []string{"many/denied/#"}}})
	sub := e.connect(t, "many-sub", packet.V5)
	ch := make(chan string, 2000)
	if _, err := sub.Subscribe(ctxT(t), "many/#", 2, func(m *client.Message) { ch <- string(m.Payload) }); err != nil {
		t.Fatal(err)
	}
	const pubs, each = 20, 50
	var wg sync.WaitGroup
	errc := make(chan error, pubs)
	for i := range pubs {
		c := e.connect(t, fmt.Sprintf("many-%d", i), versions[i%3])
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				topic := "many/ok"
				if j%5 == 0 {
					topic = "many/denied/x"
				}
				_, err := c.Publish(ctxT(t), &message.Message{Topic: topic, Payload: []byte(fmt.Sprintf("%d-%d", i, j)), QoS: byte(1 + j%2)})
				if err != nil && topic == "many/ok" {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < pubs*each*4/5 {
		select {
		case p := <-ch:
			got[p] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d of %d messages", len(got), pubs*each*4/5)
		}
	}
	for p := range got {
		var i, j int
		fmt.Sscanf(p, "%d-%d", &i, &j)
		if j%5 == 0 {
			t.Fatalf("a denied message arrived: %s", p)
		}
	}
}
