package broker

// Hostile input: every test runs a broker with healthy clients (two
// bystander subscribers with persistent sessions and a publisher), attacks
// it on separate connections, and then checks that the attacking
// connection was closed (MQTT 5: with the expected DISCONNECT reason
// code), that the healthy clients carry on, that every QoS 1 message
// acknowledged before, during or after the attack reaches the bystanders,
// and that the broker's connection, session and subscription counts come
// back to the baseline. Panics would kill the test binary; goroutine
// leaks are caught by goleak in TestMain.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

var hostileVersions = []packet.Version{packet.V311, packet.V5}

// hostileEnv is the shared harness of the hostile-input tests.
type hostileEnv struct {
	t    *testing.T
	srv  *Server
	addr string
	bys  []*rawClient // bystanders: persistent sessions, QoS 1 on ok/#
	pub  *rawClient   // healthy publisher
	id   uint16       // last packet id used for a QoS 1 PUBLISH
	// acked are the payloads of the QoS 1 messages to ok/... that the
	// broker has acknowledged and the bystanders have not yet received,
	// in publishing order.
	acked []string
	// Sessions and subscriptions a test leaves behind on purpose.
	extraSessions, extraSubs int
	allowDrops               bool // the test makes the broker drop messages
}

// newHostileEnv starts srv with the healthy clients and publishes a few
// QoS 1 messages that the bystanders receive only after the attack.
func newHostileEnv(t *testing.T, srv *Server) *hostileEnv {
	t.Helper()
	if srv.SysInterval == 0 {
		srv.SysInterval = -1
	}
	e := &hostileEnv{t: t, srv: srv}
	e.addr = startServer(t, srv)
	for _, v := range hostileVersions {
		by := dialRaw(t, e.addr, v)
		cp := &packet.Connect{ClientID: "bystander-" + v.String()}
		if v == packet.V5 {
			cp.Properties.SessionExpiry = 3600
		}
		by.connect(cp)
		if ack := by.subscribe(1, "ok/#", 1); len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != 1 {
			t.Fatalf("bystander SUBACK %v", ack)
		}
		e.bys = append(e.bys, by)
	}
	e.pub = dialRaw(t, e.addr, packet.V311)
	e.pub.connect(&packet.Connect{ClientID: "publisher", CleanStart: true})
	e.before()
	e.waitBaseline()
	return e
}

// before publishes 3 QoS 1 messages that the bystanders are to receive
// only after the attack.
func (e *hostileEnv) before() {
	e.t.Helper()
	for range 3 {
		e.publish(e.pub, "ok/before", fmt.Sprintf("before-%d", e.id+1))
	}
}

// publish sends a QoS 1 message from c and waits for its PUBACK; the
// message is then owed to the bystanders if topic is under ok/.
func (e *hostileEnv) publish(c *rawClient, topic, payload string) {
	e.t.Helper()
	e.id++
	c.send(&packet.Publish{Topic: topic, QoS: 1, PacketID: e.id, Payload: []byte(payload)})
	ack, ok := c.recv().(*packet.Puback)
	if !ok || ack.PacketID != e.id || ack.ReasonCode.IsError() {
		e.t.Fatalf("want PUBACK %d, got %v", e.id, ack)
	}
	if strings.HasPrefix(topic, "ok/") {
		e.acked = append(e.acked, payload)
	}
}

// check publishes 10 QoS 1 messages from the healthy publisher, all of
// which must be acknowledged, and checks that each bystander receives
// every acknowledged message, in order, and nothing else.
func (e *hostileEnv) check() {
	e.t.Helper()
	for i := range 10 {
		e.publish(e.pub, "ok/after", fmt.Sprintf("after-%d", i))
	}
	for _, by := range e.bys {
		for _, want := range e.acked {
			p := by.expectPublish()
			if p.QoS != 1 || string(p.Payload) != want {
				e.t.Fatalf("bystander %v got %v, want QoS 1 %q", by.v, p, want)
			}
			by.send(&packet.Puback{PacketID: p.PacketID})
		}
	}
	e.acked = nil
	e.waitBaseline()
	if d := e.srv.Stats().Dropped; d != 0 && !e.allowDrops {
		e.t.Fatalf("broker dropped %d messages", d)
	}
}

// waitBaseline waits until the broker has only the healthy connections
// and the sessions and subscriptions expected.
func (e *hostileEnv) waitBaseline() {
	e.t.Helper()
	n := len(e.bys) + 1
	wantSess := n + e.extraSessions
	wantSubs := int64(len(e.bys) + e.extraSubs)
	var st Stats
	var tracked int
	ok := eventually(15*time.Second, func() bool {
		st = e.srv.Stats()
		e.srv.mu.Lock()
		tracked = len(e.srv.conns)
		e.srv.mu.Unlock()
		return st.ClientsConnected == int64(n) && tracked == n && st.Sessions == wantSess && st.Subscriptions == wantSubs
	})
	if !ok {
		e.t.Fatalf("broker did not return to its baseline: clients connected %d, connections tracked %d (want %d); sessions %d (want %d); subscriptions %d (want %d)",
			st.ClientsConnected, tracked, n, st.Sessions, wantSess, st.Subscriptions, wantSubs)
	}
}

