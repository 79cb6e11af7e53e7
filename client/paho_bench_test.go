package client_test

// Benchmarks of Tern's client against the two Eclipse Paho Go clients
// (github.com/eclipse/paho.mqtt.golang, MQTT 3.1.1, and
// github.com/eclipse/paho.golang, MQTT 5), side by side against the same
// in-process Tern broker on loopback TCP (issue 11, Performance). The
// Paho modules are test-only dependencies.
//
//	go test -run '^$' -bench Paho -benchmem -count 6 ./client/
//
// Every sub-benchmark is named BenchmarkPaho<What>/<shape>/<library> with
// library tern, pahomqtt (paho.mqtt.golang) or pahogolang (paho.golang)
// (and, for the publish rows, floor: see floorConn),
// reports msgs/s and, with -benchmem, allocations per message. The time
// of a publish benchmark ends when the broker has acknowledged every
// message (for QoS 0: a final QoS 1 publish on the same connection,
// which the broker handles in order, fences the run); that of a receive
// benchmark when the subscribing client's handler has seen every message.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

const (
	// benchWindow is the number of publishes a windowed publisher keeps
	// outstanding. The broker announces it as its Receive Maximum, which
	// is what bounds paho.golang's asynchronous publishes.
	benchWindow = 256
	// benchPayloadSize is the payload of every message, in bytes.
	benchPayloadSize = 64
	// recvCredit bounds the messages the broker has been given and the
	// subscriber has not yet handled in a receive benchmark, so that the
	// broker's queue (benchBrokerQueue) never overflows and drops.
	recvCredit = 500
	// benchBrokerQueue is the broker's per-session queue bound.
	benchBrokerQueue = 10 * recvCredit
	// benchBrokerInflight is the broker's window of QoS 1 and 2 messages
	// toward a subscriber.
	benchBrokerInflight = 100
	// benchTimeout fails a benchmark that hangs; it is no performance
	// threshold.
	benchTimeout = 2 * time.Minute
)

// startBenchBroker runs the broker every library of one benchmark uses.
func startBenchBroker(b *testing.B) *mqtttest.Broker {
	b.Helper()
	return mqtttest.StartBroker(b, mqtttest.BrokerConfig{Server: &broker.Server{
		Logger:            quiet(),
		SysInterval:       -1,
		ReceiveMaximum:    benchWindow,
		MaxInflight:       benchBrokerInflight,
		MaxQueuedMessages: benchBrokerQueue,
	}})
}

// benchLib is one client library under test, connected to a broker.
type benchLib struct {
	name    string
	connect func(tb testing.TB, url, id string, onMessage func()) benchConn
}

// benchConn is one connected client.
type benchConn interface {
	// publishSync publishes n messages one at a time, each waiting for
	// its acknowledgement (for QoS 0, its write).
	publishSync(ctx context.Context, topic string, payload []byte, qos byte, n int) error
	// publishWindow publishes n messages keeping up to benchWindow of
	// them outstanding, and returns when every one is acknowledged.
	publishWindow(ctx context.Context, topic string, payload []byte, qos byte, n int) error
	// subscribe subscribes to topic at qos; every message goes to the
	// onMessage given to connect.
	subscribe(ctx context.Context, topic string, qos byte) error
	close()
}

func benchLibs() []benchLib {
	return []benchLib{
		{"tern", connectTern},
		{"pahomqtt", connectPahoMQTT},
		{"pahogolang", connectPahoGolang},
	}
}

func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	b.Cleanup(cancel)
	return ctx
}

// BenchmarkPahoPublish publishes from one client at QoS 0, 1 and 2, both
// one at a time (sync) and with benchWindow publishes outstanding
// (window: Tern's PublishAsync tokens, paho.mqtt.golang's tokens,
// paho.golang's PublishMethod_AsyncSend bounded by the broker's Receive
// Maximum).
func BenchmarkPahoPublish(b *testing.B) {
	br := startBenchBroker(b)
	payload := make([]byte, benchPayloadSize)
	for _, mode := range []string{"window", "sync"} {
		for qos := byte(0); qos <= 2; qos++ {
			libs := append(benchLibs(), benchLib{"floor", connectFloor})
			for _, lib := range libs {
				b.Run(fmt.Sprintf("%s/QoS%d/%s", mode, qos, lib.name), func(b *testing.B) {
					ctx := benchCtx(b)
					topic := fmt.Sprintf("bench/pub/%s/%d/%s", mode, qos, lib.name)
					c := lib.connect(b, br.URL, "bench-pub-"+lib.name, nil)
					defer c.close()
					b.ReportAllocs()
					b.ResetTimer()
					var err error
					if mode == "sync" {
						err = c.publishSync(ctx, topic, payload, qos, b.N)
					} else {
						err = c.publishWindow(ctx, topic, payload, qos, b.N)
					}
					if err == nil && qos == 0 {
						// Fence: the broker handles a connection's
						// packets in order, so this PUBACK means every
						// QoS 0 message before it arrived.
						err = c.publishSync(ctx, topic, payload, 1, 1)
					}
					b.StopTimer()
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
				})
			}
		}
	}
}

