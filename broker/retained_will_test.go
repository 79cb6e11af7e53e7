package broker

// Protocol tests of retained messages, wills and overlapping
// subscriptions. Helpers are in protocol_test.go.

import (
	"fmt"
	"slices"
	"testing"

	"github.com/ternmq/tern/packet"
)

// ---- Retained ----

// TestProtoRetained: store [v3 MQTT-3.3.1-5] [v5 MQTT-3.3.1-5], replace [v3
// MQTT-3.3.1-7], delete with an empty payload, which is still delivered
// normally [v3 MQTT-3.3.1-10] [v3 MQTT-3.3.1-11] [v5 MQTT-3.3.1-6] [v5
// MQTT-3.3.1-7]; sent on subscribe with RETAIN 1 [v3 MQTT-3.3.1-6] [v3
// MQTT-3.3.1-8] [v5 MQTT-3.3.1-9] while forwarding has RETAIN 0 [v3
// MQTT-3.3.1-9] [v5 MQTT-3.3.1-12]; a non-retained publish leaves the
// retained message alone [v3 MQTT-3.3.1-12] [v5 MQTT-3.3.1-8].
func TestProtoRetained(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			pub, _ := ptConnect(t, addr, v, "pub", true)
			ptPublish(t, pub, &packet.Publish{Topic: "r/a", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("1")})

			s1, _ := ptConnect(t, addr, v, "s1", true)
			s1.subscribe(1, "r/a", 2)
			p := s1.expectPublish()
			if !p.Retain || string(p.Payload) != "1" || p.QoS != 1 {
				t.Fatalf("retained on subscribe: got %v, want RETAIN QoS 1 payload 1", p)
			}
			ptAck(t, s1, p)

			ptPublish(t, pub, &packet.Publish{Topic: "r/a", Retain: true, Payload: []byte("2")})
			p = s1.expectPublish()
			if p.Retain || string(p.Payload) != "2" {
				t.Fatalf("forwarded: got %v, want RETAIN 0 payload 2", p)
			}
			s2, _ := ptConnect(t, addr, v, "s2", true)
			s2.subscribe(1, "r/a", 2)
			if p = s2.expectPublish(); !p.Retain || string(p.Payload) != "2" || p.QoS != 0 {
				t.Fatalf("replaced retained: got %v", p)
			}
			if n := srv.Stats().Retained; n != 1 {
				t.Errorf("Stats().Retained = %d, want 1", n)
			}

			ptPublish(t, pub, &packet.Publish{Topic: "r/a", Retain: true, QoS: 1, PacketID: 2})
			for _, s := range []*rawClient{s1, s2} {
				p = s.expectPublish()
				if p.Retain || len(p.Payload) != 0 || p.Topic != "r/a" {
					t.Fatalf("empty retained publish forwarded as %v", p)
				}
				ptAck(t, s, p)
			}
			if n := srv.Stats().Retained; n != 0 {
				t.Errorf("Stats().Retained = %d after delete, want 0", n)
			}
			s3, _ := ptConnect(t, addr, v, "s3", true)
			s3.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "mk", QoS: 0}, {Filter: "r/a", QoS: 1}}})
			s3.recv()
			if got := ptDrain(t, srv, s3, "mk"); len(got) != 0 {
				t.Fatalf("deleted retained message delivered: %v", got)
			}

			// QoS 1, so that both are processed before s4 subscribes.
			ptPublish(t, pub, &packet.Publish{Topic: "r/b", Retain: true, QoS: 1, PacketID: 3, Payload: []byte("kept")})
			ptPublish(t, pub, &packet.Publish{Topic: "r/b", QoS: 1, PacketID: 4, Payload: []byte("not retained")})
			s4, _ := ptConnect(t, addr, v, "s4", true)
			s4.subscribe(1, "r/b", 0)
			if p = s4.expectPublish(); !p.Retain || string(p.Payload) != "kept" {
				t.Fatalf("got %v, want the retained message kept", p)
			}
		})
	}
}

