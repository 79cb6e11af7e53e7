package client_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store/disk"
)

// exampleBroker runs an in-process Tern broker on a free loopback port
// for the examples; a real program connects to its own server.
func exampleBroker() (url string, stop func()) {
	srv := &broker.Server{
		Listeners:   []broker.Listener{{Addr: "127.0.0.1:0"}},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		SysInterval: -1,
	}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	<-srv.Ready()
	return "mqtt://" + srv.Addrs()[0].String(), func() { srv.Shutdown(context.Background()); <-served }
}

// Example connects, subscribes with a handler, publishes at QoS 1 and
// waits for the message.
func Example() {
	url, stop := exampleBroker()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.New(client.Config{Servers: []string{url}, ClientID: "example"})
	if err != nil {
		panic(err)
	}
	ack, err := c.Connect(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("connected, session present:", ack.SessionPresent)

	got := make(chan string, 1)
	sub, err := c.Subscribe(ctx, "greetings/+", 1, func(m *client.Message) {
		got <- fmt.Sprintf("%s: %s (QoS %d)", m.Topic, m.Payload, m.QoS)
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("granted:", sub.Codes)

	res, err := c.Publish(ctx, &message.Message{Topic: "greetings/world", Payload: []byte("hello"), QoS: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println("PUBACK reason code:", res.ReasonCode)
	fmt.Println(<-got)

	if err := c.Disconnect(ctx); err != nil {
		panic(err)
	}
	// Output:
	// connected, session present: false
	// granted: [Granted QoS 1]
	// PUBACK reason code: Success
	// greetings/world: hello (QoS 1)
}

// Example_durableStore keeps the session in a store/disk directory: QoS 1
// and 2 messages accepted while the server is unreachable (or before a
// crash) are sent by the next process that opens the same directory.
func Example_durableStore() {
	url, stop := exampleBroker()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "tern-client-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	// First process: never connected (say the network is down), but the
	// message is accepted: it is in the store.
	st, err := disk.Open(dir, disk.Options{Sync: true})
	if err != nil {
		panic(err)
	}
	c, err := client.New(client.Config{Servers: []string{url}, ClientID: "durable", SessionExpiry: 3600, Store: st})
	if err != nil {
		panic(err)
	}
	tok := c.PublishAsync(&message.Message{Topic: "readings", Payload: []byte("42"), QoS: 2})
	c.Disconnect(ctx) // closes the store; the message stays in it
	_, err = tok.Wait(ctx)
	fmt.Println("first process:", err)

	// A subscriber, to see the message arrive.
	got := make(chan string, 1)
	sub, _ := client.New(client.Config{Servers: []string{url}})
	sub.Connect(ctx)
	sub.Subscribe(ctx, "readings", 2, func(m *client.Message) { got <- string(m.Payload) })

	// Second process: the same directory; Connect sends what was kept.
	st, err = disk.Open(dir, disk.Options{Sync: true})
	if err != nil {
		panic(err)
	}
	c, _ = client.New(client.Config{Servers: []string{url}, ClientID: "durable", SessionExpiry: 3600, Store: st})
	if _, err := c.Connect(ctx); err != nil {
		panic(err)
	}
	fmt.Println("received:", <-got)
	c.Disconnect(ctx)
	sub.Disconnect(ctx)
	// Output:
	// first process: client: closed
	// received: 42
}

// ExampleClient_Request asks a service and waits for its answer (MQTT 5
// response topic and correlation data).
func ExampleClient_Request() {
	url, stop := exampleBroker()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	svc, _ := client.New(client.Config{Servers: []string{url}})
	svc.Connect(ctx)
	svc.Subscribe(ctx, "svc/square", 1, func(m *client.Message) {
		n, _ := strconv.Atoi(string(m.Payload))
		svc.Respond(context.Background(), m, &message.Message{Payload: []byte(strconv.Itoa(n * n)), QoS: 1})
	})

	c, _ := client.New(client.Config{Servers: []string{url}})
	c.Connect(ctx)
	resp, err := c.Request(ctx, &message.Message{Topic: "svc/square", Payload: []byte("12"), QoS: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println("12² =", string(resp.Payload))
	c.Disconnect(ctx)
	svc.Disconnect(ctx)
	// Output:
	// 12² = 144
}

// Example_socks5 connects through a SOCKS5 proxy (Config.Proxy; the
// standard ALL_PROXY variable works too). A tiny SOCKS5 server stands in
// for the real one. Config.Dial takes any other dialer the same way.
func Example_socks5() {
	url, stop := exampleBroker()
	defer stop()
	proxyAddr, stopProxy := tinySOCKS5()
	defer stopProxy()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, _ := client.New(client.Config{Servers: []string{url}, Proxy: "socks5://" + proxyAddr})
	if _, err := c.Connect(ctx); err != nil {
		panic(err)
	}
	res, err := c.Publish(ctx, &message.Message{Topic: "via/proxy", Payload: []byte("x"), QoS: 1})
	fmt.Println("published through SOCKS5:", err == nil && res.PacketID != 0)
	c.Disconnect(ctx)
	// Output:
	// published through SOCKS5: true
}

// tinySOCKS5 is a SOCKS5 server (RFC 1928: no authentication, CONNECT to
// an IPv4 address or a name) on a free loopback port.
func tinySOCKS5() (addr string, stop func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				b := make([]byte, 262)
				// Greeting: version, methods; answer "no authentication".
				if _, err := io.ReadFull(c, b[:2]); err != nil {
					return
				}
				if _, err := io.ReadFull(c, b[:b[1]]); err != nil {
					return
				}
				c.Write([]byte{5, 0})
				// Request: version, CONNECT, reserved, address type.
				if _, err := io.ReadFull(c, b[:4]); err != nil {
					return
				}
				var host string
				switch b[3] {
				case 1:
					io.ReadFull(c, b[:4])
					host = net.IP(b[:4]).String()
				case 3:
					io.ReadFull(c, b[:1])
					n := int(b[0])
					io.ReadFull(c, b[:n])
					host = string(b[:n])
				default:
					return
				}
				io.ReadFull(c, b[:2])
				port := binary.BigEndian.Uint16(b[:2])
				up, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
				if err != nil {
					c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
					return
				}
				defer up.Close()
				mu.Lock()
				open = append(open, c, up)
				mu.Unlock()
				c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
				wg.Add(1)
				go func() { defer wg.Done(); io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
			}()
		}
	}()
	return l.Addr().String(), func() {
		l.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}