// dial opens a raw TCP connection for hostile bytes.
func (e *hostileEnv) dial() net.Conn {
	e.t.Helper()
	nc, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	return nc
}

// hostile opens a connection that completes a clean-session CONNECT and
// publishes one acknowledged QoS 1 message (owed to the bystanders) before
// it turns hostile.
func (e *hostileEnv) hostile(v packet.Version, keepAlive uint16) *rawClient {
	e.t.Helper()
	h := dialRaw(e.t, e.addr, v)
	h.connect(&packet.Connect{ClientID: "hostile", CleanStart: true, KeepAlive: keepAlive})
	e.publish(h, "ok/hostile", fmt.Sprintf("hostile-%d", e.id+1))
	return h
}

// eventually polls cond every 10 ms until it holds or d has passed.
func eventually(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeRaw writes hostile bytes. Errors are ignored: the server may close
// the connection before it has read them all.
func writeRaw(nc net.Conn, b []byte) {
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	nc.Write(b)
}

// readUntilClosed reads until the server closes nc and returns what it
// sent; it fails the test if nc is still open after d.
func readUntilClosed(t *testing.T, nc net.Conn, d time.Duration) []byte {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(d))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := nc.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if isTimeout(err) {
				t.Fatalf("connection still open after %v (received % x)", d, got)
			}
			return got
		}
	}
}

// expectRefused waits for the server to close a connection that never
// completed a CONNECT: it may have answered with a refusing CONNACK, but
// with nothing else.
func expectRefused(t *testing.T, nc net.Conn) {
	t.Helper()
	got := readUntilClosed(t, nc, 5*time.Second)
	if len(got) == 0 {
		return
	}
	if len(got) < 4 || got[0] != 0x20 || got[3] == 0 {
		t.Fatalf("server sent % x to a connection without a valid CONNECT", got)
	}
}

// expectKicked waits for the server to close h. An MQTT 5 client must get
// a DISCONNECT with code want as the last packet; a 3.1.1 client none.
func expectKicked(t *testing.T, h *rawClient, want packet.ReasonCode) {
	t.Helper()
	got := h.expectClosed()
	if h.v != packet.V5 {
		for _, p := range got {
			if p.Type() == packet.DISCONNECT {
				t.Fatalf("3.1.1 client got %v", p)
			}
		}
		return
	}
	if len(got) == 0 {
		t.Fatalf("closed without DISCONNECT, want DISCONNECT 0x%02x", byte(want))
	}
	d, ok := got[len(got)-1].(*packet.Disconnect)
	if !ok || d.ReasonCode != want {
		t.Fatalf("got %v before close, want DISCONNECT 0x%02x (%v)", got, byte(want), want)
	}
}

// Raw packet construction, for bytes the packet package refuses to encode.

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

// rawProps is an MQTT 5 property block (length and properties); nothing
// for 3.1.1.
func rawProps(v packet.Version, props ...[]byte) []byte {
	if v != packet.V5 {
		return nil
	}
	var b []byte
	for _, p := range props {
		b = append(b, p...)
	}
	return append(rawVBI(len(b)), b...)
}

func rawUserProp(k, v string) []byte { return append(append([]byte{0x26}, rawStr(k)...), rawStr(v)...) }

// rawPublish builds a PUBLISH with fixed-header flags flags (a packet id
// is included when the QoS bits are non-zero).
func rawPublish(v packet.Version, flags byte, topic string, id uint16, props []byte, payload string) []byte {
	parts := [][]byte{rawStr(topic)}
	if flags&0x06 != 0 {
		parts = append(parts, rawU16(id))
	}
	parts = append(parts, rawProps(v, props), []byte(payload))
	return rawPkt(0x30|flags, parts...)
}

func rawSubscribe(v packet.Version, id uint16, filters ...string) []byte {
	parts := [][]byte{rawU16(id), rawProps(v)}
	for _, f := range filters {
		parts = append(parts, rawStr(f), []byte{1})
	}
	return rawPkt(0x82, parts...)
}

// rawConnect describes a CONNECT whose strings are not checked.
type rawConnect struct {
	clientID  string
	username  *string
	willTopic *string
	props     []byte // MQTT 5 CONNECT properties
	willQoS   byte
}

func (rc rawConnect) bytes(v packet.Version) []byte {
	flags := byte(0x02) | rc.willQoS<<3
	if rc.willTopic != nil {
		flags |= 0x04
	}
	if rc.username != nil {
		flags |= 0x80
	}
	parts := [][]byte{rawStr("MQTT"), {byte(v)}, {flags}, rawU16(0), rawProps(v, rc.props), rawStr(rc.clientID)}
	if rc.willTopic != nil {
		parts = append(parts, rawProps(v), rawStr(*rc.willTopic), rawStr("bye"))
	}
	if rc.username != nil {
		parts = append(parts, rawStr(*rc.username))
	}
	return rawPkt(0x10, parts...)
}

