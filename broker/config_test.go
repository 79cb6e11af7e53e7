package broker

import (
	"bytes"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/transport"
)

// TestValidateListenerSettings: settings a listener of that type would
// ignore are refused, not accepted silently.
func TestValidateListenerSettings(t *testing.T) {
	tlsCfg := &transport.TLSConfig{CertFile: "c.pem", KeyFile: "k.pem"}
	for _, tc := range []struct {
		field string
		l     Listener
	}{
		{"Listeners[0].Path", Listener{Type: "tcp", Addr: ":1", Path: "/mqtt"}},
		{"Listeners[0].Path", Listener{Addr: ":1", Path: "/mqtt"}},
		{"Listeners[0].Path", Listener{Type: "unix", Addr: "/tmp/s", Path: "/mqtt"}},
		{"Listeners[0].TLS", Listener{Type: "tcp", Addr: ":1", TLS: tlsCfg}},
		{"Listeners[0].TLS", Listener{Type: "ws", Addr: ":1", TLS: tlsCfg}},
	} {
		err := (&Server{Listeners: []Listener{tc.l}}).Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+": ") {
			t.Errorf("%+v: Validate() = %v, want an error naming %s", tc.l, err, tc.field)
		}
	}
	for _, l := range []Listener{
		{Type: "ws", Addr: ":1", Path: "/mqtt"},
		{Type: "wss", Addr: ":1", Path: "/mqtt", TLS: &transport.TLSConfig{CertFile: "testdata/none", KeyFile: "x"}},
	} {
		if err := (&Server{Listeners: []Listener{l}}).Validate(); err != nil && strings.Contains(err.Error(), ".Path") {
			t.Errorf("%+v: a path on a %s listener refused: %v", l, l.Type, err)
		}
	}
}

// readFor reads the next packet, waiting as long as d.
func readFor(t *testing.T, c *rawClient, d time.Duration) packet.Packet {
	t.Helper()
	p, err := c.recvErr(d)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return p
}

// TestDefaultMaxPacketSizeLargePayloads: with the defaults, messages
// of 1 MiB and 8 MiB pass end to end, for MQTT 3.1.1 and 5.0, and the
// CONNACK announces DefaultMaxPacketSize.
func TestDefaultMaxPacketSizeLargePayloads(t *testing.T) {
	addr := startServer(t, &Server{SysInterval: -1})
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		sub := dialRaw(t, addr, v)
		ack := sub.connect(&packet.Connect{ClientID: "big-sub-" + v.String(), CleanStart: true})
		if v == packet.V5 && ack.Properties.MaximumPacketSize != DefaultMaxPacketSize {
			t.Errorf("CONNACK Maximum Packet Size %d, want %d", ack.Properties.MaximumPacketSize, DefaultMaxPacketSize)
		}
		sub.subscribe(1, "big/#", 1)
		pub := dialRaw(t, addr, v)
		pub.connect(&packet.Connect{ClientID: "big-pub-" + v.String(), CleanStart: true})
		for i, size := range []int{1 << 20, 8 << 20} {
			payload := bytes.Repeat([]byte{byte('a' + i)}, size)
			payload[size-1] = '!'
			id := uint16(10 + i)
			pub.nc.SetWriteDeadline(time.Now().Add(time.Minute))
			if err := pub.w.WritePacket(&packet.Publish{Topic: "big/x", QoS: 1, PacketID: id, Payload: payload}); err != nil {
				t.Fatalf("%v, %d bytes: send: %v", v, size, err)
			}
			if a, ok := readFor(t, pub, time.Minute).(*packet.Puback); !ok || a.PacketID != id || a.ReasonCode.IsError() {
				t.Fatalf("%v, %d bytes: want PUBACK %d, got %v", v, size, id, a)
			}
			p, ok := readFor(t, sub, time.Minute).(*packet.Publish)
			if !ok || !bytes.Equal(p.Payload, payload) {
				t.Fatalf("%v, %d bytes: the subscriber did not get the payload intact (%T)", v, size, p)
			}
			sub.send(&packet.Puback{PacketID: p.PacketID})
		}
	}
}

// TestAnnouncedSizeNotAllocated: a client that announces a huge PUBLISH
// and sends only a little of it does not make the broker allocate the
// announced size. The broker's allocations are measured from the moment
// before the header is sent to the moment the broker has read what came
// and closed the connection (the client half-closes after its bytes).
func TestAnnouncedSizeNotAllocated(t *testing.T) {
	for _, tc := range []struct {
		name      string
		srv       *Server
		announced int
	}{
		{"default limit", &Server{SysInterval: -1}, DefaultMaxPacketSize - 16},
		{"protocol limit, 200 MiB", &Server{SysInterval: -1, MaxPacketSize: packet.MaxPacketSize}, 200 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startServer(t, tc.srv)
			c := dialRaw(t, addr, packet.V311)
			c.connect(&packet.Connect{ClientID: "claims", CleanStart: true})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			// A PUBLISH of the announced length: topic "a/b", then only
			// 64 KiB + 1 of payload, enough to go past the first buffer.
			hdr := append([]byte{0x30}, rawVBI(tc.announced)...)
			body := append([]byte{0, 3, 'a', '/', 'b'}, make([]byte, 64<<10+1)...)
			c.nc.SetDeadline(time.Now().Add(time.Minute))
			if _, err := c.nc.Write(append(hdr, body...)); err != nil {
				t.Fatal(err)
			}
			c.nc.(*net.TCPConn).CloseWrite()
			if p, err := c.recvErr(time.Minute); err == nil {
				t.Fatalf("got %v, want the connection closed", p)
			} else if isTimeout(err) {
				t.Fatal("the broker did not close the connection")
			}
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("announced %d bytes, sent %d: the process allocated %d bytes meanwhile", tc.announced, len(body), allocated)
			if allocated >= uint64(tc.announced)/2 {
				t.Errorf("the process allocated %d bytes for a packet announcing %d and sending %d", allocated, tc.announced, len(body))
			}
		})
	}
}
