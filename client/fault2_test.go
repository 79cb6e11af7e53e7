package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"go.uber.org/goleak"
)

// refuser is a fake server answering every CONNECT with the CONNACK that
// answer returns for it.
func refuser(t testing.TB, answer func(*packet.Connect) *packet.Connack) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			r := packet.NewReader(c)
			p, err := r.ReadPacket()
			if cp, ok := p.(*packet.Connect); ok && err == nil {
				w := packet.NewWriter(c)
				w.Version = cp.Version
				w.WritePacket(answer(cp))
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return "mqtt://" + l.Addr().String()
}

// TestRefusalCarriesTheCode: a server refusing CONNECT with each code
// of MQTT 3.1.1 (1 to 5) and each CONNACK code of MQTT 5 (0x80 and
// above) makes Connect return a *ConnectError with that code.
func TestRefusalCarriesTheCode(t *testing.T) {
	var codes []packet.ReasonCode
	for c := 0x80; c <= 0xFF; c++ {
		if packet.ReasonCode(c).ValidFor(packet.CONNACK) {
			codes = append(codes, packet.ReasonCode(c))
		}
	}
	check := func(t *testing.T, v packet.Version, code packet.ReasonCode) {
		url := refuser(t, func(*packet.Connect) *packet.Connack { return &packet.Connack{ReasonCode: code} })
		c, err := client.New(client.Config{Servers: []string{url}, Version: v, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Connect(ctx(t))
		var ce *client.ConnectError
		if !errors.As(err, &ce) || ce.ReasonCode != code {
			t.Fatalf("v%d code 0x%02X: got %v", v, byte(code), err)
		}
		if err := c.Disconnect(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []packet.Version{packet.V31, packet.V311} {
		for code := packet.ReasonCode(1); code <= 5; code++ {
			t.Run(fmt.Sprintf("v%d/%d", v, code), func(t *testing.T) { check(t, v, code) })
		}
	}
	for _, code := range codes {
		t.Run(fmt.Sprintf("v5/0x%02X", byte(code)), func(t *testing.T) { check(t, packet.V5, code) })
	}
	if len(codes) < 20 {
		t.Fatalf("only %d MQTT 5 CONNACK codes", len(codes))
	}
}

// TestBlackHoleDetected: a server that stops answering (the connection
// stays open, packets vanish) is detected by keep alive and replaced by
// a new connection. The time taken is logged: 1.5 × keep alive at most
// by design.
func TestBlackHoleDetected(t *testing.T) {
	_, url := startTern(t, nil)
	p := newProxy(t, url)
	down := make(chan error, 10)
	up := make(chan struct{}, 10)
	c := connect(t, client.Config{Servers: []string{p.url()}, KeepAlive: time.Second, BackoffMin: time.Millisecond,
		OnConnectionDown: func(err error) { down <- err }, OnConnectionUp: func(*client.Connack) { up <- struct{}{} }})
	<-up
	start := time.Now()
	p.setHole(true)
	var err error
	select {
	case err = <-down:
	case <-time.After(15 * time.Second):
		t.Fatal("black hole not detected")
	}
	t.Logf("black hole detected after %v (keep alive 1 s): %v", time.Since(start), err)
	p.setHole(false)
	p.dropAll() // the old connection's TCP stream is garbage now
	select {
	case <-up:
	case <-time.After(15 * time.Second):
		t.Fatal("no reconnect after the black hole")
	}
	if _, err := c.Publish(ctx(t), &message.Message{Topic: "bh", Payload: []byte("x"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
}

// TestSlowHandlerKeepsConnection: a handler blocking for three keep
// alive intervals neither drops the connection nor delays the other
// subscription's messages [v5 MQTT-3.1.2-20] [v3 MQTT-3.1.2-23].
func TestSlowHandlerKeepsConnection(t *testing.T) {
	_, url := startTern(t, nil)
	down := make(chan error, 10)
	c := connect(t, client.Config{Servers: []string{url}, KeepAlive: time.Second, OnConnectionDown: func(err error) { down <- err }})
	release := make(chan struct{})
	inSlow := make(chan struct{}, 1)
	if _, err := c.Subscribe(ctx(t), "slow", 1, func(*client.Message) {
		inSlow <- struct{}{}
		<-release
	}); err != nil {
		t.Fatal(err)
	}
	fast := newCounter()
	if _, err := c.Subscribe(ctx(t), "fast", 1, fast.handler); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx(t), &message.Message{Topic: "slow", Payload: []byte("s"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	<-inSlow
	for i := range 3 {
		if _, err := c.Publish(ctx(t), &message.Message{Topic: "fast", Payload: []byte(fmt.Sprint(i)), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		fast.wait(t, fmt.Sprint(i))
		time.Sleep(time.Second) // three keep alives in the slow handler
	}
	close(release)
	select {
	case err := <-down:
		t.Fatalf("connection lost while a handler was slow: %v", err)
	default:
	}
}

// TestHandlerPublishingDoesNotDeadlock: handlers that publish at QoS 1
// and 2 and wait for the acknowledgement, while the messages they react
// to keep coming.
func TestHandlerPublishingDoesNotDeadlock(t *testing.T) {
	_, url := startTern(t, nil)
	c := connect(t, client.Config{Servers: []string{url}, Properties: packet.Properties{ReceiveMaximum: 4}})
	echoes := newCounter()
	if _, err := c.Subscribe(ctx(t), "echo", 2, echoes.handler); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx(t), "ping", 2, func(m *client.Message) {
		if _, err := c.Publish(context.Background(), &message.Message{Topic: "echo", Payload: m.Payload, QoS: 2}); err != nil && !errors.Is(err, client.ErrClosed) {
			t.Error(err) // ErrClosed: the echo arrived, its PUBCOMP not yet, and the test ended
		}
	}); err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		c.PublishAsync(&message.Message{Topic: "ping", Payload: []byte(fmt.Sprint(i)), QoS: byte(1 + i%2)})
	}
	for i := range n {
		echoes.wait(t, fmt.Sprint(i))
	}
}

// TestNoGoroutineLeakOnDisconnect: after Disconnect nothing of the
// client runs, with subscriptions, handlers and messages in flight.
func TestNoGoroutineLeakOnDisconnect(t *testing.T) {
	_, url := startTern(t, nil)
	opts := goleak.IgnoreCurrent()
	for _, v := range versions {
		c, err := client.New(client.Config{Servers: []string{url}, Version: v, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Connect(ctx(t)); err != nil {
			t.Fatal(err)
		}
		got := newCounter()
		s, err := c.Subscribe(ctx(t), "leak/#", 2, got.handler)
		if err != nil {
			t.Fatal(err)
		}
		other, err := c.Subscribe(ctx(t), "iter", 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		for q := byte(0); q <= 2; q++ {
			c.PublishAsync(&message.Message{Topic: "leak/x", Payload: []byte{q}, QoS: q})
		}
		got.wait(t, "\x02")
		if _, err := s.Unsubscribe(ctx(t)); err != nil {
			t.Fatal(err)
		}
		iterDone := make(chan struct{})
		go func() {
			for range other.Messages(context.Background()) {
			}
			close(iterDone)
		}()
		if err := c.Disconnect(ctx(t)); err != nil {
			t.Fatal(err)
		}
		<-iterDone // Messages ends at Disconnect
	}
	goleak.VerifyNone(t, opts)
}

// TestPacketIDsNotExhausted: more publishes than there are packet
// identifiers, QoS 1 and 2 mixed with subscribes, all complete
// [v5 MQTT-2.2.1-3] [v3 MQTT-2.3.1-2].
func TestPacketIDsNotExhausted(t *testing.T) {
	if testing.Short() {
		t.Skip("70,000 publishes")
	}
	_, url := startTern(t, nil)
	c := connect(t, client.Config{Servers: []string{url}, MaxQueued: 2000})
	const n = 70_000
	toks := make([]*client.Token, 0, 1000)
	for i := 0; i < n; i++ {
		toks = append(toks, c.PublishAsync(&message.Message{Topic: "ids", Payload: []byte("x"), QoS: byte(1 + i%2)}))
		if len(toks) == cap(toks) || i == n-1 {
			for _, tok := range toks {
				if _, err := tok.Wait(ctx(t)); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			}
			toks = toks[:0]
			if _, err := c.Subscribe(ctx(t), "ids", 0, func(*client.Message) {}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestThousandClients: 1,000 clients in one process connect, exchange a
// message each and disconnect, leaving no goroutine behind.
func TestThousandClients(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 clients")
	}
	_, url := startTern(t, nil)
	opts := goleak.IgnoreCurrent()
	const n = 1000
	clients := make([]*client.Client, n)
	got := make(chan struct{}, n)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	for i := range clients {
		c, err := client.New(client.Config{Servers: []string{url}, ClientID: fmt.Sprint("k", i), Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Connect(ctx(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Subscribe(ctx(t), fmt.Sprint("k/", i), 1, func(*client.Message) { got <- struct{}{} }); err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("heap per idle connected client (client and broker side together): %d bytes", (int64(ms.HeapAlloc)-int64(before))/n)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Publish(ctx(t), &message.Message{Topic: fmt.Sprint("k/", (i+1)%n), Payload: []byte("hi"), QoS: 1}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for range n {
		select {
		case <-got:
		case <-time.After(20 * time.Second):
			t.Fatal("messages missing")
		}
	}
	for _, c := range clients {
		if err := c.Disconnect(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	goleak.VerifyNone(t, opts)
}