func mustEncode(t *testing.T, p packet.Packet, v packet.Version) []byte {
	t.Helper()
	b, err := packet.Encode(p, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustDecode checks that b is a well-formed packet for a stream of
// version v (0 before CONNECT): the valid twin of a hostile packet, which
// shows the hostile one is refused for the intended reason.
func mustDecode(t *testing.T, v packet.Version, b []byte) {
	t.Helper()
	if _, n, err := packet.Decode(v, b); err != nil || n != len(b) {
		t.Fatalf("valid twin % x does not decode: %v (%d of %d bytes)", b, err, n, len(b))
	}
}

// Invalid UTF-8: a surrogate, an overlong encoding, a lone continuation
// byte and U+0000.
var badUTF8 = []struct{ name, s string }{
	{"surrogate", "ok/\xed\xa0\x80"},
	{"overlong", "ok/\xc0\xaf"},
	{"continuation", "ok/\x80"},
	{"nul", "ok/\x00"},
}

// TestHostileBeforeConnect: connections whose first packet is not a
// valid CONNECT are closed without an answer (or with a refusing CONNACK).
func TestHostileBeforeConnect(t *testing.T) {
	type tc struct {
		name string
		b    func(v packet.Version) []byte
		good func(v packet.Version) []byte // valid twin, decoded as a first packet
	}
	str := func(s string) *string { return &s }
	cases := []tc{
		{name: "PUBLISH", b: func(v packet.Version) []byte {
			return mustEncode(t, &packet.Publish{Topic: "ok/pre", QoS: 1, PacketID: 1, Payload: []byte("x")}, v)
		}},
		{name: "SUBSCRIBE", b: func(v packet.Version) []byte {
			return mustEncode(t, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "#", QoS: 1}}}, v)
		}},
		{name: "PINGREQ", b: func(v packet.Version) []byte { return mustEncode(t, &packet.Pingreq{}, v) }},
		{name: "DISCONNECT", b: func(v packet.Version) []byte { return mustEncode(t, &packet.Disconnect{}, v) }},
		{name: "CONNACK", b: func(v packet.Version) []byte { return mustEncode(t, &packet.Connack{}, v) }},
		{name: "remaining length of 5 bytes", b: func(packet.Version) []byte { return []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f} }},
		{name: "CONNECT larger than MaxPacketSize", b: func(v packet.Version) []byte {
			return mustEncode(t, &packet.Connect{Version: v, ClientID: "big", CleanStart: true, Username: "u", Password: make([]byte, 4096)}, v)
		}},
		{name: "CONNECT header only, too large", b: func(packet.Version) []byte { return append([]byte{0x10}, rawVBI(1<<20)...) }},
		{name: "will QoS 3", b: func(v packet.Version) []byte {
			return rawConnect{clientID: "c", willTopic: str("ok/will"), willQoS: 3}.bytes(v)
		}, good: func(v packet.Version) []byte {
			return rawConnect{clientID: "c", willTopic: str("ok/will"), willQoS: 1}.bytes(v)
		}},
		{name: "will topic with wildcard", b: func(v packet.Version) []byte {
			return rawConnect{clientID: "c", willTopic: str("ok/#")}.bytes(v)
		}, good: func(v packet.Version) []byte { return rawConnect{clientID: "c", willTopic: str("ok/w")}.bytes(v) }},
	}
	for _, u := range badUTF8 {
		name, bad := u.name, u.s
		cases = append(cases,
			tc{name: "invalid UTF-8 client id " + name,
				b:    func(v packet.Version) []byte { return rawConnect{clientID: bad}.bytes(v) },
				good: func(v packet.Version) []byte { return rawConnect{clientID: "ok/c"}.bytes(v) }},
			tc{name: "invalid UTF-8 username " + name,
				b:    func(v packet.Version) []byte { return rawConnect{clientID: "c", username: &bad}.bytes(v) },
				good: func(v packet.Version) []byte { return rawConnect{clientID: "c", username: str("ok/u")}.bytes(v) }},
			tc{name: "invalid UTF-8 will topic " + name,
				b:    func(v packet.Version) []byte { return rawConnect{clientID: "c", willTopic: &bad}.bytes(v) },
				good: func(v packet.Version) []byte { return rawConnect{clientID: "c", willTopic: str("ok/w")}.bytes(v) }},
			tc{name: "invalid UTF-8 user property " + name, // MQTT 5 only; a 3.1.1 CONNECT has no properties
				b: func(v packet.Version) []byte {
					return rawConnect{clientID: "c", props: rawUserProp("k", bad)}.bytes(packet.V5)
				},
				good: func(v packet.Version) []byte {
					return rawConnect{clientID: "c", props: rawUserProp("k", "ok/p")}.bytes(packet.V5)
				}},
		)
	}
	for _, v := range hostileVersions {
		t.Run(v.String(), func(t *testing.T) {
			e := newHostileEnv(t, &Server{MaxPacketSize: 1024})
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					if c.good != nil {
						mustDecode(t, 0, c.good(v))
					}
					e.before()
					nc := e.dial()
					writeRaw(nc, c.b(v))
					expectRefused(t, nc)
					e.check()
				})
			}
		})
	}
}

