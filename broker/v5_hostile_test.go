package broker

// Hostile MQTT 5 input: properties that repeat or do not belong, bad topic
// aliases, Receive Maximum and Maximum Packet Size broken, AUTH out of
// sequence, options and reason codes a client may not send. Every case
// runs in a hostileEnv (hostile_test.go), so it also checks that an MQTT 5
// and an MQTT 3.1.1 client connected at the same time carry on and that
// no acknowledged message is lost; the offending connection must get a
// DISCONNECT with the reason code the rule calls for and be closed.

import (
	"fmt"
	"testing"

	"github.com/ternmq/tern/packet"
)

// ---- helpers (prefixed v5h) ----

func v5hU32(n uint32) []byte { return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} }

// Properties, encoded.
func v5hMessageExpiry(n uint32) []byte { return append([]byte{0x02}, v5hU32(n)...) }
func v5hSessionExpiry(n uint32) []byte { return append([]byte{0x11}, v5hU32(n)...) }
func v5hTopicAlias(n uint16) []byte    { return append([]byte{0x23}, rawU16(n)...) }
func v5hSubID(n int) []byte            { return append([]byte{0x0b}, rawVBI(n)...) }
func v5hContentType(s string) []byte   { return append([]byte{0x03}, rawStr(s)...) }
func v5hResponseTopic(s string) []byte { return append([]byte{0x08}, rawStr(s)...) }
func v5hAuthMethod(s string) []byte    { return append([]byte{0x15}, rawStr(s)...) }
func v5hAuthData(s string) []byte      { return append([]byte{0x16}, rawStr(s)...) }
func v5hByteProp(id, b byte) []byte    { return []byte{id, b} }
func v5hU16Prop(id byte, n uint16) []byte {
	return append([]byte{id}, rawU16(n)...)
}

func v5hCat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// v5hPublish is an MQTT 5 PUBLISH with properties props (concatenated).
func v5hPublish(flags byte, topic string, id uint16, payload string, props ...[]byte) []byte {
	return rawPublish(packet.V5, flags, topic, id, v5hCat(props...), payload)
}

// v5hSubscribe is an MQTT 5 SUBSCRIBE of one filter with options opts.
func v5hSubscribe(id uint16, filter string, opts byte, props ...[]byte) []byte {
	return rawPkt(0x82, rawU16(id), rawProps(packet.V5, props...), rawStr(filter), []byte{opts})
}

// v5hCase is one hostile packet (or sequence) after CONNECT.
type v5hCase struct {
	name string
	ids  string // the rules it breaks
	b    []byte
	good []byte // valid twin, nil if none applies
	code packet.ReasonCode
}

// v5hRun runs cases in e, one hostile connection each, checking e after
// each.
func v5hRun(t *testing.T, e *hostileEnv, cases []v5hCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.good != nil {
				mustDecode(t, packet.V5, c.good)
			}
			e.before()
			h := e.hostile(packet.V5, 0)
			writeRaw(h.nc, c.b)
			v5hKicked(t, h, c.code, c.ids)
			e.check()
		})
	}
}

// v5hKicked is expectKicked with the rule in the message.
func v5hKicked(t *testing.T, h *rawClient, want packet.ReasonCode, ids string) {
	t.Helper()
	got := h.expectClosed()
	if len(got) == 0 {
		t.Fatalf("closed without DISCONNECT, want DISCONNECT 0x%02x %s", byte(want), ids)
	}
	if d, ok := got[len(got)-1].(*packet.Disconnect); !ok || d.ReasonCode != want {
		t.Fatalf("got %v before the close, want DISCONNECT 0x%02x (%v) %s", got, byte(want), want, ids)
	}
}

// v5hConnect connects an MQTT 5 client with CONNECT properties set by
// mod, publishes one acknowledged QoS 1 message (owed to the bystanders)
// like hostileEnv.hostile, and returns it with its CONNACK.
func v5hConnect(e *hostileEnv, id string, mod func(*packet.Connect)) (*rawClient, *packet.Connack) {
	e.t.Helper()
	h := dialRaw(e.t, e.addr, packet.V5)
	cp := &packet.Connect{ClientID: id, CleanStart: true}
	if mod != nil {
		mod(cp)
	}
	ack := h.connect(cp)
	e.publish(h, "ok/hostile", fmt.Sprintf("hostile-%d", e.id+1))
	return h, ack
}

