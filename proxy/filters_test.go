package proxy_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/proxy"
)

func topicFilter() *proxy.TopicFilter {
	return &proxy.TopicFilter{
		Up:   proxy.Rules{Allow: []string{"ok/#", "mixed/#"}, Deny: []string{"mixed/secret/#"}},
		Down: proxy.Rules{Deny: []string{"secret/#", "mixed/secret/#"}},
	}
}

// TestTopicFilterUp: a PUBLISH on a denied topic never reaches the
// upstream, and the client's QoS 1 and 2 exchanges complete with the
// proxy's answers (0x87 in MQTT 5), so its packet identifiers come free.
func TestTopicFilterUp(t *testing.T) {
	e := newEnv(t, nil, topicFilter())
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			c := e.raw(t, "up-"+v.String(), v)
			for id := uint16(1); id <= 2; id++ { // the same ids again: the proxy freed them
				c.Send(&packet.Publish{Topic: "no/x", QoS: 0, Payload: []byte("0")})
				c.Send(&packet.Publish{Topic: "mixed/secret/a", QoS: 1, PacketID: id, Payload: []byte("1")})
				ack := mqtttest.Expect[*packet.Puback](c)
				if ack.PacketID != id || (v == packet.V5 && ack.ReasonCode != packet.NotAuthorized) {
					t.Fatalf("got %v, want PUBACK %d (0x87 in 5.0)", ack, id)
				}
				c.Send(&packet.Publish{Topic: "no/y", QoS: 2, PacketID: 10 + id, Payload: []byte("2")})
				rec := mqtttest.Expect[*packet.Pubrec](c)
				if rec.PacketID != 10+id {
					t.Fatalf("got %v, want PUBREC %d", rec, 10+id)
				}
				if v == packet.V5 {
					if rec.ReasonCode != packet.NotAuthorized {
						t.Fatalf("got %v, want PUBREC 0x87", rec)
					}
					continue // a PUBREC >= 0x80 ends the exchange [v5 MQTT-4.3.3-9]
				}
				// A duplicate gets the PUBREC again, then PUBREL its PUBCOMP.
				c.Send(&packet.Publish{Topic: "no/y", QoS: 2, PacketID: 10 + id, Dup: true, Payload: []byte("2")})
				if rec := mqtttest.Expect[*packet.Pubrec](c); rec.PacketID != 10+id {
					t.Fatalf("got %v, want PUBREC %d again", rec, 10+id)
				}
				c.Send(&packet.Pubrel{PacketID: 10 + id})
				if comp := mqtttest.Expect[*packet.Pubcomp](c); comp.PacketID != 10+id {
					t.Fatalf("got %v, want PUBCOMP %d", comp, 10+id)
				}
			}
			// Allowed topics pass.
			c.Send(&packet.Publish{Topic: "ok/a", QoS: 1, PacketID: 3, Payload: []byte("ok")})
			if ack := mqtttest.Expect[*packet.Puback](c); ack.PacketID != 3 || ack.ReasonCode >= 0x80 {
				t.Fatalf("got %v, want PUBACK 3 success", ack)
			}
		})
	}
	for _, topic := range e.upstreamTopics() {
		if topic != "ok/a" {
			t.Fatalf("PUBLISH on %s reached the upstream", topic)
		}
	}
	// No PUBREL went upstream either: the proxy answered them.
	for _, p := range e.tap.Packets(mqtttest.ClientToServer) {
		if p.Type() == packet.PUBREL {
			t.Fatalf("%v reached the upstream", p)
		}
	}
}

