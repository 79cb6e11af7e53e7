package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
)

// counter counts the messages received per payload, and tells when a
// payload arrives.
type counter struct {
	mu   sync.Mutex
	n    map[string]int
	seen []string
	ch   chan string
}

func newCounter() *counter { return &counter{n: map[string]int{}, ch: make(chan string, 1000)} }

func (c *counter) handler(m *client.Message) {
	c.mu.Lock()
	c.n[string(m.Payload)]++
	c.seen = append(c.seen, string(m.Payload))
	c.mu.Unlock()
	select {
	case c.ch <- string(m.Payload):
	default:
	}
}

func (c *counter) count(p string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[p]
}

func (c *counter) wait(t testing.TB, p string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for c.count(p) == 0 {
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("message %q never arrived", p)
		}
	}
}

// connectRetry connects c, trying again when the proxy cut the first
// connection during the handshake.
func connectRetry(t testing.TB, c *client.Client) {
	t.Helper()
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Connect(ctx)
		cancel()
		if err == nil {
			return
		}
		if i == 3 {
			t.Fatal(err)
		}
	}
}

// TestCutPublishAtEveryByte publishes one QoS 1 or 2 message through a
// proxy that cuts the connection after N bytes, for every N over the
// whole exchange (CONNECT to PUBACK / PUBCOMP), in each direction: the
// publish completes after the reconnect, the message arrives once (QoS 2)
// or at least once (QoS 1), before a marker published after it
// [v5 MQTT-4.4.0-1] [v3 MQTT-4.4.0-1] [v5 MQTT-3.3.1-1] [v3 MQTT-3.3.1-1] [v5 MQTT-4.3.3-3] [v3 MQTT-4.3.3-1].
func TestCutPublishAtEveryByte(t *testing.T) {
	_, url := startTern(t, nil)
	for _, qos := range []byte{1, 2} {
		for _, up := range []bool{true, false} {
			name := fmt.Sprintf("qos%d/up=%v", qos, up)
			t.Run(name, func(t *testing.T) {
				total := cutPublish(t, url, qos, up, -1, 0)
				t.Logf("exchange: %d bytes in that direction", total)
				for n := int64(0); n <= total; n++ {
					cutPublish(t, url, qos, up, n, total)
				}
			})
		}
	}
}

// cutPublish runs one exchange with the cut at n (-1: none, and returns
// the bytes counted).
func cutPublish(t *testing.T, url string, qos byte, up bool, n, total int64) int64 {
	id := fmt.Sprintf("q%d-%v-%d", qos, up, n)
	cnt := newCounter()
	sub := connect(t, client.Config{Servers: []string{url}, ClientID: "sub-" + id})
	if _, err := sub.Subscribe(ctx(t), "cut/"+id, 2, cnt.handler); err != nil {
		t.Fatal(err)
	}
	p := newCutProxy(t, url, 1, n, up)
	pub, err := client.New(client.Config{Servers: []string{p.url()}, ClientID: "pub-" + id, Logger: quiet(),
		BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond, SessionExpiry: 60})
	if err != nil {
		t.Fatal(err)
	}
	connectRetry(t, pub)
	if _, err := pub.Publish(ctx(t), &message.Message{Topic: "cut/" + id, Payload: []byte("m"), QoS: qos}); err != nil {
		t.Fatalf("cut at %d/%d: publish: %v", n, total, err)
	}
	counted := p.counted.Load()
	if _, err := pub.Publish(ctx(t), &message.Message{Topic: "cut/" + id, Payload: []byte("marker"), QoS: qos}); err != nil {
		t.Fatalf("cut at %d/%d: publish marker: %v", n, total, err)
	}
	cnt.wait(t, "marker")
	got := cnt.count("m")
	if got == 0 || (qos == 2 && got != 1) {
		t.Fatalf("cut at %d/%d: QoS %d message arrived %d times", n, total, qos, got)
	}
	cnt.mu.Lock()
	if cnt.seen[len(cnt.seen)-1] != "marker" || cnt.seen[0] != "m" {
		t.Errorf("cut at %d/%d: order %v", n, total, cnt.seen)
	}
	cnt.mu.Unlock()
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pub.Disconnect(dctx)
	return counted
}