// TestProtoRetainedWildcard: [v3 MQTT-3.3.1-6] [v5 MQTT-3.3.1-9] a wildcard
// subscription gets every matching retained message, and only those.
func TestProtoRetainedWildcard(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	for _, tn := range []string{"w/a/1", "w/a/2", "w/b/1", "w/a", "x/a/1"} {
		srv.Publish(tn, []byte(tn), 0, true)
	}
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"w/a/+", []string{"w/a/1", "w/a/2"}},
		{"w/#", []string{"w/a", "w/a/1", "w/a/2", "w/b/1"}},
		{"+/a/1", []string{"w/a/1", "x/a/1"}},
		{"w/a", []string{"w/a"}},
	} {
		c, _ := ptConnect(t, addr, packet.V311, "", true)
		c.subscribe(1, "mk", 0)
		c.subscribe(2, tc.filter, 1)
		var got []string
		for _, p := range ptDrain(t, srv, c, "mk") {
			if !p.Retain || p.Topic != string(p.Payload) {
				t.Errorf("%s: got %v", tc.filter, p)
			}
			got = append(got, p.Topic)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: retained %q, want %q", tc.filter, got, tc.want)
		}
	}
}

// TestProtoRetainedMany: 5,000 retained messages all reach a new "#"
// subscriber, at QoS 1 through an in-flight window of 20, although the
// session queue holds 1,000 [v3 MQTT-3.3.1-6] [v5 MQTT-3.3.1-9].
func TestProtoRetainedMany(t *testing.T) {
	t.Parallel()
	const n = 5000
	srv := &Server{}
	addr := ptNewServer(t, srv)
	for i := range n {
		if err := srv.Publish(fmt.Sprintf("many/%d", i), []byte("r"), 1, true); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := ptConnect(t, addr, packet.V311, "many", true)
	c.subscribe(1, "#", 1)
	seen := map[string]bool{}
	for range n {
		p := c.expectPublish()
		if !p.Retain || p.QoS != 1 {
			t.Fatalf("got %v", p)
		}
		seen[p.Topic] = true
		c.send(&packet.Puback{PacketID: p.PacketID})
	}
	if len(seen) != n {
		t.Fatalf("%d distinct retained messages, want %d", len(seen), n)
	}
	if got := ptDrain(t, srv, c, "mk"); len(got) != 0 {
		t.Fatalf("%d extra messages", len(got))
	}
	if d := srv.Stats().Dropped; d != 0 {
		t.Fatalf("Stats().Dropped = %d", d)
	}
}

// ---- Wills ----

// TestProtoWill: [v3 MQTT-3.1.2-8] [v5 MQTT-3.1.2-8] the will is published
// when the connection ends without DISCONNECT: network close, keep-alive
// expiry [v3 MQTT-3.1.2-24], protocol error [v3 MQTT-4.8.0-1], takeover; not
// after DISCONNECT [v3 MQTT-3.14.4-3] [v5 MQTT-3.14.4-3] [v3 MQTT-3.1.2-10];
// with its QoS and RETAIN 0 [v3 MQTT-3.1.2-9] [v3 MQTT-3.1.2-16] [v5
// MQTT-3.1.2-14].
func TestProtoWill(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		for _, how := range []string{"close", "keepalive", "garbage", "takeover", "disconnect"} {
			t.Run(v.String()+"-"+how, func(t *testing.T) {
				t.Parallel()
				srv := &Server{}
				addr := ptNewServer(t, srv)
				watch, _ := ptConnect(t, addr, packet.V311, "watch", true)
				watch.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "will/#", QoS: 2}, {Filter: "mk", QoS: 0}}})
				watch.recv()
				c := dialRaw(t, addr, v)
				cp := &packet.Connect{ClientID: "w", CleanStart: true, Will: &packet.Will{Topic: "will/w", Payload: []byte("gone"), QoS: 1}}
				if how == "keepalive" {
					cp.KeepAlive = 1
				}
				c.connect(cp)
				ptWaitConnected(t, srv, 2)
				switch how {
				case "close":
					c.nc.Close()
				case "keepalive":
				case "garbage":
					c.nc.Write([]byte{0x00, 0x00}) // packet type 0 is reserved
				case "takeover":
					ptConnect(t, addr, v, "w", true)
				case "disconnect":
					c.send(&packet.Disconnect{})
					c.expectClosed()
					ptWaitConnected(t, srv, 1)
					if got := ptDrain(t, srv, watch, "mk"); len(got) != 0 {
						t.Fatalf("will published after DISCONNECT: %v", got)
					}
					return
				}
				p := watch.expectPublish()
				if p.Topic != "will/w" || string(p.Payload) != "gone" || p.QoS != 1 || p.Retain {
					t.Fatalf("got %v, want the will at QoS 1 without RETAIN", p)
				}
				ptAck(t, watch, p)
				if got := ptDrain(t, srv, watch, "mk"); len(got) != 0 {
					t.Fatalf("will published twice: %v", got)
				}
			})
		}
	}
}

