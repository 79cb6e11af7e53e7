package broker

// Black-box tests of the MQTT 5.0 message flow through the broker: flow
// control (Receive Maximum both ways), Maximum Packet Size both ways,
// topic aliases both ways, message expiry, Maximum QoS and Retain
// Available, the reason codes of acknowledgements, and one topic space
// for MQTT 3.1.1 and 5.0 clients. Real loopback sockets, raw packets, one
// server per test (or per subtest); each test names the normative
// statements of MQTT 5.0 it checks ([v5 MQTT-x.y.z-n]; rules without an
// id by section number or noid).

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// ---- helpers (prefixed v5f to keep clear of other test files) ----

// v5fConnect dials and connects an MQTT 5 client with Clean Start 1 and
// no Session Expiry Interval; mod, if not nil, adjusts the CONNECT.
func v5fConnect(t *testing.T, addr, id string, mod func(*packet.Connect)) (*rawClient, *packet.Connack) {
	t.Helper()
	c := dialRaw(t, addr, packet.V5)
	cp := &packet.Connect{ClientID: id, CleanStart: true}
	if mod != nil {
		mod(cp)
	}
	return c, c.connect(cp)
}

// v5fPersistent makes a CONNECT ask for a session that lasts a minute.
func v5fPersistent(cp *packet.Connect) {
	cp.CleanStart = false
	cp.Properties.SessionExpiry = 60
}

// v5fOffline ends c's connection with a normal DISCONNECT and waits until
// the broker has no connected client left.
func v5fOffline(t *testing.T, srv *Server, c *rawClient) {
	t.Helper()
	c.send(&packet.Disconnect{})
	if got := c.expectClosed(); len(got) != 0 {
		t.Fatalf("packets after DISCONNECT: %v", got)
	}
	ptWaitConnected(t, srv, 0)
}

// v5fAck reads the acknowledgement of a PUBLISH of QoS 1 (PUBACK) or 2
// (PUBREC) with packet id id and returns its reason code and properties.
func v5fAck(t *testing.T, c *rawClient, qos byte, id uint16) (packet.ReasonCode, packet.Properties) {
	t.Helper()
	p := c.recv()
	switch a := p.(type) {
	case *packet.Puback:
		if qos == 1 && a.PacketID == id {
			return a.ReasonCode, a.Properties
		}
	case *packet.Pubrec:
		if qos == 2 && a.PacketID == id {
			return a.ReasonCode, a.Properties
		}
	}
	t.Fatalf("got %v, want the QoS %d acknowledgement of packet %d", p, qos, id)
	return 0, packet.Properties{}
}

// v5fPing checks that c's connection is alive: PINGREQ gets PINGRESP.
func v5fPing(t *testing.T, c *rawClient) {
	t.Helper()
	c.send(&packet.Pingreq{})
	if p, ok := c.recv().(*packet.Pingresp); !ok {
		t.Fatalf("got %v, want PINGRESP", p)
	}
}

// v5fPayloadFor returns a payload that makes a QoS 1 PUBLISH on
// topicName exactly size bytes long (fixed header included) in MQTT 5.
func v5fPayloadFor(t *testing.T, topicName string, size int) []byte {
	t.Helper()
	empty := len(mustEncode(t, &packet.Publish{Topic: topicName, QoS: 1, PacketID: 1}, packet.V5))
	b := bytes.Repeat([]byte{'p'}, size-empty)
	if n := len(mustEncode(t, &packet.Publish{Topic: topicName, QoS: 1, PacketID: 1, Payload: b}, packet.V5)); n != size {
		t.Fatalf("PUBLISH of %d bytes, want %d", n, size)
	}
	return b
}

// ---- Receive Maximum ----

