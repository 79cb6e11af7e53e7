package broker

// MQTT 5 subscription behaviour, black-box over loopback sockets: the
// properties a PUBLISH carries through the broker, Subscription
// Identifiers, the subscription options (No Local, Retain As Published,
// Retain Handling) and the reason codes of SUBACK and UNSUBACK. Each test
// names the normative statements of MQTT 5.0 it checks.

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/ternmq/tern/packet"
)

// ---- helpers (prefixed v5u) ----

// v5uConnect connects an MQTT 5 client with a clean session.
func v5uConnect(t *testing.T, addr, id string) *rawClient {
	t.Helper()
	c, _ := ptConnect(t, addr, packet.V5, id, true)
	return c
}

// v5uSubscribe sends one SUBSCRIBE (with Subscription Identifier subID
// when it is not 0) and returns its SUBACK, which must be the next packet.
func v5uSubscribe(t *testing.T, c *rawClient, pid uint16, subID uint32, subs ...packet.Subscription) *packet.Suback {
	t.Helper()
	s := &packet.Subscribe{PacketID: pid, Subscriptions: subs}
	if subID != 0 {
		s.Properties.SubscriptionIDs = []uint32{subID}
	}
	c.send(s)
	p := c.recv()
	ack, ok := p.(*packet.Suback)
	if !ok || ack.PacketID != pid {
		t.Fatalf("want SUBACK %d, got %v", pid, p)
	}
	if len(ack.ReasonCodes) != len(subs) {
		t.Fatalf("SUBACK %v has %d codes for %d filters [v5 MQTT-3.8.4-6]", ack, len(ack.ReasonCodes), len(subs))
	}
	return ack
}

// v5uCollect publishes a QoS 0 marker from the inline client on marker,
// to which c must be subscribed, and returns what c receives before it:
// the PUBLISHes (acknowledged) and any other packet (a SUBACK, say).
// Messages routed to c before the marker are queued ahead of it.
func v5uCollect(t *testing.T, srv *Server, c *rawClient, marker string) (pubs []*packet.Publish, others []packet.Packet) {
	t.Helper()
	if err := srv.Publish(marker, []byte("marker"), 0, false); err != nil {
		t.Fatal(err)
	}
	for {
		switch p := c.recv().(type) {
		case *packet.Publish:
			if p.Topic == marker && string(p.Payload) == "marker" {
				return pubs, others
			}
			pubs = append(pubs, p)
			switch p.QoS {
			case 1:
				c.send(&packet.Puback{PacketID: p.PacketID})
			case 2:
				c.send(&packet.Pubrec{PacketID: p.PacketID})
			}
		case *packet.Pubrel:
			c.send(&packet.Pubcomp{PacketID: p.PacketID})
		default:
			others = append(others, p)
		}
	}
}

// v5uPublish1 publishes a QoS 1 message from c and reads until its
// PUBACK, returning the PUBLISHes that arrived meanwhile (acknowledged).
func v5uPublish1(t *testing.T, c *rawClient, p *packet.Publish) []*packet.Publish {
	t.Helper()
	c.send(p)
	var got []*packet.Publish
	for {
		switch q := c.recv().(type) {
		case *packet.Puback:
			if q.PacketID != p.PacketID {
				t.Fatalf("PUBACK %d, want %d", q.PacketID, p.PacketID)
			}
			if q.ReasonCode.IsError() {
				t.Fatalf("PUBACK %v refuses the message", q)
			}
			return got
		case *packet.Publish:
			got = append(got, q)
			if q.QoS == 1 {
				c.send(&packet.Puback{PacketID: q.PacketID})
			}
		default:
			t.Fatalf("want PUBACK %d, got %v", p.PacketID, q)
		}
	}
}

func v5uSortedIDs(p *packet.Publish) []uint32 {
	ids := slices.Clone(p.Properties.SubscriptionIDs)
	slices.Sort(ids)
	return ids
}