// BenchmarkPahoReceive measures messages per second into one subscribing
// client at QoS 0 and 1. The publisher is the broker's inline client
// (Server.Publish), the same for every library, held to recvCredit
// messages ahead of the subscriber's handler so that nothing is dropped.
func BenchmarkPahoReceive(b *testing.B) {
	br := startBenchBroker(b)
	payload := make([]byte, benchPayloadSize)
	for qos := byte(0); qos <= 1; qos++ {
		for _, lib := range benchLibs() {
			b.Run(fmt.Sprintf("QoS%d/%s", qos, lib.name), func(b *testing.B) {
				ctx := benchCtx(b)
				topic := fmt.Sprintf("bench/recv/%d/%s", qos, lib.name)
				credits := make(chan struct{}, recvCredit)
				var got atomic.Int64
				done := make(chan struct{})
				target := int64(b.N)
				c := lib.connect(b, br.URL, "bench-sub-"+lib.name, func() {
					credits <- struct{}{}
					if got.Add(1) == target {
						close(done)
					}
				})
				defer c.close()
				if err := c.subscribe(ctx, topic, qos); err != nil {
					b.Fatal(err)
				}
				for range recvCredit {
					credits <- struct{}{}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					select {
					case <-credits:
					case <-ctx.Done():
						b.Fatalf("%d of %d messages received: %v", got.Load(), b.N, ctx.Err())
					}
					if err := br.Server.Publish(topic, payload, qos, false); err != nil {
						b.Fatal(err)
					}
				}
				select {
				case <-done:
				case <-ctx.Done():
					b.Fatalf("%d of %d messages received: %v", got.Load(), b.N, ctx.Err())
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// --- Tern ---

type ternConn struct {
	c         *client.Client
	onMessage func()
}

func connectTern(b testing.TB, url, id string, onMessage func()) benchConn {
	b.Helper()
	c, err := client.New(client.Config{Servers: []string{url}, ClientID: id, CleanStart: true, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	return &ternConn{c: c, onMessage: onMessage}
}

func (t *ternConn) publishSync(ctx context.Context, topic string, payload []byte, qos byte, n int) error {
	for range n {
		if _, err := t.c.Publish(ctx, &message.Message{Topic: topic, Payload: payload, QoS: qos}); err != nil {
			return err
		}
	}
	return nil
}

func (t *ternConn) publishWindow(ctx context.Context, topic string, payload []byte, qos byte, n int) error {
	ring := make([]*client.Token, benchWindow)
	for i := range n {
		slot := i % benchWindow
		if tok := ring[slot]; tok != nil {
			if _, err := tok.Wait(ctx); err != nil {
				return err
			}
		}
		ring[slot] = t.c.PublishAsync(&message.Message{Topic: topic, Payload: payload, QoS: qos})
	}
	for _, tok := range ring {
		if tok != nil {
			if _, err := tok.Wait(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *ternConn) subscribe(ctx context.Context, topic string, qos byte) error {
	_, err := t.c.Subscribe(ctx, topic, qos, func(*client.Message) { t.onMessage() })
	return err
}

func (t *ternConn) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.c.Disconnect(ctx)
}

// --- paho.mqtt.golang ---

type pahoMQTTConn struct {
	c         pahomqtt.Client
	onMessage func()
}

func connectPahoMQTT(b testing.TB, url, id string, onMessage func()) benchConn {
	b.Helper()
	opts := pahomqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true).SetAutoReconnect(false)
	c := pahomqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("paho.mqtt.golang connect: %v", tok.Error())
	}
	return &pahoMQTTConn{c: c, onMessage: onMessage}
}

// pahoWait waits for tok until ctx ends (Token.Wait has no context).
func pahoWait(ctx context.Context, tok pahomqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pahoMQTTConn) publishSync(ctx context.Context, topic string, payload []byte, qos byte, n int) error {
	for range n {
		if err := pahoWait(ctx, p.c.Publish(topic, qos, false, payload)); err != nil {
			return err
		}
	}
	return nil
}

func (p *pahoMQTTConn) publishWindow(ctx context.Context, topic string, payload []byte, qos byte, n int) error {
	ring := make([]pahomqtt.Token, benchWindow)
	for i := range n {
		slot := i % benchWindow
		if tok := ring[slot]; tok != nil {
			if err := pahoWait(ctx, tok); err != nil {
				return err
			}
		}
		ring[slot] = p.c.Publish(topic, qos, false, payload)
	}
	for _, tok := range ring {
		if tok != nil {
			if err := pahoWait(ctx, tok); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *pahoMQTTConn) subscribe(ctx context.Context, topic string, qos byte) error {
	return pahoWait(ctx, p.c.Subscribe(topic, qos, func(pahomqtt.Client, pahomqtt.Message) { p.onMessage() }))
}

func (p *pahoMQTTConn) close() { p.c.Disconnect(250) }

// --- paho.golang ---

type pahoGolangConn struct {
	c *paho.Client
}

func connectPahoGolang(b testing.TB, rawURL, id string, onMessage func()) benchConn {
	b.Helper()
	return dialPahoGolang(b, rawURL, id, onMessage, nil)
}

// dialPahoGolang connects a paho.golang client with CONNECT properties
// props (nil: none).
func dialPahoGolang(b testing.TB, rawURL, id string, onMessage func(), props *paho.ConnectProperties) benchConn {
	b.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		b.Fatal(err)
	}
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		b.Fatal(err)
	}
	cfg := paho.ClientConfig{ClientID: id, Conn: nc}
	if onMessage != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(paho.PublishReceived) (bool, error) { onMessage(); return true, nil },
		}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 60, CleanStart: true, Properties: props})
	if err != nil {
		nc.Close()
		b.Fatalf("paho.golang connect: %v", err)
	}
	if ca.ReasonCode != 0 {
		nc.Close()
		b.Fatalf("paho.golang connect: reason code %#x", ca.ReasonCode)
	}
	return &pahoGolangConn{c: c}
}

func (p *pahoGolangConn) publishSync(ctx context.Context, topic string, payload []byte, qos byte, n int) error {
	for range n {
		if _, err := p.c.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos}); err != nil {
			return err
		}
	}
	return nil
}

// publishWindow uses PublishMethod_AsyncSend, which adds each message to
// the session and returns; the session's in-flight quota (the broker's
// Receive Maximum, benchWindow) makes it wait for room. paho.golang
// gives no way to learn when an asynchronous publish completes, so the
// run ends with one blocking publish at the same QoS: the broker
// acknowledges a connection's messages in order, so its acknowledgement
// comes after every earlier one.
func (p *pahoGolangConn) publishWindow(ctx context.Context, topic string, payload []byte, qos byte, n int) error {
	async := paho.PublishOptions{Method: paho.PublishMethod_AsyncSend}
	for range n - 1 {
		if _, err := p.c.PublishWithOptions(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos}, async); err != nil {
			return err
		}
	}
	if n > 0 {
		return p.publishSync(ctx, topic, payload, qos, 1)
	}
	return nil
}

func (p *pahoGolangConn) subscribe(ctx context.Context, topic string, qos byte) error {
	_, err := p.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: qos}}})
	return err
}