// TestV5ReceiveMaximumOutbound: [v5 MQTT-3.3.4-9] [v5 MQTT-4.9.0-1] [v5
// MQTT-4.9.0-2] with CONNECT Receive Maximum 2 and 10 QoS 1 messages
// queued for the session, the server has at most 2 PUBLISHes
// unacknowledged and sends one more per PUBACK; none is dropped and all
// arrive in order [v5 MQTT-4.6.0-5]; [v5 MQTT-3.3.4-10] [v5 MQTT-4.9.0-3]
// a send quota of 0 does not hold up PINGRESP.
func TestV5ReceiveMaximumOutbound(t *testing.T) {
	t.Parallel()
	srv := &Server{} // MaxInflight 20: the client's 2 is the limit
	addr := ptNewServer(t, srv)
	rm2 := func(cp *packet.Connect) {
		v5fPersistent(cp)
		cp.Properties.ReceiveMaximum = 2
	}
	c, _ := v5fConnect(t, addr, "rm", rm2)
	c.subscribe(1, "rm/#", 1)
	v5fOffline(t, srv, c)
	for i := range 10 {
		if err := srv.Publish("rm/x", []byte(fmt.Sprint(i)), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	c, ack := v5fConnect(t, addr, "rm", rm2)
	if !ack.SessionPresent {
		t.Fatal("session not present")
	}
	var got []string
	var window []*packet.Publish
	recvOne := func() {
		t.Helper()
		p := c.expectPublish()
		if p.QoS != 1 || p.Dup {
			t.Fatalf("got %v, want a first QoS 1 send", p)
		}
		for _, w := range window {
			if w.PacketID == p.PacketID {
				t.Fatalf("packet id %d in use twice", p.PacketID)
			}
		}
		window = append(window, p)
		got = append(got, string(p.Payload))
	}
	recvOne()
	recvOne()
	c.noPacket(300 * time.Millisecond) // the send quota is 0
	v5fPing(t, c)
	for len(got) < 10 {
		c.send(&packet.Puback{PacketID: window[0].PacketID})
		window = window[1:]
		recvOne()
		if len(got) == 6 {
			c.noPacket(200 * time.Millisecond)
		}
	}
	for _, w := range window {
		c.send(&packet.Puback{PacketID: w.PacketID})
	}
	if want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	v5fPing(t, c)
	if d := srv.Stats().Dropped; d != 0 {
		t.Errorf("%d messages dropped", d)
	}
}

// TestV5ReceiveMaximumInbound: the server's Receive Maximum (section
// 3.3.4, 4.9): Server{ReceiveMaximum: 2} is announced in the CONNACK, and
// a client with 3 QoS 2 PUBLISHes unreleased (no PUBREL) is disconnected
// with 0x93 Receive Maximum exceeded [v5 noid:receive-maximum]; a DUP
// resend of an unreleased one is not a new message [v5 MQTT-4.3.3-10];
// PUBRELs in between free the quota, so any number of QoS 2 messages
// flows with at most 2 unreleased.
func TestV5ReceiveMaximumInbound(t *testing.T) {
	t.Parallel()
	srv := &Server{ReceiveMaximum: 2}
	addr := ptNewServer(t, srv)
	qos2 := func(id uint16) *packet.Publish {
		return &packet.Publish{Topic: "rx/x", QoS: 2, PacketID: id, Payload: []byte(fmt.Sprint(id))}
	}
	t.Run("exceeded", func(t *testing.T) {
		t.Parallel()
		c, ack := v5fConnect(t, addr, "rx-exceeded", nil)
		if ack.Properties.ReceiveMaximum != 2 {
			t.Fatalf("CONNACK properties %v, want Receive Maximum 2", &ack.Properties)
		}
		for id := uint16(1); id <= 2; id++ {
			c.send(qos2(id))
			if code, _ := v5fAck(t, c, 2, id); code.IsError() {
				t.Fatalf("PUBREC %d code 0x%02x", id, byte(code))
			}
		}
		dup := qos2(1)
		dup.Dup = true
		c.send(dup)
		if code, _ := v5fAck(t, c, 2, 1); code.IsError() {
			t.Fatalf("PUBREC of the DUP resend: code 0x%02x", byte(code))
		}
		c.send(qos2(3))
		expectKicked(t, c, packet.ReceiveMaximumExceeded)
	})
	t.Run("released", func(t *testing.T) {
		t.Parallel()
		c, _ := v5fConnect(t, addr, "rx-released", nil)
		// PUBLISH, PUBREC, PUBREL, PUBCOMP: one unreleased at a time.
		for id := uint16(1); id <= 5; id++ {
			c.send(qos2(id))
			if code, _ := v5fAck(t, c, 2, id); code.IsError() {
				t.Fatalf("PUBREC %d code 0x%02x", id, byte(code))
			}
			c.send(&packet.Pubrel{PacketID: id})
			if comp, ok := c.recv().(*packet.Pubcomp); !ok || comp.PacketID != id || comp.ReasonCode != 0 {
				t.Fatalf("want PUBCOMP %d, got %v", id, comp)
			}
		}
		// Two unreleased, one released, one more: two unreleased again.
		for _, id := range []uint16{10, 11} {
			c.send(qos2(id))
			v5fAck(t, c, 2, id)
		}
		c.send(&packet.Pubrel{PacketID: 10})
		if comp, ok := c.recv().(*packet.Pubcomp); !ok || comp.PacketID != 10 || comp.ReasonCode != 0 {
			t.Fatalf("want PUBCOMP 10, got %v", comp)
		}
		c.send(qos2(12))
		v5fAck(t, c, 2, 12)
		for _, id := range []uint16{11, 12} {
			c.send(&packet.Pubrel{PacketID: id})
			if comp, ok := c.recv().(*packet.Pubcomp); !ok || comp.PacketID != id {
				t.Fatalf("want PUBCOMP %d, got %v", id, comp)
			}
		}
		v5fPing(t, c)
	})
}

// ---- Maximum Packet Size ----

// TestV5MaxPacketSizeOutbound: [v5 MQTT-3.1.2-24] the server sends no
// packet larger than the client's Maximum Packet Size: a queued QoS 1
// message of 129 bytes for a limit of 128 is not sent, one of exactly 128
// and a small one are; [v5 MQTT-3.1.2-25] the large one is handled as if
// sent, so with Receive Maximum 1 it does not hold up the next (which
// comes without any further prompt from the client), and it is counted
// in Stats().Dropped.
func TestV5MaxPacketSizeOutbound(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	limited := func(cp *packet.Connect) {
		v5fPersistent(cp)
		cp.Properties.MaximumPacketSize = 128
		cp.Properties.ReceiveMaximum = 1
	}
	c, _ := v5fConnect(t, addr, "mps", limited)
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "mps/#", QoS: 1}, {Filter: "mk", QoS: 0}}})
	c.recv()
	v5fOffline(t, srv, c)
	fit := v5fPayloadFor(t, "mps/x", 128)
	srv.Publish("mps/x", append([]byte{'x'}, fit...), 1, false) // 129 bytes
	srv.Publish("mps/x", fit, 1, false)
	srv.Publish("mps/x", []byte("small"), 1, false)

	c, _ = v5fConnect(t, addr, "mps", limited)
	p := c.expectPublish()
	if !bytes.Equal(p.Payload, fit) {
		t.Fatalf("got a PUBLISH with %d bytes of payload, want the one of exactly 128 bytes (%d of payload)", len(p.Payload), len(fit))
	}
	ptAck(t, c, p)
	if p = c.expectPublish(); string(p.Payload) != "small" {
		t.Fatalf("got %v, want the small message", p)
	}
	ptAck(t, c, p)
	if got := ptDrain(t, srv, c, "mk"); len(got) != 0 {
		t.Fatalf("more messages: %v", got)
	}
	if d := srv.Stats().Dropped; d != 1 {
		t.Errorf("Stats().Dropped = %d, want 1", d)
	}
}

