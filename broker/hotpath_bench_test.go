package broker

import (
	"net"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// BenchmarkSessionPath measures the broker's per-message hot path without
// sockets or goroutine switches: a message delivered to a session's
// queue, the writer taking it (packet id, in-flight window) and encoding
// it (appendOut), and for QoS 1 the PUBACK completing its flight, in
// batches of 64 messages. It is the part of BenchmarkPublishDeliver that
// is the broker's own, without the noise of the loopback round trips.
//
//	go test -run '^$' -bench SessionPath -benchmem ./broker/
func BenchmarkSessionPath(b *testing.B) {
	const batch = 64
	for _, tc := range []struct {
		name string
		v    packet.Version
		qos  byte
	}{{"v3.1.1/qos0", packet.V311, 0}, {"v3.1.1/qos1", packet.V311, 1}, {"v5/qos1", packet.V5, 1}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := &Server{SysInterval: -1, Logger: testLogger(b)}
			if err := srv.init(); err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			s := newSession("bench", 1)
			c := newConn(srv, nopConn{}, Listener{})
			c.version = tc.v
			c.sess = s
			s.conn = c
			benchSetWindow(c, 65535)
			m := &Message{Topic: "bench/t", Payload: make([]byte, 64), QoS: tc.qos, Created: time.Now()}
			var buf []byte
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				for range min(batch, b.N-i) {
					if ok, why := s.deliver(srv, delivery{msg: m, qos: tc.qos}); !ok {
						b.Fatal(why)
					}
				}
				outs, _ := c.take()
				buf = buf[:0]
				now := time.Now()
				for j := range outs {
					buf = c.appendOut(buf, &outs[j], now)
				}
				for j := range outs {
					if outs[j].id != 0 {
						benchAck(c, outs[j].id)
					}
				}
				clear(outs)
				outs = outs[:0]
				outPool.Put(&outs)
			}
			b.StopTimer()
			if len(buf) == 0 {
				b.Fatal("nothing encoded")
			}
		})
	}
}

// benchSetWindow sets the in-flight window of c's session.
func benchSetWindow(c *conn, n int) { c.sess.out.SetWindow(n) }

// benchAck completes the QoS 1 flight id of c's session, as a PUBACK does.
func benchAck(c *conn, id uint16) {
	s := c.sess
	s.mu.Lock()
	_, ok := s.out.Ack(id)
	s.mu.Unlock()
	if !ok {
		panic("PUBACK for a packet id not in flight")
	}
}

// nopConn is a net.Conn that discards what is written.
type nopConn struct{}

func (nopConn) Read([]byte) (int, error)         { return 0, net.ErrClosed }
func (nopConn) Write(b []byte) (int, error)      { return len(b), nil }
func (nopConn) Close() error                     { return nil }
func (nopConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (nopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (nopConn) SetDeadline(time.Time) error      { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }
