package proxy_test

// The broker's hostile inputs (broker/hostile_test.go, v5_hostile_test.go)
// sent through the proxy: every attack must close the attacking
// connection (MQTT 5: with the reason code the rule calls for), nothing
// malformed or out of protocol may reach the upstream (a Tap decodes
// everything the upstream gets), the proxy must go on, and the healthy
// clients behind it must not notice.

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/proxy"
)

type hostileEnv struct {
	*env
	t     *testing.T
	bys   []*mqtttest.RawClient
	pub   *mqtttest.RawClient
	id    uint16
	acked []string
}

func newHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	return newHostileEnvOn(t, "")
}

// newHostileEnvOn is newHostileEnv with the upstream at addr: "" for a
// Tern broker of its own.
func newHostileEnvOn(t *testing.T, addr string) *hostileEnv {
	t.Helper()
	ps := &proxy.Server{MaxPacketSize: 1024, ConnectTimeout: 500 * time.Millisecond}
	var e *hostileEnv
	if addr == "" {
		e = &hostileEnv{t: t, env: newEnvP(t, &broker.Server{SysInterval: -1}, ps)}
	} else {
		en := &env{tap: mqtttest.StartTap(t, addr)}
		ps.Upstreams = []string{en.tap.URL}
		en.proxy = mqtttest.StartProxy(t, ps, nil)
		e = &hostileEnv{t: t, env: en}
	}
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		by := mqtttest.DialRaw(t, e.proxy.Addr, v)
		by.Connect(&packet.Connect{ClientID: "bystander-" + v.String(), CleanStart: true})
		if ack := by.Subscribe(1, "ok/#", 1); ack.ReasonCodes[0] != 1 {
			t.Fatalf("bystander SUBACK %v", ack)
		}
		e.bys = append(e.bys, by)
	}
	e.pub = e.raw(t, "publisher", packet.V311)
	return e
}

// publish sends a QoS 1 message from c and waits for its PUBACK.
func (e *hostileEnv) publish(c *mqtttest.RawClient, topic, payload string) {
	e.t.Helper()
	e.id++
	c.Send(&packet.Publish{Topic: topic, QoS: 1, PacketID: e.id, Payload: []byte(payload)})
	if ack := mqtttest.Expect[*packet.Puback](c); ack.PacketID != e.id || ack.ReasonCode >= 0x80 {
		e.t.Fatalf("want PUBACK %d, got %v", e.id, ack)
	}
	e.acked = append(e.acked, payload)
}

// check: the healthy clients carry on, nothing bad reached the upstream,
// and the proxy is back to its three connections.
func (e *hostileEnv) check() {
	e.t.Helper()
	for i := range 3 {
		e.publish(e.pub, "ok/after", fmt.Sprintf("after-%d", i))
	}
	for _, by := range e.bys {
		for _, want := range e.acked {
			p := by.ExpectPublish()
			if string(p.Payload) != want {
				e.t.Fatalf("bystander %v got %v, want %q", by, p, want)
			}
			by.Send(&packet.Puback{PacketID: p.PacketID})
		}
	}
	e.acked = nil
	eventually(e.t, "the proxy back to 3 connections", func() bool { return e.proxy.Server.Conns() == 3 })
	if errs := e.tap.Errors(); len(errs) > 0 {
		e.t.Fatalf("malformed bytes reached the upstream: %v", errs)
	}
	for _, p := range e.tap.Packets(mqtttest.ClientToServer) {
		switch p.(type) {
		case *packet.Connack, *packet.Suback, *packet.Unsuback, *packet.Pingresp:
			e.t.Fatalf("%v reached the upstream", p)
		case *packet.Publish:
			if pub := p.(*packet.Publish); !strings.HasPrefix(pub.Topic, "ok/") {
				e.t.Fatalf("%v reached the upstream", p)
			}
		}
	}
}

// hostile connects a client that publishes one acknowledged message
// before it turns hostile.
func (e *hostileEnv) hostile(v packet.Version) *mqtttest.RawClient {
	e.t.Helper()
	h := mqtttest.DialRaw(e.t, e.proxy.Addr, v)
	h.Connect(&packet.Connect{ClientID: "hostile", CleanStart: true})
	e.publish(h, "ok/hostile", fmt.Sprintf("hostile-%d", e.id+1))
	return h
}