// v5hServer is the broker of the hostile MQTT 5 tests: a 1 KiB maximum
// packet size, Receive Maximum 2, the default 64 topic aliases and the
// test authentication method of v5_auth_test.go.
func v5hServer() *Server {
	return &Server{MaxPacketSize: 1024, ReceiveMaximum: 2, AuthMethods: map[string]AuthMethod{v5aMethodName: &v5aMethod{}}}
}

// ---- before CONNECT completes ----

// TestV5HostileConnectProperties: a CONNECT whose properties repeat a
// single-occurrence property (a Protocol Error, noid:dup-prop: "It is a
// Protocol Error to include X more than once"), carry one not allowed in
// CONNECT (Malformed, noid:prop-not-allowed, section 2.2.2.2), or are out
// of range (noid:prop-range) is refused and the connection closed,
// answered at most by a CONNACK >= 0x80 [v5 MQTT-3.1.4-1]
// [v5 MQTT-4.13.1-1] [v5 MQTT-3.14.0-1].
func TestV5HostileConnectProperties(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		bad, good []byte
	}{
		{"two Session Expiry Intervals", v5hCat(v5hSessionExpiry(10), v5hSessionExpiry(20)), v5hSessionExpiry(10)},
		{"two Receive Maximums", v5hCat(v5hU16Prop(0x21, 5), v5hU16Prop(0x21, 6)), v5hU16Prop(0x21, 5)},
		{"two Maximum Packet Sizes", v5hCat([]byte{0x27}, v5hU32(500), []byte{0x27}, v5hU32(600)), v5hCat([]byte{0x27}, v5hU32(500))},
		{"two Authentication Methods", v5hCat(v5hAuthMethod(v5aMethodName), v5hAuthMethod(v5aMethodName)), nil},
		{"two Request Problem Information", v5hCat(v5hByteProp(0x17, 1), v5hByteProp(0x17, 1)), v5hByteProp(0x17, 1)},
		{"Topic Alias in CONNECT", v5hTopicAlias(1), v5hU16Prop(0x22, 1)},
		{"Message Expiry in CONNECT", v5hMessageExpiry(5), v5hSessionExpiry(5)},
		{"Subscription Identifier in CONNECT", v5hSubID(1), nil},
		{"Authentication Data without a method", v5hAuthData("x"), nil},
		{"Receive Maximum 0", v5hU16Prop(0x21, 0), v5hU16Prop(0x21, 1)},
		{"Request Problem Information 2", v5hByteProp(0x17, 2), v5hByteProp(0x17, 0)},
		{"property length beyond the packet", []byte{0x7f}, nil},
	}
	e := newHostileEnv(t, v5hServer())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := rawConnect{clientID: "hostile", props: c.bad}.bytes(packet.V5)
			if c.name == "property length beyond the packet" {
				// The property length says 127 bytes; the packet ends first.
				bad = rawPkt(0x10, rawStr("MQTT"), []byte{5, 0x02}, rawU16(0), []byte{0x7f}, rawStr("hostile"))
			}
			if c.good != nil {
				mustDecode(t, 0, rawConnect{clientID: "hostile", props: c.good}.bytes(packet.V5))
			}
			e.before()
			nc := e.dial()
			writeRaw(nc, bad)
			expectRefused(t, nc)
			e.check()
		})
	}
}

// ---- after CONNECT ----

