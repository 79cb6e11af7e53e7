package proxy_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/proxy"
	"github.com/ternmq/tern/transport"
)

// TestTermination: the proxy terminates TLS, WebSocket and secure
// WebSocket for a broker that has plain TCP only, and {cert_cn} takes the
// client certificate's common name as the user name upstream.
func TestTermination(t *testing.T) {
	pki, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := (&transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile,
		ClientCAFile: pki.CAFile, ClientAuth: transport.ClientAuthRequest}).Build()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.Client("device-42")
	if err != nil {
		t.Fatal(err)
	}
	b := mqtttest.StartBroker(t)
	tap := mqtttest.StartTap(t, b.Addr)
	ps := &proxy.Server{Upstreams: []string{tap.URL}, Filters: []proxy.Filter{&proxy.Rewrite{Username: "{cert_cn}"}}}
	listen := func(u string, cfg *tls.Config) net.Listener {
		l, err := proxy.Listen(u, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	ltls := listen("tls://127.0.0.1:0", srvTLS)
	lws := listen("ws://127.0.0.1:0/mqtt", nil)
	lwss := listen("wss://127.0.0.1:0/mqtt", srvTLS)
	mqtttest.StartProxy(t, ps, ltls)
	go ps.Serve(lws) // Serve may take several listeners; Shutdown closes them all
	go ps.Serve(lwss)

	urls := []string{"tls://" + ltls.Addr().String(), "ws://" + lws.Addr().String() + "/mqtt", "wss://" + lwss.Addr().String() + "/mqtt"}
	sub := mqtttest.Connect(t, client.Config{Servers: []string{b.URL}, ClientID: "direct-sub"})
	ch := collect(t, sub, "term/#", 1)
	for i, u := range urls {
		for _, v := range []packet.Version{packet.V311, packet.V5} {
			c := mqtttest.Connect(t, client.Config{Servers: []string{u}, ClientID: fmt.Sprintf("term-%d-%s", i, v), Version: v,
				TLS: pki.ClientConfig(cert), CleanStart: true})
			publish(t, c, "term/"+v.String(), u, 1)
			expectMsg(t, ch, "term/"+v.String(), u)
		}
	}
	connects := func() (n int) {
		for _, p := range tap.Packets(mqtttest.ClientToServer) {
			if _, ok := p.(*packet.Connect); ok {
				n++
			}
		}
		return n
	}
	eventually(t, "6 CONNECTs upstream", func() bool { return connects() >= 6 })
	n := 0
	for _, p := range tap.Packets(mqtttest.ClientToServer) {
		if cp, ok := p.(*packet.Connect); ok {
			n++
			if want := "device-42"; cp.Username != want && (n <= 2 || n > 4) { // ws:// has no certificate
				t.Errorf("upstream CONNECT %d user name %q, want %q", n, cp.Username, want)
			}
		}
	}
	if n != 6 {
		t.Fatalf("upstream saw %d CONNECTs, want 6", n)
	}
}

// TestFailover: when the first upstream dies, clients reconnecting
// through the proxy reach the second; with both down, CONNACK 0x88.
func TestFailover(t *testing.T) {
	b1, b2 := mqtttest.StartBroker(t), mqtttest.StartBroker(t)
	cut1 := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: b1.Addr})
	cut2 := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: b2.Addr})
	px := mqtttest.StartProxy(t, &proxy.Server{Upstreams: []string{cut1.URL, cut2.URL},
		DialTimeout: time.Second, BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond}, nil)
	cfg := func(id string) client.Config {
		return client.Config{Servers: []string{px.URL}, ClientID: id, SessionExpiry: 600,
			BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	}
	sub := mqtttest.Connect(t, cfg("fo-sub"))
	ch := collect(t, sub, "fo/#", 1)
	pub := mqtttest.Connect(t, cfg("fo-pub"))
	publish(t, pub, "fo/1", "on b1", 1)
	expectMsg(t, ch, "fo/1", "on b1")
	if st := b1.Server.Stats(); st.ClientsConnected != 2 {
		t.Fatalf("b1 has %d clients, want 2", st.ClientsConnected)
	}

	cut1.Refuse(true)
	cut1.CutNow() // b1 is gone
	eventually(t, "both clients on b2", func() bool { return b2.Server.Stats().ClientsConnected == 2 })
	// The subscriber found no session on b2 and subscribed again.
	eventually(t, "the subscription on b2", func() bool { return b2.Server.Stats().Subscriptions == 1 })
	publish(t, pub, "fo/2", "on b2", 1)
	expectMsg(t, ch, "fo/2", "on b2")

	// Both down: the proxy refuses with Server unavailable.
	cut2.Refuse(true)
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		c := mqtttest.DialRaw(t, px.Addr, v)
		c.Timeout = 10 * time.Second
		c.Send(&packet.Connect{ClientID: "nowhere", CleanStart: true})
		ack := mqtttest.Expect[*packet.Connack](c)
		want := packet.ServerUnavailable
		if v != packet.V5 {
			want = packet.V3ServerUnavailable
		}
		if ack.ReasonCode != want {
			t.Fatalf("%v: CONNACK %v, want %v", v, ack, want)
		}
		c.ExpectClosed()
	}
	// b1 is back: new clients go there.
	cut1.Refuse(false)
	c := mqtttest.DialRaw(t, px.Addr, packet.V5)
	c.Timeout = 10 * time.Second
	c.Connect(&packet.Connect{ClientID: "back", CleanStart: true})
	eventually(t, "a client on b1 again", func() bool { return b1.Server.Stats().ClientsConnected == 1 })
}