// TestHostileAfterConnect: packets that break the protocol after CONNECT
// close that connection, with the MQTT 5 reason code the rule calls for.
func TestHostileAfterConnect(t *testing.T) {
	type tc struct {
		name   string
		v5only bool
		b      func(v packet.Version) []byte
		good   func(v packet.Version) []byte // valid twin
		code   packet.ReasonCode
	}
	cases := []tc{
		{name: "remaining length of 5 bytes", code: packet.MalformedPacket,
			b: func(packet.Version) []byte { return []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f} }},
		{name: "remaining length of 5 bytes, small value", code: packet.MalformedPacket,
			b: func(packet.Version) []byte { return []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01} }},
		{name: "PUBLISH larger than MaxPacketSize", code: packet.PacketTooLarge,
			b: func(v packet.Version) []byte {
				return mustEncode(t, &packet.Publish{Topic: "ok/big", QoS: 1, PacketID: 999, Payload: make([]byte, 4096)}, v)
			}},
		{name: "header announcing a packet larger than MaxPacketSize", code: packet.PacketTooLarge,
			b: func(packet.Version) []byte { return append([]byte{0x30}, rawVBI(1025)...) }},
		{name: "second CONNECT", code: packet.ProtocolErrorCode,
			b: func(v packet.Version) []byte {
				return mustEncode(t, &packet.Connect{Version: v, ClientID: "hostile", CleanStart: true}, v)
			}},
		{name: "second CONNECT, other client id", code: packet.ProtocolErrorCode,
			b: func(v packet.Version) []byte {
				return mustEncode(t, &packet.Connect{Version: v, ClientID: "bystander-5.0", CleanStart: true}, v)
			}},
		{name: "QoS 3 PUBLISH", code: packet.MalformedPacket,
			b:    func(v packet.Version) []byte { return rawPublish(v, 0x06, "ok/q3", 7, nil, "x") },
			good: func(v packet.Version) []byte { return rawPublish(v, 0x02, "ok/q3", 7, nil, "x") }},
		{name: "QoS 3 PUBLISH, DUP and RETAIN", code: packet.MalformedPacket,
			b:    func(v packet.Version) []byte { return rawPublish(v, 0x0f, "ok/q3", 7, nil, "x") },
			good: func(v packet.Version) []byte { return rawPublish(v, 0x0b, "ok/q3", 7, nil, "x") }},
		{name: "packet id 0 on QoS 1 PUBLISH", code: packet.ProtocolErrorCode,
			b:    func(v packet.Version) []byte { return rawPublish(v, 0x02, "ok/id0", 0, nil, "x") },
			good: func(v packet.Version) []byte { return rawPublish(v, 0x02, "ok/id0", 1, nil, "x") }},
		{name: "packet id 0 on QoS 2 PUBLISH", code: packet.ProtocolErrorCode,
			b:    func(v packet.Version) []byte { return rawPublish(v, 0x04, "ok/id0", 0, nil, "x") },
			good: func(v packet.Version) []byte { return rawPublish(v, 0x04, "ok/id0", 1, nil, "x") }},
		{name: "packet id 0 on SUBSCRIBE", code: packet.ProtocolErrorCode,
			b:    func(v packet.Version) []byte { return rawSubscribe(v, 0, "ok/#") },
			good: func(v packet.Version) []byte { return rawSubscribe(v, 1, "ok/#") }},
		{name: "packet id 0 on UNSUBSCRIBE", code: packet.ProtocolErrorCode,
			b:    func(v packet.Version) []byte { return rawPkt(0xa2, rawU16(0), rawProps(v), rawStr("ok/#")) },
			good: func(v packet.Version) []byte { return rawPkt(0xa2, rawU16(1), rawProps(v), rawStr("ok/#")) }},
		{name: "SUBSCRIBE with reserved flags", code: packet.MalformedPacket,
			b:    func(v packet.Version) []byte { s := rawSubscribe(v, 1, "ok/#"); s[0] = 0x80; return s },
			good: func(v packet.Version) []byte { return rawSubscribe(v, 1, "ok/#") }},
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
	}
	for _, topic := range []string{"ok/+", "ok/#", "#", "+", "ok/+/x", "ok/a+", "ok/#/x"} {
		cases = append(cases, tc{name: "wildcard in PUBLISH topic " + topic, code: packet.TopicNameInvalid,
			b:    func(v packet.Version) []byte { return rawPublish(v, 0x02, topic, 5, nil, "x") },
			good: func(v packet.Version) []byte { return rawPublish(v, 0x02, "ok/w", 5, nil, "x") }})
	}
	for _, u := range badUTF8 {
		name, bad := u.name, u.s
		cases = append(cases,
			tc{name: "invalid UTF-8 PUBLISH topic " + name, code: packet.MalformedPacket,
				b:    func(v packet.Version) []byte { return rawPublish(v, 0x02, bad, 5, nil, "x") },
				good: func(v packet.Version) []byte { return rawPublish(v, 0x02, "ok/u", 5, nil, "x") }},
			tc{name: "invalid UTF-8 SUBSCRIBE filter " + name, code: packet.MalformedPacket,
				b:    func(v packet.Version) []byte { return rawSubscribe(v, 3, "ok/fine", bad) },
				good: func(v packet.Version) []byte { return rawSubscribe(v, 3, "ok/fine", "ok/u") }},
			tc{name: "invalid UTF-8 user property value " + name, v5only: true, code: packet.MalformedPacket,
				b:    func(v packet.Version) []byte { return rawPublish(v, 0x02, "ok/up", 5, rawUserProp("k", bad), "x") },
				good: func(v packet.Version) []byte { return rawPublish(v, 0x02, "ok/up", 5, rawUserProp("k", "ok"), "x") }},
			tc{name: "invalid UTF-8 user property key " + name, v5only: true, code: packet.MalformedPacket,
				b:    func(v packet.Version) []byte { return rawPublish(v, 0x02, "ok/up", 5, rawUserProp(bad, "v"), "x") },
				good: func(v packet.Version) []byte { return rawPublish(v, 0x02, "ok/up", 5, rawUserProp("ok", "v"), "x") }},
		)
	}
	for _, v := range hostileVersions {
		t.Run(v.String(), func(t *testing.T) {
			e := newHostileEnv(t, &Server{MaxPacketSize: 1024})
			for _, c := range cases {
				if c.v5only && v != packet.V5 {
					continue
				}
				t.Run(c.name, func(t *testing.T) {
					if c.good != nil {
						mustDecode(t, v, c.good(v))
					}
					e.before()
					h := e.hostile(v, 0)
					writeRaw(h.nc, c.b(v))
					expectKicked(t, h, c.code)
					e.check()
				})
			}
		})
	}
}