// TestV5MaxPacketSizeInbound: the CONNACK announces Server.MaxPacketSize
// as Maximum Packet Size (section 3.2.2.3.6); a PUBLISH of exactly that
// size is accepted, a larger one [v5 MQTT-3.2.2-15] gets DISCONNECT 0x95
// Packet too large and the close (section 4.13).
func TestV5MaxPacketSizeInbound(t *testing.T) {
	t.Parallel()
	srv := &Server{MaxPacketSize: 128}
	addr := ptNewServer(t, srv)
	c, ack := v5fConnect(t, addr, "big", nil)
	if !ack.Properties.Has(packet.PropMaximumPacketSize) || ack.Properties.MaximumPacketSize != 128 {
		t.Fatalf("CONNACK properties %v, want Maximum Packet Size 128", &ack.Properties)
	}
	ptPublish(t, c, &packet.Publish{Topic: "in/x", QoS: 1, PacketID: 1, Payload: v5fPayloadFor(t, "in/x", 128)})
	writeRaw(c.nc, mustEncode(t, &packet.Publish{Topic: "in/x", QoS: 1, PacketID: 2, Payload: make([]byte, 1000)}, packet.V5))
	expectKicked(t, c, packet.PacketTooLarge)
}

// ---- Topic aliases ----

// TestV5TopicAliasInbound: topic aliases from the client (section
// 3.3.2.3.4). [v5 MQTT-3.3.2-12] every alias from 1 to the Topic Alias
// Maximum of the CONNACK is accepted: a PUBLISH with topic and alias sets
// it, one with an empty topic uses it and subscribers get the full topic
// without the alias; an alias can be set again to another topic. Above the
// maximum: DISCONNECT 0x94 (the client broke [v5 MQTT-3.2.2-17]); an
// empty topic with an alias never set: DISCONNECT 0x82; [v5 MQTT-3.3.2-7]
// aliases do not carry over to the next connection; a TopicAliasMaximum
// of TopicAliases(0) leaves Topic Alias Maximum out of the CONNACK (no
// aliases, [v5 MQTT-3.2.2-18]) and any alias gets 0x94.
func TestV5TopicAliasInbound(t *testing.T) {
	t.Parallel()
	aliased := func(topicName string, alias uint16, payload string) *packet.Publish {
		p := &packet.Publish{Topic: topicName, QoS: 1, PacketID: 1, Payload: []byte(payload)}
		p.Properties.TopicAlias = alias
		return p
	}
	t.Run("set-and-use", func(t *testing.T) {
		t.Parallel()
		srv := &Server{TopicAliasMaximum: TopicAliases(3)}
		addr := ptNewServer(t, srv)
		sub5, _ := v5fConnect(t, addr, "sub5", nil)
		sub5.subscribe(1, "ta/#", 1)
		sub3, _ := ptConnect(t, addr, packet.V311, "sub3", true)
		sub3.subscribe(1, "ta/#", 1)
		pub, ack := v5fConnect(t, addr, "pub", nil)
		if ack.Properties.TopicAliasMaximum != 3 {
			t.Fatalf("CONNACK properties %v, want Topic Alias Maximum 3", &ack.Properties)
		}
		steps := []struct {
			topic string
			alias uint16
			want  string
		}{
			{"ta/a", 1, "ta/a"},
			{"", 1, "ta/a"},
			{"ta/b", 3, "ta/b"}, // the maximum
			{"", 3, "ta/b"},
			{"ta/c", 1, "ta/c"}, // set again
			{"", 1, "ta/c"},
			{"", 3, "ta/b"},
		}
		for i, s := range steps {
			ptPublish(t, pub, aliased(s.topic, s.alias, fmt.Sprint(i)))
		}
		for _, sub := range []*rawClient{sub5, sub3} {
			for i, s := range steps {
				p := sub.expectPublish()
				if p.Topic != s.want || string(p.Payload) != fmt.Sprint(i) || p.Properties.Has(packet.PropTopicAlias) {
					t.Fatalf("%v subscriber, step %d: got %v, want topic %q without alias", sub.v, i, p, s.want)
				}
				ptAck(t, sub, p)
			}
		}
	})
	t.Run("above-maximum", func(t *testing.T) {
		t.Parallel()
		addr := ptNewServer(t, &Server{TopicAliasMaximum: TopicAliases(3)})
		c, _ := v5fConnect(t, addr, "pub", nil)
		c.send(aliased("ta/a", 4, "x"))
		expectKicked(t, c, packet.TopicAliasInvalid)
	})
	t.Run("never-set", func(t *testing.T) {
		t.Parallel()
		addr := ptNewServer(t, &Server{})
		c, _ := v5fConnect(t, addr, "pub", nil)
		ptPublish(t, c, aliased("ta/a", 1, "x"))
		c.send(aliased("", 2, "y"))
		expectKicked(t, c, packet.ProtocolErrorCode)
	})
	t.Run("per-connection", func(t *testing.T) {
		t.Parallel()
		srv := &Server{}
		addr := ptNewServer(t, srv)
		c, _ := v5fConnect(t, addr, "pub", v5fPersistent)
		ptPublish(t, c, aliased("ta/a", 1, "x"))
		v5fOffline(t, srv, c)
		c, ack := v5fConnect(t, addr, "pub", v5fPersistent)
		if !ack.SessionPresent {
			t.Fatal("session not present")
		}
		c.send(aliased("", 1, "y"))
		expectKicked(t, c, packet.ProtocolErrorCode)
	})
	t.Run("off", func(t *testing.T) {
		t.Parallel()
		addr := ptNewServer(t, &Server{TopicAliasMaximum: TopicAliases(0)})
		c, ack := v5fConnect(t, addr, "pub", nil)
		if ack.Properties.Has(packet.PropTopicAliasMaximum) {
			t.Errorf("CONNACK has Topic Alias Maximum %d with aliases off", ack.Properties.TopicAliasMaximum)
		}
		c.send(aliased("ta/a", 1, "x"))
		expectKicked(t, c, packet.TopicAliasInvalid)
	})
}

