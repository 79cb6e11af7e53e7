package proxy_test

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/broker/auth"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/proxy"
)

// TestTopicAliases: the proxy resolves MQTT 5 topic aliases both ways, so
// filters see topics; it forwards topic names, never aliases, and a
// dropped PUBLISH that set an alias does not break the ones after it.
func TestTopicAliases(t *testing.T) {
	e := newEnv(t, &broker.Server{SysInterval: -1, OutboundTopicAliases: true},
		&proxy.TopicFilter{Up: proxy.Rules{Deny: []string{"alias/denied"}}})
	sub := mqtttest.DialRaw(t, e.proxy.Addr, packet.V5)
	sub.Connect(&packet.Connect{ClientID: "alias-sub", CleanStart: true, Properties: packet.Properties{TopicAliasMaximum: 10}})
	sub.Subscribe(1, "alias/#", 0)
	pub := mqtttest.DialRaw(t, e.proxy.Addr, packet.V5)
	ack := pub.Connect(&packet.Connect{ClientID: "alias-pub", CleanStart: true})
	if ack.Properties.TopicAliasMaximum == 0 {
		t.Fatal("the CONNACK allows no topic alias")
	}
	// Alias 1 set on a denied PUBLISH, then used: the proxy knows it.
	pub.Send(&packet.Publish{Topic: "alias/denied", Properties: packet.Properties{TopicAlias: 1}, Payload: []byte("x")})
	pub.Send(&packet.Publish{Properties: packet.Properties{TopicAlias: 1}, Payload: []byte("x")})
	// Alias 2 on an allowed topic, set then used.
	pub.Send(&packet.Publish{Topic: "alias/ok", Properties: packet.Properties{TopicAlias: 2}, Payload: []byte("1")})
	pub.Send(&packet.Publish{Properties: packet.Properties{TopicAlias: 2}, Payload: []byte("2")})
	for _, want := range []string{"1", "2"} {
		p := sub.ExpectPublish()
		if p.Topic != "alias/ok" || string(p.Payload) != want || p.Properties.TopicAlias != 0 {
			t.Fatalf("subscriber got %v, want alias/ok %q without an alias", p, want)
		}
	}
	sub.NoPacket(50 * time.Millisecond)
	for _, d := range []mqtttest.Direction{mqtttest.ClientToServer, mqtttest.ServerToClient} {
		aliased := false
		for _, p := range e.tap.Packets(d) {
			if pub, ok := p.(*packet.Publish); ok {
				if pub.Properties.TopicAlias != 0 {
					if d == mqtttest.ClientToServer {
						t.Fatalf("the upstream got an alias: %v", pub)
					}
					aliased = true
				}
				if pub.Topic == "alias/denied" {
					t.Fatalf("the upstream got %v", pub)
				}
			}
		}
		if d == mqtttest.ServerToClient && !aliased {
			t.Log("the broker used no alias toward the proxy") // then only the up direction was exercised
		}
	}
}

// TestTooLargeForClient: a PUBLISH from the upstream larger than the MQTT
// 5 client's Maximum Packet Size is not sent and is acknowledged upstream
// as if delivered [v5 MQTT-3.1.2-25]; the client's later messages flow.
func TestTooLargeForClient(t *testing.T) {
	rs := mqtttest.ListenRaw(t)
	px := mqtttest.StartProxy(t, &proxy.Server{Upstreams: []string{rs.URL}}, nil)
	c := mqtttest.DialRaw(t, px.Addr, packet.V5)
	c.Send(&packet.Connect{ClientID: "small", CleanStart: true, Properties: packet.Properties{MaximumPacketSize: 200}})
	up, cp := rs.AcceptConnect(&packet.Connack{})
	if cp.Properties.MaximumPacketSize != 200 {
		t.Fatalf("upstream CONNECT Maximum Packet Size %d, want the client's 200", cp.Properties.MaximumPacketSize)
	}
	mqtttest.Expect[*packet.Connack](c)
	up.Send(&packet.Publish{Topic: "big", QoS: 1, PacketID: 5, Payload: make([]byte, 500)})
	if ack := mqtttest.Expect[*packet.Puback](up); ack.PacketID != 5 || ack.ReasonCode != 0 {
		t.Fatalf("upstream got %v, want PUBACK 5", ack)
	}
	up.Send(&packet.Publish{Topic: "big", QoS: 2, PacketID: 6, Payload: make([]byte, 500)})
	if rec := mqtttest.Expect[*packet.Pubrec](up); rec.PacketID != 6 || rec.ReasonCode != 0 {
		t.Fatalf("upstream got %v, want PUBREC 6", rec)
	}
	up.Send(&packet.Pubrel{PacketID: 6})
	if comp := mqtttest.Expect[*packet.Pubcomp](up); comp.PacketID != 6 {
		t.Fatalf("upstream got %v, want PUBCOMP 6", comp)
	}
	up.Send(&packet.Publish{Topic: "small", QoS: 1, PacketID: 7, Payload: []byte("fits")})
	if p := c.ExpectPublish(); p.Topic != "small" {
		t.Fatalf("client got %v, want the small message", p)
	}
}

// TestEnhancedAuth: MQTT 5 enhanced authentication (SCRAM, with AUTH
// packets before the CONNACK and a re-authentication on the live
// connection) passes through the proxy untouched.
func TestEnhancedAuth(t *testing.T) {
	passwd := filepath.Join(t.TempDir(), "passwd")
	if err := auth.PasswdCommand(auth.PasswdArgs{File: passwd, Create: true, Batch: true, User: "alice", Password: "s3cret", Cost: 4}, nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	pf, err := auth.LoadPasswordFile(passwd)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, &broker.Server{SysInterval: -1, Authenticator: pf, AuthMethods: pf.SCRAMMethods()})
	c := mqtttest.Connect(t, client.Config{Servers: []string{e.proxy.URL}, Auth: client.SCRAM("SCRAM-SHA-256", "alice", "s3cret")})
	if err := c.Reauthenticate(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	publish(t, c, "scram", "x", 1)
	bad, _ := client.New(client.Config{Servers: []string{e.proxy.URL}, Auth: client.SCRAM("SCRAM-SHA-256", "alice", "wrong"),
		Logger: slog.New(slog.DiscardHandler)})
	defer bad.Disconnect(ctxT(t))
	var ce *client.ConnectError
	if _, err := bad.Connect(ctxT(t)); !errors.As(err, &ce) {
		t.Fatalf("wrong password: %v, want a ConnectError", err)
	}
	auths := func() (n int) {
		for _, p := range e.tap.Packets(mqtttest.ClientToServer) {
			if p.Type() == packet.AUTH {
				n++
			}
		}
		return n
	}
	eventually(t, "AUTH packets upstream", func() bool { return auths() >= 3 })
	if auths := auths(); auths < 3 { // the first exchange, the re-authentication, the bad one
		t.Fatalf("the upstream got %d AUTH packets", auths)
	}
}