func (e *hostileEnv) dial() net.Conn {
	e.t.Helper()
	nc, err := net.DialTimeout("tcp", e.proxy.Addr, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	return nc
}

func writeRaw(nc net.Conn, b []byte) {
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	nc.Write(b)
}

// readUntilClosed reads until the proxy closes nc and returns what came.
func readUntilClosed(t *testing.T, nc net.Conn, d time.Duration) []byte {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(nc)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("connection not closed: %v (got % x)", err, b)
	}
	return b
}

func rawVBI(n int) []byte {
	var b []byte
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func rawPkt(b0 byte, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	return append(append([]byte{b0}, rawVBI(len(body))...), body...)
}

func rawStr(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
func rawU16(n uint16) []byte { return []byte{byte(n >> 8), byte(n)} }
func rawProps(v packet.Version, props ...byte) []byte {
	if v != packet.V5 {
		return nil
	}
	return append(rawVBI(len(props)), props...)
}

func rawPublish(v packet.Version, flags byte, topic string, id uint16, props []byte, payload string) []byte {
	parts := [][]byte{rawStr(topic)}
	if flags&0x06 != 0 {
		parts = append(parts, rawU16(id))
	}
	parts = append(parts, rawProps(v, props...), []byte(payload))
	return rawPkt(0x30|flags, parts...)
}

func rawSubscribe(v packet.Version, id uint16, filters ...string) []byte {
	parts := [][]byte{rawU16(id), rawProps(v)}
	for _, f := range filters {
		parts = append(parts, rawStr(f), []byte{1})
	}
	return rawPkt(0x82, parts...)
}

func rawUserProp(k, v string) []byte {
	return append(append([]byte{0x26}, rawStr(k)...), rawStr(v)...)
}

func mustEncode(t *testing.T, p packet.Packet, v packet.Version) []byte {
	t.Helper()
	b, err := packet.Encode(p, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var badUTF8 = []string{"ok/\xed\xa0\x80", "ok/\xc0\xaf", "ok/\x80", "ok/\x00"}

// TestHostileBeforeConnect: a first packet that is not a valid CONNECT
// closes the connection; the proxy does not even dial the upstream.
func TestHostileBeforeConnect(t *testing.T) {
	e := newHostileEnv(t)
	const setup = 5 // the healthy clients' 3 CONNECTs and 2 SUBSCRIBEs
	cases := map[string][]byte{
		"PUBLISH":                  mustEncode(t, &packet.Publish{Topic: "ok/pre", QoS: 1, PacketID: 1}, packet.V311),
		"SUBSCRIBE":                mustEncode(t, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "#"}}}, packet.V311),
		"PINGREQ":                  {0xc0, 0x00},
		"CONNACK":                  {0x20, 0x02, 0x00, 0x00},
		"remaining length 5 B":     {0x10, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"CONNECT too large":        mustEncode(t, &packet.Connect{Version: packet.V5, ClientID: "big", Password: make([]byte, 4096)}, packet.V5),
		"CONNECT header too large": append([]byte{0x10}, rawVBI(1<<20)...),
		"not MQTT":                 rawPkt(0x10, rawStr("HTTP"), []byte{4, 2}, rawU16(0), rawStr("c")),
		"will QoS 3":               rawPkt(0x10, rawStr("MQTT"), []byte{4, 0x02 | 0x04 | 3<<3}, rawU16(0), rawStr("c"), rawStr("ok/w"), rawStr("x")),
		"will topic wildcard":      rawPkt(0x10, rawStr("MQTT"), []byte{4, 0x02 | 0x04}, rawU16(0), rawStr("c"), rawStr("ok/#"), rawStr("x")),
	}
	for i, bad := range badUTF8 {
		cases[fmt.Sprintf("bad UTF-8 client id %d", i)] = rawPkt(0x10, rawStr("MQTT"), []byte{4, 0x02}, rawU16(0), rawStr(bad))
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			nc := e.dial()
			writeRaw(nc, b)
			if got := readUntilClosed(t, nc, 5*time.Second); len(got) != 0 {
				t.Fatalf("got % x, want nothing", got)
			}
		})
	}
	t.Run("slowloris", func(t *testing.T) {
		var ncs []net.Conn
		for range 10 {
			ncs = append(ncs, e.dial()) // silent
		}
		partial := e.dial()
		writeRaw(partial, []byte{0x10, 0x80, 0x80, 0x20}) // a CONNECT that never comes
		ncs = append(ncs, partial)
		for _, nc := range ncs {
			if got := readUntilClosed(t, nc, 5*time.Second); len(got) != 0 {
				t.Fatalf("got % x", got)
			}
		}
	})
	e.check()
	// The check's 3 PUBLISHes and 3+3 PUBACKs, nothing else.
	eventually(t, "9 packets upstream", func() bool { return len(e.tap.Packets(mqtttest.ClientToServer))-setup >= 9 })
	time.Sleep(50 * time.Millisecond)
	if n := len(e.tap.Packets(mqtttest.ClientToServer)); n-setup != 9 {
		t.Fatalf("the upstream got %d packets besides the healthy clients' set-up, want 9: %v", n-setup, e.tap.Packets(mqtttest.ClientToServer))
	}
}