// TestTopicFilterSubscribe: denied filters are refused by the proxy in the
// SUBACK, in the SUBSCRIBE's order, the others subscribed upstream; a
// wildcard subscription does not deliver denied topics, whose QoS 1 and 2
// deliveries the proxy acknowledges upstream.
func TestTopicFilterSubscribe(t *testing.T) {
	e := newEnv(t, nil, topicFilter())
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			c := e.raw(t, "sub-"+v.String(), v)
			c.Send(&packet.Subscribe{PacketID: 7, Subscriptions: []packet.Subscription{
				{Filter: "secret/x", QoS: 1}, {Filter: "#", QoS: 2}, {Filter: "secret/#", QoS: 0}, {Filter: "ok/+", QoS: 1}}})
			ack := mqtttest.Expect[*packet.Suback](c)
			fail := packet.V3SubackFailure
			if v == packet.V5 {
				fail = packet.NotAuthorized
			}
			want := []packet.ReasonCode{fail, 2, fail, 1}
			if ack.PacketID != 7 || !slicesEqual(ack.ReasonCodes, want) {
				t.Fatalf("got %v, want SUBACK 7 %v", ack, want)
			}
			// Only refused filters: the proxy answers alone.
			c.Send(&packet.Subscribe{PacketID: 8, Subscriptions: []packet.Subscription{{Filter: "secret/+", QoS: 1}}})
			if ack := mqtttest.Expect[*packet.Suback](c); ack.PacketID != 8 || !slicesEqual(ack.ReasonCodes, []packet.ReasonCode{fail}) {
				t.Fatalf("got %v, want SUBACK 8 [%v]", ack, fail)
			}
			// Deliveries: secret ones are held back, at every QoS, and the
			// broker's in-flight window does not fill up.
			for i := range 3 {
				for qos := byte(0); qos <= 2; qos++ {
					e.broker.Server.Publish("secret/s", []byte("no"), qos, false)
				}
				e.broker.Server.Publish("ok/fine", []byte{'0' + byte(i)}, 1, false)
				p := c.ExpectPublish()
				if p.Topic != "ok/fine" || p.Payload[0] != '0'+byte(i) {
					t.Fatalf("got %v, want ok/fine", p)
				}
				c.Send(&packet.Puback{PacketID: p.PacketID})
			}
			c.NoPacket(100 * time.Millisecond)
		})
	}
	// The upstream never saw the refused filters.
	for _, p := range e.tap.Packets(mqtttest.ClientToServer) {
		if s, ok := p.(*packet.Subscribe); ok {
			for _, sub := range s.Subscriptions {
				if strings.HasPrefix(sub.Filter, "secret") {
					t.Fatalf("upstream got SUBSCRIBE %v", s)
				}
			}
		}
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRewrite: the upstream sees the client identifier and user name the
// templates make.
func TestRewrite(t *testing.T) {
	rw := &proxy.Rewrite{ClientID: "tenant-a/{client_id}", Username: "{username}@{remote_ip}"}
	if err := rw.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (&proxy.Rewrite{ClientID: "{clientid}"}).Validate(); err == nil || !strings.Contains(err.Error(), "{clientid}") {
		t.Fatalf("Validate of a bad placeholder: %v", err)
	}
	e := newEnv(t, nil, rw)
	for _, v := range versions {
		c := mqtttest.DialRaw(t, e.proxy.Addr, v)
		c.Connect(&packet.Connect{ClientID: "dev1", Username: "alice", Password: []byte("pw"), CleanStart: true})
		c.Close()
	}
	var got []string
	eventually(t, "three CONNECTs upstream", func() bool {
		got = got[:0]
		for _, p := range e.tap.Packets(mqtttest.ClientToServer) {
			if cp, ok := p.(*packet.Connect); ok {
				got = append(got, cp.ClientID+" "+cp.Username+" "+string(cp.Password))
			}
		}
		return len(got) == 3
	})
	for _, g := range got {
		if g != "tenant-a/dev1 alice@127.0.0.1 pw" {
			t.Fatalf("upstream CONNECT %q, want %q", g, "tenant-a/dev1 alice@127.0.0.1 pw")
		}
	}
}

// TestRateLimitDisconnect: a client over its message rate is closed with
// 0x96 Message rate too high (MQTT 5), and nothing past the limit goes up.
func TestRateLimitDisconnect(t *testing.T) {
	e := newEnv(t, nil, &proxy.RateLimit{Messages: 0.01, Policy: proxy.Disconnect})
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			c := e.raw(t, "rl-"+v.String(), v)
			c.Send(&packet.Publish{Topic: "rl/" + v.String(), QoS: 1, PacketID: 1, Payload: []byte("first")})
			mqtttest.Expect[*packet.Puback](c) // the burst of one message
			c.Send(&packet.Publish{Topic: "rl/" + v.String(), QoS: 1, PacketID: 2, Payload: []byte("second")})
			got := c.ExpectClosed()
			if v == packet.V5 {
				expectDisconnect(t, got, packet.MessageRateTooHigh)
			}
		})
	}
	eventually(t, "2 PUBLISHes upstream, one per client", func() bool { return len(e.upstreamTopics()) == 2 })
	time.Sleep(50 * time.Millisecond)
	if n := len(e.upstreamTopics()); n != 2 {
		t.Fatalf("upstream got %d PUBLISHes, want 2 (one per client)", n)
	}
}

// TestRateLimitDelay: over the limit, messages wait (the proxy stops
// reading the client) but none is lost and the connection stays.
func TestRateLimitDelay(t *testing.T) {
	e := newEnv(t, nil, &proxy.RateLimit{Messages: 50, Bytes: 4000, Policy: proxy.Delay})
	sub := e.connect(t, "rl-sub", packet.V5)
	ch := collect(t, sub, "rl/#", 1)
	pub := e.connect(t, "rl-pub", packet.V311)
	payload := strings.Repeat("x", 100)
	for i := range 80 { // more than a second's worth of each limit
		publish(t, pub, "rl/d", payload, byte(i%2))
	}
	for range 80 {
		expectMsg(t, ch, "rl/d", payload)
	}
}