// v5uProps are the properties of TestV5SubsPassThrough: every property a
// publisher can give a message, with values that catch re-encoding (zero
// bytes in the correlation data, non-ASCII strings, repeated user
// property names whose order matters).
func v5uProps() packet.Properties {
	var p packet.Properties
	p.PayloadFormat = 1
	p.MessageExpiry = 3600
	p.ContentType = "application/json; charset=utf-8; x=\"é✓\""
	p.ResponseTopic = "v5u/pt/reply/ü/雪"
	p.CorrelationData = []byte{0x00, 0x01, 0x00, 0xff, 0x00, 0x00, 0x80, 0x7f, 0x00}
	p.User = []packet.UserProperty{
		{Key: "a", Value: "1"},
		{Key: "b", Value: "2"},
		{Key: "a", Value: "3"},
		{Key: "名前", Value: "値 ✓"},
		{Key: "a", Value: "1"}, // the same pair twice
		{Key: "", Value: ""},
		{Key: "z", Value: "last"},
		{Key: "b", Value: "0"},
	}
	return p
}

// v5uCheckProps compares the forwarded properties got with those
// published, want. The Message Expiry Interval is the remaining lifetime
// [v5 MQTT-3.3.2-6], so it may have lost a second.
func v5uCheckProps(t *testing.T, who string, got, want *packet.Properties) {
	t.Helper()
	if got.PayloadFormat != want.PayloadFormat || !got.Has(packet.PropPayloadFormat) {
		t.Errorf("%s: Payload Format Indicator %d, want %d [v5 MQTT-3.3.2-4]", who, got.PayloadFormat, want.PayloadFormat)
	}
	if got.ContentType != want.ContentType {
		t.Errorf("%s: Content Type %q, want %q [v5 MQTT-3.3.2-20]", who, got.ContentType, want.ContentType)
	}
	if got.ResponseTopic != want.ResponseTopic {
		t.Errorf("%s: Response Topic %q, want %q [v5 MQTT-3.3.2-15]", who, got.ResponseTopic, want.ResponseTopic)
	}
	if !bytes.Equal(got.CorrelationData, want.CorrelationData) {
		t.Errorf("%s: Correlation Data % x, want % x [v5 MQTT-3.3.2-16]", who, got.CorrelationData, want.CorrelationData)
	}
	if !slices.Equal(got.User, want.User) {
		t.Errorf("%s: User Properties %q, want %q, same order [v5 MQTT-3.3.2-17] [v5 MQTT-3.3.2-18]", who, got.User, want.User)
	}
	if got.MessageExpiry > want.MessageExpiry || got.MessageExpiry+5 < want.MessageExpiry {
		t.Errorf("%s: Message Expiry Interval %d, want about %d [v5 MQTT-3.3.2-6]", who, got.MessageExpiry, want.MessageExpiry)
	}
	if got.TopicAlias != 0 || len(got.SubscriptionIDs) != 0 || got.SessionExpiry != 0 || got.ReasonString != "" {
		t.Errorf("%s: properties nobody sent: %v", who, got)
	}
}

// ---- pass-through ----