// TestHostileAfterConnect: packets that break the protocol after CONNECT
// close that connection with the right MQTT 5 code, and are not passed on.
func TestHostileAfterConnect(t *testing.T) {
	type tc struct {
		name   string
		v5only bool
		b      func(v packet.Version) []byte
		code   packet.ReasonCode
	}
	cases := []tc{
		{name: "remaining length of 5 bytes", code: packet.MalformedPacket,
			b: func(packet.Version) []byte { return []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f} }},
		{name: "PUBLISH larger than MaxPacketSize", code: packet.PacketTooLarge,
			b: func(v packet.Version) []byte {
				return mustEncode(t, &packet.Publish{Topic: "ok/big", QoS: 1, PacketID: 999, Payload: make([]byte, 4096)}, v)
			}},
		{name: "header announcing too large a packet", code: packet.PacketTooLarge,
			b: func(packet.Version) []byte { return append([]byte{0x30}, rawVBI(1025)...) }},
		{name: "second CONNECT", code: packet.ProtocolErrorCode,
			b: func(v packet.Version) []byte {
				return mustEncode(t, &packet.Connect{Version: v, ClientID: "bystander-5.0"}, v)
			}},
		{name: "QoS 3 PUBLISH", code: packet.MalformedPacket,
			b: func(v packet.Version) []byte { return rawPublish(v, 0x06, "ok/q3", 7, nil, "x") }},
		{name: "packet id 0 on QoS 1 PUBLISH", code: packet.ProtocolErrorCode,
			b: func(v packet.Version) []byte { return rawPublish(v, 0x02, "ok/id0", 0, nil, "x") }},
		{name: "packet id 0 on SUBSCRIBE", code: packet.ProtocolErrorCode,
			b: func(v packet.Version) []byte { return rawSubscribe(v, 0, "ok/#") }},
		{name: "SUBSCRIBE with reserved flags", code: packet.MalformedPacket,
			b: func(v packet.Version) []byte { s := rawSubscribe(v, 1, "ok/#"); s[0] = 0x80; return s }},
		{name: "reserved packet type 0", code: packet.MalformedPacket,
			b: func(packet.Version) []byte { return []byte{0x00, 0x00} }},
		{name: "CONNACK from a client", code: packet.ProtocolErrorCode,
			b: func(v packet.Version) []byte { return mustEncode(t, &packet.Connack{}, v) }},
		{name: "SUBACK from a client", code: packet.ProtocolErrorCode,
			b: func(v packet.Version) []byte {
				return mustEncode(t, &packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{1}}, v)
			}},
		{name: "AUTH without authentication method", v5only: true, code: packet.ProtocolErrorCode,
			b: func(v packet.Version) []byte { return mustEncode(t, &packet.Auth{}, v) }},
		{name: "topic alias above the maximum", v5only: true, code: packet.TopicAliasInvalid,
			b: func(v packet.Version) []byte {
				return rawPublish(v, 0x02, "ok/alias", 5, []byte{0x23, 0xff, 0xff}, "x")
			}},
		{name: "topic alias never set", v5only: true, code: packet.ProtocolErrorCode,
			b: func(v packet.Version) []byte { return rawPublish(v, 0x02, "", 5, []byte{0x23, 0x00, 0x01}, "x") }},
		{name: "duplicated property", v5only: true, code: packet.ProtocolErrorCode,
			b: func(v packet.Version) []byte {
				return rawPublish(v, 0x02, "ok/dup", 5, []byte{0x01, 0x01, 0x01, 0x01}, "x")
			}},
	}
	for _, topic := range []string{"ok/+", "ok/#", "#", "ok/a+"} {
		cases = append(cases, tc{name: "wildcard in PUBLISH topic " + topic, code: packet.TopicNameInvalid,
			b: func(v packet.Version) []byte { return rawPublish(v, 0x02, topic, 5, nil, "x") }})
	}
	for i, bad := range badUTF8 {
		cases = append(cases,
			tc{name: fmt.Sprintf("invalid UTF-8 PUBLISH topic %d", i), code: packet.MalformedPacket,
				b: func(v packet.Version) []byte { return rawPublish(v, 0x02, bad, 5, nil, "x") }},
			tc{name: fmt.Sprintf("invalid UTF-8 SUBSCRIBE filter %d", i), code: packet.MalformedPacket,
				b: func(v packet.Version) []byte { return rawSubscribe(v, 3, "ok/fine", bad) }},
			tc{name: fmt.Sprintf("invalid UTF-8 user property %d", i), v5only: true, code: packet.MalformedPacket,
				b: func(v packet.Version) []byte { return rawPublish(v, 0x02, "ok/up", 5, rawUserProp("k", bad), "x") }},
		)
	}
	upstreams := []string{"tern", "mosquitto"}
	for _, upName := range upstreams {
		for _, v := range []packet.Version{packet.V311, packet.V5} {
			t.Run(upName+"/"+v.String(), func(t *testing.T) {
				addr := ""
				if upName == "mosquitto" {
					addr = mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{}).Addr
				}
				e := newHostileEnvOn(t, addr)
				for _, c := range cases {
					if c.v5only && v != packet.V5 {
						continue
					}
					t.Run(c.name, func(t *testing.T) {
						h := e.hostile(v)
						if err := h.SendBytes(c.b(v)); err != nil {
							t.Fatal(err)
						}
						got := h.ExpectClosed()
						if v == packet.V5 {
							expectDisconnect(t, got, c.code)
						}
						e.check()
					})
				}
			})
		}
	}
}