// TestV5TopicAliasOutbound: topic aliases to the client with
// Server{OutboundTopicAliases: true} and a client Topic Alias Maximum of
// 2: the first PUBLISH on a topic carries the topic and a new alias, the
// later ones an empty topic and that alias; a third topic goes without
// alias; never an alias above 2 [v5 MQTT-3.3.2-11] [v5 MQTT-3.1.2-26];
// the next connection starts without aliases [v5 MQTT-3.3.2-7]. A client
// without Topic Alias Maximum gets none [v5 MQTT-3.1.2-27], and with
// OutboundTopicAliases off nobody does.
func TestV5TopicAliasOutbound(t *testing.T) {
	t.Parallel()
	type want struct {
		topic string // on the wire
		alias uint16
	}
	run := func(t *testing.T, srv *Server, addr string, c *rawClient, topics []string, wants []want) {
		t.Helper()
		for i, tp := range topics {
			if err := srv.Publish(tp, []byte(fmt.Sprint(i)), 0, false); err != nil {
				t.Fatal(err)
			}
		}
		for i, w := range wants {
			p := c.expectPublish()
			if p.Topic != w.topic || p.Properties.TopicAlias != w.alias || p.Properties.Has(packet.PropTopicAlias) != (w.alias != 0) || string(p.Payload) != fmt.Sprint(i) {
				t.Fatalf("message %d (%s): got topic %q alias %d payload %q, want topic %q alias %d",
					i, topics[i], p.Topic, p.Properties.TopicAlias, p.Payload, w.topic, w.alias)
			}
		}
	}
	topics := []string{"oa/a", "oa/a", "oa/b", "oa/b", "oa/c", "oa/c", "oa/a", "oa/b"}
	t.Run("aliases", func(t *testing.T) {
		t.Parallel()
		srv := &Server{OutboundTopicAliases: true}
		addr := ptNewServer(t, srv)
		tam2 := func(cp *packet.Connect) { cp.Properties.TopicAliasMaximum = 2 }
		c, _ := v5fConnect(t, addr, "oa", tam2)
		c.subscribe(1, "oa/#", 0)
		run(t, srv, addr, c, topics, []want{
			{"oa/a", 1}, {"", 1}, {"oa/b", 2}, {"", 2}, {"oa/c", 0}, {"oa/c", 0}, {"", 1}, {"", 2},
		})
		v5fOffline(t, srv, c)
		c, _ = v5fConnect(t, addr, "oa", tam2)
		c.subscribe(1, "oa/#", 0)
		run(t, srv, addr, c, []string{"oa/b", "oa/b"}, []want{{"oa/b", 1}, {"", 1}})
	})
	t.Run("client-maximum-0", func(t *testing.T) {
		t.Parallel()
		srv := &Server{OutboundTopicAliases: true}
		addr := ptNewServer(t, srv)
		c, _ := v5fConnect(t, addr, "oa", nil)
		c.subscribe(1, "oa/#", 0)
		var ws []want
		for _, tp := range topics {
			ws = append(ws, want{tp, 0})
		}
		run(t, srv, addr, c, topics, ws)
	})
	t.Run("server-off", func(t *testing.T) {
		t.Parallel()
		srv := &Server{}
		addr := ptNewServer(t, srv)
		c, _ := v5fConnect(t, addr, "oa", func(cp *packet.Connect) { cp.Properties.TopicAliasMaximum = 10 })
		c.subscribe(1, "oa/#", 0)
		var ws []want
		for _, tp := range topics {
			ws = append(ws, want{tp, 0})
		}
		run(t, srv, addr, c, topics, ws)
	})
}