// TestV5HostileProperties: PUBLISH, SUBSCRIBE and UNSUBSCRIBE with a
// repeated single-occurrence property get DISCONNECT 0x82 (Protocol Error,
// noid:dup-prop), with a property the packet may not carry DISCONNECT 0x81
// (Malformed Packet, noid:prop-not-allowed, section 2.2.2.2), with values
// out of range 0x82 (noid:prop-range, [v5 MQTT-3.3.2-14], noid:subid-0),
// each followed by the close [v5 MQTT-4.13.1-1].
func TestV5HostileProperties(t *testing.T) {
	t.Parallel()
	const proto, malformed = packet.ProtocolErrorCode, packet.MalformedPacket
	e := newHostileEnv(t, v5hServer())
	v5hRun(t, e, []v5hCase{
		{"PUBLISH with two Message Expiry Intervals", "noid:dup-prop",
			v5hPublish(0x02, "hv/p", 5, "x", v5hMessageExpiry(10), v5hMessageExpiry(10)),
			v5hPublish(0x02, "hv/p", 5, "x", v5hMessageExpiry(10)), proto},
		{"PUBLISH with two Payload Format Indicators", "noid:dup-prop",
			v5hPublish(0x02, "hv/p", 5, "x", v5hByteProp(0x01, 1), v5hByteProp(0x01, 1)),
			v5hPublish(0x02, "hv/p", 5, "x", v5hByteProp(0x01, 1)), proto},
		{"PUBLISH with two Content Types", "noid:dup-prop",
			v5hPublish(0x02, "hv/p", 5, "x", v5hContentType("a"), v5hContentType("b")),
			v5hPublish(0x02, "hv/p", 5, "x", v5hContentType("a")), proto},
		{"PUBLISH with two Response Topics", "noid:dup-prop",
			v5hPublish(0x02, "hv/p", 5, "x", v5hResponseTopic("r/1"), v5hResponseTopic("r/2")),
			v5hPublish(0x02, "hv/p", 5, "x", v5hResponseTopic("r/1")), proto},
		{"PUBLISH with two Topic Aliases", "noid:dup-prop",
			v5hPublish(0x02, "hv/p", 5, "x", v5hTopicAlias(1), v5hTopicAlias(2)),
			v5hPublish(0x02, "hv/p", 5, "x", v5hTopicAlias(1)), proto},
		{"PUBLISH with a Session Expiry Interval", "noid:prop-not-allowed",
			v5hPublish(0x02, "hv/p", 5, "x", v5hSessionExpiry(10)),
			v5hPublish(0x02, "hv/p", 5, "x", v5hMessageExpiry(10)), malformed},
		{"PUBLISH with a Receive Maximum", "noid:prop-not-allowed",
			v5hPublish(0x02, "hv/p", 5, "x", v5hU16Prop(0x21, 5)), nil, malformed},
		{"PUBLISH with an Authentication Method", "noid:prop-not-allowed",
			v5hPublish(0x02, "hv/p", 5, "x", v5hAuthMethod(v5aMethodName)), nil, malformed},
		{"PUBLISH with an unknown property 0x7f", "noid:prop-not-allowed",
			v5hPublish(0x02, "hv/p", 5, "x", []byte{0x7f, 0}), nil, malformed},
		{"PUBLISH with Payload Format Indicator 2", "noid:prop-range",
			v5hPublish(0x02, "hv/p", 5, "x", v5hByteProp(0x01, 2)),
			v5hPublish(0x02, "hv/p", 5, "x", v5hByteProp(0x01, 0)), proto},
		{"PUBLISH with a wildcard Response Topic", "[v5 MQTT-3.3.2-14]",
			v5hPublish(0x02, "hv/p", 5, "x", v5hResponseTopic("r/#")),
			v5hPublish(0x02, "hv/p", 5, "x", v5hResponseTopic("r/x")), proto},
		{"PUBLISH with a user property cut short", "noid:prop-truncated",
			v5hPublish(0x02, "hv/p", 5, "x", []byte{0x26, 0, 1, 'k'}), nil, malformed},
		{"SUBSCRIBE with a Topic Alias", "noid:prop-not-allowed",
			v5hSubscribe(3, "hv/s", 1, v5hTopicAlias(1)),
			v5hSubscribe(3, "hv/s", 1, rawUserProp("k", "v")), malformed},
		{"SUBSCRIBE with a Message Expiry Interval", "noid:prop-not-allowed",
			v5hSubscribe(3, "hv/s", 1, v5hMessageExpiry(1)), nil, malformed},
		{"SUBSCRIBE with two Subscription Identifiers", "noid:dup-prop",
			v5hSubscribe(3, "hv/s", 1, v5hSubID(1), v5hSubID(2)),
			v5hSubscribe(3, "hv/s", 1, v5hSubID(1)), proto},
		{"SUBSCRIBE with Subscription Identifier 0", "noid:subid-0",
			v5hSubscribe(3, "hv/s", 1, v5hSubID(0)), nil, proto},
		{"UNSUBSCRIBE with a Subscription Identifier", "noid:prop-not-allowed",
			rawPkt(0xa2, rawU16(4), rawProps(packet.V5, v5hSubID(1)), rawStr("hv/s")),
			rawPkt(0xa2, rawU16(4), rawProps(packet.V5, rawUserProp("k", "v")), rawStr("hv/s")), malformed},
	})
	// Nothing the hostile connections subscribed survived them.
	e.waitBaseline()
}

