package packet

// MQTT 3.1.1 codec statements that the error and wire tables exercise only
// in passing, each checked here under its own id: the CONNECT payload and
// its flags, the strings of CONNECT, PUBLISH, SUBSCRIBE and UNSUBSCRIBE,
// and the QoS 0 PUBLISH without a packet identifier. The broker's side of
// the same rules (closing the connection) is in
// broker/conformance_v3_test.go.

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// v3DecodeErr decodes wire, which must fail with a *ProtocolError of code
// and spec.
func v3DecodeErr(t *testing.T, how string, v Version, wire []byte, code ReasonCode, spec string) {
	t.Helper()
	p, _, err := Decode(v, wire)
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: decoded %v, err %v; want a protocol error (%v, %s)", how, p, err, code, spec)
	}
	if pe.Code != code || pe.Spec != spec {
		t.Fatalf("%s: error %v; want code %v, spec %q", how, err, code, spec)
	}
}

// v3Decode decodes wire, which must be one whole valid packet.
func v3Decode(t *testing.T, how string, v Version, wire []byte) Packet {
	t.Helper()
	p, n, err := Decode(v, wire)
	if err != nil || n != len(wire) {
		t.Fatalf("%s: Decode = %v, %d, %v; want the whole %d bytes decoded", how, p, n, err, len(wire))
	}
	return p
}

func v3Encode(t *testing.T, p Packet) []byte {
	t.Helper()
	out, err := p.Append(nil, V311)
	if err != nil {
		t.Fatalf("encode %v: %v", p, err)
	}
	return out
}

// TestV3QoS0NoPacketID: [v3 MQTT-2.3.1-5] a QoS 0 PUBLISH has no Packet
// Identifier: the bytes after the topic are payload when decoding, and an
// identifier set by mistake is not written when encoding.
func TestV3QoS0NoPacketID(t *testing.T) {
	p := v3Decode(t, "QoS 0", V311, b("30", "05", "0001 74", "0102")).(*Publish)
	if p.PacketID != 0 || !bytes.Equal(p.Payload, []byte{1, 2}) {
		t.Fatalf("QoS 0 PUBLISH decoded with id %d payload % x; want id 0, payload 01 02", p.PacketID, p.Payload)
	}
	got := v3Encode(t, &Publish{Topic: "t", PacketID: 7, Payload: []byte("x")})
	if want := b("30", "04", "0001 74", "78"); !bytes.Equal(got, want) {
		t.Fatalf("QoS 0 PUBLISH with PacketID 7 encoded as % x, want % x (no identifier)", got, want)
	}
	// The same with QoS 1 carries the identifier, so the test above can fail.
	if got, want := v3Encode(t, &Publish{Topic: "t", QoS: 1, PacketID: 7, Payload: []byte("x")}), b("32", "06", "0001 74", "0007", "78"); !bytes.Equal(got, want) {
		t.Fatalf("QoS 1 PUBLISH encoded as % x, want % x", got, want)
	}
}

// TestV3ConnectWillFlag: [v3 MQTT-3.1.2-11] with the Will Flag 0, the Will
// QoS and Will Retain bits are 0 and neither Will Topic nor Will Message is
// in the payload; with it 1 both are [v3 MQTT-3.1.2-9].
func TestV3ConnectWillFlag(t *testing.T) {
	v3DecodeErr(t, "will QoS 1 without the will flag", 0, b("10", "10", mqtt, "04", "0a", "003c", test), MalformedPacket, "v3 MQTT-3.1.2-13")
	v3DecodeErr(t, "will retain without the will flag", 0, b("10", "10", mqtt, "04", "22", "003c", test), MalformedPacket, "v3 MQTT-3.1.2-15")
	// Will Topic and Will Message present, Will Flag 0: the bytes after
	// the client id belong to no field.
	v3DecodeErr(t, "will fields without the will flag", 0, b("10", "17", mqtt, "04", "02", "003c", test, "0001 77", "0002 6279"), MalformedPacket, "noid:trailing-bytes")

	c := v3Decode(t, "will flag 1", 0, b("10", "17", mqtt, "04", "2e", "003c", test, "0001 77", "0002 6279")).(*Connect)
	if c.Will == nil || c.Will.Topic != "w" || string(c.Will.Payload) != "by" || c.Will.QoS != 1 || !c.Will.Retain {
		t.Fatalf("will decoded as %+v; want topic w, message by, QoS 1, retain", c.Will)
	}
	c = v3Decode(t, "will flag 0", 0, b("10", "10", mqtt, "04", "02", "003c", test)).(*Connect)
	if c.Will != nil {
		t.Fatalf("will %+v decoded from a CONNECT with the will flag 0", c.Will)
	}

	// Encoding: no will, no will bits and no will fields.
	got := v3Encode(t, &Connect{ClientID: "test", CleanStart: true, KeepAlive: 60})
	if want := b("10", "10", mqtt, "04", "02", "003c", test); !bytes.Equal(got, want) {
		t.Fatalf("CONNECT without a will encoded as % x, want % x", got, want)
	}
}