// TestV5SubsPassThrough: a PUBLISH with Payload Format Indicator, Content
// Type, Response Topic, Correlation Data (binary with zero bytes),
// Message Expiry and many User Properties (repeated names, order, non-ASCII)
// reaches two MQTT 5 subscribers and the inline client with exactly those
// properties [v5 MQTT-3.3.2-4] [v5 MQTT-3.3.2-15] [v5 MQTT-3.3.2-16]
// [v5 MQTT-3.3.2-17] [v5 MQTT-3.3.2-18] [v5 MQTT-3.3.2-20] and the
// remaining lifetime as Message Expiry [v5 MQTT-3.3.2-6]; so does a
// retained message sent to a later subscriber, and a message the inline
// client publishes with properties (Server.PublishMessage). A Payload
// Format Indicator of 0 sent explicitly is forwarded too. (The order of
// different properties is not significant, section 2.2.2.2; that of User
// Properties is.)
func TestV5SubsPassThrough(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	subs := []*rawClient{v5uConnect(t, addr, "v5u-pt-s1"), v5uConnect(t, addr, "v5u-pt-s2")}
	for i, s := range subs {
		v5uSubscribe(t, s, 1, 0, packet.Subscription{Filter: "v5u/pt/#", QoS: 1 + byte(i)})
	}
	inline, unsub := ptInline(t, srv, "v5u/pt/#", 2)
	defer unsub()
	pub := v5uConnect(t, addr, "v5u-pt-pub")
	want := v5uProps()
	payload := []byte(`{"t":"ü","n":[0,1]}`)
	p := &packet.Publish{Topic: "v5u/pt/x", QoS: 1, PacketID: 1, Payload: payload, Properties: v5uProps()}
	if got := v5uPublish1(t, pub, p); len(got) != 0 {
		t.Fatalf("publisher got %v", got)
	}
	for i, s := range subs {
		got := s.expectPublish()
		who := fmt.Sprintf("subscriber %d", i+1)
		if got.Topic != "v5u/pt/x" || !bytes.Equal(got.Payload, payload) || got.QoS != 1 {
			t.Fatalf("%s got %v", who, got)
		}
		v5uCheckProps(t, who, &got.Properties, &want)
		ptAck(t, s, got)
	}
	m := ptRecvInline(t, inline)
	if m.Topic != "v5u/pt/x" || !bytes.Equal(m.Payload, payload) {
		t.Fatalf("inline got %+v", m)
	}
	v5uCheckProps(t, "inline subscriber", &m.Properties, &want)

	t.Run("from the inline client", func(t *testing.T) {
		m := &Message{Topic: "v5u/pt/inline", Payload: payload, QoS: 1, Properties: v5uProps()}
		if err := srv.PublishMessage(m); err != nil {
			t.Fatal(err)
		}
		for i, s := range subs {
			got := s.expectPublish()
			if got.Topic != "v5u/pt/inline" || !bytes.Equal(got.Payload, payload) {
				t.Fatalf("subscriber %d got %v", i+1, got)
			}
			v5uCheckProps(t, fmt.Sprintf("subscriber %d", i+1), &got.Properties, &want)
			ptAck(t, s, got)
		}
		ptRecvInline(t, inline)
	})

	t.Run("retained, to a later subscriber", func(t *testing.T) {
		p := &packet.Publish{Topic: "v5u/ptr/x", QoS: 1, PacketID: 2, Retain: true, Payload: payload, Properties: v5uProps()}
		v5uPublish1(t, pub, p)
		late := v5uConnect(t, addr, "v5u-pt-late")
		v5uSubscribe(t, late, 1, 0, packet.Subscription{Filter: "v5u/ptr/#", QoS: 1})
		got := late.expectPublish()
		if got.Topic != "v5u/ptr/x" || !got.Retain || !bytes.Equal(got.Payload, payload) {
			t.Fatalf("late subscriber got %v, want the retained message", got)
		}
		v5uCheckProps(t, "late subscriber", &got.Properties, &want)
		ptAck(t, late, got)
	})

	t.Run("Payload Format Indicator 0 sent explicitly", func(t *testing.T) {
		p := &packet.Publish{Topic: "v5u/pt/pfi0", Payload: []byte{0xff, 0x00}}
		p.Properties.Mark(packet.PropPayloadFormat) // PayloadFormat 0, present
		pub.send(p)
		for i, s := range subs {
			got := s.expectPublish()
			if got.Topic != "v5u/pt/pfi0" || !got.Properties.Has(packet.PropPayloadFormat) || got.Properties.PayloadFormat != 0 {
				t.Errorf("subscriber %d got %v, want Payload Format Indicator 0 present [v5 MQTT-3.3.2-4]", i+1, got)
			}
		}
		ptRecvInline(t, inline)
	})
}

// ---- Subscription Identifiers ----