// TestV5HostileTopicAlias: a Topic Alias of 0 gets DISCONNECT 0x94
// [v5 MQTT-3.3.2-8]; one above the Topic Alias Maximum of the CONNACK
// (64 by default) gets 0x94 [v5 MQTT-3.2.2-17] [v5 MQTT-3.3.2-9] while 64
// itself is accepted and then stands for its topic (section 3.3.2.3.4);
// an empty topic with an alias never set gets 0x82 (section 3.3.2.3.4),
// also when the alias was set on an earlier connection
// [v5 MQTT-3.3.2-7]; an empty topic without an alias 0x82
// (noid:empty-topic-no-alias). With TopicAliasMaximum TopicAliases(0) any
// alias gets 0x94.
func TestV5HostileTopicAlias(t *testing.T) {
	t.Parallel()
	e := newHostileEnv(t, v5hServer())
	v5hRun(t, e, []v5hCase{
		{"alias 0", "[v5 MQTT-3.3.2-8]",
			v5hPublish(0x02, "hv/a", 5, "x", v5hTopicAlias(0)), v5hPublish(0x02, "hv/a", 5, "x", v5hTopicAlias(1)), packet.TopicAliasInvalid},
		{"alias 65, above the maximum", "[v5 MQTT-3.3.2-9]",
			v5hPublish(0x02, "hv/a", 5, "x", v5hTopicAlias(65)), v5hPublish(0x02, "hv/a", 5, "x", v5hTopicAlias(64)), packet.TopicAliasInvalid},
		{"alias 65535", "[v5 MQTT-3.3.2-9]",
			v5hPublish(0x00, "hv/a", 0, "x", v5hTopicAlias(65535)), nil, packet.TopicAliasInvalid},
		{"empty topic, alias never set", "(section 3.3.2.3.4)",
			v5hPublish(0x02, "", 5, "x", v5hTopicAlias(7)), nil, packet.ProtocolErrorCode},
		{"empty topic, another alias set", "(section 3.3.2.3.4)",
			v5hCat(v5hPublish(0x00, "hv/a", 0, "set", v5hTopicAlias(1)), v5hPublish(0x00, "", 0, "use", v5hTopicAlias(2))), nil, packet.ProtocolErrorCode},
		{"empty topic, no alias", "noid:empty-topic-no-alias",
			v5hPublish(0x02, "", 5, "x"), nil, packet.ProtocolErrorCode},
	})

	t.Run("alias 64 accepted and used", func(t *testing.T) {
		e.before()
		h, ack := v5hConnect(e, "hostile", nil)
		if ack.Properties.TopicAliasMaximum != DefaultTopicAliasMaximum {
			t.Fatalf("CONNACK Topic Alias Maximum %d, want %d", ack.Properties.TopicAliasMaximum, DefaultTopicAliasMaximum)
		}
		e.id++
		h.send(&packet.Publish{Topic: "ok/alias", QoS: 1, PacketID: e.id, Payload: []byte("set"), Properties: packet.Properties{TopicAlias: 64}})
		if a, ok := h.recv().(*packet.Puback); !ok || a.ReasonCode.IsError() {
			t.Fatalf("want PUBACK, got %v", a)
		}
		e.acked = append(e.acked, "set")
		e.id++
		h.send(&packet.Publish{QoS: 1, PacketID: e.id, Payload: []byte("used"), Properties: packet.Properties{TopicAlias: 64}})
		if a, ok := h.recv().(*packet.Puback); !ok || a.ReasonCode.IsError() {
			t.Fatalf("want PUBACK for the aliased PUBLISH, got %v", a)
		}
		e.acked = append(e.acked, "used") // the bystanders get it on ok/alias
		h.send(&packet.Disconnect{})
		h.expectClosed()
		e.check()

		// A new connection does not inherit the alias [v5 MQTT-3.3.2-7].
		e.before()
		h, _ = v5hConnect(e, "hostile", nil)
		writeRaw(h.nc, v5hPublish(0x02, "", 5, "x", v5hTopicAlias(64)))
		v5hKicked(t, h, packet.ProtocolErrorCode, "[v5 MQTT-3.3.2-7]")
		e.check()
	})

	t.Run("aliases turned off", func(t *testing.T) {
		srv := v5hServer()
		srv.TopicAliasMaximum = TopicAliases(0)
		e := newHostileEnv(t, srv)
		e.before()
		h, ack := v5hConnect(e, "hostile", nil)
		if ack.Properties.TopicAliasMaximum != 0 {
			t.Fatalf("CONNACK Topic Alias Maximum %d, want none", ack.Properties.TopicAliasMaximum)
		}
		writeRaw(h.nc, v5hPublish(0x02, "hv/a", 5, "x", v5hTopicAlias(1)))
		v5hKicked(t, h, packet.TopicAliasInvalid, "[v5 MQTT-3.2.2-18]")
		e.check()
	})
}