// TestV3ConnectUserPassword: the User Name and Password fields are in the
// payload exactly when their flags are set: [v3 MQTT-3.1.2-18] [v3
// MQTT-3.1.2-19] [v3 MQTT-3.1.2-20] [v3 MQTT-3.1.2-21].
func TestV3ConnectUserPassword(t *testing.T) {
	// Flag set, field missing.
	v3DecodeErr(t, "user name flag without a user name", 0, b("10", "10", mqtt, "04", "82", "003c", test), MalformedPacket, "noid:truncated")
	v3DecodeErr(t, "password flag without a password", 0, b("10", "13", mqtt, "04", "c2", "003c", test, "0001 75"), MalformedPacket, "noid:truncated")
	// Flag clear, field present.
	v3DecodeErr(t, "user name without its flag", 0, b("10", "13", mqtt, "04", "02", "003c", test, "0001 75"), MalformedPacket, "noid:trailing-bytes")
	v3DecodeErr(t, "password without its flag", 0, b("10", "17", mqtt, "04", "82", "003c", test, "0001 75", "0002 7077"), MalformedPacket, "noid:trailing-bytes")

	c := v3Decode(t, "both", 0, b("10", "17", mqtt, "04", "c2", "003c", test, "0001 75", "0002 7077")).(*Connect)
	if !c.HasUsername() || c.Username != "u" || !c.HasPassword() || string(c.Password) != "pw" {
		t.Fatalf("decoded user %q (%t) password %q (%t); want u and pw", c.Username, c.HasUsername(), c.Password, c.HasPassword())
	}
	c = v3Decode(t, "user name only", 0, b("10", "13", mqtt, "04", "82", "003c", test, "0001 75")).(*Connect)
	if c.Username != "u" || c.HasPassword() {
		t.Fatalf("decoded user %q password %q (%t); want u and no password", c.Username, c.Password, c.HasPassword())
	}
	// An empty user name is still a field when its flag is set.
	c = v3Decode(t, "empty user name", 0, b("10", "12", mqtt, "04", "82", "003c", test, "0000")).(*Connect)
	if !c.HasUsername() || c.Username != "" {
		t.Fatalf("decoded user %q (%t); want an empty user name, present", c.Username, c.HasUsername())
	}

	for _, tc := range []struct {
		name string
		c    *Connect
		want []byte
	}{
		{"neither", &Connect{ClientID: "test", CleanStart: true, KeepAlive: 60}, b("10", "10", mqtt, "04", "02", "003c", test)},
		{"user name", &Connect{ClientID: "test", CleanStart: true, KeepAlive: 60, Username: "u"}, b("10", "13", mqtt, "04", "82", "003c", test, "0001 75")},
		{"both", &Connect{ClientID: "test", CleanStart: true, KeepAlive: 60, Username: "u", Password: []byte("pw")}, b("10", "17", mqtt, "04", "c2", "003c", test, "0001 75", "0002 7077")},
		{"empty user name flagged", &Connect{ClientID: "test", CleanStart: true, KeepAlive: 60, UsernameFlag: true}, b("10", "12", mqtt, "04", "82", "003c", test, "0000")},
	} {
		if got := v3Encode(t, tc.c); !bytes.Equal(got, tc.want) {
			t.Errorf("%s: encoded % x, want % x", tc.name, got, tc.want)
		}
	}
}

// TestV3ConnectPayload: the payload fields come in the order Client
// Identifier, Will Topic, Will Message, User Name, Password [v3
// MQTT-3.1.3-1]; the Client Identifier is always there, first [v3
// MQTT-3.1.3-3].
func TestV3ConnectPayload(t *testing.T) {
	wire := b("10", "22", mqtt, "04", "ce", "003c",
		"0004 74657374", // client id "test"
		"0002 7774",     // will topic "wt"
		"0002 776d",     // will message "wm"
		"0004 75736572", // user name "user"
		"0002 7077")     // password "pw"
	c := &Connect{ClientID: "test", CleanStart: true, KeepAlive: 60, Will: &Will{Topic: "wt", Payload: []byte("wm"), QoS: 1},
		Username: "user", Password: []byte("pw")}
	if got := v3Encode(t, c); !bytes.Equal(got, wire) {
		t.Fatalf("encoded % x, want % x", got, wire)
	}
	d := v3Decode(t, "all fields", 0, wire).(*Connect)
	if d.ClientID != "test" || d.Will == nil || d.Will.Topic != "wt" || string(d.Will.Payload) != "wm" || d.Username != "user" || string(d.Password) != "pw" {
		t.Fatalf("decoded %v", d)
	}
	// No payload at all: the client identifier is missing.
	v3DecodeErr(t, "no client identifier", 0, b("10", "0a", mqtt, "04", "02", "003c"), MalformedPacket, "noid:truncated")
	// A zero-length client identifier is a field too, and comes first:
	// here the user name follows it.
	d = v3Decode(t, "empty client id", 0, b("10", "0f", mqtt, "04", "82", "003c", "0000", "0001 75")).(*Connect)
	if d.ClientID != "" || d.Username != "u" {
		t.Fatalf("decoded client id %q user %q; want an empty client id, then u", d.ClientID, d.Username)
	}
}

