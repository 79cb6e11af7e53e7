package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// testLogger returns a logger that writes to the test log only when
// TERN_TEST_LOG is set, so failures can be debugged without noise.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("TERN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: LevelTrace}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer runs srv on a loopback TCP port and stops it when the test
// ends. It returns the address.
func startServer(t testing.TB, srv *Server) string {
	t.Helper()
	if srv.Logger == nil {
		srv.Logger = testLogger(t)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		checkNoConnGoroutines(t, srv)
	})
	return l.Addr().String()
}

// checkNoConnGoroutines is the per-test leak check: once a server has
// shut down, none of its connection goroutines (readers, writers) may
// still run. It is exact per server, so it works for parallel tests,
// where a process-wide goroutine count would not; goleak.VerifyTestMain
// checks the whole package at the end.
func checkNoConnGoroutines(t testing.TB, srv *Server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for srv.live.Load() != 0 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("%d connection goroutines still running after Shutdown:\n%s", srv.live.Load(), buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// rawClient speaks MQTT packet by packet, for black-box tests.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	r  *packet.Reader
	w  *packet.Writer
	v  packet.Version
}

func dialRaw(t testing.TB, addr string, v packet.Version) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawClient{t: t, nc: nc, r: packet.NewReader(nc), w: packet.NewWriter(nc), v: v}
	c.r.Version = v
	c.w.Version = v
	return c
}

// connect sends CONNECT and expects a CONNACK with code 0.
func (c *rawClient) connect(cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	cp.Version = c.v
	c.send(cp)
	ack, ok := c.recv().(*packet.Connack)
	if !ok {
		c.t.Fatal("want CONNACK")
	}
	if ack.ReasonCode != 0 {
		c.t.Fatalf("CONNACK code 0x%02x", byte(ack.ReasonCode))
	}
	return ack
}

func (c *rawClient) send(p packet.Packet) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.w.WritePacket(p); err != nil {
		c.t.Fatalf("send %v: %v", p.Type(), err)
	}
}

// recv reads the next packet, failing the test after 5 seconds.
func (c *rawClient) recv() packet.Packet {
	c.t.Helper()
	p, err := c.recvErr(5 * time.Second)
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return p
}

func (c *rawClient) recvErr(d time.Duration) (packet.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	return c.r.ReadPacket()
}

// expectClosed waits for the server to close the connection, returning
// the packets (a DISCONNECT, say) it sent before.
func (c *rawClient) expectClosed() []packet.Packet {
	c.t.Helper()
	var got []packet.Packet
	for {
		p, err := c.recvErr(5 * time.Second)
		if err == nil {
			got = append(got, p)
			continue
		}
		if isTimeout(err) {
			c.t.Fatalf("connection still open; got %v", got)
		}
		return got
	}
}

// noPacket checks that nothing arrives for d.
func (c *rawClient) noPacket(d time.Duration) {
	c.t.Helper()
	p, err := c.recvErr(d)
	if err == nil {
		c.t.Fatalf("unexpected packet %v", p)
	}
	if !isTimeout(err) {
		c.t.Fatalf("unexpected error %v", err)
	}
}

func (c *rawClient) subscribe(id uint16, filter string, qos byte) *packet.Suback {
	c.t.Helper()
	c.send(&packet.Subscribe{PacketID: id, Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}})
	ack, ok := c.recv().(*packet.Suback)
	if !ok || ack.PacketID != id {
		c.t.Fatalf("want SUBACK %d, got %v", id, ack)
	}
	return ack
}

func (c *rawClient) expectPublish() *packet.Publish {
	c.t.Helper()
	p := c.recv()
	pub, ok := p.(*packet.Publish)
	if !ok {
		c.t.Fatalf("want PUBLISH, got %v", p)
	}
	return pub
}
