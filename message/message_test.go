package message

import (
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

func TestExpiry(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &Message{Topic: "a"}
	m.SetExpiry(t0)
	if !m.Created.Equal(t0) || !m.Expires.IsZero() || m.Expired(t0.Add(1000*time.Hour)) {
		t.Fatalf("a message without Message Expiry Interval expires: %+v", m)
	}
	if _, ok := m.Remaining(t0); ok {
		t.Fatal("Remaining of a message that does not expire")
	}

	m = &Message{Topic: "a", Created: t0}
	m.Properties.MessageExpiry = 10
	m.SetExpiry(t0.Add(time.Hour)) // counts from Created, which is set
	if want := t0.Add(10 * time.Second); !m.Expires.Equal(want) {
		t.Fatalf("Expires %v, want %v", m.Expires, want)
	}
	if m.Expired(t0.Add(9*time.Second)) || !m.Expired(t0.Add(10*time.Second)) {
		t.Fatal("Expired at the deadline")
	}
	// [v5 MQTT-3.3.2-6] the interval forwarded is what is left, rounded
	// up, never 0 while the message lives.
	for _, c := range []struct {
		at   time.Duration
		want uint32
	}{{0, 10}, {time.Millisecond, 10}, {time.Second, 9}, {9500 * time.Millisecond, 1}, {10 * time.Second, 1}} {
		if got, ok := m.Remaining(t0.Add(c.at)); !ok || got != c.want {
			t.Errorf("Remaining at +%v: %d %v, want %d", c.at, got, ok, c.want)
		}
	}
}

func TestFromPublish(t *testing.T) {
	now := time.Now()
	p := &packet.Publish{Topic: "t/1", Payload: []byte("x"), QoS: 2, Retain: true, PacketID: 9, Dup: true}
	p.Properties.TopicAlias = 3
	p.Properties.Mark(packet.PropTopicAlias)
	p.Properties.MessageExpiry = 5
	p.Properties.ContentType = "text/plain"
	m := FromPublish(p, "pub", now)
	if m.Topic != "t/1" || string(m.Payload) != "x" || m.QoS != 2 || !m.Retain || m.From != "pub" || !m.Created.Equal(now) {
		t.Fatalf("FromPublish: %+v", m)
	}
	if m.Properties.TopicAlias != 0 || m.Properties.Has(packet.PropTopicAlias) {
		t.Fatal("the Topic Alias, a property of the connection, went into the message")
	}
	if m.Properties.ContentType != "text/plain" || m.Properties.MessageExpiry != 5 {
		t.Fatal("the other properties were not kept")
	}
	if !m.Expires.Equal(now.Add(5 * time.Second)) {
		t.Fatalf("Expires %v", m.Expires)
	}
	if p.Properties.TopicAlias != 3 {
		t.Fatal("FromPublish changed the packet")
	}
}