// TestV5SubsSubscriptionIDs: a Subscription Identifier is stored with the
// subscription it came with (section 3.8.2.1.2); a message
// matching two subscriptions of a client arrives once, carrying both
// identifiers [v5 MQTT-3.3.4-3] [v5 MQTT-3.3.4-4]; a subscription
// replaced without an identifier loses it [v5 MQTT-3.8.4-3]; retained
// messages sent on subscribe carry the identifier of the subscription
// they are sent for.
func TestV5SubsSubscriptionIDs(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c := v5uConnect(t, addr, "v5u-id")
	v5uSubscribe(t, c, 1, 1, packet.Subscription{Filter: "v5u/id/+", QoS: 1})
	v5uSubscribe(t, c, 2, 2, packet.Subscription{Filter: "v5u/id/#", QoS: 1})
	pub := v5uConnect(t, addr, "v5u-id-pub")

	check := func(step string, wantIDs []uint32) {
		t.Helper()
		v5uPublish1(t, pub, &packet.Publish{Topic: "v5u/id/x", QoS: 1, PacketID: 1, Payload: []byte(step)})
		got, others := v5uCollect(t, srv, c, "v5u/id/marker")
		if len(others) != 0 || len(got) != 1 {
			t.Fatalf("%s: got %v %v, want one PUBLISH [v5 MQTT-3.3.4-4]", step, got, others)
		}
		if ids := v5uSortedIDs(got[0]); !slices.Equal(ids, wantIDs) {
			t.Errorf("%s: Subscription Identifiers %v, want %v [v5 MQTT-3.3.4-3] [v5 MQTT-3.3.4-4]", step, got[0].Properties.SubscriptionIDs, wantIDs)
		}
	}
	check("both with ids", []uint32{1, 2})
	// Replacing v5u/id/+ without an identifier: it has none from now on.
	v5uSubscribe(t, c, 3, 0, packet.Subscription{Filter: "v5u/id/+", QoS: 1})
	check("v5u/id/+ replaced without id", []uint32{2})
	v5uSubscribe(t, c, 4, 268435455, packet.Subscription{Filter: "v5u/id/#", QoS: 1})
	check("v5u/id/# replaced with the largest id", []uint32{268435455})
	v5uSubscribe(t, c, 5, 0, packet.Subscription{Filter: "v5u/id/#", QoS: 1})
	check("neither has an id", nil)

	t.Run("retained on subscribe", func(t *testing.T) {
		if err := srv.Publish("v5u/idr/a", []byte("kept"), 1, true); err != nil {
			t.Fatal(err)
		}
		r := v5uConnect(t, addr, "v5u-id-retained")
		for i, tc := range []struct {
			filter string
			id     uint32
		}{{"v5u/idr/#", 9}, {"v5u/idr/+", 10}, {"v5u/idr/a", 0}} {
			v5uSubscribe(t, r, uint16(i+1), tc.id, packet.Subscription{Filter: tc.filter, QoS: 1})
			p := r.expectPublish()
			if p.Topic != "v5u/idr/a" || !p.Retain {
				t.Fatalf("%s: got %v, want the retained message", tc.filter, p)
			}
			var want []uint32
			if tc.id != 0 {
				want = []uint32{tc.id}
			}
			if !slices.Equal(p.Properties.SubscriptionIDs, want) {
				t.Errorf("retained message for %s: Subscription Identifiers %v, want %v", tc.filter, p.Properties.SubscriptionIDs, want)
			}
			ptAck(t, r, p)
		}
	})
}

// TestV5SubsSubscriptionIDsCopyPerSubscription: with
// Server.CopyPerSubscription a message matching three subscriptions of a
// client arrives three times, each copy with the identifier of its
// subscription (none for the one without) and its QoS [v5 MQTT-3.3.4-5]
// [v5 MQTT-3.8.4-8].
func TestV5SubsSubscriptionIDsCopyPerSubscription(t *testing.T) {
	t.Parallel()
	srv := &Server{CopyPerSubscription: true}
	addr := ptNewServer(t, srv)
	c := v5uConnect(t, addr, "v5u-cp")
	v5uSubscribe(t, c, 1, 1, packet.Subscription{Filter: "v5u/cp/+", QoS: 1})
	v5uSubscribe(t, c, 2, 2, packet.Subscription{Filter: "v5u/cp/#", QoS: 0})
	v5uSubscribe(t, c, 3, 0, packet.Subscription{Filter: "v5u/cp/x", QoS: 2})
	v5uSubscribe(t, c, 4, 0, packet.Subscription{Filter: "v5u/cpmark", QoS: 0})
	pub := v5uConnect(t, addr, "v5u-cp-pub")
	v5uPublish1(t, pub, &packet.Publish{Topic: "v5u/cp/x", QoS: 1, PacketID: 1, Payload: []byte("m")})
	got, others := v5uCollect(t, srv, c, "v5u/cpmark")
	if len(others) != 0 {
		t.Fatalf("unexpected %v", others)
	}
	var copies []string
	for _, p := range got {
		copies = append(copies, fmt.Sprintf("qos%d ids%v", p.QoS, v5uSortedIDs(p)))
	}
	slices.Sort(copies)
	want := []string{"qos0 ids[2]", "qos1 ids[1]", "qos1 ids[]"}
	if !slices.Equal(copies, want) {
		t.Fatalf("copies %q, want %q [v5 MQTT-3.3.4-5]", copies, want)
	}
}

// ---- subscription options ----