// TestV5HostileReceiveMaximum: a client that has more unacknowledged
// QoS 2 PUBLISHes than the Receive Maximum of the CONNACK (2 here) gets
// DISCONNECT 0x93 (section 3.3.4, noid:receive-maximum): the client broke
// [v5 MQTT-3.3.4-7].
func TestV5HostileReceiveMaximum(t *testing.T) {
	t.Parallel()
	e := newHostileEnv(t, v5hServer())
	e.before()
	h, ack := v5hConnect(e, "hostile", nil)
	if ack.Properties.ReceiveMaximum != 2 {
		t.Fatalf("CONNACK Receive Maximum %d, want 2", ack.Properties.ReceiveMaximum)
	}
	writeRaw(h.nc, v5hCat(
		v5hPublish(0x04, "hv/rm", 1, "1"),
		v5hPublish(0x04, "hv/rm", 2, "2"),
		v5hPublish(0x04, "hv/rm", 3, "3"),
	))
	v5hKicked(t, h, packet.ReceiveMaximumExceeded, "[v5 MQTT-3.3.4-7]")
	e.check()
}

// TestV5HostileReceiveMaximumReleased: the valid twin of
// TestV5HostileReceiveMaximum: QoS 2 PUBLISHes the client has released
// (PUBREL answered by PUBCOMP) no longer count against the Receive
// Maximum, so a client that completes each exchange may publish any
// number of them [v5 MQTT-3.3.4-7] (section 4.9: the quota comes back
// with PUBCOMP).
func TestV5HostileReceiveMaximumReleased(t *testing.T) {
	t.Parallel()
	e := newHostileEnv(t, v5hServer())
	e.before()
	h, _ := v5hConnect(e, "hostile", nil)
	for i := range 5 {
		e.id++
		id := e.id
		h.send(&packet.Publish{Topic: "ok/rm", QoS: 2, PacketID: id, Payload: []byte(fmt.Sprintf("q2-%d", i))})
		p := h.recv()
		if rec, ok := p.(*packet.Pubrec); !ok || rec.PacketID != id || rec.ReasonCode.IsError() {
			t.Fatalf("QoS 2 PUBLISH %d of 5 (each completed before the next; Receive Maximum 2): got %v, want PUBREC %d", i+1, p, id)
		}
		e.acked = append(e.acked, fmt.Sprintf("q2-%d", i))
		h.send(&packet.Pubrel{PacketID: id})
		if comp, ok := h.recv().(*packet.Pubcomp); !ok || comp.PacketID != id {
			t.Fatalf("want PUBCOMP %d, got %v", id, comp)
		}
	}
	h.send(&packet.Disconnect{})
	h.expectClosed()
	e.check()
}