// ---- Message expiry ----

// TestV5MessageExpiry: the Message Expiry Interval (section 3.3.2.3.3).
// [v5 MQTT-3.3.2-5] a QoS 1 message with expiry 1 s queued for an offline
// session is not delivered 2 s later, while one with 60 s is, carrying
// the interval less the time it waited [v5 MQTT-3.3.2-6], and one without
// expiry arrives without the property; a retained message with expiry 1 s
// is not sent to a new subscriber after it expired, and Stats().Retained
// leaves it out: at once after that subscription matched it ($SYS off),
// or after the $SYS sweep (SysInterval 100 ms) with no subscriber at all.
//
// The 2 s waits are sleeps: the assertions after them hold however much
// longer the machine takes.
func TestV5MessageExpiry(t *testing.T) {
	t.Parallel()
	withExpiry := func(topicName, payload string, id uint16, expiry uint32, retain bool) *packet.Publish {
		p := &packet.Publish{Topic: topicName, QoS: 1, PacketID: id, Payload: []byte(payload), Retain: retain}
		p.Properties.MessageExpiry = expiry
		return p
	}
	t.Run("offline-queue", func(t *testing.T) {
		t.Parallel()
		srv := &Server{}
		addr := ptNewServer(t, srv)
		sub, _ := v5fConnect(t, addr, "sub", v5fPersistent)
		sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "me/#", QoS: 1}, {Filter: "mk", QoS: 0}}})
		sub.recv()
		v5fOffline(t, srv, sub)
		pub, _ := v5fConnect(t, addr, "pub", nil)
		ptPublish(t, pub, withExpiry("me/x", "short", 1, 1, false))
		ptPublish(t, pub, withExpiry("me/x", "long", 2, 60, false))
		ptPublish(t, pub, withExpiry("me/x", "none", 3, 0, false))
		time.Sleep(2100 * time.Millisecond)
		sub, _ = v5fConnect(t, addr, "sub", v5fPersistent)
		got := ptDrain(t, srv, sub, "mk")
		if !slices.Equal(ptPayloads(got), []string{"long", "none"}) {
			t.Fatalf("delivered %q, want [long none]", ptPayloads(got))
		}
		if e := got[0].Properties.MessageExpiry; e < 1 || e > 58 {
			t.Errorf("Message Expiry Interval %d after waiting 2 s, want 1..58", e)
		}
		if got[1].Properties.Has(packet.PropMessageExpiry) {
			t.Errorf("message without expiry delivered with %v", &got[1].Properties)
		}
	})
	t.Run("retained-on-match", func(t *testing.T) {
		t.Parallel()
		srv := &Server{} // $SYS off: expired messages go when a filter matches them
		addr := ptNewServer(t, srv)
		pub, _ := v5fConnect(t, addr, "pub", nil)
		ptPublish(t, pub, withExpiry("re/short", "short", 1, 1, true))
		ptPublish(t, pub, withExpiry("re/long", "long", 2, 0, true))
		if n := srv.Stats().Retained; n != 2 {
			t.Fatalf("Stats().Retained = %d, want 2", n)
		}
		time.Sleep(2100 * time.Millisecond)
		sub, _ := v5fConnect(t, addr, "sub", nil)
		sub.subscribe(1, "re/#", 1)
		p := sub.expectPublish()
		if p.Topic != "re/long" || !p.Retain {
			t.Fatalf("got %v, want only the retained re/long", p)
		}
		ptAck(t, sub, p)
		if n := srv.Stats().Retained; n != 1 {
			t.Errorf("Stats().Retained = %d after the match, want 1", n)
		}
		sub.subscribe(2, "mk", 0)
		if got := ptDrain(t, srv, sub, "mk"); len(got) != 0 {
			t.Fatalf("expired retained message delivered: %v", got)
		}
	})
	t.Run("retained-sweep", func(t *testing.T) {
		t.Parallel()
		srv := &Server{SysInterval: 100 * time.Millisecond}
		addr := ptNewServer(t, srv)
		// Stats().Retained leaves the $SYS retained messages out.
		const base = 0
		pub, _ := v5fConnect(t, addr, "pub", nil)
		start := time.Now()
		ptPublish(t, pub, withExpiry("re/short", "short", 1, 1, true))
		ptPublish(t, pub, withExpiry("re/long", "long", 2, 0, true))
		ptEventually(t, 10*time.Second, "the expired retained message swept", func() bool { return srv.Stats().Retained == base+1 })
		if e := time.Since(start); e < time.Second-20*time.Millisecond {
			t.Errorf("retained message with expiry 1 s swept after %v", e)
		}
	})
}