// TestHostileGarbage sends random bytes, before and after CONNECT.
func TestHostileGarbage(t *testing.T) {
	garbage := func(seed uint64) []byte {
		r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		b := make([]byte, 1+r.IntN(4096))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	seeds := []uint64{1, 2, 3, 4, 5, 6, 7, 8}
	t.Run("before CONNECT", func(t *testing.T) {
		e := newHostileEnv(t, &Server{ConnectTimeout: 500 * time.Millisecond})
		for _, seed := range seeds {
			e.before()
			nc := e.dial()
			writeRaw(nc, garbage(seed))
			readUntilClosed(t, nc, 5*time.Second) // a CONNECT-looking prefix may get a refusing CONNACK
			e.check()
		}
		// A stream of CONNECT-looking garbage: a valid fixed header and
		// protocol name, then noise.
		for _, seed := range seeds {
			e.before()
			nc := e.dial()
			g := garbage(seed)
			writeRaw(nc, append(rawPkt(0x10, rawStr("MQTT"), []byte{5}), g...))
			readUntilClosed(t, nc, 5*time.Second)
			e.check()
		}
	})
	for _, v := range hostileVersions {
		t.Run("after CONNECT "+v.String(), func(t *testing.T) {
			e := newHostileEnv(t, &Server{})
			for _, seed := range seeds {
				t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
					// Keep alive 1 s bounds the wait if the garbage ends in
					// the middle of a plausible packet.
					e.before()
					h := e.hostile(v, 1)
					writeRaw(h.nc, garbage(seed))
					got := h.expectClosed()
					if v == packet.V5 && len(got) > 0 {
						if d, ok := got[len(got)-1].(*packet.Disconnect); ok && !d.ReasonCode.IsError() {
							t.Fatalf("DISCONNECT %v after garbage", d)
						}
					}
					e.check()
				})
			}
		})
	}
}

// TestHostileSlowloris: connections that send nothing, or dribble their
// CONNECT a byte at a time, are closed after ConnectTimeout: a deadline
// for the whole CONNECT, not for each byte.
func TestHostileSlowloris(t *testing.T) {
	e := newHostileEnv(t, &Server{ConnectTimeout: 300 * time.Millisecond})
	var silent, partial, dribble []net.Conn
	for range 50 {
		silent = append(silent, e.dial())
	}
	// A fixed header announcing a 512 KiB CONNECT that never comes.
	for range 5 {
		nc := e.dial()
		writeRaw(nc, []byte{0x10, 0x80, 0x80, 0x20})
		partial = append(partial, nc)
	}
	// A valid CONNECT of about 70 bytes, one byte every 100 ms: it would
	// complete after 7 s if the timeout were per byte.
	cp := mustEncode(t, &packet.Connect{Version: packet.V311, ClientID: strings.Repeat("d", 50), CleanStart: true}, packet.V311)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for range 5 {
		nc := e.dial()
		dribble = append(dribble, nc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for i := range cp {
				nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := nc.Write(cp[i : i+1]); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	for _, nc := range silent {
		if got := readUntilClosed(t, nc, 5*time.Second); len(got) != 0 {
			t.Fatalf("silent connection got % x", got)
		}
	}
	for _, nc := range partial {
		if got := readUntilClosed(t, nc, 5*time.Second); len(got) != 0 {
			t.Fatalf("partial CONNECT got % x", got)
		}
	}
	for _, nc := range dribble {
		// 10 s: past the time the whole CONNECT takes to dribble in, so a
		// per-byte timeout shows as a CONNACK rather than as a timeout.
		if got := readUntilClosed(t, nc, 10*time.Second); len(got) != 0 {
			t.Fatalf("dribbling client got % x: ConnectTimeout does not bound the whole CONNECT", got)
		}
		nc.Close()
	}
	e.check()
	if st := e.srv.Stats(); st.ClientsTotal != 3 {
		t.Errorf("ClientsTotal %d, want 3: a slowloris connection was counted as connected", st.ClientsTotal)
	}
}

// TestHostileKeepAliveExpiry: a client with keep alive 1 s that goes
// silent is closed (MQTT 5: DISCONNECT 0x8D).
func TestHostileKeepAliveExpiry(t *testing.T) {
	for _, v := range hostileVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			e := newHostileEnv(t, &Server{})
			h := e.hostile(v, 1)
			expectKicked(t, h, packet.KeepAliveTimeout)
			e.check()
		})
	}
}