func (p *pahoGolangConn) close() {
	p.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
}

// --- floor: the bare codec, no client ---

// floorConn is no client library: one goroutine writes each PUBLISH with
// package packet and reads its acknowledgements itself, with no session,
// store or queue (and no second goroutine but the window's ack reader).
// Its sync rows are the round trip of the broker and the loopback alone,
// the floor under any client's one-at-a-time publish; its window rows
// what the broker takes in from one connection, near the ceiling for
// any client.
type floorConn struct {
	nc net.Conn
	w  *packet.Writer
	r  *packet.Reader
	id uint16
}

func connectFloor(b testing.TB, rawURL, id string, onMessage func()) benchConn {
	b.Helper()
	if onMessage != nil {
		b.Skip("floor: publish only")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		b.Fatal(err)
	}
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		b.Fatal(err)
	}
	f := &floorConn{nc: nc, w: packet.NewWriter(nc), r: packet.NewReader(nc)}
	f.r.Version = packet.V5
	f.r.ReuseAcks = true
	nc.SetDeadline(time.Now().Add(benchTimeout))
	if err := f.w.WritePacket(&packet.Connect{Version: packet.V5, CleanStart: true, KeepAlive: 0, ClientID: id}); err != nil {
		b.Fatal(err)
	}
	if _, err := f.read(packet.CONNACK); err != nil {
		b.Fatal(err)
	}
	return f
}

