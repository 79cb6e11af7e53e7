package packet

import (
	"bytes"
	"reflect"
	"testing"
)

// TestV31DupFlag: MQTT 3.1 sets DUP when it sends a PUBREL, SUBSCRIBE or
// UNSUBSCRIBE again (fixed-header flags 1010); a Reader of version V31
// accepts them and decodes the same packet as without DUP, while 3.1.1
// and 5.0 keep refusing them [v3 MQTT-2.2.2-1] [v5 MQTT-2.1.3-1] (the
// refusals are rows of errCases).
func TestV31DupFlag(t *testing.T) {
	cases := []struct {
		name string
		wire []byte
		want Packet
	}{
		{"PUBREL", b("6a", "02", "0005"), &Pubrel{PacketID: 5}},
		{"SUBSCRIBE", b("8a", "0a", "0007", "0001 74", "01", "0001 75", "02"),
			&Subscribe{PacketID: 7, Subscriptions: []Subscription{{Filter: "t", QoS: 1}, {Filter: "u", QoS: 2}}}},
		{"UNSUBSCRIBE", b("aa", "08", "0009", "0001 74", "0001 75"), &Unsubscribe{PacketID: 9, Filters: []string{"t", "u"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, n, err := Decode(V31, tc.wire)
			if err != nil || n != len(tc.wire) || !reflect.DeepEqual(p, tc.want) {
				t.Fatalf("Decode(V31) = %v, %d, %v; want %v", p, n, err, tc.want)
			}
			r := NewReader(bytes.NewReader(tc.wire))
			r.Version = V31
			p, err = r.ReadPacket()
			if err != nil || !reflect.DeepEqual(p, tc.want) {
				t.Fatalf("ReadPacket(V31) = %v, %v; want %v", p, err, tc.want)
			}
			// Without DUP it is the same packet, and that is what is
			// encoded (the flag is not kept).
			plain := append([]byte{tc.wire[0] &^ 0x08}, tc.wire[1:]...)
			if enc, err := tc.want.Append(nil, V31); err != nil || !bytes.Equal(enc, plain) {
				t.Fatalf("Append(V31) = %x, %v; want %x", enc, err, plain)
			}
			for _, v := range []Version{V311, V5} {
				if v == V5 && tc.want.Type() != PUBREL {
					continue // a different body (properties); errCases has them
				}
				_, _, err := Decode(v, tc.wire)
				checkProtocolError(t, "Decode("+v.String()+")", err, tc.want.Type(), MalformedPacket,
					map[Version]string{V311: "v3 MQTT-2.2.2-1", V5: "v5 MQTT-2.1.3-1"}[v])
			}
		})
	}
}

// TestEmptyFilterByVersion: the UNSUBSCRIBE of issue 10 item 23
// (A2 07 12 34 00 00 00 01 71: filters "" and "q") is a Protocol Error in
// 3.1.1 [v3 MQTT-4.7.3-1]; in MQTT 5 the same filters decode, because the
// server answers an empty filter per filter with 0x8F (the broker's
// tests check that), and so do SUBSCRIBE's.
func TestEmptyFilterByVersion(t *testing.T) {
	issue := b("a2", "07", "1234", "0000", "0001 71")
	_, _, err := Decode(V311, issue)
	checkProtocolError(t, "Decode(V311)", err, UNSUBSCRIBE, ProtocolErrorCode, "v3 MQTT-4.7.3-1")

	v5 := []struct {
		wire []byte
		want Packet
	}{
		{b("a2", "08", "1234", "00", "0000", "0001 71"), &Unsubscribe{PacketID: 0x1234, Filters: []string{"", "q"}}},
		{b("82", "0a", "0001", "00", "0000", "01", "0001 71", "02"),
			&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "", QoS: 1}, {Filter: "q", QoS: 2}}}},
	}
	for _, tc := range v5 {
		p, n, err := Decode(V5, tc.wire)
		if err != nil || n != len(tc.wire) || !reflect.DeepEqual(p, tc.want) {
			t.Fatalf("Decode(V5, %x) = %v, %d, %v; want %v", tc.wire, p, n, err, tc.want)
		}
		if enc, err := tc.want.Append(nil, V5); err != nil || !bytes.Equal(enc, tc.wire) {
			t.Fatalf("Append(V5) = %x, %v; want %x", enc, err, tc.wire)
		}
	}
}