// TestCutReceiveAtEveryByte has a session receive one QoS 1 or 2
// message through a proxy that cuts the connection after N bytes, for
// every N over the exchange (CONNECT to PUBACK / PUBCOMP), in each
// direction: after the reconnect the message has been handed to the
// application once (QoS 2) or at least once (QoS 1)
// [v5 MQTT-4.3.3-10] [v3 MQTT-4.3.3-2] [v5 MQTT-4.3.3-11].
func TestCutReceiveAtEveryByte(t *testing.T) {
	_, url := startTern(t, nil)
	for _, qos := range []byte{1, 2} {
		for _, up := range []bool{true, false} {
			t.Run(fmt.Sprintf("qos%d/up=%v", qos, up), func(t *testing.T) {
				total := cutReceive(t, url, qos, up, -1, 0)
				t.Logf("exchange: %d bytes in that direction", total)
				for n := int64(0); n <= total; n++ {
					cutReceive(t, url, qos, up, n, total)
				}
			})
		}
	}
}

func cutReceive(t *testing.T, url string, qos byte, up bool, n, total int64) int64 {
	id := fmt.Sprintf("r%d-%v-%d", qos, up, n)
	topic := "cutr/" + id
	// The session's subscription, made on a direct connection.
	setup := connect(t, client.Config{Servers: []string{url}, ClientID: "rcv-" + id, SessionExpiry: 300, CleanStart: true})
	if _, err := setup.Subscribe(ctx(t), topic, 2, nil); err != nil {
		t.Fatal(err)
	}
	if err := setup.Disconnect(ctx(t)); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, client.Config{Servers: []string{url}, ClientID: "rpub-" + id})
	if _, err := pub.Publish(ctx(t), &message.Message{Topic: topic, Payload: []byte("m"), QoS: qos}); err != nil {
		t.Fatal(err)
	}
	cnt := newCounter()
	p := newCutProxy(t, url, 1, n, up)
	rcv, err := client.New(client.Config{Servers: []string{p.url()}, ClientID: "rcv-" + id, Logger: quiet(), SessionExpiry: 300,
		BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond, OnMessage: cnt.handler})
	if err != nil {
		t.Fatal(err)
	}
	connectRetry(t, rcv)
	cnt.wait(t, "m")
	counted := p.counted.Load()
	if _, err := pub.Publish(ctx(t), &message.Message{Topic: topic, Payload: []byte("marker"), QoS: qos}); err != nil {
		t.Fatal(err)
	}
	cnt.wait(t, "marker")
	if n < 0 {
		// Let the exchange finish before reading the count: the marker's
		// own acknowledgement is not part of it.
		counted = p.counted.Load()
	}
	got := cnt.count("m")
	if got == 0 || (qos == 2 && got != 1) {
		t.Fatalf("cut at %d/%d: QoS %d message handed over %d times", n, total, qos, got)
	}
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rcv.Disconnect(dctx)
	return counted
}

// TestSubscriptionsSurviveReconnect: a client whose server lost the
// session (MQTT 5, no session expiry) subscribes again after the
// reconnect and gets messages on the same handler.
func TestSubscriptionsSurviveReconnect(t *testing.T) {
	for _, v := range versions {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			_, url := startTern(t, nil)
			p := newProxy(t, url)
			up := make(chan struct{}, 10)
			cnt := newCounter()
			c := connect(t, client.Config{Servers: []string{p.url()}, Version: v, CleanStart: true, ClientID: "survivor",
				BackoffMin: time.Millisecond, OnConnectionUp: func(*client.Connack) { up <- struct{}{} }})
			<-up
			if _, err := c.Subscribe(ctx(t), "s/#", 1, cnt.handler); err != nil {
				t.Fatal(err)
			}
			pub := connect(t, client.Config{Servers: []string{url}, Version: v})
			p.dropAll()
			<-up
			// The resubscription is in flight; publish until it lands.
			for i := 0; cnt.count("after") == 0; i++ {
				if _, err := pub.Publish(ctx(t), &message.Message{Topic: "s/x", Payload: []byte("after"), QoS: 1}); err != nil {
					t.Fatal(err)
				}
				select {
				case <-cnt.ch:
				case <-time.After(50 * time.Millisecond):
				}
				if i > 200 {
					t.Fatal("no message after the reconnect: the subscription was lost")
				}
			}
		})
	}
}