// TestV5SubsNoLocal: with No Local a client does not get its own
// messages back [v5 MQTT-3.8.3-3], but gets those of other clients and of
// the inline client; a subscriber without No Local gets its own; an
// overlapping subscription without No Local still delivers (once).
func TestV5SubsNoLocal(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	x := v5uConnect(t, addr, "v5u-nl-x")
	y := v5uConnect(t, addr, "v5u-nl-y")
	v5uSubscribe(t, x, 1, 0, packet.Subscription{Filter: "v5u/nl/#", QoS: 1, NoLocal: true}, packet.Subscription{Filter: "v5u/nlm/x"})
	v5uSubscribe(t, y, 1, 0, packet.Subscription{Filter: "v5u/nl/#", QoS: 1}, packet.Subscription{Filter: "v5u/nlm/y"})

	if got := v5uPublish1(t, x, &packet.Publish{Topic: "v5u/nl/a", QoS: 1, PacketID: 1, Payload: []byte("from x")}); len(got) != 0 {
		t.Fatalf("x got its own message %v [v5 MQTT-3.8.3-3]", got)
	}
	if got, _ := v5uCollect(t, srv, x, "v5u/nlm/x"); len(got) != 0 {
		t.Fatalf("x got its own message %v [v5 MQTT-3.8.3-3]", ptPayloads(got))
	}
	own := v5uPublish1(t, y, &packet.Publish{Topic: "v5u/nl/b", QoS: 1, PacketID: 1, Payload: []byte("from y")})
	rest, _ := v5uCollect(t, srv, y, "v5u/nlm/y")
	if got := ptPayloads(append(own, rest...)); !slices.Equal(got, []string{"from x", "from y"}) {
		t.Fatalf("y got %q, want [from x, from y] (y has no No Local)", got)
	}
	if got, _ := v5uCollect(t, srv, x, "v5u/nlm/x"); !slices.Equal(ptPayloads(got), []string{"from y"}) {
		t.Fatalf("x got %q, want [from y]", ptPayloads(got))
	}

	// An overlapping subscription without No Local: x's message matches it.
	v5uSubscribe(t, x, 2, 0, packet.Subscription{Filter: "v5u/nl/+", QoS: 1})
	own = v5uPublish1(t, x, &packet.Publish{Topic: "v5u/nl/c", QoS: 1, PacketID: 2, Payload: []byte("again x")})
	rest, _ = v5uCollect(t, srv, x, "v5u/nlm/x")
	if got := ptPayloads(append(own, rest...)); !slices.Equal(got, []string{"again x"}) {
		t.Fatalf("x got %q, want [again x] once through v5u/nl/+", got)
	}
}

// TestV5SubsRetainAsPublished: Retain As Published 0 clears the RETAIN
// flag of forwarded messages [v5 MQTT-3.3.1-12], 1 keeps it
// [v5 MQTT-3.3.1-13]; messages sent because of a new subscription have it
// set either way (section 3.3.1.3).
func TestV5SubsRetainAsPublished(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	if err := srv.Publish("v5u/rap/old", []byte("old"), 1, true); err != nil {
		t.Fatal(err)
	}
	rap0 := v5uConnect(t, addr, "v5u-rap0")
	rap1 := v5uConnect(t, addr, "v5u-rap1")
	for i, c := range []*rawClient{rap0, rap1} {
		v5uSubscribe(t, c, 1, 0, packet.Subscription{Filter: "v5u/rap/#", QoS: 1, RetainAsPublished: i == 1})
		if p := c.expectPublish(); string(p.Payload) != "old" || !p.Retain {
			t.Fatalf("RAP %d: got %v, want the retained message with RETAIN 1 (section 3.3.1.3)", i, p)
		} else {
			ptAck(t, c, p)
		}
	}
	pub := v5uConnect(t, addr, "v5u-rap-pub")
	v5uPublish1(t, pub, &packet.Publish{Topic: "v5u/rap/a", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("live retained")})
	v5uPublish1(t, pub, &packet.Publish{Topic: "v5u/rap/b", QoS: 1, PacketID: 2, Payload: []byte("live")})
	for i, c := range []*rawClient{rap0, rap1} {
		got, _ := v5uCollect(t, srv, c, "v5u/rap/marker")
		if len(got) != 2 {
			t.Fatalf("RAP %d: got %v", i, got)
		}
		if got[0].Retain != (i == 1) {
			t.Errorf("RAP %d: live retained message has RETAIN %v, want %v [v5 MQTT-3.3.1-12] [v5 MQTT-3.3.1-13]", i, got[0].Retain, i == 1)
		}
		if got[1].Retain {
			t.Errorf("RAP %d: non-retained message has RETAIN 1", i)
		}
	}
}

