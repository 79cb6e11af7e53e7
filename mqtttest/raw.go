package mqtttest

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// DefaultTimeout bounds every wait of the helpers that take no explicit
// one (a RawClient read or write, a dial, a server start). It only turns a
// hang into a failure; no helper decides a pass by the clock.
const DefaultTimeout = 5 * time.Second

// RawClient speaks MQTT packet by packet over one connection, for
// protocol-level tests: it sends what it is given, with no session logic,
// and reads whatever comes back. Its methods fail the test (t.Fatal) on
// an error, so call them from the test's goroutine; RecvTimeout and
// SendBytes return the error instead.
type RawClient struct {
	// Conn is the connection, for deadlines, raw writes or closing it
	// abruptly.
	Conn net.Conn
	// Timeout bounds each read and write of the methods that take no
	// duration. Default DefaultTimeout.
	Timeout time.Duration

	t testing.TB
	r *packet.Reader
	w *packet.Writer
}

// DialRaw connects a RawClient over TCP to addr ("host:port") for
// protocol version v. The connection is closed when the test ends.
func DialRaw(t testing.TB, addr string, v packet.Version) *RawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, DefaultTimeout)
	if err != nil {
		t.Fatalf("mqtttest: DialRaw %s: %v", addr, err)
	}
	return NewRawClient(t, nc, v)
}

// NewRawClient makes a RawClient for protocol version v over nc, any
// connection (Broker.DialMem's, a proxy's); nc is closed when the test
// ends. A CONNECT sent later sets the version from its own Version field.
func NewRawClient(t testing.TB, nc net.Conn, v packet.Version) *RawClient {
	t.Helper()
	if !v.Valid() {
		t.Fatalf("mqtttest: NewRawClient: protocol version %d is not one of packet.V31, V311, V5", v)
	}
	c := &RawClient{Conn: nc, t: t, r: packet.NewReader(nc), w: packet.NewWriter(nc)}
	c.r.Version, c.w.Version = v, v
	t.Cleanup(func() { nc.Close() })
	return c
}

// Version is the protocol version packets are encoded and decoded for.
func (c *RawClient) Version() packet.Version { return c.w.Version }

func (c *RawClient) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// Send writes p, failing the test if it cannot be encoded or written. A
// CONNECT with a Version sets the client's version; one without gets it.
func (c *RawClient) Send(p packet.Packet) {
	c.t.Helper()
	if cp, ok := p.(*packet.Connect); ok {
		if cp.Version == 0 {
			cp.Version = c.w.Version
		}
		c.r.Version = cp.Version // the CONNACK and what follows come in it
	}
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout()))
	if err := c.w.WritePacket(p); err != nil {
		c.t.Fatalf("mqtttest: RawClient: sending %v: %v", p.Type(), err)
	}
}

// SendBytes writes b as it is (a malformed packet, a packet in pieces)
// and returns the write error: the server may have closed the connection
// already.
func (c *RawClient) SendBytes(b []byte) error {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout()))
	_, err := c.Conn.Write(b)
	return err
}

// RecvTimeout reads the next packet, waiting at most d. A timeout error
// satisfies IsTimeout. If it strikes in the middle of a packet the stream
// is out of step: use the client no more.
func (c *RawClient) RecvTimeout(d time.Duration) (packet.Packet, error) {
	c.Conn.SetReadDeadline(time.Now().Add(d))
	return c.r.ReadPacket()
}

// Recv reads the next packet, failing the test if none comes within
// Timeout.
func (c *RawClient) Recv() packet.Packet {
	c.t.Helper()
	p, err := c.RecvTimeout(c.timeout())
	if err != nil {
		c.t.Fatalf("mqtttest: RawClient: waiting for a packet: %v", err)
	}
	return p
}

// Expect reads the next packet and fails the test unless it is a T:
//
//	ack := mqtttest.Expect[*packet.Puback](c)
func Expect[T packet.Packet](c *RawClient) T {
	c.t.Helper()
	p := c.Recv()
	got, ok := p.(T)
	if !ok {
		var want T
		c.t.Fatalf("mqtttest: RawClient: want %T, got %v", want, p)
	}
	return got
}

// Connect sends cp and fails the test unless the answer is a CONNACK with
// reason code 0 (success); it returns the CONNACK. To see a refusal, Send
// the CONNECT and Expect a *packet.Connack.
func (c *RawClient) Connect(cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	c.Send(cp)
	ack := Expect[*packet.Connack](c)
	if ack.ReasonCode != 0 {
		c.t.Fatalf("mqtttest: RawClient: CONNACK %s, want success", ack.ReasonCode.Text(packet.CONNACK, c.r.Version))
	}
	return ack
}

// Subscribe subscribes to one filter with packet identifier id and
// returns the SUBACK, failing the test unless one comes for id. It does
// not judge the SUBACK's codes.
func (c *RawClient) Subscribe(id uint16, filter string, qos byte) *packet.Suback {
	c.t.Helper()
	c.Send(&packet.Subscribe{PacketID: id, Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}})
	ack := Expect[*packet.Suback](c)
	if ack.PacketID != id {
		c.t.Fatalf("mqtttest: RawClient: SUBACK for packet id %d, want %d", ack.PacketID, id)
	}
	return ack
}

// ExpectPublish reads the next packet and fails the test unless it is a
// PUBLISH.
func (c *RawClient) ExpectPublish() *packet.Publish {
	c.t.Helper()
	return Expect[*packet.Publish](c)
}

// ExpectClosed waits up to Timeout for the peer to close the connection
// and returns the packets (a DISCONNECT, say) that came before. It fails
// the test if the connection is still open then, or if the stream broke
// the protocol.
func (c *RawClient) ExpectClosed() []packet.Packet {
	c.t.Helper()
	var got []packet.Packet
	deadline := time.Now().Add(c.timeout())
	for {
		c.Conn.SetReadDeadline(deadline)
		p, err := c.r.ReadPacket()
		switch {
		case err == nil:
			got = append(got, p)
		case IsTimeout(err):
			c.t.Fatalf("mqtttest: RawClient: connection still open after %v; received %v", c.timeout(), got)
		default:
			var pe *packet.ProtocolError
			if errors.As(err, &pe) {
				c.t.Fatalf("mqtttest: RawClient: waiting for the close, received a bad packet: %v (before it: %v)", err, got)
			}
			return got
		}
	}
}

// NoPacket fails the test if a packet arrives, or the connection ends,
// within d.
func (c *RawClient) NoPacket(d time.Duration) {
	c.t.Helper()
	p, err := c.RecvTimeout(d)
	switch {
	case err == nil:
		c.t.Fatalf("mqtttest: RawClient: unexpected packet %v", p)
	case !IsTimeout(err):
		c.t.Fatalf("mqtttest: RawClient: want no packet for %v, got error %v", d, err)
	}
}

// Close closes the connection without a DISCONNECT.
func (c *RawClient) Close() error { return c.Conn.Close() }

// IsTimeout reports whether err is a timeout (a deadline that passed).
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// String names the connection, for test messages.
func (c *RawClient) String() string {
	return fmt.Sprintf("RawClient(%s %v->%v)", c.w.Version, c.Conn.LocalAddr(), c.Conn.RemoteAddr())
}