// TestHostileInvalidFilters: invalid topic filters get a failure code in
// the SUBACK; the connection stays up and the valid filters of the same
// SUBSCRIBE work. (An empty filter closes a 3.1.1 connection: defects_test.go.)
func TestHostileInvalidFilters(t *testing.T) {
	valid := map[string]bool{"hv/#": true, "hv2/+": true}
	for _, v := range hostileVersions {
		t.Run(v.String(), func(t *testing.T) {
			filters := []string{"a/#/b", "hv/#", "a+", "#/", "", "a/b#", "+a/b", "$share/", "$share/g", "$share/g/", "$share//a", "$share/a+b/x", "$share/g/a/#/b", "hv2/+"}
			if v != packet.V5 {
				filters = slices.DeleteFunc(filters, func(f string) bool { return f == "" })
			}
			e := newHostileEnv(t, &Server{})
			h := e.hostile(v, 0)
			subs := make([]packet.Subscription, len(filters))
			for i, f := range filters {
				subs[i] = packet.Subscription{Filter: f, QoS: 1}
			}
			h.send(&packet.Subscribe{PacketID: 9, Subscriptions: subs})
			ack, ok := h.recv().(*packet.Suback)
			if !ok || ack.PacketID != 9 || len(ack.ReasonCodes) != len(filters) {
				t.Fatalf("want SUBACK 9 with %d codes, got %v", len(filters), ack)
			}
			fail := packet.V3SubackFailure
			if v == packet.V5 {
				fail = packet.TopicFilterInvalid
			}
			for i, f := range filters {
				want := fail
				if valid[f] {
					want = packet.GrantedQoS1
				}
				if ack.ReasonCodes[i] != want {
					t.Errorf("filter %q: code 0x%02x, want 0x%02x", f, byte(ack.ReasonCodes[i]), byte(want))
				}
			}
			// A valid shared subscription is granted: the client, its only
			// member, gets a second copy through it.
			if ack := h.subscribe(10, "$share/g/hv/#", 1); ack.ReasonCodes[0] != packet.GrantedQoS1 {
				t.Errorf("$share/g/hv/#: code 0x%02x, want 0x01", byte(ack.ReasonCodes[0]))
			}
			e.publish(e.pub, "hv/1", "one")
			e.publish(e.pub, "hv2/x", "two")
			for _, want := range []string{"one", "one", "two"} {
				p := h.expectPublish()
				if string(p.Payload) != want {
					t.Fatalf("got %v, want %q", p, want)
				}
				h.send(&packet.Puback{PacketID: p.PacketID})
			}
			h.send(&packet.Pingreq{})
			if _, ok := h.recv().(*packet.Pingresp); !ok {
				t.Fatal("want PINGRESP")
			}
			h.send(&packet.Disconnect{})
			if got := h.expectClosed(); len(got) != 0 {
				t.Fatalf("got %v after DISCONNECT", got)
			}
			e.check()
		})
	}
}

// TestHostileUnknownPacketIDs: acknowledgements for packet ids the broker
// never used are answered (PUBREL, PUBCOMP) or ignored, harmlessly.
func TestHostileUnknownPacketIDs(t *testing.T) {
	for _, v := range hostileVersions {
		t.Run(v.String(), func(t *testing.T) {
			e := newHostileEnv(t, &Server{})
			h := e.hostile(v, 0)
			// Also a subscription with a message in flight to it, whose id
			// the bogus acknowledgements must not complete.
			h.subscribe(1, "hv/#", 2)
			e.publish(e.pub, "hv/1", "in-flight")
			inflight := h.expectPublish()
			for id := uint16(1); id <= 50; id++ {
				if id == inflight.PacketID {
					continue
				}
				h.send(&packet.Puback{PacketID: id})
				h.send(&packet.Pubcomp{PacketID: id})
			}
			h.send(&packet.Pubrec{PacketID: 60000})
			h.send(&packet.Pubrel{PacketID: 60001})
			h.send(&packet.Pubcomp{PacketID: inflight.PacketID}) // QoS 1 message: wrong kind of ack
			notFound := packet.Success
			if v == packet.V5 {
				notFound = packet.PacketIdentifierNotFound
			}
			if p, ok := h.recv().(*packet.Pubrel); !ok || p.PacketID != 60000 || p.ReasonCode != notFound {
				t.Fatalf("want PUBREL 60000 0x%02x, got %v", byte(notFound), p)
			}
			if p, ok := h.recv().(*packet.Pubcomp); !ok || p.PacketID != 60001 || p.ReasonCode != notFound {
				t.Fatalf("want PUBCOMP 60001 0x%02x, got %v", byte(notFound), p)
			}
			h.send(&packet.Pingreq{})
			if p, ok := h.recv().(*packet.Pingresp); !ok {
				t.Fatalf("want PINGRESP, got %v", p)
			}
			h.send(&packet.Puback{PacketID: inflight.PacketID})
			h.send(&packet.Disconnect{})
			if got := h.expectClosed(); len(got) != 0 {
				t.Fatalf("got %v after DISCONNECT", got)
			}
			e.check()
		})
	}
}