// TestV3ConnectStrings: the Client Identifier [v3 MQTT-3.1.3-4], the Will
// Topic [v3 MQTT-3.1.3-10] and the User Name [v3 MQTT-3.1.3-11] are UTF-8
// encoded strings: ill-formed UTF-8 or U+0000 in any of them is a
// malformed CONNECT, and the encoder will not write one.
func TestV3ConnectStrings(t *testing.T) {
	const bad, null = "0001 ff", "0001 00"
	cases := []struct {
		name string
		wire []byte
		spec string
	}{
		{"client id ill-formed", b("10", "0d", mqtt, "04", "02", "003c", bad), "v3 MQTT-1.5.3-1"},
		{"client id U+0000", b("10", "0d", mqtt, "04", "02", "003c", null), "v3 MQTT-1.5.3-2"},
		{"client id surrogate", b("10", "0f", mqtt, "04", "02", "003c", "0003 edb080"), "v3 MQTT-1.5.3-1"},
		{"will topic ill-formed", b("10", "15", mqtt, "04", "06", "003c", test, bad, "0000"), "v3 MQTT-1.5.3-1"},
		{"will topic U+0000", b("10", "15", mqtt, "04", "06", "003c", test, null, "0000"), "v3 MQTT-1.5.3-2"},
		{"user name ill-formed", b("10", "13", mqtt, "04", "82", "003c", test, bad), "v3 MQTT-1.5.3-1"},
		{"user name U+0000", b("10", "13", mqtt, "04", "82", "003c", test, null), "v3 MQTT-1.5.3-2"},
	}
	for _, tc := range cases {
		v3DecodeErr(t, tc.name, 0, tc.wire, MalformedPacket, tc.spec)
	}
	// The same strings well-formed decode (a two-byte character each).
	c := v3Decode(t, "well-formed", 0, b("10", "19", mqtt, "04", "86", "003c", "0002 c3a9", "0003 612f62", "0000", "0002 c3bc")).(*Connect)
	if c.ClientID != "é" || c.Will.Topic != "a/b" || c.Username != "ü" {
		t.Fatalf("decoded %v", c)
	}
	for _, tc := range []struct {
		name string
		c    *Connect
	}{
		{"client id", &Connect{ClientID: "a\xffb"}},
		{"will topic", &Connect{ClientID: "x", Will: &Will{Topic: "a\x00b"}}},
		{"user name", &Connect{ClientID: "x", Username: "\xed\xa0\x80"}},
	} {
		if _, err := tc.c.Append(nil, V311); !errors.Is(err, ErrEncode) {
			t.Errorf("encoding a CONNECT with a bad %s: err %v, want ErrEncode", tc.name, err)
		}
	}
}

