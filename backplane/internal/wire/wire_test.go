package wire

import (
	"bytes"
	"testing"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
)

func TestRoundTrip(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	m := &message.Message{Topic: "a/b", Payload: []byte("hello"), QoS: 2, Retain: true, From: "c1",
		Created: now, Expires: now.Add(time.Minute)}
	m.Properties.ContentType = "text/plain"
	m.Properties.User = []packet.UserProperty{{Key: "k", Value: "v"}}
	m.Properties.TopicAlias = 7 // a property of the connection: not carried
	h := &Header{Node: "n1", Incarnation: 1 << 60, Seq: 42, Plain: true, Will: true,
		Groups: []backplane.Group{{Name: "g", Filter: "a/+"}}}
	b, err := Append(nil, h, m)
	if err != nil {
		t.Fatal(err)
	}
	h2, m2, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if h2.Node != h.Node || h2.Incarnation != h.Incarnation || h2.Seq != h.Seq || !h2.Plain || !h2.Will ||
		len(h2.Groups) != 1 || h2.Groups[0] != h.Groups[0] {
		t.Errorf("header %+v, want %+v", h2, h)
	}
	if m2.Topic != m.Topic || !bytes.Equal(m2.Payload, m.Payload) || m2.QoS != 2 || !m2.Retain || m2.From != "c1" ||
		!m2.Created.Equal(now) || !m2.Expires.Equal(m.Expires) || m2.Properties.ContentType != "text/plain" ||
		len(m2.Properties.User) != 1 || m2.Properties.TopicAlias != 0 {
		t.Errorf("message %+v, want %+v", m2, m)
	}
	// A zero time stays zero.
	b, _ = Append(nil, &Header{}, &message.Message{Topic: "x"})
	if _, m3, err := Decode(b); err != nil || !m3.Created.IsZero() || !m3.Expires.IsZero() {
		t.Errorf("zero times: %v %v", m3, err)
	}
}

// TestWillDelay: the frame carries a will's Will Delay Interval, which the
// PUBLISH codec does not.
func TestWillDelay(t *testing.T) {
	m := &message.Message{Topic: "w", Payload: []byte("gone")}
	m.Properties.WillDelay = 90
	m.Properties.Mark(packet.PropWillDelay)
	b, err := Append(nil, &Header{Node: "n", Will: true}, m)
	if err != nil {
		t.Fatal(err)
	}
	_, m2, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Properties.WillDelay != 90 || !m2.Properties.Has(packet.PropWillDelay) || string(m2.Payload) != "gone" {
		t.Errorf("decoded will: delay %d (marked %v), payload %q; want 90, marked, gone",
			m2.Properties.WillDelay, m2.Properties.Has(packet.PropWillDelay), m2.Payload)
	}
}

// FuzzDecode: no input makes Decode panic, and whatever it decodes encodes
// and decodes to the same header.
func FuzzDecode(f *testing.F) {
	b, _ := Append(nil, &Header{Node: "n", Seq: 1, Plain: true, Groups: []backplane.Group{{Name: "g", Filter: "#"}}},
		&message.Message{Topic: "a/b", Payload: []byte("x"), QoS: 1})
	f.Add(b)
	f.Add([]byte{1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, m, err := Decode(b)
		if err != nil {
			return
		}
		b2, err := Append(nil, h, m)
		if err != nil {
			return // e.g. a topic the codec accepts on read but not on write
		}
		h2, _, err := Decode(b2)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if h2.Node != h.Node || h2.Seq != h.Seq || len(h2.Groups) != len(h.Groups) {
			t.Fatalf("header changed: %+v → %+v", h, h2)
		}
	})
}
