package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// TestParallelFirstRequestsSubscribeOnce: many first Requests made at
// once share one subscription to the response topics; the broker ends
// up with the responder's subscription and one more, not one per call.
func TestParallelFirstRequestsSubscribeOnce(t *testing.T) {
	b, url := startTern(t, nil)
	srv := connect(t, client.Config{Servers: []string{url}})
	if _, err := srv.Subscribe(ctx(t), "svc/echo", 1, func(m *client.Message) {
		if _, err := srv.Respond(context.Background(), m, &message.Message{Payload: m.Payload, QoS: 1}); err != nil && !errors.Is(err, client.ErrClosed) {
			t.Error(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	c := connect(t, client.Config{Servers: []string{url}})
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := fmt.Sprint(i)
			resp, err := c.Request(ctx(t), &message.Message{Topic: "svc/echo", Payload: []byte(w), QoS: 1})
			if err == nil && string(resp.Payload) != w {
				err = fmt.Errorf("request %s got %q", w, resp.Payload)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := b.Stats().Subscriptions; got != 2 {
		t.Fatalf("broker holds %d subscriptions, want 2 (the responder's and one response subscription)", got)
	}
}

// TestFullBufferDropsQoS0AndCounts: a subscription whose handler is
// stuck, with Config.MaxBuffered 2, keeps two QoS 0 messages, drops and
// counts the rest, and still keeps a QoS 1 message that comes after
// them (its acknowledgement waits instead). The handler then gets
// exactly the kept ones, in order.
func TestFullBufferDropsQoS0AndCounts(t *testing.T) {
	_, url := startTern(t, nil)
	c := connect(t, client.Config{Servers: []string{url}, MaxBuffered: 2})
	entered := make(chan struct{})
	release := make(chan struct{})
	got := make(chan string, 20)
	var once sync.Once
	sub, err := c.Subscribe(ctx(t), "full/#", 1, func(m *client.Message) {
		once.Do(func() { close(entered); <-release })
		got <- string(m.Payload)
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := connect(t, client.Config{Servers: []string{url}})
	publish := func(p string, qos byte) {
		t.Helper()
		if _, err := pub.Publish(ctx(t), &message.Message{Topic: "full/x", Payload: []byte(p), QoS: qos}); err != nil {
			t.Fatal(err)
		}
	}
	publish("first", 0)
	select {
	case <-entered:
	case <-ctx(t).Done():
		t.Fatal("the handler never got the first message")
	}
	for i := range 9 {
		publish(fmt.Sprint(i), 0)
	}
	publish("marker", 1) // after the nine, on the same connection: routed after them
	for sub.Buffered() < 3 {
		select {
		case <-ctx(t).Done():
			t.Fatalf("buffered %d, want 3", sub.Buffered())
		case <-time.After(time.Millisecond):
		}
	}
	if d := sub.Dropped(); d != 7 {
		t.Fatalf("Dropped() = %d, want 7 (9 QoS 0 messages, 2 kept)", d)
	}
	close(release)
	var seq []string
	for len(seq) < 4 {
		select {
		case p := <-got:
			seq = append(seq, p)
		case <-ctx(t).Done():
			t.Fatalf("handler got %v", seq)
		}
	}
	if want := "[first 0 1 marker]"; fmt.Sprint(seq) != want {
		t.Fatalf("handler got %v, want %s", seq, want)
	}
	if c.Dropped() != 0 {
		t.Fatalf("Client.Dropped() = %d, want 0", c.Dropped())
	}
}

// disconnector is a fake MQTT 5 server: it accepts every CONNECT, then
// sends DISCONNECT with code and a Server Reference ref, and closes.
// It returns its URL and a count of the connections it took.
func disconnector(t *testing.T, code packet.ReasonCode, ref string) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			p, err := packet.NewReader(nc).ReadPacket()
			if cp, ok := p.(*packet.Connect); ok && err == nil {
				w := packet.NewWriter(nc)
				w.Version = cp.Version
				w.WritePacket(&packet.Connack{})
				d := &packet.Disconnect{ReasonCode: code}
				d.Properties.ServerReference = ref
				w.WritePacket(d)
			}
			nc.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return "mqtt://" + l.Addr().String(), &n
}

// TestRedirectionByDisconnect: a server that accepts the connection and
// then sends DISCONNECT 0x9C Use another server or 0x9D Server moved with
// a Server Reference sends the client to the referenced server when
// Config.FollowRedirects allows [v5 noid:client-redirect]; without it
// the client reconnects to the servers it was given.
func TestRedirectionByDisconnect(t *testing.T) {
	_, url := startTern(t, nil)
	hostport := url[strings.Index(url, "://")+3:]
	for _, code := range []packet.ReasonCode{packet.UseAnotherServer, packet.ServerMoved} {
		t.Run(fmt.Sprintf("0x%02X", byte(code)), func(t *testing.T) {
			fake, _ := disconnector(t, code, hostport)
			ups := make(chan string, 10)
			downs := make(chan error, 10)
			c := connect(t, client.Config{Servers: []string{fake}, FollowRedirects: 1, BackoffMin: time.Millisecond,
				OnConnectionUp:   func(a *client.Connack) { ups <- a.Server },
				OnConnectionDown: func(err error) { downs <- err }})
			var de *client.DisconnectError
			select {
			case err := <-downs:
				if !errors.As(err, &de) || de.ReasonCode != code || de.Properties.ServerReference != hostport {
					t.Fatalf("connection down with %v, want a DisconnectError 0x%02X", err, byte(code))
				}
			case <-ctx(t).Done():
				t.Fatal("the DISCONNECT did not end the connection")
			}
		wait:
			for {
				select {
				case server := <-ups:
					if strings.HasSuffix(server, hostport) {
						break wait
					}
					if server != fake {
						t.Fatalf("connected to %s", server)
					}
				case <-ctx(t).Done():
					t.Fatal("the redirection was not followed")
				}
			}
			if _, err := c.Publish(ctx(t), &message.Message{Topic: "redir", Payload: []byte("x"), QoS: 1}); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("not followed", func(t *testing.T) {
		fake, n := disconnector(t, packet.UseAnotherServer, hostport)
		ups := make(chan string, 100)
		connect(t, client.Config{Servers: []string{fake}, BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond,
			OnConnectionUp: func(a *client.Connack) { ups <- a.Server }})
		for n.Load() < 3 {
			select {
			case server := <-ups:
				if server != fake {
					t.Fatalf("connected to %s without FollowRedirects", server)
				}
			case <-ctx(t).Done():
				t.Fatal("no reconnection to the given server")
			}
		}
	})
}

// TestDisconnectFromHandler: a handler that calls Disconnect does not
// wait for itself: Disconnect returns nil (not "handlers still running"
// when its context ends), and every goroutine of the client ends once
// the handler returns (TestMain's leak check).
func TestDisconnectFromHandler(t *testing.T) {
	_, url := startTern(t, nil)
	c := connect(t, client.Config{Servers: []string{url}})
	result := make(chan error, 1)
	var calls atomic.Int32
	if _, err := c.Subscribe(ctx(t), "stop/#", 1, func(m *client.Message) {
		if calls.Add(1) > 1 {
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		result <- c.Disconnect(dctx)
	}); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, client.Config{Servers: []string{url}})
	for i := range 3 {
		if _, err := pub.Publish(ctx(t), &message.Message{Topic: "stop/x", Payload: []byte(fmt.Sprint(i)), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("Disconnect from the handler: %v", err)
		}
	case <-ctx(t).Done():
		t.Fatal("Disconnect from the handler did not return")
	}
	if c.Connected() {
		t.Fatal("still connected after Disconnect")
	}
	if err := c.Disconnect(ctx(t)); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("second Disconnect: %v, want ErrClosed", err)
	}
}

// TestConnOnlyFailsFastWhenBroken: a client given only Config.Conn has
// nothing to reconnect to once that connection breaks: a QoS 1 publish
// in flight then fails with ErrConnectionLost, and later publishes (QoS
// 0, 1 and 2), Subscribe and Request fail at once with an error wrapping
// ErrClosed, instead of waiting for a connection that never comes.
func TestConnOnlyFailsFastWhenBroken(t *testing.T) {
	b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	p := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: b.Addr})
	nc, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	down := make(chan error, 1)
	c := connect(t, client.Config{Conn: nc, OnConnectionDown: func(err error) { down <- err }})
	if _, err := c.Publish(ctx(t), &message.Message{Topic: "conn/only", Payload: []byte("ok"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	p.BlackHoleNow() // the next PUBACK never comes
	inflight := c.PublishAsync(&message.Message{Topic: "conn/only", Payload: []byte("lost"), QoS: 1})
	nc.Close()
	select {
	case <-down:
	case <-ctx(t).Done():
		t.Fatal("the broken connection was not noticed")
	}
	if _, err := inflight.Wait(ctx(t)); !errors.Is(err, client.ErrConnectionLost) {
		t.Fatalf("publish in flight: %v, want ErrConnectionLost", err)
	}
	for qos := byte(0); qos <= 2; qos++ {
		_, err := c.Publish(ctx(t), &message.Message{Topic: "conn/only", Payload: []byte("later"), QoS: qos})
		if !errors.Is(err, client.ErrClosed) {
			t.Fatalf("QoS %d publish after the break: %v, want ErrClosed", qos, err)
		}
	}
	if _, err := c.Subscribe(ctx(t), "conn/#", 1, nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Subscribe after the break: %v, want ErrClosed", err)
	}
	if _, err := c.Request(ctx(t), &message.Message{Topic: "conn/rr", QoS: 1}); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Request after the break: %v, want ErrClosed", err)
	}
	_, err = c.PublishAsync(&message.Message{Topic: "x", QoS: 1}).Wait(ctx(t))
	t.Logf("publish after the break: %v", err)
	if err := c.Disconnect(ctx(t)); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
}

// TestQueuedMessagesExpire: MQTT 5 messages queued while the client is
// offline whose Message Expiry Interval passes are not sent; their
// tokens fail with ErrExpired (QoS 0, 1 and 2), never succeed. A queued
// message that is still alive when the connection comes back is sent
// with the interval that remains [v5 MQTT-3.3.2-6 is the server's rule;
// the client applies it to its own queue].
func TestQueuedMessagesExpire(t *testing.T) {
	_, url := startTern(t, nil)
	sub := connect(t, client.Config{Servers: []string{url}})
	got, err := sub.Subscribe(ctx(t), "exp/#", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := passProxy(t, url)
	c := connect(t, client.Config{Servers: []string{p.URL}, QueueQoS0: true,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	p.Refuse(true)
	p.CutNow()
	for c.Connected() {
		select {
		case <-ctx(t).Done():
			t.Fatal("still connected")
		case <-time.After(time.Millisecond):
		}
	}
	msg := func(name string, qos byte, expiry uint32) *message.Message {
		m := &message.Message{Topic: "exp/" + name, Payload: []byte(name), QoS: qos}
		m.Properties.MessageExpiry = expiry
		return m
	}
	var short []*client.Token
	for qos := byte(0); qos <= 2; qos++ {
		short = append(short, c.PublishAsync(msg(fmt.Sprint("short", qos), qos, 1)))
	}
	long := c.PublishAsync(msg("long", 1, 60))
	never := c.PublishAsync(msg("never", 1, 0))
	for i, tok := range short {
		if _, err := tok.Wait(ctx(t)); !errors.Is(err, client.ErrExpired) {
			t.Fatalf("QoS %d message with expiry 1 s, queued offline: %v, want ErrExpired", i, err)
		}
	}
	old := msg("old", 1, 5)
	old.Created = time.Now().Add(-10 * time.Second)
	if _, err := c.Publish(ctx(t), old); !errors.Is(err, client.ErrExpired) {
		t.Fatalf("publishing a message expired already: %v, want ErrExpired", err)
	}
	p.Refuse(false)
	for _, tok := range []*client.Token{long, never} {
		if _, err := tok.Wait(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	next, stop := iterPull(got.Messages(ctx(t)))
	defer stop()
	for _, want := range []string{"long", "never"} {
		m, ok := next()
		if !ok {
			t.Fatalf("no message %q", want)
		}
		if m.Topic != "exp/"+want {
			t.Fatalf("got %s, want exp/%s (expired messages must not be sent)", m.Topic, want)
		}
		switch e := m.Properties.MessageExpiry; want {
		case "long":
			if e == 0 || e >= 60 {
				t.Fatalf("long: Message Expiry Interval %d, want what remains of 60 s after more than 1 s", e)
			}
		case "never":
			if e != 0 {
				t.Fatalf("never: Message Expiry Interval %d, want none", e)
			}
		}
	}
}