// TestV5SubsRetainHandling: Retain Handling 0 sends the retained messages
// at every subscribe [v5 MQTT-3.3.1-9], also when the subscription
// replaces one, without losing messages [v5 MQTT-3.8.4-4]; 1 only when
// the subscription is new [v5 MQTT-3.3.1-10]; 2 never [v5 MQTT-3.3.1-11].
func TestV5SubsRetainHandling(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	if err := srv.Publish("v5u/rh/a", []byte("ra"), 1, true); err != nil {
		t.Fatal(err)
	}
	const marker = "v5u/rh/marker"
	pid := uint16(0)
	// subscribe sends a SUBSCRIBE to v5u/rh/# and reads up to its SUBACK,
	// returning the messages that arrived before it (acknowledged).
	subscribe := func(c *rawClient, rh byte) []*packet.Publish {
		t.Helper()
		pid++
		c.send(&packet.Subscribe{PacketID: pid, Subscriptions: []packet.Subscription{{Filter: "v5u/rh/#", QoS: 1, RetainHandling: rh}}})
		var before []*packet.Publish
		for {
			switch p := c.recv().(type) {
			case *packet.Suback:
				if p.PacketID != pid || len(p.ReasonCodes) != 1 || p.ReasonCodes[0] != packet.GrantedQoS1 {
					t.Fatalf("got %v, want SUBACK %d granting QoS 1", p, pid)
				}
				return before
			case *packet.Publish:
				before = append(before, p)
				ptAck(t, c, p)
			default:
				t.Fatalf("got %v, want SUBACK %d", p, pid)
			}
		}
	}
	// expect checks that after the SUBACK exactly the messages want
	// (payloads) arrive, the retained ones with RETAIN 1.
	expect := func(c *rawClient, step string, want ...string) {
		t.Helper()
		got, others := v5uCollect(t, srv, c, marker)
		if len(others) != 0 {
			t.Fatalf("%s: unexpected %v", step, others)
		}
		if p := ptPayloads(got); !slices.Equal(p, want) {
			t.Fatalf("%s: got %q, want %q", step, p, want)
		}
		for _, p := range got {
			if string(p.Payload) == "ra" && !p.Retain {
				t.Errorf("%s: retained message sent on subscribe without RETAIN (section 3.3.1.3)", step)
			}
		}
	}

	c0 := v5uConnect(t, addr, "v5u-rh0")
	subscribe(c0, 0)
	expect(c0, "RH 0, new", "ra")
	subscribe(c0, 0)
	expect(c0, "RH 0, replacing", "ra") // [v5 MQTT-3.8.4-4]
	// A message on its way while the subscription is replaced is not lost.
	srv.Publish("v5u/rh/live", []byte("live"), 1, false)
	before := subscribe(c0, 0)
	after, _ := v5uCollect(t, srv, c0, marker)
	p := ptPayloads(append(before, after...))
	slices.Sort(p) // the live message may go before or after the retained one
	if !slices.Equal(p, []string{"live", "ra"}) {
		t.Fatalf("RH 0, replacing with a message on its way: got %q, want live and ra, once each [v5 MQTT-3.8.4-4]", p)
	}

	c1 := v5uConnect(t, addr, "v5u-rh1")
	subscribe(c1, 1)
	expect(c1, "RH 1, new", "ra")
	subscribe(c1, 1)
	expect(c1, "RH 1, existing")
	c1.send(&packet.Unsubscribe{PacketID: 99, Filters: []string{"v5u/rh/#"}})
	if ua, ok := c1.recv().(*packet.Unsuback); !ok || ua.PacketID != 99 {
		t.Fatalf("want UNSUBACK 99, got %v", ua)
	}
	v5uSubscribe(t, c1, 98, 0, packet.Subscription{Filter: marker, QoS: 0})
	subscribe(c1, 1)
	expect(c1, "RH 1, new again after UNSUBSCRIBE", "ra")

	c2 := v5uConnect(t, addr, "v5u-rh2")
	subscribe(c2, 2)
	expect(c2, "RH 2, new")
	subscribe(c2, 2)
	expect(c2, "RH 2, existing")
	// Live retained messages still flow on an RH 2 subscription.
	srv.Publish("v5u/rh/b", []byte("rb"), 1, true)
	if got, _ := v5uCollect(t, srv, c2, marker); !slices.Equal(ptPayloads(got), []string{"rb"}) {
		t.Fatalf("RH 2: live retained message: got %q, want [rb]", ptPayloads(got))
	}
}