// TestHostileManyFilters: one SUBSCRIBE with 10,000 filters (some
// invalid) is answered in full and undone when the client leaves.
func TestHostileManyFilters(t *testing.T) {
	const n = 10000
	for _, v := range hostileVersions {
		t.Run(v.String(), func(t *testing.T) {
			e := newHostileEnv(t, &Server{MaxPacketSize: 4 << 20})
			h := e.hostile(v, 0)
			subs := make([]packet.Subscription, n)
			for i := range subs {
				f := fmt.Sprintf("many/%d/+", i)
				if i%10 == 9 {
					f = fmt.Sprintf("many/#/%d", i) // invalid
				}
				subs[i] = packet.Subscription{Filter: f, QoS: 1}
			}
			h.send(&packet.Subscribe{PacketID: 77, Subscriptions: subs})
			ack, ok := h.recv().(*packet.Suback)
			if !ok || ack.PacketID != 77 || len(ack.ReasonCodes) != n {
				t.Fatalf("want SUBACK 77 with %d codes, got %v", n, ack)
			}
			for i, c := range ack.ReasonCodes {
				if want := i%10 != 9; want != (c == packet.GrantedQoS1) || !want && c < 0x80 {
					t.Fatalf("filter %q: code 0x%02x", subs[i].Filter, byte(c))
				}
			}
			if st := e.srv.Stats(); st.Subscriptions != int64(len(e.bys))+n*9/10 {
				t.Errorf("subscriptions %d, want %d", st.Subscriptions, len(e.bys)+n*9/10)
			}
			e.publish(e.pub, "many/8888/x", "m")
			if p := h.expectPublish(); p.Topic != "many/8888/x" {
				t.Fatalf("got %v", p)
			} else {
				h.send(&packet.Puback{PacketID: p.PacketID})
			}
			h.nc.Close() // no DISCONNECT: the clean session ends with the connection
			e.check()
		})
	}
}

// TestHostileSlowReader: a client that subscribes and never reads while
// 5,000 messages of 8 KiB are published to it fills its socket; the
// broker keeps serving everyone else meanwhile, counts the messages its
// queue drops and disconnects it after WriteTimeout.
func TestHostileSlowReader(t *testing.T) {
	const msgs = 5000
	for _, v := range hostileVersions {
		t.Run(v.String(), func(t *testing.T) {
			e := newHostileEnv(t, &Server{WriteTimeout: time.Second, QueueQoS0: true})
			slow := dialRaw(t, e.addr, v)
			cp := &packet.Connect{ClientID: "slow"} // persistent: the queue outlives the connection
			if v == packet.V5 {
				cp.Properties.SessionExpiry = 3600
			}
			slow.connect(cp)
			slow.subscribe(1, "slow/#", 0)
			e.extraSessions, e.extraSubs, e.allowDrops = 1, 1, true
			// From here on nobody reads slow's socket.

			flooder := dialRaw(t, e.addr, packet.V311)
			flooder.connect(&packet.Connect{ClientID: "flooder", CleanStart: true})
			msg := mustEncode(t, &packet.Publish{Topic: "slow/x", Payload: bytes.Repeat([]byte{'s'}, 8<<10)}, packet.V311)
			errc := make(chan error, 1)
			go func() {
				for range msgs {
					flooder.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
					if _, err := flooder.nc.Write(msg); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			// Meanwhile: the publisher and the bystanders are unaffected.
			for i := range 10 {
				e.publish(e.pub, "ok/during", fmt.Sprintf("during-%d", i))
			}
			for _, by := range e.bys {
				for _, want := range e.acked {
					p := by.expectPublish()
					if string(p.Payload) != want {
						t.Fatalf("bystander got %v, want %q", p, want)
					}
					by.send(&packet.Puback{PacketID: p.PacketID})
				}
			}
			e.acked = nil
			if err := <-errc; err != nil {
				t.Fatalf("flooder: %v", err)
			}
			flooder.send(&packet.Pingreq{})
			if _, ok := flooder.recv().(*packet.Pingresp); !ok {
				t.Fatal("flooder: want PINGRESP")
			}

			// The slow client is disconnected by the write timeout.
			e.srv.regMu.Lock()
			s := e.srv.sessions["slow"]
			e.srv.regMu.Unlock()
			if !eventually(20*time.Second, func() bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				return s.conn == nil
			}) {
				t.Fatal("slow client still connected")
			}
			s.mu.Lock()
			queued := s.queue.Len()
			s.mu.Unlock()
			st := e.srv.Stats()
			if st.Dropped == 0 || queued > DefaultMaxQueued {
				t.Errorf("dropped %d, queued %d: want drops counted and the queue bounded by %d", st.Dropped, queued, DefaultMaxQueued)
			}
			t.Logf("slow client: %d messages dropped, %d queued", st.Dropped, queued)
			slow.expectClosed()
			flooder.send(&packet.Disconnect{})
			flooder.expectClosed()
			e.check()
		})
	}
}

// Environment of the helper process of TestHostileConnectionFlood.
const (
	floodAddrEnv = "TERN_HOSTILE_FLOOD_ADDR"
	floodNEnv    = "TERN_HOSTILE_FLOOD_N"
)

// TestHostileFloodHelper is not a test: TestHostileConnectionFlood runs
// the test binary again with it, so that the client ends of the flood use
// another process's file descriptors. It opens the connections, half of
// them sending a CONNECT, reports "OPEN <failed dials>", waits for a line
// on stdin (or its end) and closes them all at once.
func TestHostileFloodHelper(t *testing.T) {
	addr := os.Getenv(floodAddrEnv)
	if addr == "" {
		t.Skip("helper process of TestHostileConnectionFlood")
	}
	n, err := strconv.Atoi(os.Getenv(floodNEnv))
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, n)
	var failed atomic.Int64
	var firstErr atomic.Value
	next := make(chan int)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				nc, err := net.DialTimeout("tcp", addr, 20*time.Second)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				if i%2 == 0 {
					b, _ := packet.Encode(&packet.Connect{Version: packet.V311, ClientID: fmt.Sprintf("flood-%d", i), CleanStart: true}, packet.V311)
					nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
					nc.Write(b)
				}
				conns[i] = nc
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		fmt.Fprintln(os.Stderr, "first dial error:", err)
	}
	fmt.Printf("OPEN %d\n", failed.Load())
	bufio.NewReader(os.Stdin).ReadString('\n')
	for _, nc := range conns {
		if nc != nil {
			nc.Close()
		}
	}
}