// ---- Maximum QoS and Retain Available ----

// TestV5MaximumQoS: Server{MaximumQoS: QoS(1)} is announced in the
// CONNACK [v5 MQTT-3.2.2-9]; a SUBSCRIBE for QoS 2 is accepted and granted
// QoS 1 [v5 MQTT-3.2.2-10], and a QoS 2 message reaches it at QoS 1; a QoS
// 2 PUBLISH from the client (which broke [v5 MQTT-3.2.2-11]) gets
// DISCONNECT 0x9B QoS not supported (section 3.2.2.3.4); a CONNECT with a
// QoS 2 will is refused with CONNACK 0x9B and closed [v5 MQTT-3.2.2-12],
// one with a QoS 1 will is accepted.
func TestV5MaximumQoS(t *testing.T) {
	t.Parallel()
	srv := &Server{MaximumQoS: QoS(1)}
	addr := ptNewServer(t, srv)
	t.Run("subscribe", func(t *testing.T) {
		t.Parallel()
		c, ack := v5fConnect(t, addr, "mq-sub", nil)
		if !ack.Properties.Has(packet.PropMaximumQoS) || ack.Properties.MaximumQoS != 1 {
			t.Fatalf("CONNACK properties %v, want Maximum QoS 1", &ack.Properties)
		}
		if sa := c.subscribe(1, "mq/#", 2); !slices.Equal(sa.ReasonCodes, []packet.ReasonCode{packet.GrantedQoS1}) {
			t.Fatalf("SUBACK %v, want granted QoS 1", sa.ReasonCodes)
		}
		srv.Publish("mq/x", []byte("two"), 2, false)
		p := c.expectPublish()
		if p.QoS != 1 || string(p.Payload) != "two" {
			t.Fatalf("got %v, want it at QoS 1", p)
		}
		ptAck(t, c, p)
	})
	t.Run("publish-qos2", func(t *testing.T) {
		t.Parallel()
		c, _ := v5fConnect(t, addr, "mq-pub", nil)
		ptPublish(t, c, &packet.Publish{Topic: "mq/y", QoS: 1, PacketID: 1, Payload: []byte("one")})
		c.send(&packet.Publish{Topic: "mq/y", QoS: 2, PacketID: 2, Payload: []byte("two")})
		expectKicked(t, c, packet.QoSNotSupported)
	})
	t.Run("will-qos2", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, addr, packet.V5)
		ack := ptRefused(t, c, &packet.Connect{ClientID: "mq-will2", CleanStart: true, Will: &packet.Will{Topic: "w/x", Payload: []byte("w"), QoS: 2}})
		if ack.ReasonCode != packet.QoSNotSupported {
			t.Fatalf("CONNACK code 0x%02x, want 0x9B", byte(ack.ReasonCode))
		}
	})
	t.Run("will-qos1", func(t *testing.T) {
		t.Parallel()
		v5fConnect(t, addr, "mq-will1", func(cp *packet.Connect) {
			cp.Will = &packet.Will{Topic: "w/x", Payload: []byte("w"), QoS: 1}
		})
	})
}

