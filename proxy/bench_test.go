package proxy_test

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/proxy"
)

// The proxy's cost: the same traffic straight to a Tern broker and
// through the proxy (no filter, and with a topic filter and the rate
// limit's bookkeeping), on loopback TCP.
//
//	go test -run '^$' -bench . -benchtime 3s ./proxy/

type benchPath struct {
	name    string
	filters []proxy.Filter
	direct  bool
}

var benchPaths = []benchPath{
	{name: "direct", direct: true},
	{name: "proxy"},
	{name: "proxy+filters", filters: []proxy.Filter{
		&proxy.TopicFilter{Up: proxy.Rules{Allow: []string{"bench/#"}}, Down: proxy.Rules{Deny: []string{"secret/#"}}},
		&proxy.RateLimit{Messages: 1e9, Bytes: 1e12},
	}},
}

// benchAddr starts a broker and, unless direct, a proxy in front; it
// returns where clients connect.
func benchAddr(b *testing.B, p benchPath) string {
	br := mqtttest.StartBroker(b, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1, MaxQueuedMessages: 100000}})
	if p.direct {
		return br.Addr
	}
	px := mqtttest.StartProxy(b, &proxy.Server{Upstreams: []string{br.URL}, Filters: p.filters}, nil)
	return px.Addr
}

type benchConn struct {
	nc net.Conn
	bw *bufio.Writer
	w  *packet.Writer
	r  *packet.Reader
}

func benchDial(b *testing.B, addr, id string) *benchConn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	c := &benchConn{nc: nc, bw: bufio.NewWriter(nc), r: packet.NewReader(nc)}
	c.w = packet.NewWriter(c.bw)
	c.r.Version = packet.V311
	c.send(b, &packet.Connect{Version: packet.V311, ClientID: id, CleanStart: true})
	c.bw.Flush()
	if _, ok := c.recv(b).(*packet.Connack); !ok {
		b.Fatal("no CONNACK")
	}
	return c
}

func (c *benchConn) send(b *testing.B, p packet.Packet) {
	if err := c.w.WritePacket(p); err != nil {
		b.Fatal(err)
	}
}

func (c *benchConn) recv(b *testing.B) packet.Packet {
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := c.r.ReadPacket()
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkRoundTrip: one QoS 0 message at a time, published and received
// back by the same client: the time per op is the round trip, so the
// proxy's added latency is the difference between the paths (it is
// crossed twice: up with the PUBLISH, down with its delivery).
func BenchmarkRoundTrip(b *testing.B) {
	for _, p := range benchPaths {
		b.Run(p.name, func(b *testing.B) {
			c := benchDial(b, benchAddr(b, p), "rt")
			c.send(b, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "bench/rt"}}})
			c.bw.Flush()
			c.recv(b)
			pub := &packet.Publish{Topic: "bench/rt", Payload: make([]byte, 64)}
			b.ResetTimer()
			for range b.N {
				c.send(b, pub)
				c.bw.Flush()
				if _, ok := c.recv(b).(*packet.Publish); !ok {
					b.Fatal("not a PUBLISH")
				}
			}
		})
	}
}

// BenchmarkThroughput: QoS 0 messages of 64 bytes from one publisher to
// one subscriber, at most 1,000 on their way at a time.
func BenchmarkThroughput(b *testing.B) {
	for _, p := range benchPaths {
		b.Run(p.name, func(b *testing.B) {
			addr := benchAddr(b, p)
			sub := benchDial(b, addr, "sub")
			sub.send(b, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "bench/#"}}})
			sub.bw.Flush()
			sub.recv(b)
			pub := benchDial(b, addr, "pub")
			var got atomic.Int64
			done := make(chan error, 1)
			go func() {
				for range b.N {
					sub.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
					if _, err := sub.r.ReadPacket(); err != nil {
						done <- err
						return
					}
					got.Add(1)
				}
				done <- nil
			}()
			msg := &packet.Publish{Topic: "bench/t", Payload: make([]byte, 64)}
			b.SetBytes(64)
			b.ResetTimer()
			for i := range b.N {
				for int64(i)-got.Load() > 1000 {
					pub.bw.Flush()
					time.Sleep(20 * time.Microsecond)
				}
				pub.send(b, msg)
			}
			pub.bw.Flush()
			if err := <-done; err != nil {
				b.Fatalf("subscriber: %v after %d of %d", err, got.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

// BenchmarkIdleConn: the memory (heap and stacks) of 500 idle MQTT 3.1.1
// connections, straight to the broker and through the proxy; the
// difference per connection is what the proxy holds for one.
func BenchmarkIdleConn(b *testing.B) {
	const n = 500
	for _, p := range benchPaths[:2] {
		b.Run(p.name, func(b *testing.B) {
			var per float64
			for range b.N {
				addr := benchAddr(b, p)
				before := memInUse()
				conns := make([]*benchConn, 0, n)
				for i := range n {
					conns = append(conns, benchDial(b, addr, fmt.Sprintf("idle-%d", i)))
				}
				time.Sleep(100 * time.Millisecond) // the pumps settle into their reads
				per = float64(memInUse()-before) / n
				for _, c := range conns {
					c.nc.Close()
				}
			}
			b.ReportMetric(per, "B/conn")
		})
	}
}

func memInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}
