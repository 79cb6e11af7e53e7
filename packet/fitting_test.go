package packet

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// fittingCases returns one packet of every kind Diagnostics knows, each
// with a Reason String and a User Property that together take 100 bytes
// or more of its encoding.
func fittingCases() []Packet {
	ps := []Packet{
		&Puback{PacketID: 1, ReasonCode: NotAuthorized},
		&Pubrec{PacketID: 2, ReasonCode: NotAuthorized},
		&Pubrel{PacketID: 3, ReasonCode: PacketIdentifierNotFound},
		&Pubcomp{PacketID: 4, ReasonCode: PacketIdentifierNotFound},
		&Suback{PacketID: 5, ReasonCodes: []ReasonCode{GrantedQoS1, NotAuthorized}},
		&Unsuback{PacketID: 6, ReasonCodes: []ReasonCode{NoSubscriptionExisted}},
		&Disconnect{ReasonCode: ServerShuttingDown},
		&Auth{ReasonCode: ContinueAuthentication, Properties: Properties{AuthMethod: "SCRAM-SHA-256", AuthData: []byte("data")}},
		&Connack{ReasonCode: NotAuthorized, Properties: Properties{AssignedClientID: "auto-1"}},
	}
	for _, p := range ps {
		d := Diagnostics(p)
		d.ReasonString = strings.Repeat("r", 60)
		d.User = []UserProperty{{"key", strings.Repeat("v", 40)}}
	}
	return ps
}

// TestAppendFitting: a packet that does not fit the receiver's Maximum
// Packet Size [v5 MQTT-3.1.2-24] [v5 MQTT-3.2.2-15] goes without its
// Reason String and User Properties, whichever packet it is:
// [v5 MQTT-3.2.2-19] [v5 MQTT-3.2.2-20] CONNACK, [v5 MQTT-3.4.2-2]
// [v5 MQTT-3.4.2-3] PUBACK, [v5 MQTT-3.5.2-2] [v5 MQTT-3.5.2-3] PUBREC,
// [v5 MQTT-3.6.2-2] [v5 MQTT-3.6.2-3] PUBREL, [v5 MQTT-3.7.2-2]
// [v5 MQTT-3.7.2-3] PUBCOMP, [v5 MQTT-3.9.2-1] [v5 MQTT-3.9.2-2] SUBACK,
// [v5 MQTT-3.11.2-1] [v5 MQTT-3.11.2-2] UNSUBACK, [v5 MQTT-3.14.2-3]
// [v5 MQTT-3.14.2-4] DISCONNECT, [v5 MQTT-3.15.2-2] [v5 MQTT-3.15.2-3]
// AUTH; and is not sent when it still does not fit.
func TestAppendFitting(t *testing.T) {
	prefix := []byte("kept")
	for _, p := range fittingCases() {
		full, err := Encode(p, V5)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(p.Type().String(), func(t *testing.T) {
			// No limit, or a limit it fits: encoded as it is.
			for _, max := range []uint32{0, uint32(len(full))} {
				b, err := AppendFitting(bytes.Clone(prefix), p, V5, max)
				if err != nil || !bytes.Equal(b, append(bytes.Clone(prefix), full...)) {
					t.Fatalf("max %d: %x, %v; want the full packet %x", max, b, err, full)
				}
			}
			// One byte short: sent without its Reason String and User
			// Properties, which leave p too.
			q := clonePacket(t, p)
			b, err := AppendFitting(bytes.Clone(prefix), q, V5, uint32(len(full)-1))
			if err != nil {
				t.Fatalf("one byte short: %v", err)
			}
			d := Diagnostics(q)
			if d.ReasonString != "" || d.User != nil || d.Has(PropReasonString) || d.Has(PropUser) {
				t.Fatalf("Reason String or User Properties left in %v", q)
			}
			stripped, _ := Encode(q, V5)
			if !bytes.Equal(b[len(prefix):], stripped) || len(stripped) > len(full)-100 {
				t.Fatalf("got %x, want %x, 100 bytes or more below %d", b[len(prefix):], stripped, len(full))
			}
			if !bytes.Equal(b[:len(prefix)], prefix) {
				t.Fatal("buf's content changed")
			}
			got := decodeOne(t, b[len(prefix):])
			if got.Type() != p.Type() {
				t.Fatalf("decoded %v", got)
			}
			// Too small even without them: buf unchanged and an error
			// that errors.Is matches with ErrPacketTooLarge.
			q = clonePacket(t, p)
			b, err = AppendFitting(bytes.Clone(prefix), q, V5, uint32(len(stripped)-1))
			var pe *ProtocolError
			if !errors.Is(err, ErrPacketTooLarge) || !errors.As(err, &pe) || pe.Packet != p.Type() || pe.Spec != "v5 MQTT-3.1.2-24" {
				t.Fatalf("too large: %v", err)
			}
			if !bytes.Equal(b, prefix) {
				t.Fatalf("too large: buf %q, want it unchanged", b)
			}
		})
	}
}

// TestAppendFittingKeepsPublish: a PUBLISH's User Properties are part of
// the message: a PUBLISH too large is not sent, never trimmed.
func TestAppendFittingKeepsPublish(t *testing.T) {
	p := &Publish{Topic: "t", QoS: 1, PacketID: 1, Payload: []byte("x")}
	p.Properties.User = []UserProperty{{"k", strings.Repeat("v", 50)}}
	full, _ := Encode(p, V5)
	if Diagnostics(p) != nil {
		t.Fatal("Diagnostics of a PUBLISH")
	}
	b, err := AppendFitting(nil, p, V5, uint32(len(full)-1))
	if !errors.Is(err, ErrPacketTooLarge) || len(b) != 0 || len(p.Properties.User) != 1 {
		t.Fatalf("%x, %v, %v", b, err, p.Properties.User)
	}
	if b, err = AppendFitting(nil, p, V5, uint32(len(full))); err != nil || !bytes.Equal(b, full) {
		t.Fatalf("fits: %x, %v", b, err)
	}
}

// TestAppendFittingEncodeError: a packet that cannot be encoded returns
// the encoding error and buf as it was.
func TestAppendFittingEncodeError(t *testing.T) {
	b, err := AppendFitting([]byte("x"), &Publish{Topic: "t", QoS: 1}, V5, 0) // packet id 0
	if err == nil || errors.Is(err, ErrPacketTooLarge) || string(b) != "x" {
		t.Fatalf("%q, %v", b, err)
	}
}

func clonePacket(t *testing.T, p Packet) Packet {
	t.Helper()
	b, err := Encode(p, V5)
	if err != nil {
		t.Fatal(err)
	}
	return decodeOne(t, b)
}

func decodeOne(t *testing.T, b []byte) Packet {
	t.Helper()
	r := NewReader(bytes.NewReader(b))
	r.Version = V5
	p, err := r.ReadPacket()
	if err != nil {
		t.Fatalf("decode %x: %v", b, err)
	}
	return p
}