// TestV5RetainUnavailable: Server{RetainUnavailable: true} is announced
// as Retain Available 0 (section 3.2.2.3.5); a PUBLISH with RETAIN (the
// client broke [v5 MQTT-3.2.2-14]) gets DISCONNECT 0x9A Retain not
// supported; a CONNECT with Will Retain 1 is refused with CONNACK 0x9A and
// closed [v5 MQTT-3.2.2-13]; PUBLISH without RETAIN works.
func TestV5RetainUnavailable(t *testing.T) {
	t.Parallel()
	srv := &Server{RetainUnavailable: true}
	addr := ptNewServer(t, srv)
	t.Run("publish", func(t *testing.T) {
		t.Parallel()
		c, ack := v5fConnect(t, addr, "ru-pub", nil)
		if !ack.Properties.Has(packet.PropRetainAvailable) || ack.Properties.RetainAvailable != 0 {
			t.Fatalf("CONNACK properties %v, want Retain Available 0", &ack.Properties)
		}
		ptPublish(t, c, &packet.Publish{Topic: "ru/x", QoS: 1, PacketID: 1, Payload: []byte("plain")})
		c.send(&packet.Publish{Topic: "ru/x", QoS: 1, PacketID: 2, Retain: true, Payload: []byte("kept")})
		expectKicked(t, c, packet.RetainNotSupported)
		if n := srv.Stats().Retained; n != 0 {
			t.Errorf("Stats().Retained = %d, want 0", n)
		}
	})
	t.Run("will-retain", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, addr, packet.V5)
		ack := ptRefused(t, c, &packet.Connect{ClientID: "ru-will", CleanStart: true, Will: &packet.Will{Topic: "w/x", Payload: []byte("w"), Retain: true}})
		if ack.ReasonCode != packet.RetainNotSupported {
			t.Fatalf("CONNACK code 0x%02x, want 0x9A", byte(ack.ReasonCode))
		}
	})
}

// ---- Reason codes of acknowledgements ----

// TestV5AckNoMatchingSubscribers: a QoS 1 PUBLISH that matches no
// subscription gets PUBACK 0x10 No matching subscribers (section
// 3.4.2.1), a QoS 2 one PUBREC 0x10 (section 3.5.2.1) and, that not being
// an error, PUBREL gets PUBCOMP 0x00 [v5 MQTT-4.3.3-11]; with a matching
// subscriber the code is 0x00.
func TestV5AckNoMatchingSubscribers(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	pub, _ := v5fConnect(t, addr, "pub", nil)
	pub.send(&packet.Publish{Topic: "nm/x", QoS: 1, PacketID: 1, Payload: []byte("1")})
	if code, _ := v5fAck(t, pub, 1, 1); code != packet.NoMatchingSubscribers {
		t.Errorf("PUBACK code 0x%02x, want 0x10", byte(code))
	}
	pub.send(&packet.Publish{Topic: "nm/x", QoS: 2, PacketID: 2, Payload: []byte("2")})
	if code, _ := v5fAck(t, pub, 2, 2); code != packet.NoMatchingSubscribers {
		t.Errorf("PUBREC code 0x%02x, want 0x10", byte(code))
	}
	pub.send(&packet.Pubrel{PacketID: 2})
	if comp, ok := pub.recv().(*packet.Pubcomp); !ok || comp.PacketID != 2 || comp.ReasonCode != packet.Success {
		t.Fatalf("got %v, want PUBCOMP 2 code 0x00", comp)
	}

	sub, _ := v5fConnect(t, addr, "sub", nil)
	sub.subscribe(1, "nm/#", 2)
	for _, qos := range []byte{1, 2} {
		id := uint16(10 + qos)
		pub.send(&packet.Publish{Topic: "nm/x", QoS: qos, PacketID: id, Payload: []byte("m")})
		if code, _ := v5fAck(t, pub, qos, id); code != packet.Success {
			t.Errorf("QoS %d with a subscriber: code 0x%02x, want 0x00", qos, byte(code))
		}
		if qos == 2 {
			pub.send(&packet.Pubrel{PacketID: id})
			pub.recv()
		}
		p := sub.expectPublish()
		ptAck(t, sub, p)
	}
}