// TestV3TopicStrings: the PUBLISH Topic Name is the first field of the
// variable header, a UTF-8 string [v3 MQTT-3.3.2-1]; SUBSCRIBE [v3
// MQTT-3.8.3-1] and UNSUBSCRIBE [v3 MQTT-3.10.3-1] Topic Filters are UTF-8
// strings, packed one after another.
func TestV3TopicStrings(t *testing.T) {
	p := v3Decode(t, "PUBLISH", V311, b("32", "09", "0003 612f62", "0005", "7879")).(*Publish)
	if p.Topic != "a/b" || p.PacketID != 5 || string(p.Payload) != "xy" {
		t.Fatalf("decoded %v; want topic a/b, id 5, payload xy", p)
	}
	v3DecodeErr(t, "PUBLISH topic ill-formed", V311, b("30", "05", "0003 61ff62"), MalformedPacket, "v3 MQTT-1.5.3-1")
	v3DecodeErr(t, "PUBLISH topic U+0000", V311, b("30", "05", "0003 610062"), MalformedPacket, "v3 MQTT-1.5.3-2")
	// A topic length that runs past the packet.
	v3DecodeErr(t, "PUBLISH topic past the packet", V311, b("30", "04", "0005 6162"), MalformedPacket, "noid:truncated")

	s := v3Decode(t, "SUBSCRIBE", V311, b("82", "0e", "0001", "0003 612f2b", "01", "0003 c3a92f", "02")).(*Subscribe)
	if len(s.Subscriptions) != 2 || s.Subscriptions[0].Filter != "a/+" || s.Subscriptions[0].QoS != 1 || s.Subscriptions[1].Filter != "é/" || s.Subscriptions[1].QoS != 2 {
		t.Fatalf("decoded %v", s)
	}
	v3DecodeErr(t, "SUBSCRIBE filter ill-formed", V311, b("82", "0a", "0001", "0001 74", "00", "0001 c3", "00"), MalformedPacket, "v3 MQTT-1.5.3-1")
	v3DecodeErr(t, "SUBSCRIBE filter U+0000", V311, b("82", "06", "0001", "0001 00", "00"), MalformedPacket, "v3 MQTT-1.5.3-2")

	u := v3Decode(t, "UNSUBSCRIBE", V311, b("a2", "0d", "0001", "0003 612f2b", "0004 c3a92f23")).(*Unsubscribe)
	if len(u.Filters) != 2 || u.Filters[0] != "a/+" || u.Filters[1] != "é/#" {
		t.Fatalf("decoded %v", u)
	}
	v3DecodeErr(t, "UNSUBSCRIBE filter ill-formed", V311, b("a2", "08", "0001", "0001 74", "0001 80"), MalformedPacket, "v3 MQTT-1.5.3-1")
	v3DecodeErr(t, "UNSUBSCRIBE filter surrogate", V311, b("a2", "07", "0001", "0003 edbfbf"), MalformedPacket, "v3 MQTT-1.5.3-1")

	// The encoder refuses the same.
	for _, p := range []Packet{
		&Publish{Topic: "a\xffb"},
		&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a\x00"}}},
		&Unsubscribe{PacketID: 1, Filters: []string{"ok", "\xc3"}},
	} {
		if _, err := p.Append(nil, V311); !errors.Is(err, ErrEncode) {
			t.Errorf("encoding %v: err %v, want ErrEncode", p.Type(), err)
		}
	}
	// A topic name or filter of more than 65535 bytes cannot be encoded
	// [v3 MQTT-4.7.3-3]: its length would not fit the two-byte prefix.
	long := strings.Repeat("a", 65536)
	for _, p := range []Packet{&Publish{Topic: long}, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: long}}}} {
		if _, err := p.Append(nil, V311); !errors.Is(err, ErrEncode) {
			t.Errorf("encoding a %v with a 65536-byte topic: err %v, want ErrEncode", p.Type(), err)
		}
	}
	if _, err := (&Publish{Topic: long[:65535]}).Append(nil, V311); err != nil {
		t.Errorf("encoding a PUBLISH with a 65535-byte topic: %v", err)
	}
}

// TestV3ProtocolName: a CONNECT whose protocol name is not MQTT is not
// MQTT 3.1.1 at all [v3 MQTT-3.1.2-1]: its error matches ErrProtocolName,
// which a server uses to close without answering; an unsupported level
// with the name MQTT does not match it [v3 MQTT-3.1.2-2].
func TestV3ProtocolName(t *testing.T) {
	for _, tc := range []struct {
		name string
		wire []byte
		bad  bool // the name is wrong
	}{
		{"MQTX", b("10", "10", "0004 4d515458", "04", "02", "003c", test), true},
		{"mqtt", b("10", "10", "0004 6d717474", "04", "02", "003c", test), true},
		{"empty", b("10", "0c", "0000", "04", "02", "003c", test), true},
		{"MQTT level 6", b("10", "10", mqtt, "06", "02", "003c", test), false},
		{"MQIsdp level 4", b("10", "12", mqisdp, "04", "02", "003c", test), false},
	} {
		_, _, err := Decode(0, tc.wire)
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Code != UnsupportedProtocolVersion {
			t.Errorf("%s: err %v, want an Unsupported Protocol Version error", tc.name, err)
			continue
		}
		if got := errors.Is(err, ErrProtocolName); got != tc.bad {
			t.Errorf("%s: errors.Is(err, ErrProtocolName) = %t, want %t", tc.name, got, tc.bad)
		}
	}
	if c := v3Decode(t, "MQTT level 4", 0, b("10", "10", mqtt, "04", "02", "003c", test)).(*Connect); c.Version != V311 || c.ProtocolName != "MQTT" {
		t.Fatalf("decoded %v", c)
	}
}
