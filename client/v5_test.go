package client_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/broker/auth"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
)

// TestReceiveMaximumFromServer: the server's Receive Maximum of 2 bounds
// the client's QoS 1 and 2 in flight (the server disconnects with 0x93
// otherwise): 100 publishes complete on one connection [v5 MQTT-3.3.4-9].
func TestReceiveMaximumFromServer(t *testing.T) {
	_, url := startTern(t, &broker.Server{ReceiveMaximum: 2})
	down := make(chan error, 10)
	c := connect(t, client.Config{Servers: []string{url}, OnConnectionDown: func(err error) { down <- err }})
	var toks []*client.Token
	for i := range 100 {
		toks = append(toks, c.PublishAsync(&message.Message{Topic: "rm", Payload: []byte("x"), QoS: byte(1 + i%2)}))
	}
	for _, tok := range toks {
		if _, err := tok.Wait(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-down:
		t.Fatalf("connection lost: %v", err)
	default:
	}
}

// TestReceiveMaximumToServer: with ManualAck and a Receive Maximum of 2
// the server holds the third message until one is acknowledged; acks
// given out of order go out in order [v5 MQTT-4.6.0-2] [v3 MQTT-4.6.0-2].
func TestReceiveMaximumToServer(t *testing.T) {
	_, url := startTern(t, nil)
	c := connect(t, client.Config{Servers: []string{url}, ManualAck: true, Properties: packet.Properties{ReceiveMaximum: 2}})
	s, err := c.Subscribe(ctx(t), "rm2", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := connect(t, client.Config{Servers: []string{url}})
	for i := range 5 {
		if _, err := pub.Publish(ctx(t), &message.Message{Topic: "rm2", Payload: []byte{byte(i)}, QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var held []*client.Message
	next, stop := iterPull(s.Messages(ctx(t)))
	defer stop()
	for range 2 {
		m, ok := next()
		if !ok {
			t.Fatal("iterator ended")
		}
		held = append(held, m)
	}
	time.Sleep(200 * time.Millisecond) // give a misbehaving server time to send a third
	if n := s.Buffered(); n != 0 {
		t.Fatalf("%d messages beyond the Receive Maximum", n)
	}
	// Acknowledge out of order: the acks still go in order, and the rest flows.
	held[1].Ack()
	held[0].Ack()
	for i := 2; i < 5; i++ {
		m, ok := next()
		if !ok || m.Payload[0] != byte(i) {
			t.Fatalf("message %d: %v %v", i, m, ok)
		}
		m.Ack()
	}
}

// TestTopicAliasesBothWays: the client assigns aliases up to the
// server's Topic Alias Maximum and resolves the server's
// [v5 MQTT-3.3.2-11] [v5 MQTT-3.3.2-7].
func TestTopicAliasesBothWays(t *testing.T) {
	_, url := startTern(t, &broker.Server{OutboundTopicAliases: true, TopicAliasMaximum: broker.TopicAliases(2)})
	c := connect(t, client.Config{Servers: []string{url}, Properties: packet.Properties{TopicAliasMaximum: 2}})
	got := make(chan string, 100)
	if _, err := c.Subscribe(ctx(t), "alias/#", 1, func(m *client.Message) {
		if m.Properties.TopicAlias != 0 {
			t.Error("alias leaked to the application")
		}
		got <- m.Topic
	}); err != nil {
		t.Fatal(err)
	}
	topics := []string{"alias/a", "alias/b", "alias/c", "alias/a", "alias/b", "alias/c", "alias/a"}
	for _, tp := range topics {
		if _, err := c.Publish(ctx(t), &message.Message{Topic: tp, Payload: []byte("x"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		if g := <-got; g != tp {
			t.Fatalf("got %q, want %q", g, tp)
		}
	}
}

// TestMaximumPacketSizeBothWays: a publish larger than the server's
// Maximum Packet Size fails without being sent (the connection stays);
// the server sends nothing larger than the client's [v5 MQTT-3.1.2-24] [v5 MQTT-3.2.2-15].
func TestMaximumPacketSizeBothWays(t *testing.T) {
	_, url := startTern(t, &broker.Server{MaxPacketSize: 256})
	down := make(chan error, 10)
	c := connect(t, client.Config{Servers: []string{url}, Properties: packet.Properties{MaximumPacketSize: 128},
		OnConnectionDown: func(err error) { down <- err }})
	got := newCounter()
	if _, err := c.Subscribe(ctx(t), "mps", 1, got.handler); err != nil {
		t.Fatal(err)
	}
	_, err := c.Publish(ctx(t), &message.Message{Topic: "mps", Payload: make([]byte, 300), QoS: 1})
	if !errors.Is(err, packet.ErrPacketTooLarge) {
		t.Fatalf("oversized publish: %v, want ErrPacketTooLarge", err)
	}
	// 200 bytes: within the server's limit, above the client's.
	if _, err := c.Publish(ctx(t), &message.Message{Topic: "mps", Payload: []byte(strings.Repeat("b", 200)), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx(t), &message.Message{Topic: "mps", Payload: []byte("small"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	got.wait(t, "small")
	if got.count(strings.Repeat("b", 200)) != 0 {
		t.Fatal("the server sent a packet above the client's Maximum Packet Size")
	}
	select {
	case err := <-down:
		t.Fatalf("connection lost: %v", err)
	default:
	}
}

// TestSessionExpiry: a session with an expiry interval is present on the
// next connection; one without is not.
func TestSessionExpiry(t *testing.T) {
	_, url := startTern(t, nil)
	for _, exp := range []uint32{0, 60} {
		c := connect(t, client.Config{Servers: []string{url}, ClientID: "exp", SessionExpiry: exp, CleanStart: true})
		if err := c.Disconnect(ctx(t)); err != nil {
			t.Fatal(err)
		}
		c2, err := client.New(client.Config{Servers: []string{url}, ClientID: "exp", SessionExpiry: exp, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		ack, err := c2.Connect(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if ack.SessionPresent != (exp > 0) {
			t.Errorf("expiry %d: session present %v", exp, ack.SessionPresent)
		}
		c2.Disconnect(ctx(t))
	}
}

// TestWillWithDelay: a client whose connection breaks has its will
// published, with its properties, after the Will Delay Interval.
func TestWillWithDelay(t *testing.T) {
	_, url := startTern(t, nil)
	got := make(chan *client.Message, 1)
	sub := connect(t, client.Config{Servers: []string{url}})
	if _, err := sub.Subscribe(ctx(t), "will", 1, func(m *client.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, url)
	will := &packet.Will{Topic: "will", Payload: []byte("gone"), QoS: 1}
	will.Properties.WillDelay = 1
	will.Properties.User = []packet.UserProperty{{Key: "k", Value: "v"}}
	c := connect(t, client.Config{Servers: []string{p.url()}, ClientID: "willing", SessionExpiry: 10, Will: will})
	_ = c
	p.setRefuse(true)
	start := time.Now()
	p.dropAll()
	select {
	case m := <-got:
		t.Logf("will after %v (delay 1 s)", time.Since(start))
		if string(m.Payload) != "gone" || len(m.Properties.User) != 1 || m.Properties.User[0].Value != "v" {
			t.Fatalf("will %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("will not published")
	}
}

// TestRequestResponse: Request gets the response a responder sends with
// Respond, matched by Correlation Data; user properties travel both ways.
func TestRequestResponse(t *testing.T) {
	_, url := startTern(t, nil)
	srv := connect(t, client.Config{Servers: []string{url}})
	if _, err := srv.Subscribe(ctx(t), "svc/double", 1, func(m *client.Message) {
		resp := &message.Message{Payload: append(m.Payload, m.Payload...), QoS: 1}
		resp.Properties.User = m.Properties.User
		if _, err := srv.Respond(context.Background(), m, resp); err != nil && !errors.Is(err, client.ErrClosed) {
			t.Error(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	c := connect(t, client.Config{Servers: []string{url}})
	for _, w := range []string{"ab", "xyz"} {
		req := &message.Message{Topic: "svc/double", Payload: []byte(w), QoS: 1}
		req.Properties.User = []packet.UserProperty{{Key: "word", Value: w}}
		rctx := ctx(t)
		resp, err := c.Request(rctx, req)
		if err != nil {
			t.Fatalf("%v (%T) ctx %v", err, err, rctx.Err())
		}
		if string(resp.Payload) != w+w || len(resp.Properties.User) != 1 || resp.Properties.User[0].Value != w {
			t.Fatalf("response %q %v", resp.Payload, resp.Properties.User)
		}
	}
}

// TestSCRAMAndReauthentication: SCRAM-SHA-256 and -512 against Tern's
// password file, re-authentication on the live connection, and a wrong
// password refused with a ConnectError.
func TestSCRAMAndReauthentication(t *testing.T) {
	passwd := filepath.Join(t.TempDir(), "passwd")
	if err := auth.PasswdCommand(auth.PasswdArgs{File: passwd, Create: true, Batch: true, User: "alice", Password: "s3cret", Cost: 4}, nil, io.Discard, os.Stderr); err != nil {
		t.Fatal(err)
	}
	pf, err := auth.LoadPasswordFile(passwd)
	if err != nil {
		t.Fatal(err)
	}
	_, url := startTern(t, &broker.Server{Authenticator: pf, AuthMethods: pf.SCRAMMethods()})
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c := connect(t, client.Config{Servers: []string{url}, Auth: client.SCRAM(mech, "alice", "s3cret")})
			if err := c.Reauthenticate(ctx(t)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Publish(ctx(t), &message.Message{Topic: "scram", Payload: []byte("x"), QoS: 1}); err != nil {
				t.Fatal(err)
			}
			bad, _ := client.New(client.Config{Servers: []string{url}, Auth: client.SCRAM(mech, "alice", "wrong"), Logger: quiet()})
			_, err := bad.Connect(ctx(t))
			var ce *client.ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("wrong password: %v, want a ConnectError", err)
			}
			t.Logf("wrong password: %v", err)
			bad.Disconnect(ctx(t))
		})
	}
}

// TestRedirection: a server answering 0x9C Use another server with a
// Server Reference sends the client to the real broker when
// FollowRedirects allows, and is a ConnectError otherwise.
func TestRedirection(t *testing.T) {
	_, url := startTern(t, nil)
	for _, code := range []packet.ReasonCode{packet.UseAnotherServer, packet.ServerMoved} {
		ref := refuser(t, func(*packet.Connect) *packet.Connack {
			ack := &packet.Connack{ReasonCode: code}
			ack.Properties.ServerReference = url[strings.Index(url, "://")+3:]
			return ack
		})
		c := connect(t, client.Config{Servers: []string{ref}, FollowRedirects: 1})
		if _, err := c.Publish(ctx(t), &message.Message{Topic: "redir", Payload: []byte("x"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		nc, _ := client.New(client.Config{Servers: []string{ref}, Logger: quiet()})
		_, err := nc.Connect(ctx(t))
		var ce *client.ConnectError
		if !errors.As(err, &ce) || ce.ReasonCode != code || ce.Properties.ServerReference == "" {
			t.Fatalf("without FollowRedirects: %v", err)
		}
		nc.Disconnect(ctx(t))
	}
}

// TestSubscriptionIdentifierRouting: overlapping subscriptions each get
// the message once, routed by the identifiers the server sends back.
func TestSubscriptionIdentifierRouting(t *testing.T) {
	_, url := startTern(t, nil)
	c := connect(t, client.Config{Servers: []string{url}})
	a, b := newCounter(), newCounter()
	sa, err := c.Subscribe(ctx(t), "r/#", 1, a.handler)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := c.Subscribe(ctx(t), "r/x", 1, b.handler)
	if err != nil {
		t.Fatal(err)
	}
	if sa.ID() == 0 || sb.ID() == 0 || sa.ID() == sb.ID() {
		t.Fatalf("subscription ids %d %d", sa.ID(), sb.ID())
	}
	c.Publish(ctx(t), &message.Message{Topic: "r/x", Payload: []byte("1"), QoS: 1})
	c.Publish(ctx(t), &message.Message{Topic: "r/y", Payload: []byte("2"), QoS: 1})
	a.wait(t, "2")
	b.wait(t, "1")
	if a.count("1") != 1 || b.count("1") != 1 || b.count("2") != 0 {
		t.Fatalf("a %v b %v", a.n, b.n)
	}
}