// ---- SUBACK and UNSUBACK ----

// v5uDenyAuthz refuses subscriptions to v5u/secret and allows the rest.
type v5uDenyAuthz struct{}

func (v5uDenyAuthz) Authorize(_ context.Context, _ *ClientInfo, a Action, topic string) bool {
	return a != ActionSubscribe || topic != "v5u/secret"
}

// TestV5SubsSubackCodes: a SUBSCRIBE with several filters is answered
// with one SUBACK [v5 MQTT-3.8.4-5] holding one reason code per filter
// [v5 MQTT-3.8.4-6], in order [v5 MQTT-3.9.3-1], each the granted QoS or
// a failure [v5 MQTT-3.8.4-7]: 0x87 for a filter the Authorizer refuses,
// 0x8F for an invalid filter, 0x9E for a shared subscription when they
// are off (0x80 to an MQTT 3.1.1 client), 0xA2 for a wildcard filter when
// they are off; a plain filter in the same SUBSCRIBE is granted and
// works. The CONNACK announced what is off (section 3.2.2.3).
func TestV5SubsSubackCodes(t *testing.T) {
	t.Parallel()
	filters := []struct {
		f      string
		qos    byte
		v5, v3 packet.ReasonCode
	}{
		{"v5u/a", 1, packet.GrantedQoS1, packet.GrantedQoS1},
		{"v5u/secret", 1, packet.NotAuthorized, packet.V3SubackFailure},
		{"v5u/#/bad", 1, packet.TopicFilterInvalid, packet.V3SubackFailure},
		{"$share/g/v5u/a", 1, packet.SharedSubscriptionsNotSupported, packet.V3SubackFailure},
		{"v5u/+", 1, packet.WildcardSubscriptionsNotSupported, packet.V3SubackFailure},
		{"v5u/#", 2, packet.WildcardSubscriptionsNotSupported, packet.V3SubackFailure},
		{"#", 0, packet.WildcardSubscriptionsNotSupported, packet.V3SubackFailure},
		{"v5u/b", 2, packet.GrantedQoS2, packet.GrantedQoS2},
		{"$share/g/v5u/+", 1, packet.SharedSubscriptionsNotSupported, packet.V3SubackFailure},
		{"v5u/c", 0, packet.GrantedQoS0, packet.GrantedQoS0},
	}
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{Authorizer: v5uDenyAuthz{}, SharedSubscriptionsUnavailable: true, WildcardSubscriptionsUnavailable: true}
			addr := ptNewServer(t, srv)
			c, ack := ptConnect(t, addr, v, "v5u-suback", true)
			if v == packet.V5 {
				pr := &ack.Properties
				if !pr.Has(packet.PropSharedSubAvailable) || pr.SharedSubAvailable != 0 ||
					!pr.Has(packet.PropWildcardSubAvailable) || pr.WildcardSubAvailable != 0 {
					t.Errorf("CONNACK properties %v: want Shared and Wildcard Subscription Available 0", pr)
				}
			}
			var subs []packet.Subscription
			var want []packet.ReasonCode
			for _, f := range filters {
				subs = append(subs, packet.Subscription{Filter: f.f, QoS: f.qos})
				if v == packet.V5 {
					want = append(want, f.v5)
				} else {
					want = append(want, f.v3)
				}
			}
			sa := v5uSubscribe(t, c, 7, 0, subs...)
			if !slices.Equal(sa.ReasonCodes, want) {
				t.Fatalf("SUBACK codes % x, want % x [v5 MQTT-3.8.4-6] [v5 MQTT-3.9.3-1]", sa.ReasonCodes, want)
			}
			// The granted filters work; the refused ones do not.
			for _, tp := range []string{"v5u/secret", "v5u/x", "v5u/a", "v5u/b", "v5u/c"} {
				srv.Publish(tp, []byte(tp), 2, false)
			}
			got, others := v5uCollect(t, srv, c, "v5u/c")
			if len(others) != 0 {
				t.Fatalf("unexpected %v", others)
			}
			if p := ptPayloads(got); !slices.Equal(p, []string{"v5u/a", "v5u/b", "v5u/c"}) {
				t.Fatalf("delivered %q, want [v5u/a v5u/b v5u/c]", p)
			}
		})
	}
}

