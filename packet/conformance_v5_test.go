package packet

// Conformance tests of the codec for MQTT 5.0 statements of the
// conformance matrix (CONFORMANCE.md) that only the encoder shows, or that
// the broker tests (broker/conformance_v5_test.go) see only through a
// decoded packet. Each test names the statements it checks.

import (
	"bytes"
	"testing"
)

// TestConfV5QoS0NoPacketID: a QoS 0 PUBLISH carries no Packet Identifier
// [v5 MQTT-2.2.1-2]: the encoder writes none, even when the struct holds
// one, and the decoder reads the bytes after the topic name as the
// properties and the payload, never as an identifier.
func TestConfV5QoS0NoPacketID(t *testing.T) {
	for _, id := range []uint16{0, 7} {
		got, err := Encode(&Publish{Topic: "t", PacketID: id, Payload: []byte("hi")}, V5)
		if err != nil {
			t.Fatal(err)
		}
		if want := b("30 06", "0001 74", "00", "6869"); !bytes.Equal(got, want) {
			t.Errorf("PacketID %d: encoded % x, want % x [v5 MQTT-2.2.1-2]", id, got, want)
		}
	}
	// Two bytes that would be a packet id at QoS 1: at QoS 0 the first is
	// the property length (0), the second the payload.
	p, n, err := Decode(V5, b("30 05", "0001 74", "00 07"))
	if err != nil || n != 7 {
		t.Fatalf("decode: %v (%d bytes)", err, n)
	}
	pub := p.(*Publish)
	if pub.PacketID != 0 || !bytes.Equal(pub.Payload, []byte{0x07}) {
		t.Errorf("decoded %v, want no packet id and payload 07 [v5 MQTT-2.2.1-2]", pub)
	}
	q1, _, err := Decode(V5, b("32 06", "0001 74", "0007", "00"))
	if err != nil || q1.(*Publish).PacketID != 7 {
		t.Fatalf("QoS 1 twin: %v, %v", q1, err)
	}
}

// TestConfV5EmptyPropertyLength: a packet without properties still
// carries a Property Length of 0 [v5 MQTT-2.2.2-1], in every packet type
// that has properties and no shorter form: PUBACK, PUBREC, PUBREL, PUBCOMP
// and DISCONNECT without properties may end after their reason code, or
// before it when it is 0x00 (sections 3.4.2.2, 3.14.2.2 and the others).
func TestConfV5EmptyPropertyLength(t *testing.T) {
	for _, tc := range []struct {
		p    Packet
		want []byte
	}{
		{&Connect{Version: V5, ClientID: "c", CleanStart: true}, b("10 0e", "0004 4d515454", "05", "02", "0000", "00", "0001 63")},
		{&Connack{ReasonCode: NotAuthorized}, b("20 03", "00", "87", "00")},
		{&Publish{Topic: "t", QoS: 1, PacketID: 1}, b("32 06", "0001 74", "0001", "00")},
		{&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "t", QoS: 1}}}, b("82 07", "0001", "00", "0001 74", "01")},
		{&Suback{PacketID: 1, ReasonCodes: []ReasonCode{1}}, b("90 04", "0001", "00", "01")},
		{&Unsubscribe{PacketID: 1, Filters: []string{"t"}}, b("a2 06", "0001", "00", "0001 74")},
		{&Unsuback{PacketID: 1, ReasonCodes: []ReasonCode{0}}, b("b0 04", "0001", "00", "00")},
		{&Auth{ReasonCode: ContinueAuthentication, Properties: Properties{AuthMethod: "m"}}, b("f0 06", "18", "04", "15 0001 6d")},
	} {
		got, err := Encode(tc.p, V5)
		if err != nil {
			t.Fatalf("%v: %v", tc.p.Type(), err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%v: encoded % x, want % x [v5 MQTT-2.2.2-1]", tc.p.Type(), got, tc.want)
		}
		if _, n, err := Decode(V5, got); err != nil || n != len(got) {
			t.Errorf("%v: % x does not decode: %v", tc.p.Type(), got, err)
		}
	}
}