// TestV5HostilePacketSize: the CONNACK announces the Maximum Packet Size
// (1024 here); a packet of exactly that size is accepted, one byte more
// gets DISCONNECT 0x95 [v5 MQTT-3.2.2-15] (section 3.2.2.3.6), and so does
// a fixed header announcing 200 MiB that never arrive: the connection is
// closed at once, without waiting for (or allocating) the body.
func TestV5HostilePacketSize(t *testing.T) {
	t.Parallel()
	e := newHostileEnv(t, v5hServer())
	// sized builds a QoS 1 PUBLISH of exactly size bytes (130 to 16386):
	// a packet that size has a two-byte remaining length.
	sized := func(id uint16, size int) []byte {
		empty := len(mustEncode(t, &packet.Publish{Topic: "hv/size", QoS: 1, PacketID: id}, packet.V5))
		b := mustEncode(t, &packet.Publish{Topic: "hv/size", QoS: 1, PacketID: id, Payload: make([]byte, size-empty-1)}, packet.V5)
		if len(b) != size {
			t.Fatalf("built a %d-byte PUBLISH, want %d", len(b), size)
		}
		return b
	}
	t.Run("exactly the maximum, then one byte more", func(t *testing.T) {
		e.before()
		h, ack := v5hConnect(e, "hostile", nil)
		if ack.Properties.MaximumPacketSize != 1024 {
			t.Fatalf("CONNACK Maximum Packet Size %d, want 1024", ack.Properties.MaximumPacketSize)
		}
		writeRaw(h.nc, sized(100, 1024))
		if a, ok := h.recv().(*packet.Puback); !ok || a.PacketID != 100 || a.ReasonCode.IsError() {
			t.Fatalf("1024-byte PUBLISH: got %v, want PUBACK 100", a)
		}
		writeRaw(h.nc, sized(101, 1025))
		v5hKicked(t, h, packet.PacketTooLarge, "(section 3.2.2.3.6)")
		e.check()
	})
	t.Run("header announcing 200 MiB", func(t *testing.T) {
		e.before()
		h, _ := v5hConnect(e, "hostile", nil)
		writeRaw(h.nc, append([]byte{0x32}, rawVBI(200<<20)...))
		v5hKicked(t, h, packet.PacketTooLarge, "(section 3.2.2.3.6)")
		e.check()
	})
}

// TestV5HostileAuth: AUTH out of sequence gets DISCONNECT 0x82: from a
// client that connected without a method [v5 MQTT-4.12.0-7], 0x18 with no
// exchange in progress (noid:auth-out-of-sequence), Authentication Data
// without a method (noid:auth-data-no-method); AUTH with a reason code
// AUTH may not carry [v5 MQTT-3.15.2-1] or with fixed-header flags set
// [v5 MQTT-3.15.1-1] gets 0x81.
func TestV5HostileAuth(t *testing.T) {
	t.Parallel()
	e := newHostileEnv(t, v5hServer())
	auth := func(code byte, props ...[]byte) []byte {
		return rawPkt(0xf0, []byte{code}, rawProps(packet.V5, props...))
	}
	v5hRun(t, e, []v5hCase{
		{"AUTH 0x18 without a method at CONNECT", "[v5 MQTT-4.12.0-7]",
			auth(0x18, v5hAuthMethod(v5aMethodName), v5hAuthData("x")), nil, packet.ProtocolErrorCode},
		{"AUTH 0x19 without a method at CONNECT", "[v5 MQTT-4.12.0-7]",
			auth(0x19, v5hAuthMethod(v5aMethodName), v5hAuthData("alice")), nil, packet.ProtocolErrorCode},
		{"empty AUTH", "[v5 MQTT-4.12.0-7]", []byte{0xf0, 0x00}, nil, packet.ProtocolErrorCode},
		{"AUTH data without a method", "noid:auth-data-no-method",
			auth(0x18, v5hAuthData("x")), auth(0x18, v5hAuthMethod("m"), v5hAuthData("x")), packet.ProtocolErrorCode},
		{"AUTH reason code 0x05", "[v5 MQTT-3.15.2-1]",
			auth(0x05, v5hAuthMethod(v5aMethodName)), auth(0x19, v5hAuthMethod(v5aMethodName)), packet.MalformedPacket},
		{"AUTH with flags 0x1", "[v5 MQTT-3.15.1-1]",
			[]byte{0xf1, 0x00}, []byte{0xf0, 0x00}, packet.MalformedPacket},
	})

	// A client that did connect with the method.
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"AUTH 0x18 with no exchange in progress", auth(0x18, v5hAuthMethod(v5aMethodName), v5hAuthData("x"))},
		{"AUTH 0x00 from the client", auth(0x00, v5hAuthMethod(v5aMethodName))},
	} {
		t.Run("method client: "+c.name, func(t *testing.T) {
			e.before()
			h := dialRaw(t, e.addr, packet.V5)
			h.send(v5aConnectPacket("hostile", "alice"))
			v5aAuth(h, packet.ContinueAuthentication, v5aMethodName, v5aAnswer(v5aChallenge(t, h)))
			if ack, ok := h.recv().(*packet.Connack); !ok || ack.ReasonCode != packet.Success {
				t.Fatalf("want CONNACK 0x00, got %v", ack)
			}
			e.publish(h, "ok/hostile", fmt.Sprintf("hostile-%d", e.id+1))
			writeRaw(h.nc, c.b)
			v5hKicked(t, h, packet.ProtocolErrorCode, "noid:auth-out-of-sequence")
			e.check()
		})
	}
}