// TestPacketLog: every packet, both ways, in the log, without payloads.
func TestPacketLog(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &buf}, nil))
	e := newEnv(t, nil, &proxy.PacketLog{Logger: log})
	c := e.raw(t, "logged", packet.V5)
	c.Send(&packet.Publish{Topic: "log/t", QoS: 1, PacketID: 1, Payload: []byte("very-secret-payload")})
	mqtttest.Expect[*packet.Puback](c)
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{"dir=up packet=\"CONNECT", "dir=down packet=\"CONNACK", `PUBLISH topic=\"log/t\" qos=1`, "dir=down packet=\"PUBACK id=1"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "very-secret-payload") {
		t.Errorf("log has the payload:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestCustomFilter: a filter that changes payloads going down and closes
// a client publishing on a forbidden topic with its own reason code.
func TestCustomFilter(t *testing.T) {
	f := proxy.FilterFunc(func(_ context.Context, c *proxy.Conn, d proxy.Direction, p packet.Packet) proxy.Verdict {
		pub, ok := p.(*packet.Publish)
		if !ok {
			return proxy.Forward()
		}
		if d == proxy.Up && pub.Topic == "admin/reboot" {
			return proxy.CloseWith(packet.AdministrativeAction, "no reboots from "+c.Connect().ClientID)
		}
		if d == proxy.Down {
			out := *pub
			out.Payload = bytes.ToUpper(pub.Payload)
			return proxy.Verdict{Packet: &out}
		}
		return proxy.Forward()
	})
	e := newEnv(t, nil, f)
	sub := e.connect(t, "cf-sub", packet.V5)
	ch := collect(t, sub, "cf/#", 1)
	pub := e.connect(t, "cf-pub", packet.V311)
	publish(t, pub, "cf/a", "shout", 1)
	expectMsg(t, ch, "cf/a", "SHOUT")

	c := e.raw(t, "rebooter", packet.V5)
	c.Send(&packet.Publish{Topic: "admin/reboot", QoS: 1, PacketID: 1})
	expectDisconnect(t, c.ExpectClosed(), packet.AdministrativeAction)
	for _, topic := range e.upstreamTopics() {
		if topic == "admin/reboot" {
			t.Fatal("admin/reboot reached the upstream")
		}
	}
}

// TestDropSuccessV5: a filter that swallows MQTT 5 messages with a
// non-error code (0x10 No matching subscribers): the QoS 2 exchange goes
// on to PUBREL and PUBCOMP, answered by the proxy.
func TestDropSuccessV5(t *testing.T) {
	quiet := proxy.FilterFunc(func(_ context.Context, _ *proxy.Conn, d proxy.Direction, p packet.Packet) proxy.Verdict {
		if pub, ok := p.(*packet.Publish); ok && d == proxy.Up && strings.HasPrefix(pub.Topic, "quiet/") {
			return proxy.DropWith(packet.NoMatchingSubscribers, "quiet")
		}
		return proxy.Forward()
	})
	e := newEnv(t, nil, quiet)
	c := e.raw(t, "quiet", packet.V5)
	c.Send(&packet.Publish{Topic: "quiet/1", QoS: 1, PacketID: 1})
	if ack := mqtttest.Expect[*packet.Puback](c); ack.ReasonCode != packet.NoMatchingSubscribers {
		t.Fatalf("got %v, want PUBACK 0x10", ack)
	}
	c.Send(&packet.Publish{Topic: "quiet/2", QoS: 2, PacketID: 2})
	if rec := mqtttest.Expect[*packet.Pubrec](c); rec.ReasonCode != packet.NoMatchingSubscribers {
		t.Fatalf("got %v, want PUBREC 0x10", rec)
	}
	c.Send(&packet.Pubrel{PacketID: 2})
	if comp := mqtttest.Expect[*packet.Pubcomp](c); comp.PacketID != 2 || comp.ReasonCode != 0 {
		t.Fatalf("got %v, want PUBCOMP 2", comp)
	}
	if ts := e.upstreamTopics(); len(ts) != 0 {
		t.Fatalf("upstream got %v", ts)
	}
}

// TestValidateFilters: Server.Validate runs the filters' own checks.
func TestValidateFilters(t *testing.T) {
	s := &proxy.Server{Upstreams: []string{"tcp://127.0.0.1:1883"},
		Filters: []proxy.Filter{&proxy.TopicFilter{Up: proxy.Rules{Deny: []string{"a/#/b"}}}}}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "Filters[0]") {
		t.Fatalf("Validate: %v", err)
	}
	if err := (&proxy.Server{}).Validate(); err == nil || !strings.Contains(err.Error(), "Upstreams") {
		t.Fatalf("Validate of the zero Server: %v", err)
	}
}