// TestV5AckNotAuthorized: a PUBLISH the Authorizer refuses gets PUBACK /
// PUBREC 0x87 Not authorized with a Reason String (sections 3.4.2.1,
// 3.4.2.2.2); with Request Problem Information 0 the same codes come
// without Reason String and User Properties [v5 MQTT-3.1.2-29]. After
// PUBREC 0x87 the packet id is free for a new message [v5 MQTT-4.3.3-9].
func TestV5AckNotAuthorized(t *testing.T) {
	t.Parallel()
	srv := &Server{Authorizer: ptAuthz{}} // refuses publishing to secret/...
	addr := ptNewServer(t, srv)
	for _, problem := range []bool{true, false} {
		t.Run(fmt.Sprintf("problem-info-%v", problem), func(t *testing.T) {
			t.Parallel()
			c, _ := v5fConnect(t, addr, fmt.Sprint("na-", problem), func(cp *packet.Connect) {
				if !problem {
					cp.Properties.RequestProblemInfo = 0
					cp.Properties.Mark(packet.PropRequestProblemInfo)
				}
			})
			for _, qos := range []byte{1, 2} {
				c.send(&packet.Publish{Topic: "secret/x", QoS: qos, PacketID: 5, Payload: []byte("s")})
				code, props := v5fAck(t, c, qos, 5)
				if code != packet.NotAuthorized {
					t.Errorf("QoS %d: code 0x%02x, want 0x87", qos, byte(code))
				}
				if hasReason := props.Has(packet.PropReasonString); hasReason != problem || props.Has(packet.PropUser) && !problem {
					t.Errorf("QoS %d, Request Problem Information %v: properties %v", qos, problem, &props)
				}
			}
			// Packet id 5 is free again after PUBREC 0x87.
			c.send(&packet.Publish{Topic: "open/x", QoS: 2, PacketID: 5, Payload: []byte("o")})
			if code, _ := v5fAck(t, c, 2, 5); code.IsError() {
				t.Fatalf("new message with id 5: PUBREC 0x%02x", byte(code))
			}
			c.send(&packet.Pubrel{PacketID: 5})
			if comp, ok := c.recv().(*packet.Pubcomp); !ok || comp.PacketID != 5 || comp.ReasonCode != 0 {
				t.Fatalf("want PUBCOMP 5, got %v", comp)
			}
		})
	}
}

// TestV5PubrelUnknownID: a PUBREL for a packet id the server does not
// hold is answered with PUBCOMP 0x92 Packet Identifier not found (section
// 3.7.2.1) [v5 MQTT-4.3.3-11], and the connection carries on.
func TestV5PubrelUnknownID(t *testing.T) {
	t.Parallel()
	addr := ptNewServer(t, &Server{})
	c, _ := v5fConnect(t, addr, "rel", nil)
	c.send(&packet.Pubrel{PacketID: 77})
	if comp, ok := c.recv().(*packet.Pubcomp); !ok || comp.PacketID != 77 || comp.ReasonCode != packet.PacketIdentifierNotFound {
		t.Fatalf("got %v, want PUBCOMP 77 code 0x92", comp)
	}
	v5fPing(t, c)
}

// ---- MQTT 3.1.1 and 5.0 together ----

// TestV5MixedVersions: MQTT 3.1.1 and 5.0 clients share one topic space:
// a v5 publisher's message with properties reaches a 3.1.1 subscriber
// (topic and payload intact, so no properties on its wire) and a v5
// subscriber with the properties unchanged [v5 MQTT-3.3.2-4] [v5
// MQTT-3.3.2-15] [v5 MQTT-3.3.2-16] [v5 MQTT-3.3.2-17] [v5 MQTT-3.3.2-18]
// [v5 MQTT-3.3.2-20]; a 3.1.1 publisher's message reaches the v5
// subscriber without properties.
func TestV5MixedVersions(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	sub3, _ := ptConnect(t, addr, packet.V311, "sub3", true)
	sub3.subscribe(1, "mix/#", 1)
	sub5, _ := v5fConnect(t, addr, "sub5", nil)
	sub5.subscribe(1, "mix/#", 1)

	pub5, _ := v5fConnect(t, addr, "pub5", nil)
	m := &packet.Publish{Topic: "mix/5", QoS: 1, PacketID: 1, Payload: []byte("from five")}
	m.Properties = packet.Properties{
		PayloadFormat:   1,
		ContentType:     "text/plain",
		ResponseTopic:   "mix/reply",
		CorrelationData: []byte{9, 8, 7},
		User:            []packet.UserProperty{{Key: "z", Value: "1"}, {Key: "a", Value: "2"}, {Key: "z", Value: "3"}},
	}
	ptPublish(t, pub5, m)
	p := sub3.expectPublish()
	if p.Topic != "mix/5" || string(p.Payload) != "from five" || !p.Properties.IsZero() {
		t.Fatalf("3.1.1 subscriber got %v, want topic mix/5 and payload %q", p, "from five")
	}
	ptAck(t, sub3, p)
	p = sub5.expectPublish()
	if p.Topic != "mix/5" || string(p.Payload) != "from five" || p.Properties.String() != m.Properties.String() ||
		!slices.Equal(p.Properties.User, m.Properties.User) {
		t.Fatalf("v5 subscriber got %v with %v, want %v", p, &p.Properties, &m.Properties)
	}
	ptAck(t, sub5, p)

	pub3, _ := ptConnect(t, addr, packet.V311, "pub3", true)
	ptPublish(t, pub3, &packet.Publish{Topic: "mix/3", QoS: 1, PacketID: 1, Payload: []byte("from three")})
	for _, sub := range []*rawClient{sub3, sub5} {
		p := sub.expectPublish()
		if p.Topic != "mix/3" || string(p.Payload) != "from three" || !p.Properties.IsZero() {
			t.Fatalf("%v subscriber got %v with %v", sub.v, p, &p.Properties)
		}
		ptAck(t, sub, p)
	}
}