// lineWatch passes on the first line of output that starts with prefix.
type lineWatch struct {
	prefix string
	buf    []byte
	ch     chan string
}

func (w *lineWatch) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if strings.HasPrefix(line, w.prefix) {
			select {
			case w.ch <- line:
			default:
			}
		}
	}
}

// TestHostileConnectionFlood: 10,000 connections opened at once, half of
// them sending a CONNECT, then all dropped. The client ends live in a
// helper process: both ends in one process would need 20,000 file
// descriptors.
func TestHostileConnectionFlood(t *testing.T) {
	if os.Getenv(floodAddrEnv) != "" {
		t.Skip("in the helper process")
	}
	n := 10000
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		if rl.Cur < rl.Max {
			rl.Cur = rl.Max
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl) // Go does this at start-up already
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
		}
		if limit := int(rl.Cur) - 512; limit < n {
			t.Logf("RLIMIT_NOFILE %d: flooding with %d connections instead of %d", rl.Cur, limit, n)
			n = limit
		}
	}
	if n < 1000 {
		t.Skipf("RLIMIT_NOFILE %d is too low for a flood", rl.Cur)
	}
	// ConnectTimeout well above the time the flood takes to open, so that
	// all the connections are open at once.
	e := newHostileEnv(t, &Server{ConnectTimeout: time.Minute})
	base := len(e.bys) + 1

	cmd := exec.Command(os.Args[0], "-test.run=^TestHostileFloodHelper$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), floodAddrEnv+"="+e.addr, floodNEnv+"="+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &lineWatch{prefix: "OPEN ", ch: make(chan string, 1)}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})

	var line string
	select {
	case line = <-out.ch:
	case <-exited:
		t.Fatalf("flood helper exited early: %v\n%s", waitErr, stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("flood helper did not open its connections\n%s", stderr.String())
	}
	failed, _ := strconv.Atoi(strings.TrimPrefix(line, "OPEN "))
	opened := time.Since(start)
	if failed > 0 {
		t.Fatalf("%d of %d dials failed: %s", failed, n, stderr.String())
	}
	// Every connection is open on the broker's side at the same time, and
	// those that sent a CONNECT are connected.
	var st Stats
	var tracked int
	if !eventually(time.Minute, func() bool {
		st = e.srv.Stats()
		e.srv.mu.Lock()
		tracked = len(e.srv.conns)
		e.srv.mu.Unlock()
		return tracked == base+n && st.ClientsConnected == int64(base+(n+1)/2)
	}) {
		t.Errorf("during the flood: %d connections tracked, want %d; %d clients connected, want %d", tracked, base+n, st.ClientsConnected, base+(n+1)/2)
	}
	t.Logf("flood: %d connections open after %v; broker: %d tracked, %d clients connected", n, opened.Round(time.Millisecond), tracked, st.ClientsConnected)

	// Drop them all at once.
	io.WriteString(stdin, "CLOSE\n")
	stdin.Close()
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("flood helper did not exit")
	}
	if waitErr != nil {
		var ee *exec.ExitError
		if !errors.As(waitErr, &ee) || !ee.Exited() || ee.ExitCode() != 0 {
			t.Fatalf("flood helper: %v\n%s", waitErr, stderr.String())
		}
	}
	dropped := time.Now()
	e.waitBaseline()
	t.Logf("flood: broker back to baseline %v after the drop (total %v)", time.Since(dropped).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	e.check()
}