func (f *floorConn) read(want packet.Type) (packet.Packet, error) {
	p, err := f.r.ReadPacket()
	if err != nil {
		return nil, err
	}
	if p.Type() != want {
		return nil, fmt.Errorf("floor: got %v, want %v", p.Type(), want)
	}
	return p, nil
}

func (f *floorConn) publishSync(ctx context.Context, topic string, payload []byte, qos byte, n int) error {
	for range n {
		p := &packet.Publish{Topic: topic, Payload: payload, QoS: qos}
		if qos > 0 {
			f.id = f.id%65535 + 1
			p.PacketID = f.id
		}
		if err := f.w.WritePacket(p); err != nil {
			return err
		}
		switch qos {
		case 1:
			if _, err := f.read(packet.PUBACK); err != nil {
				return err
			}
		case 2:
			if _, err := f.read(packet.PUBREC); err != nil {
				return err
			}
			if err := f.w.WritePacket(&packet.Pubrel{PacketID: p.PacketID}); err != nil {
				return err
			}
			if _, err := f.read(packet.PUBCOMP); err != nil {
				return err
			}
		}
	}
	return nil
}

// publishWindow writes the PUBLISHes through a 64 KiB buffer, flushed
// whenever the window is full; for QoS 1 and 2 a second goroutine reads
// the acknowledgements (answering PUBREC with PUBREL) and returns the
// window's credits.
func (f *floorConn) publishWindow(ctx context.Context, topic string, payload []byte, qos byte, n int) error {
	var mu sync.Mutex // the buffered writer, shared with the ack reader
	bw := bufio.NewWriterSize(f.nc, 64<<10)
	w := packet.NewWriter(bw)
	w.Version = packet.V5
	credits := make(chan struct{}, benchWindow)
	for range benchWindow {
		credits <- struct{}{}
	}
	readErr := make(chan error, 1)
	if qos > 0 {
		go func() {
			for acked := 0; acked < n; {
				p, err := f.r.ReadPacket()
				if err != nil {
					readErr <- err
					return
				}
				switch p := p.(type) {
				case *packet.Puback, *packet.Pubcomp:
					acked++
					credits <- struct{}{}
				case *packet.Pubrec:
					mu.Lock()
					err := w.WritePacket(&packet.Pubrel{PacketID: p.PacketID})
					if err == nil {
						err = bw.Flush()
					}
					mu.Unlock()
					if err != nil {
						readErr <- err
						return
					}
				default:
					readErr <- fmt.Errorf("floor: unexpected %v", p.Type())
					return
				}
			}
			readErr <- nil
		}()
	}
	flush := func() error {
		mu.Lock()
		defer mu.Unlock()
		return bw.Flush()
	}
	for range n {
		if qos > 0 {
			select {
			case <-credits:
			default:
				if err := flush(); err != nil {
					return err
				}
				select {
				case <-credits:
				case err := <-readErr:
					return fmt.Errorf("floor: reader ended: %v", err)
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		p := &packet.Publish{Topic: topic, Payload: payload, QoS: qos}
		if qos > 0 {
			f.id = f.id%65535 + 1
			p.PacketID = f.id
		}
		mu.Lock()
		err := w.WritePacket(p)
		mu.Unlock()
		if err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if qos == 0 {
		return nil
	}
	select {
	case err := <-readErr:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *floorConn) subscribe(ctx context.Context, topic string, qos byte) error {
	return errors.New("floor: no subscribe")
}

func (f *floorConn) close() {
	f.w.WritePacket(&packet.Disconnect{})
	f.nc.Close()
}
