package mqtttest

import (
	"net"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// RawServer is a fake MQTT server for client tests at the wire: the test
// accepts each connection itself and plays the server packet by packet
// with the RawClient that Accept returns (Recv the CONNECT, Send a
// CONNACK, withhold a PUBACK, ...). Start it with ListenRaw.
type RawServer struct {
	// Addr is its address, "127.0.0.1:port"; URL is "tcp://" + Addr.
	Addr, URL string

	t testing.TB
	l *net.TCPListener
}

// ListenRaw listens on a free 127.0.0.1 port until the test ends.
func ListenRaw(t testing.TB) *RawServer {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("mqtttest: ListenRaw: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	addr := l.Addr().String()
	return &RawServer{Addr: addr, URL: "tcp://" + addr, t: t, l: l}
}

// Accept waits up to DefaultTimeout for the next connection and returns
// it as a RawClient for protocol version v (its reads decode what a
// client sends, its writes what a server sends). It fails the test if no
// client connects. The connection is closed when the test ends.
func (s *RawServer) Accept(v packet.Version) *RawClient {
	s.t.Helper()
	s.l.SetDeadline(time.Now().Add(DefaultTimeout))
	nc, err := s.l.Accept()
	if err != nil {
		s.t.Fatalf("mqtttest: RawServer.Accept: no client connected: %v", err)
	}
	return NewRawClient(s.t, nc, v)
}

// AcceptConnect accepts a connection, reads its CONNECT and answers with
// ack (nil: a successful CONNACK with no properties). It returns the
// connection and the CONNECT.
func (s *RawServer) AcceptConnect(ack *packet.Connack) (*RawClient, *packet.Connect) {
	s.t.Helper()
	c := s.Accept(packet.V5)
	cp := Expect[*packet.Connect](c)
	c.r.Version, c.w.Version = cp.Version, cp.Version
	if ack == nil {
		ack = &packet.Connack{}
	}
	c.Send(ack)
	return c, cp
}