// TestHostileGarbage: random bytes after CONNECT.
func TestHostileGarbage(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			e := newHostileEnv(t)
			for seed := uint64(1); seed <= 8; seed++ {
				r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
				g := make([]byte, 1+r.IntN(4096))
				for i := range g {
					g[i] = byte(r.Uint32())
				}
				h := e.hostile(v)
				h.SendBytes(g)
				// Garbage that stops inside a plausible packet leaves the
				// proxy waiting for the rest: the hostile side then leaves.
				if _, err := h.RecvTimeout(300 * time.Millisecond); err != nil && mqtttest.IsTimeout(err) {
					h.Close()
				}
				e.check()
			}
		})
	}
}

// TestHostileUpstream: an upstream that sends a malformed packet, or one
// a server must not send, is cut off; the client gets DISCONNECT 0x80
// (MQTT 5), never the bad packet, and the proxy goes on.
func TestHostileUpstream(t *testing.T) {
	rs := mqtttest.ListenRaw(t)
	px := mqtttest.StartProxy(t, &proxy.Server{Upstreams: []string{rs.URL}}, nil)
	cases := map[string][]byte{
		"malformed PUBLISH": {0x30, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"QoS 3 PUBLISH":     rawPublish(packet.V5, 0x06, "t", 1, nil, "x"),
		"SUBSCRIBE":         rawSubscribe(packet.V5, 1, "#"),
		"second CONNACK":    {0x20, 0x03, 0x00, 0x00, 0x00},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			c := mqtttest.DialRaw(t, px.Addr, packet.V5)
			c.Send(&packet.Connect{ClientID: "victim", CleanStart: true})
			up, _ := rs.AcceptConnect(&packet.Connack{})
			mqtttest.Expect[*packet.Connack](c)
			if err := up.SendBytes(b); err != nil {
				t.Fatal(err)
			}
			expectDisconnect(t, c.ExpectClosed(), packet.UnspecifiedError)
			got := up.ExpectClosed()
			if len(got) == 0 || got[len(got)-1].Type() != packet.DISCONNECT {
				t.Fatalf("upstream got %v, want a DISCONNECT", got)
			}
		})
	}
	eventually(t, "no connection left", func() bool { return px.Server.Conns() == 0 })
}

// TestUnsupportedLevel: a CONNECT of protocol level 6 gets CONNACK
// return code 1 [v3 MQTT-3.1.2-2] and nothing is dialed.
func TestUnsupportedLevel(t *testing.T) {
	e := newEnv(t, nil)
	nc, err := net.Dial("tcp", e.proxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	writeRaw(nc, rawPkt(0x10, rawStr("MQTT"), []byte{6, 0x02}, rawU16(0), rawStr("c")))
	if got := readUntilClosed(t, nc, 5*time.Second); !bytes.Equal(got, []byte{0x20, 0x02, 0x00, 0x01}) {
		t.Fatalf("got % x, want CONNACK return code 1", got)
	}
	if n := len(e.tap.Packets(mqtttest.ClientToServer)); n != 0 {
		t.Fatalf("the upstream got %d packets", n)
	}
}