// TestUpstreamTransports: the proxy reaches brokers over every transport:
// TCP, TLS (verifying the broker's certificate), WebSocket, secure
// WebSocket and a unix socket.
func TestUpstreamTransports(t *testing.T) {
	pki, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "mqtt.sock")
	tlsCfg := &transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile}
	b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1, Listeners: []broker.Listener{
		{Type: "tcp", Addr: "127.0.0.1:0"},
		{Type: "tls", Addr: "127.0.0.1:0", TLS: tlsCfg},
		{Type: "ws", Addr: "127.0.0.1:0"},
		{Type: "wss", Addr: "127.0.0.1:0", TLS: tlsCfg},
		{Type: "unix", Addr: sock},
	}}})
	urls := []string{
		"tcp://" + b.Addrs[0].String(),
		"tls://" + b.Addrs[1].String(),
		"ws://" + b.Addrs[2].String() + "/mqtt",
		"wss://" + b.Addrs[3].String() + "/mqtt",
		"unix://" + sock,
	}
	sub := mqtttest.Connect(t, client.Config{Servers: []string{b.URL}, ClientID: "up-sub"})
	ch := collect(t, sub, "upt/#", 1)
	for i, u := range urls {
		px := mqtttest.StartProxy(t, &proxy.Server{Upstreams: []string{u}, Dial: transport.DialOptions{TLS: pki.ClientConfig()}}, nil)
		for _, v := range []packet.Version{packet.V311, packet.V5} {
			c := mqtttest.Connect(t, client.Config{Servers: []string{px.URL}, ClientID: fmt.Sprintf("upt-%d-%s", i, v), Version: v, CleanStart: true})
			publish(t, c, "upt/"+v.String(), u, 2)
			expectMsg(t, ch, "upt/"+v.String(), u)
		}
	}
}

// TestFailoverSilentUpstream: an upstream that accepts connections but
// never answers the CONNECT is skipped after ConnectTimeout.
func TestFailoverSilentUpstream(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, nc) // read nothing, answer nothing
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		<-done
		for _, nc := range held {
			nc.Close()
		}
	})
	b := mqtttest.StartBroker(t)
	px := mqtttest.StartProxy(t, &proxy.Server{Upstreams: []string{"tcp://" + silent.Addr().String(), b.URL},
		ConnectTimeout: 300 * time.Millisecond}, nil)
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		c := mqtttest.DialRaw(t, px.Addr, v)
		c.Connect(&packet.Connect{ClientID: "past-silent-" + v.String(), CleanStart: true})
	}
	if n := b.Server.Stats().ClientsConnected; n != 2 {
		t.Fatalf("the broker has %d clients, want 2", n)
	}
}

// TestSlowReader: a client that stops reading while the broker floods it
// is disconnected after WriteTimeout; the proxy holds no queue for it, and
// other clients go on.
func TestSlowReader(t *testing.T) {
	b := mqtttest.StartBroker(t)
	px := mqtttest.StartProxy(t, &proxy.Server{Upstreams: []string{b.URL}, WriteTimeout: 500 * time.Millisecond}, nil)
	slow := mqtttest.DialRaw(t, px.Addr, packet.V311)
	slow.Connect(&packet.Connect{ClientID: "slow", CleanStart: true})
	slow.Subscribe(1, "flood/#", 0)
	healthy := mqtttest.DialRaw(t, px.Addr, packet.V5)
	healthy.Connect(&packet.Connect{ClientID: "healthy", CleanStart: true})
	healthy.Subscribe(1, "ok", 0)
	payload := make([]byte, 32<<10)
	eventually(t, "the slow client cut off", func() bool {
		for range 50 {
			b.Server.Publish("flood/x", payload, 0, false)
		}
		return px.Server.Conns() == 1
	})
	b.Server.Publish("ok", []byte("still here"), 0, false)
	if p := healthy.ExpectPublish(); string(p.Payload) != "still here" {
		t.Fatalf("healthy client got %v", p)
	}
}