// TestV5HostileClientRules: things only a server may send, or a client
// may not ask for: a Subscription Identifier in a client's PUBLISH
// [v5 MQTT-3.3.4-6], No Local on a shared subscription [v5 MQTT-3.8.3-4],
// reserved subscription option bits [v5 MQTT-3.8.3-5] (0x81), Retain
// Handling 3 (section 3.8.3.1) — DISCONNECT 0x82; reason codes not allowed
// in the client's DISCONNECT [v5 MQTT-3.14.2-1], PUBACK [v5 MQTT-3.4.2-1]
// or PUBREC (section 3.5.2.1) — DISCONNECT 0x81; a non-zero Session
// Expiry Interval in DISCONNECT after 0 at CONNECT (section 3.14.2.2.2) —
// 0x82.
func TestV5HostileClientRules(t *testing.T) {
	t.Parallel()
	e := newHostileEnv(t, v5hServer())
	const proto, malformed = packet.ProtocolErrorCode, packet.MalformedPacket
	v5hRun(t, e, []v5hCase{
		{"Subscription Identifier in PUBLISH", "[v5 MQTT-3.3.4-6]",
			v5hPublish(0x02, "hv/x", 5, "x", v5hSubID(1)), v5hPublish(0x02, "hv/x", 5, "x"), proto},
		{"two Subscription Identifiers in PUBLISH", "[v5 MQTT-3.3.4-6]",
			v5hPublish(0x00, "hv/x", 0, "x", v5hSubID(1), v5hSubID(2)), nil, proto},
		{"No Local on a shared subscription", "[v5 MQTT-3.8.3-4]",
			v5hSubscribe(6, "$share/g/hv/#", 0x05), v5hSubscribe(6, "hv/#", 0x05), proto},
		{"No Local on a shared subscription after a valid filter", "[v5 MQTT-3.8.3-4]",
			rawPkt(0x82, rawU16(6), rawProps(packet.V5), rawStr("hv/a"), []byte{1}, rawStr("$share/g/hv/#"), []byte{0x04}),
			rawPkt(0x82, rawU16(6), rawProps(packet.V5), rawStr("hv/a"), []byte{1}, rawStr("$share/g/hv/#"), []byte{0x00}), proto},
		{"reserved subscription option bits", "[v5 MQTT-3.8.3-5]",
			v5hSubscribe(6, "hv/#", 0x41), v5hSubscribe(6, "hv/#", 0x01), malformed},
		{"Retain Handling 3", "(section 3.8.3.1)",
			v5hSubscribe(6, "hv/#", 0x31), v5hSubscribe(6, "hv/#", 0x21), proto},
		{"DISCONNECT reason code 0x05", "[v5 MQTT-3.14.2-1]",
			[]byte{0xe0, 0x01, 0x05}, []byte{0xe0, 0x01, 0x00}, malformed},
		{"DISCONNECT reason code 0x19", "[v5 MQTT-3.14.2-1]",
			[]byte{0xe0, 0x01, 0x19}, []byte{0xe0, 0x01, 0x80}, malformed},
		{"PUBACK reason code 0x05", "[v5 MQTT-3.4.2-1]",
			[]byte{0x40, 0x03, 0x00, 0x01, 0x05}, []byte{0x40, 0x03, 0x00, 0x01, 0x10}, malformed},
		{"PUBREC reason code 0x01", "(section 3.5.2.1)",
			[]byte{0x50, 0x03, 0x00, 0x01, 0x01}, []byte{0x50, 0x03, 0x00, 0x01, 0x80}, malformed},
		{"PUBCOMP reason code 0x10", "(section 3.7.2.1)",
			[]byte{0x70, 0x03, 0x00, 0x01, 0x10}, []byte{0x70, 0x03, 0x00, 0x01, 0x92}, malformed},
		{"DISCONNECT with Session Expiry after 0 at CONNECT", "(section 3.14.2.2.2)",
			rawPkt(0xe0, []byte{0x00}, rawProps(packet.V5, v5hSessionExpiry(60))),
			rawPkt(0xe0, []byte{0x00}, rawProps(packet.V5, v5hSessionExpiry(0))), proto},
	})
}