// TestProtoWillRetain: [v3 MQTT-3.1.2-17] [v5 MQTT-3.1.2-15] a will with
// RETAIN is stored as retained and delivered to a later subscriber, at its
// will QoS capped by the subscription.
func TestProtoWillRetain(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			watch, _ := ptConnect(t, addr, v, "watch", true)
			watch.subscribe(1, "will/#", 2)
			c := dialRaw(t, addr, v)
			c.connect(&packet.Connect{ClientID: "w", CleanStart: true, Will: &packet.Will{Topic: "will/r", Payload: []byte("bye"), QoS: 2, Retain: true}})
			c.nc.Close()
			p := watch.expectPublish()
			if p.QoS != 2 || p.Retain || string(p.Payload) != "bye" {
				t.Fatalf("got %v, want QoS 2, forwarded with RETAIN 0", p)
			}
			ptAck(t, watch, p)
			later, _ := ptConnect(t, addr, v, "later", true)
			later.subscribe(1, "will/r", 1)
			p = later.expectPublish()
			if p.QoS != 1 || !p.Retain || string(p.Payload) != "bye" {
				t.Fatalf("got %v, want the retained will at QoS 1", p)
			}
			ptAck(t, later, p)
		})
	}
}

// ---- Overlapping subscriptions ----

// TestProtoOverlapping: [v3 MQTT-3.3.5-1] [v5 MQTT-3.3.4-2] overlapping
// subscriptions of one client give one copy at the highest QoS; with
// CopyPerSubscription one copy each [v5 MQTT-3.3.4-5]. MQTT 5: the single
// copy carries every subscription identifier [v5 MQTT-3.3.4-3] [v5
// MQTT-3.3.4-4].
func TestProtoOverlapping(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		for _, perSub := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v-copies=%v", v, perSub), func(t *testing.T) {
				t.Parallel()
				srv := &Server{CopyPerSubscription: perSub}
				addr := ptNewServer(t, srv)
				c, _ := ptConnect(t, addr, v, "ov", true)
				c.subscribe(1, "mk", 0)
				sub := func(id uint16, filter string, qos byte) {
					s := &packet.Subscribe{PacketID: id, Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}}
					if v == packet.V5 {
						s.Properties.SubscriptionIDs = []uint32{uint32(id)}
					}
					c.send(s)
					if ack, ok := c.recv().(*packet.Suback); !ok || ack.ReasonCodes[0] != packet.ReasonCode(qos) {
						t.Fatalf("got %v", ack)
					}
				}
				sub(10, "a/#", 0)
				sub(20, "a/b", 2)
				pub, _ := ptConnect(t, addr, v, "pub", true)
				ptPublish(t, pub, &packet.Publish{Topic: "a/b", QoS: 2, PacketID: 1, Payload: []byte("x")})
				got := ptDrain(t, srv, c, "mk")
				var qos []byte
				for _, p := range got {
					qos = append(qos, p.QoS)
				}
				slices.Sort(qos)
				want := []byte{2}
				if perSub {
					want = []byte{0, 2}
				}
				if !slices.Equal(qos, want) {
					t.Fatalf("copies at QoS %v, want %v", qos, want)
				}
				if v == packet.V5 {
					var ids []uint32
					for _, p := range got {
						ids = append(ids, p.Properties.SubscriptionIDs...)
						if perSub && len(p.Properties.SubscriptionIDs) != 1 {
							t.Errorf("copy %v: want one subscription id", p)
						}
					}
					slices.Sort(ids)
					if !slices.Equal(ids, []uint32{10, 20}) {
						t.Errorf("subscription ids %v, want [10 20]", ids)
					}
				}
			})
		}
	}
}