// TestQoS0WhileOfflineIsReportedDropped: a QoS 0 publish while the
// connection is down fails with ErrDropped, never success; with
// QueueQoS0 it is queued and sent after the reconnect.
func TestQoS0WhileOfflineIsReportedDropped(t *testing.T) {
	_, url := startTern(t, nil)
	p := newProxy(t, url)
	down := make(chan error, 10)
	c := connect(t, client.Config{Servers: []string{p.url()}, BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
		OnConnectionDown: func(err error) { down <- err }})
	p.setRefuse(true)
	p.dropAll()
	<-down
	_, err := c.Publish(ctx(t), &message.Message{Topic: "q0", Payload: []byte("x")})
	if !errors.Is(err, client.ErrDropped) {
		t.Fatalf("QoS 0 publish while offline: %v, want ErrDropped", err)
	}
	tok := c.PublishAsync(&message.Message{Topic: "q0", Payload: []byte("x")})
	if _, err := tok.Wait(ctx(t)); !errors.Is(err, client.ErrDropped) {
		t.Fatalf("async QoS 0 publish while offline: %v, want ErrDropped", err)
	}
	// QoS 1 is accepted and sent once the server is back.
	tok = c.PublishAsync(&message.Message{Topic: "q1", Payload: []byte("x"), QoS: 1})
	p.setRefuse(false)
	if _, err := tok.Wait(ctx(t)); err != nil {
		t.Fatalf("QoS 1 publish made offline: %v", err)
	}
}

// TestWaitNeverHangs: every wait ends with its context, and Disconnect
// completes the tokens still waiting.
func TestWaitNeverHangs(t *testing.T) {
	_, url := startTern(t, nil)
	p := newProxy(t, url)
	down := make(chan error, 10)
	c, err := client.New(client.Config{Servers: []string{p.url()}, Logger: quiet(), BackoffMin: 10 * time.Millisecond,
		OnConnectionDown: func(err error) { down <- err }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connect(ctx(t)); err != nil {
		t.Fatal(err)
	}
	p.setRefuse(true)
	p.dropAll()
	<-down
	tok := c.PublishAsync(&message.Message{Topic: "w", Payload: []byte("x"), QoS: 1})
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := tok.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait offline: %v, want the context's deadline", err)
	}
	if _, err := c.Publish(short, &message.Message{Topic: "w", Payload: []byte("x"), QoS: 2}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish offline: %v, want the context's deadline", err)
	}
	if _, err := c.Subscribe(short, "w", 1, nil); !errors.Is(err, client.ErrNotConnected) {
		t.Fatalf("Subscribe offline: %v, want ErrNotConnected", err)
	}
	if err := c.Disconnect(ctx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tok.Done():
	default:
		t.Fatal("token not completed by Disconnect")
	}
	if _, err := tok.Wait(ctx(t)); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("after Disconnect: %v, want ErrClosed", err)
	}
}

// TestNoReorderAfterReconnect: 300 QoS 1 messages published while the
// connection is cut every few milliseconds arrive in order: each message
// seen for the first time is the one after the highest seen so far
// [v5 MQTT-4.6.0-1] [v3 MQTT-4.6.0-1].
func TestNoReorderAfterReconnect(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprint("qos", qos), func(t *testing.T) {
			_, url := startTern(t, nil)
			var mu sync.Mutex
			next := 0
			var bad error
			done := make(chan struct{})
			const total = 300
			sub := connect(t, client.Config{Servers: []string{url}})
			if _, err := sub.Subscribe(ctx(t), "o", 2, func(m *client.Message) {
				var i int
				fmt.Sscan(string(m.Payload), &i)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case i == next:
					next++
					if next == total {
						close(done)
					}
				case i > next && bad == nil:
					bad = fmt.Errorf("message %d before %d", i, next)
				}
			}); err != nil {
				t.Fatal(err)
			}
			p := newProxy(t, url)
			pub := connect(t, client.Config{Servers: []string{p.url()}, ClientID: "orderly", SessionExpiry: 60, BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond})
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case <-time.After(3 * time.Millisecond):
						p.dropAll()
					}
				}
			}()
			toks := make([]*client.Token, total)
			for i := range total {
				toks[i] = pub.PublishAsync(&message.Message{Topic: "o", Payload: []byte(fmt.Sprint(i)), QoS: qos})
			}
			for i, tok := range toks {
				if _, err := tok.Wait(ctx(t)); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			close(stop)
			wg.Wait()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Fatalf("only %d of %d arrived", next, total)
			}
			mu.Lock()
			defer mu.Unlock()
			if bad != nil {
				t.Fatal(bad)
			}
		})
	}
}

var _ = packet.V5