// TestV5SubsSubackSubscriptionIDsUnavailable: with
// SubscriptionIDsUnavailable a SUBSCRIBE carrying a Subscription
// Identifier gets 0xA1 for each filter and subscribes nothing; without an
// identifier it is granted [v5 MQTT-3.8.4-7]. The CONNACK says
// Subscription Identifiers Available 0.
func TestV5SubsSubackSubscriptionIDsUnavailable(t *testing.T) {
	t.Parallel()
	srv := &Server{SubscriptionIDsUnavailable: true}
	addr := ptNewServer(t, srv)
	c, ack := ptConnect(t, addr, packet.V5, "v5u-noids", true)
	if !ack.Properties.Has(packet.PropSubIDAvailable) || ack.Properties.SubIDAvailable != 0 {
		t.Errorf("CONNACK properties %v: want Subscription Identifier Available 0", &ack.Properties)
	}
	sa := v5uSubscribe(t, c, 1, 5, packet.Subscription{Filter: "v5u/noid/a", QoS: 1}, packet.Subscription{Filter: "v5u/noid/+", QoS: 0})
	want := []packet.ReasonCode{packet.SubscriptionIdentifiersNotSupported, packet.SubscriptionIdentifiersNotSupported}
	if !slices.Equal(sa.ReasonCodes, want) {
		t.Fatalf("SUBACK codes % x, want % x", sa.ReasonCodes, want)
	}
	sa = v5uSubscribe(t, c, 2, 0, packet.Subscription{Filter: "v5u/noid/mark", QoS: 1})
	if !slices.Equal(sa.ReasonCodes, []packet.ReasonCode{packet.GrantedQoS1}) {
		t.Fatalf("SUBACK codes % x without an identifier, want [01]", sa.ReasonCodes)
	}
	srv.Publish("v5u/noid/a", []byte("refused"), 1, false)
	if got, _ := v5uCollect(t, srv, c, "v5u/noid/mark"); len(got) != 0 {
		t.Fatalf("refused subscription delivered %q", ptPayloads(got))
	}
}

// TestV5SubsUnsuback: an UNSUBSCRIBE with several filters is answered
// with one UNSUBACK [v5 MQTT-3.10.4-4] [v5 MQTT-3.10.4-6] with the request's
// packet identifier, sent also for filters that deleted nothing
// [v5 MQTT-3.10.4-5], and one code per filter in order [v5 MQTT-3.11.3-1]:
// 0x00 for a subscription that existed (shared ones included), 0x11 No
// subscription existed otherwise; the removed subscriptions deliver no
// more [v5 MQTT-3.10.4-1] [v5 MQTT-3.10.4-2].
func TestV5SubsUnsuback(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c := v5uConnect(t, addr, "v5u-unsub")
	v5uSubscribe(t, c, 1, 0,
		packet.Subscription{Filter: "v5u/un/a", QoS: 1},
		packet.Subscription{Filter: "$share/g/v5u/un/b", QoS: 1},
		packet.Subscription{Filter: "v5u/un/mark", QoS: 0})
	c.send(&packet.Unsubscribe{PacketID: 42, Filters: []string{"v5u/un/a", "v5u/un/none", "$share/g/v5u/un/b", "v5u/un/a", "$share/h/v5u/un/b"}})
	ua, ok := c.recv().(*packet.Unsuback)
	if !ok || ua.PacketID != 42 {
		t.Fatalf("want UNSUBACK 42, got %v [v5 MQTT-3.10.4-5]", ua)
	}
	want := []packet.ReasonCode{packet.Success, packet.NoSubscriptionExisted, packet.Success, packet.NoSubscriptionExisted, packet.NoSubscriptionExisted}
	if !slices.Equal(ua.ReasonCodes, want) {
		t.Fatalf("UNSUBACK codes % x, want % x", ua.ReasonCodes, want)
	}
	srv.Publish("v5u/un/a", []byte("a"), 1, false)
	srv.Publish("v5u/un/b", []byte("b"), 1, false)
	if got, _ := v5uCollect(t, srv, c, "v5u/un/mark"); len(got) != 0 {
		t.Fatalf("delivered after UNSUBSCRIBE: %q", ptPayloads(got))
	}
}
