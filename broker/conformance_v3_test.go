package broker

// MQTT 3.1.1 conformance: one black-box test per group of normative
// statements that the other protocol tests did not check under their own
// id. Every test runs a broker on a loopback socket and speaks MQTT 3.1.1
// to it packet by packet, raw bytes where the packet package would refuse
// to encode what is sent. Each names the statements it checks, as in the
// rest of the package; CONFORMANCE.md lists them.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/ternmq/tern/packet"
)

const v3 = packet.V311

// v3Watch connects a clean-session watcher subscribed at QoS 0 to filter
// and to "mk", the marker topic of ptDrain.
func v3Watch(t *testing.T, addr, id, filter string) *rawClient {
	t.Helper()
	w, _ := ptConnect(t, addr, v3, id, true)
	w.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter}, {Filter: "mk"}}})
	if ack, ok := w.recv().(*packet.Suback); !ok || len(ack.ReasonCodes) != 2 {
		t.Fatalf("watcher: want SUBACK with 2 codes, got %v", ack)
	}
	return w
}

// v3Silent checks that the server closes nc without sending a byte.
func v3Silent(t *testing.T, nc net.Conn, what string) {
	t.Helper()
	if got := readUntilClosed(t, nc, 5*time.Second); len(got) != 0 {
		t.Fatalf("%s: the server sent % x before closing, want nothing", what, got)
	}
}

// v3Topics returns "topic=payload" for each message.
func v3Topics(ps []*packet.Publish) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Topic+"="+string(p.Payload))
	}
	return out
}

// v3Authn and v3Authz adapt functions to Authenticator and Authorizer.
type v3Authn func(context.Context, *AuthRequest) error

func (f v3Authn) Authenticate(ctx context.Context, req *AuthRequest) error { return f(ctx, req) }

type v3Authz func(context.Context, *ClientInfo, Action, string) bool

func (f v3Authz) Authorize(ctx context.Context, c *ClientInfo, a Action, tp string) bool {
	return f(ctx, c, a, tp)
}

// ---- CONNECT ----

// TestV3ConnectNotConforming: a CONNECT that does not conform to section
// 3.1 is answered by closing the connection, without a CONNACK [v3
// MQTT-3.1.4-1]; one whose protocol name is not "MQTT" is not processed as
// MQTT at all [v3 MQTT-3.1.2-1]: no client connects, its will is never
// published. A known name with an unsupported level is the exception that
// gets CONNACK 1 [v3 MQTT-3.1.2-2]. A second CONNECT on a connection is a
// protocol violation that closes it [v3 MQTT-3.1.0-2].
func TestV3ConnectNotConforming(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	w := v3Watch(t, addr, "watch", "will/#")
	will := append(rawStr("will/x"), rawStr("sent")...)
	cases := []struct {
		name string
		wire []byte
	}{
		{"protocol name MQTX", rawPkt(0x10, rawStr("MQTX"), []byte{4, 0x06}, rawU16(0), rawStr("a"), will)},
		{"protocol name mqtt", rawPkt(0x10, rawStr("mqtt"), []byte{4, 0x06}, rawU16(0), rawStr("b"), will)},
		{"protocol name MQIsdp3", rawPkt(0x10, rawStr("MQIsdp3"), []byte{3, 0x06}, rawU16(0), rawStr("c"), will)},
		{"reserved flag", rawPkt(0x10, rawStr("MQTT"), []byte{4, 0x07}, rawU16(0), rawStr("d"), will)},
		{"will QoS 3", rawPkt(0x10, rawStr("MQTT"), []byte{4, 0x1e}, rawU16(0), rawStr("e"), will)},
		{"will QoS without will flag", rawPkt(0x10, rawStr("MQTT"), []byte{4, 0x0a}, rawU16(0), rawStr("f"))},
		{"password without user name", rawPkt(0x10, rawStr("MQTT"), []byte{4, 0x46}, rawU16(0), rawStr("g"), will, rawStr("pw"))},
		{"client id not UTF-8", rawPkt(0x10, rawStr("MQTT"), []byte{4, 0x06}, rawU16(0), rawStr("h\xff"), will)},
		{"will topic with wildcard", rawPkt(0x10, rawStr("MQTT"), []byte{4, 0x06}, rawU16(0), rawStr("i"), rawStr("will/#"), rawStr("sent"))},
		{"bytes after the payload", rawPkt(0x10, rawStr("MQTT"), []byte{4, 0x06}, rawU16(0), rawStr("j"), will, []byte{0})},
		{"CONNECT flags 0001", rawPkt(0x11, rawStr("MQTT"), []byte{4, 0x06}, rawU16(0), rawStr("k"), will)},
	}
	// The valid twin of the cases: the same CONNECT, with the will.
	mustDecode(t, 0, rawPkt(0x10, rawStr("MQTT"), []byte{4, 0x06}, rawU16(0), rawStr("a"), will))
	for _, tc := range cases {
		c := dialRaw(t, addr, v3)
		writeRaw(c.nc, tc.wire)
		v3Silent(t, c.nc, tc.name)
	}
	if n := srv.Stats().ClientsTotal; n != 1 {
		t.Errorf("%d clients connected, want only the watcher", n)
	}
	if got := ptDrain(t, srv, w, "mk"); len(got) != 0 {
		t.Fatalf("a refused CONNECT had its will published: %v", v3Topics(got))
	}

	// A known name with a level the broker does not speak: CONNACK 1.
	c := dialRaw(t, addr, v3)
	writeRaw(c.nc, rawPkt(0x10, rawStr("MQTT"), []byte{6, 0x02}, rawU16(0), rawStr("l")))
	if ack, ok := c.recv().(*packet.Connack); !ok || ack.ReasonCode != packet.V3UnacceptableProtocolVersion {
		t.Fatalf("level 6: got %v, want CONNACK 1", ack)
	}
	c.expectClosed()

	// A second CONNECT: the connection is closed, and as a protocol
	// violation, not a DISCONNECT, it publishes the will.
	c, _ = ptConnect(t, addr, v3, "twice", true)
	c.send(&packet.Connect{Version: v3, ClientID: "twice", CleanStart: true})
	if got := c.expectClosed(); len(got) != 0 {
		t.Fatalf("second CONNECT answered with %v", got)
	}
	c = dialRaw(t, addr, v3)
	c.connect(&packet.Connect{ClientID: "twice-will", CleanStart: true, Will: &packet.Will{Topic: "will/twice", Payload: []byte("w")}})
	c.send(&packet.Connect{Version: v3, ClientID: "other", CleanStart: true})
	if got := c.expectClosed(); len(got) != 0 {
		t.Fatalf("second CONNECT answered with %v", got)
	}
	if p := w.expectPublish(); p.Topic != "will/twice" {
		t.Fatalf("got %v, want the will of the closed connection", p)
	}
	ptWaitConnected(t, srv, 1)
}

// TestV3ConnectNoReturnCode: when none of the CONNACK return codes of
// 3.1.1 applies to a refusal, the connection is closed without a CONNACK
// [v3 MQTT-3.2.2-6]: a will QoS above the Maximum QoS, a retained will
// while retained messages are off, an Authenticator's refusal with a code
// 3.1.1 has no counterpart for. MQTT 5 clients get the reason code.
func TestV3ConnectNoReturnCode(t *testing.T) {
	t.Parallel()
	authn := v3Authn(func(_ context.Context, req *AuthRequest) error {
		switch req.Username {
		case "odd":
			return &Refusal{Code: packet.ImplementationSpecificError}
		case "busy":
			return &Refusal{Code: packet.ServerBusy}
		case "id":
			return &Refusal{Code: packet.ClientIdentifierNotValid}
		}
		return nil
	})
	srv := &Server{MaximumQoS: QoS(1), RetainUnavailable: true, Authenticator: authn}
	addr := ptNewServer(t, srv)
	for _, tc := range []struct {
		name string
		cp   packet.Connect
		want packet.ReasonCode // 0: no CONNACK
		v5   packet.ReasonCode
	}{
		{"will QoS 2", packet.Connect{ClientID: "a", CleanStart: true, Will: &packet.Will{Topic: "w", QoS: 2}}, 0, packet.QoSNotSupported},
		{"retained will", packet.Connect{ClientID: "b", CleanStart: true, Will: &packet.Will{Topic: "w", Retain: true}}, 0, packet.RetainNotSupported},
		{"implementation specific", packet.Connect{ClientID: "c", CleanStart: true, Username: "odd"}, 0, packet.ImplementationSpecificError},
		{"server busy", packet.Connect{ClientID: "d", CleanStart: true, Username: "busy"}, packet.V3ServerUnavailable, packet.ServerBusy},
		// [v3 MQTT-3.1.3-9] a rejected client id: 0x02, then the close.
		{"identifier rejected", packet.Connect{ClientID: "e", CleanStart: true, Username: "id"}, packet.V3IdentifierRejected, packet.ClientIdentifierNotValid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := tc.cp
			c := dialRaw(t, addr, v3)
			if tc.want == 0 {
				cp.Version = v3
				c.send(&cp)
				if got := c.expectClosed(); len(got) != 0 {
					t.Fatalf("got %v, want the close without a CONNACK", got)
				}
			} else if ack := ptRefused(t, c, &cp); ack.ReasonCode != tc.want {
				t.Fatalf("CONNACK 0x%02x, want 0x%02x", byte(ack.ReasonCode), byte(tc.want))
			}
			cp = tc.cp
			c5 := dialRaw(t, addr, packet.V5)
			if ack := ptRefused(t, c5, &cp); ack.ReasonCode != tc.v5 {
				t.Fatalf("MQTT 5: CONNACK %v, want %v", ack.ReasonCode, tc.v5)
			}
		})
	}
	ptConnect(t, addr, v3, "fine", true) // the same server accepts a CONNECT it supports
}

// TestV3RejectedConnectIgnoresRest: after rejecting a CONNECT the server
// processes nothing the client sent after it [v3 MQTT-3.1.4-5], not even
// what arrived in the same segment: a retained PUBLISH and a SUBSCRIBE
// sent right behind the CONNECT are not acted on.
func TestV3RejectedConnectIgnoresRest(t *testing.T) {
	t.Parallel()
	authn := v3Authn(func(_ context.Context, req *AuthRequest) error {
		if req.Username == "bad" {
			return ErrBadCredentials
		}
		return nil
	})
	srv := &Server{Authenticator: authn, MaximumQoS: QoS(1)}
	addr := ptNewServer(t, srv)
	for _, tc := range []struct {
		name string
		cp   *packet.Connect
		ack  bool // a CONNACK comes before the close
	}{
		{"empty id, no clean session", &packet.Connect{Version: v3}, true},
		{"bad credentials", &packet.Connect{Version: v3, ClientID: "x", CleanStart: true, Username: "bad"}, true},
		{"no return code applies", &packet.Connect{Version: v3, ClientID: "y", CleanStart: true, Will: &packet.Will{Topic: "w", QoS: 2}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := slices.Concat(mustEncode(t, tc.cp, v3),
				mustEncode(t, &packet.Publish{Topic: "after/" + tc.name, Retain: true, Payload: []byte("processed")}, v3),
				mustEncode(t, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "#"}}}, v3),
				mustEncode(t, &packet.Pingreq{}, v3))
			c := dialRaw(t, addr, v3)
			writeRaw(c.nc, wire)
			got := c.expectClosed()
			if tc.ack {
				if len(got) != 1 || got[0].Type() != packet.CONNACK || got[0].(*packet.Connack).ReasonCode == 0 {
					t.Fatalf("got %v, want a refusing CONNACK alone", got)
				}
			} else if len(got) != 0 {
				t.Fatalf("got %v, want nothing", got)
			}
		})
	}
	st := srv.Stats()
	if st.Retained != 0 || st.MessagesReceived != 0 || st.Subscriptions != 0 {
		t.Fatalf("after the refusals: %d retained, %d messages received, %d subscriptions; want none", st.Retained, st.MessagesReceived, st.Subscriptions)
	}
	// The same bytes behind an accepted CONNECT are processed, which
	// shows that the checks above can fail.
	c := dialRaw(t, addr, v3)
	writeRaw(c.nc, slices.Concat(mustEncode(t, &packet.Connect{Version: v3, ClientID: "ok", CleanStart: true}, v3),
		mustEncode(t, &packet.Publish{Topic: "after/ok", Retain: true, Payload: []byte("processed")}, v3)))
	if _, ok := c.recv().(*packet.Connack); !ok {
		t.Fatal("want CONNACK")
	}
	ptEventually(t, 5*time.Second, "the retained message", func() bool { return srv.Stats().Retained == 1 })
}

// TestV3ClientIDs: the server accepts client identifiers of 1 to 23 bytes
// of 0-9, a-z and A-Z [v3 MQTT-3.1.3-5] (and longer ones, which 3.1.1
// allows it to).
func TestV3ClientIDs(t *testing.T) {
	t.Parallel()
	addr := ptNewServer(t, &Server{})
	for _, id := range []string{"a", "Z", "7", "abcdefghijklmnopqrstuvw", "ABCDEFGHIJKLMNOPQRSTUVW", "0123456789aZ0123456789z", strings.Repeat("x", 100)} {
		c, ack := ptConnect(t, addr, v3, id, true)
		if ack.SessionPresent {
			t.Errorf("%q: session present on a clean session", id)
		}
		c.send(&packet.Pingreq{})
		if _, ok := c.recv().(*packet.Pingresp); !ok {
			t.Fatalf("%q: no PINGRESP", id)
		}
	}
}

// TestV3ConnackFirst: the CONNACK is the first packet the server sends
// [v3 MQTT-3.2.0-1], return code 0 for an accepted CONNECT [v3
// MQTT-3.1.4-4], even when a resumed session has messages waiting; Session
// Present is 1 for it, 0 for a clean session [v3 MQTT-3.2.2-1] and for a
// persistent one the server holds no state for [v3 MQTT-3.2.2-3].
func TestV3ConnackFirst(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	for _, tc := range []struct {
		clean bool
		want  bool
	}{{false, false}, {false, true}, {true, false}, {false, false}} {
		c, ack := ptConnect(t, addr, v3, "cf", tc.clean)
		if ack.SessionPresent != tc.want {
			t.Fatalf("clean=%t: session present %t, want %t", tc.clean, ack.SessionPresent, tc.want)
		}
		c.send(&packet.Disconnect{})
		c.expectClosed()
		ptWaitConnected(t, srv, 0)
	}
	// The session exists now; give it a subscription and messages.
	c, _ := ptConnect(t, addr, v3, "cf", false)
	c.subscribe(1, "cf/#", 1)
	c.send(&packet.Disconnect{})
	c.expectClosed()
	ptWaitConnected(t, srv, 0)
	for i := range 50 {
		if err := srv.Publish("cf/m", fmt.Appendf(nil, "%d", i), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		c := dialRaw(t, addr, v3)
		c.send(&packet.Connect{Version: v3, ClientID: "cf"})
		p := c.recv()
		ack, ok := p.(*packet.Connack)
		if !ok || ack.ReasonCode != 0 || !ack.SessionPresent {
			t.Fatalf("first packet %v, want CONNACK 0 with Session Present", p)
		}
		if got := c.expectPublish(); got.Topic != "cf/m" || string(got.Payload) != "0" {
			t.Fatalf("then %v, want the first waiting message", got)
		}
		c.nc.Close() // unacknowledged: resent on the next connection
		ptWaitConnected(t, srv, 0)
	}
}

// ---- Will ----

// TestV3NoWillNoMessage: a connection without a will (Will Flag 0) that
// ends without DISCONNECT publishes nothing [v3 MQTT-3.1.2-12]; the same
// with a will publishes it, so the check can fail.
func TestV3NoWillNoMessage(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	w := v3Watch(t, addr, "watch", "#")
	for _, end := range []string{"close", "protocol error"} {
		c, _ := ptConnect(t, addr, v3, "nowill", true)
		if end == "close" {
			c.nc.Close()
		} else {
			writeRaw(c.nc, []byte{0x60, 2, 0, 1}) // PUBREL with flags 0000
			c.expectClosed()
		}
		ptWaitConnected(t, srv, 1)
	}
	if got := ptDrain(t, srv, w, "mk"); len(got) != 0 {
		t.Fatalf("a connection without a will published %v", v3Topics(got))
	}
	c := dialRaw(t, addr, v3)
	c.connect(&packet.Connect{ClientID: "will", CleanStart: true, Will: &packet.Will{Topic: "will/t", Payload: []byte("bye")}})
	c.nc.Close()
	ptWaitConnected(t, srv, 1) // the will is published before the count drops
	if got := ptDrain(t, srv, w, "mk"); len(got) != 1 || got[0].Topic != "will/t" {
		t.Fatalf("got %v, want the will of the connection that had one", v3Topics(got))
	}
}

// ---- Sessions ----

// TestV3RetainedOutlivesSessions: retained messages are not session state
// and stay when the session that published them ends [v3 MQTT-3.1.2-7],
// by a clean session's disconnect or by a clean session discarding a
// persistent one.
func TestV3RetainedOutlivesSessions(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c, _ := ptConnect(t, addr, v3, "clean", true)
	ptPublish(t, c, &packet.Publish{Topic: "keep/clean", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("a")})
	c.send(&packet.Disconnect{})
	c.expectClosed()
	p, _ := ptConnect(t, addr, v3, "persistent", false)
	p.subscribe(1, "other/#", 0) // the session holds some state
	ptPublish(t, p, &packet.Publish{Topic: "keep/persistent", QoS: 2, PacketID: 2, Retain: true, Payload: []byte("b")})
	p.send(&packet.Disconnect{})
	p.expectClosed()
	ptWaitConnected(t, srv, 0)
	p2, ack := ptConnect(t, addr, v3, "persistent", true) // ends the old session
	if ack.SessionPresent {
		t.Fatal("session present with clean session")
	}
	p2.send(&packet.Disconnect{})
	p2.expectClosed()
	ptWaitConnected(t, srv, 0)
	if n := srv.Stats().Sessions; n != 0 {
		t.Fatalf("%d sessions left, want none", n)
	}
	s, _ := ptConnect(t, addr, v3, "late", true)
	s.subscribe(1, "keep/#", 1)
	var got []string
	for range 2 {
		m := s.expectPublish()
		got = append(got, m.Topic+"="+string(m.Payload))
		ptAck(t, s, m)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"keep/clean=a", "keep/persistent=b"}) {
		t.Fatalf("retained messages %v, want both", got)
	}
}

// TestV3SessionState: the server keeps session state by client id [v3
// MQTT-3.1.3-2], all of it for the whole life of the session [v3
// MQTT-4.1.0-1]: the subscriptions, the QoS 1 and 2 messages sent and not
// acknowledged, those waiting to be sent, and the QoS 2 messages received
// and not yet released. A persistent session is resumed [v3 MQTT-3.1.2-4]
// [v3 MQTT-3.1.4-3].
func TestV3SessionState(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	pub, _ := ptConnect(t, addr, v3, "pub", true)
	// The watcher has a marker topic of its own: the clients' drains
	// below publish on "mk" and must not end its drain early.
	w, _ := ptConnect(t, addr, v3, "watch", true)
	w.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "from/#"}, {Filter: "mkw"}}})
	w.recv()
	clients := []string{"alice", "bob"}
	for i, id := range clients {
		c, ack := ptConnect(t, addr, v3, id, false)
		if ack.SessionPresent {
			t.Fatalf("%s: session present on the first connect", id)
		}
		c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "to/" + id, QoS: 2}, {Filter: "mk"}}})
		c.recv()
		// One message sent and not acknowledged.
		ptPublish(t, pub, &packet.Publish{Topic: "to/" + id, QoS: 1, PacketID: uint16(10 + i), Payload: []byte(id + "-inflight")})
		if p := c.expectPublish(); string(p.Payload) != id+"-inflight" {
			t.Fatalf("%s: got %v", id, p)
		}
		// A QoS 2 message received from the client and not released.
		c.send(&packet.Publish{Topic: "from/" + id, QoS: 2, PacketID: 7, Payload: []byte(id)})
		if rec, ok := c.recv().(*packet.Pubrec); !ok || rec.PacketID != 7 {
			t.Fatalf("%s: want PUBREC 7, got %v", id, rec)
		}
		c.nc.Close()
		ptWaitConnected(t, srv, 2)
	}
	// Messages waiting for each, while offline.
	for i, id := range clients {
		ptPublish(t, pub, &packet.Publish{Topic: "to/" + id, QoS: 2, PacketID: uint16(20 + i), Payload: []byte(id + "-queued")})
	}
	// Resume in the other order: each id gets its own session back.
	for _, id := range []string{"bob", "alice"} {
		c, ack := ptConnect(t, addr, v3, id, false)
		if !ack.SessionPresent {
			t.Fatalf("%s: session not present on resume", id)
		}
		p := c.expectPublish()
		if string(p.Payload) != id+"-inflight" || !p.Dup || p.QoS != 1 {
			t.Fatalf("%s: got %v, want its in-flight message again, DUP", id, p)
		}
		c.send(&packet.Puback{PacketID: p.PacketID})
		p = c.expectPublish()
		if string(p.Payload) != id+"-queued" || p.Dup || p.QoS != 2 {
			t.Fatalf("%s: got %v, want its queued message", id, p)
		}
		ptAck(t, c, p)
		// The QoS 2 message it sent is still held: a resend is answered,
		// not delivered again; the PUBREL completes it.
		c.send(&packet.Publish{Topic: "from/" + id, QoS: 2, PacketID: 7, Dup: true, Payload: []byte(id)})
		if rec, ok := c.recv().(*packet.Pubrec); !ok || rec.PacketID != 7 {
			t.Fatalf("%s: want PUBREC 7, got %v", id, rec)
		}
		c.send(&packet.Pubrel{PacketID: 7})
		if comp, ok := c.recv().(*packet.Pubcomp); !ok || comp.PacketID != 7 {
			t.Fatalf("%s: want PUBCOMP 7, got %v", id, comp)
		}
		// And its subscription is its own.
		if got := ptDrain(t, srv, c, "mk"); len(got) != 0 {
			t.Fatalf("%s: more messages %v", id, v3Topics(got))
		}
	}
	if got := ptDrain(t, srv, w, "mkw"); len(got) != 2 {
		t.Fatalf("the QoS 2 messages of the clients were delivered %d times, want once each: %v", len(got), v3Topics(got))
	}
}

// TestV3SessionLastsWithConnection: a session, a clean one too, lasts at
// least as long as its connection [v3 MQTT-4.1.0-2]: while the connection
// is open the server keeps the QoS 2 state of a message the client sent,
// so that a resend is not delivered twice, and frees the packet id only
// when the flow has ended.
func TestV3SessionLastsWithConnection(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	w := v3Watch(t, addr, "watch", "q2/#")
	c, _ := ptConnect(t, addr, v3, "clean", true)
	for round := range 2 {
		for range 3 { // the first send and two resends
			c.send(&packet.Publish{Topic: "q2/t", QoS: 2, PacketID: 5, Payload: []byte(fmt.Sprint(round))})
			if rec, ok := c.recv().(*packet.Pubrec); !ok || rec.PacketID != 5 {
				t.Fatalf("want PUBREC 5, got %v", rec)
			}
		}
		c.send(&packet.Pubrel{PacketID: 5})
		if comp, ok := c.recv().(*packet.Pubcomp); !ok || comp.PacketID != 5 {
			t.Fatalf("want PUBCOMP 5, got %v", comp)
		}
	}
	// Each round delivered once: after PUBCOMP the same id is a new message.
	if got := v3Topics(ptDrain(t, srv, w, "mk")); !slices.Equal(got, []string{"q2/t=0", "q2/t=1"}) {
		t.Fatalf("delivered %v, want q2/t=0 and q2/t=1 once each", got)
	}
}

// ---- PUBLISH ----

// TestV3DupNotPropagated: the DUP flag of an incoming PUBLISH is not
// passed on; the server sets it only on its own retransmissions [v3
// MQTT-3.3.1-3] [v3 MQTT-3.3.1-1].
func TestV3DupNotPropagated(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	sub, _ := ptConnect(t, addr, v3, "sub", false)
	sub.subscribe(1, "dup/#", 2)
	pub, _ := ptConnect(t, addr, v3, "pub", true)
	ptPublish(t, pub, &packet.Publish{Topic: "dup/1", QoS: 1, PacketID: 9, Dup: true, Payload: []byte("a")})
	ptPublish(t, pub, &packet.Publish{Topic: "dup/2", QoS: 2, PacketID: 10, Dup: true, Payload: []byte("b")})
	ids := map[string]uint16{}
	for range 2 {
		p := sub.expectPublish()
		if p.Dup {
			t.Fatalf("got %v with DUP 1: copied from the inbound PUBLISH", p)
		}
		ids[string(p.Payload)] = p.PacketID
	}
	sub.nc.Close() // neither acknowledged: both are retransmitted
	ptWaitConnected(t, srv, 1)
	sub, _ = ptConnect(t, addr, v3, "sub", false)
	for range 2 {
		p := sub.expectPublish()
		if !p.Dup || p.PacketID != ids[string(p.Payload)] {
			t.Fatalf("retransmission %v: want DUP 1 and packet id %d", p, ids[string(p.Payload)])
		}
		ptAck(t, sub, p)
	}
}

// TestV3TopicMatchesFilter: the server adds a message to the session of
// every client with a matching subscription [v3 MQTT-4.5.0-1], offline
// persistent sessions included, and the Topic Name it sends matches the
// subscription's filter by the rules of section 4.7 [v3 MQTT-3.3.2-3]:
// it is the name published, never the filter.
func TestV3TopicMatchesFilter(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	filters := map[string]string{"plus": "a/+/c", "hash": "a/#", "first": "+/b", "all": "#", "exact": "a/b", "none": "z/+"}
	subs := map[string]*rawClient{}
	for id, f := range filters {
		c, _ := ptConnect(t, addr, v3, id, false)
		c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: f, QoS: 1}, {Filter: "mk"}}})
		c.recv()
		subs[id] = c
	}
	// "hash" is offline: its messages wait in its session.
	subs["hash"].send(&packet.Disconnect{})
	subs["hash"].expectClosed()
	ptWaitConnected(t, srv, int64(len(filters)-1))
	pub, _ := ptConnect(t, addr, v3, "pub", true)
	topics := []string{"a/b/c", "a/b", "x/b", "a/b/c/d", "a", "a/x/c", "b/a/c", "a//c", "/b"}
	for i, tp := range topics {
		ptPublish(t, pub, &packet.Publish{Topic: tp, QoS: 1, PacketID: uint16(i + 1), Payload: []byte{'0' + byte(i)}})
	}
	want := map[string][]string{
		"plus":  {"a/b/c=0", "a/x/c=5", "a//c=7"},
		"hash":  {"a/b/c=0", "a/b=1", "a/b/c/d=3", "a=4", "a/x/c=5", "a//c=7"},
		"first": {"a/b=1", "x/b=2", "/b=8"},
		"all":   {"a/b/c=0", "a/b=1", "x/b=2", "a/b/c/d=3", "a=4", "a/x/c=5", "b/a/c=6", "a//c=7", "/b=8"},
		"exact": {"a/b=1"},
		"none":  nil,
	}
	subs["hash"], _ = ptConnect(t, addr, v3, "hash", false)
	for id, c := range subs {
		if got := v3Topics(ptDrain(t, srv, c, "mk")); !slices.Equal(got, want[id]) {
			t.Errorf("%s (%s): got %v, want %v", id, filters[id], got, want[id])
		}
	}
}

// TestV3PublishResponse: the receiver of a PUBLISH answers as Table 3.4
// says for its QoS [v3 MQTT-3.3.4-1]: nothing for QoS 0, PUBACK for QoS 1,
// PUBREC for QoS 2, each with the packet id, with or without subscribers
// and whether or not the client may publish there [v3 MQTT-3.3.5-2].
func TestV3PublishResponse(t *testing.T) {
	t.Parallel()
	authz := v3Authz(func(_ context.Context, _ *ClientInfo, a Action, tp string) bool {
		return a != ActionPublish || !strings.HasPrefix(tp, "deny/")
	})
	srv := &Server{Authorizer: authz}
	addr := ptNewServer(t, srv)
	w := v3Watch(t, addr, "watch", "#")
	c, _ := ptConnect(t, addr, v3, "pub", true)
	for _, tp := range []string{"open/t", "deny/t"} {
		c.send(&packet.Publish{Topic: tp, Payload: []byte("q0")})
		c.send(&packet.Pingreq{})
		if p, ok := c.recv().(*packet.Pingresp); !ok {
			t.Fatalf("%s: QoS 0 answered with %v, want nothing (then the PINGRESP)", tp, p)
		}
		c.send(&packet.Publish{Topic: tp, QoS: 1, PacketID: 300, Payload: []byte("q1")})
		if ack, ok := c.recv().(*packet.Puback); !ok || ack.PacketID != 300 {
			t.Fatalf("%s: QoS 1 answered with %v, want PUBACK 300", tp, ack)
		}
		c.send(&packet.Publish{Topic: tp, QoS: 2, PacketID: 65535, Payload: []byte("q2")})
		if rec, ok := c.recv().(*packet.Pubrec); !ok || rec.PacketID != 65535 {
			t.Fatalf("%s: QoS 2 answered with %v, want PUBREC 65535", tp, rec)
		}
		c.send(&packet.Pubrel{PacketID: 65535})
		if comp, ok := c.recv().(*packet.Pubcomp); !ok || comp.PacketID != 65535 {
			t.Fatalf("%s: want PUBCOMP, got %v", tp, comp)
		}
	}
	if got := v3Topics(ptDrain(t, srv, w, "mk")); !slices.Equal(got, []string{"open/t=q0", "open/t=q1", "open/t=q2"}) {
		t.Fatalf("delivered %v, want the three allowed messages only", got)
	}
}

// TestV3TransientErrorCloses: an error that keeps the server from
// processing an inbound packet (here a panicking Authorizer) closes the
// connection that carried it [v3 MQTT-4.8.0-2], and only that one.
func TestV3TransientErrorCloses(t *testing.T) {
	t.Parallel()
	authz := v3Authz(func(_ context.Context, _ *ClientInfo, _ Action, tp string) bool {
		if tp == "boom" {
			panic("authorizer failed")
		}
		return true
	})
	srv := &Server{Authorizer: authz}
	addr := ptNewServer(t, srv)
	w := v3Watch(t, addr, "watch", "ok/#")
	c, _ := ptConnect(t, addr, v3, "victim", true)
	c.send(&packet.Publish{Topic: "boom", QoS: 1, PacketID: 1})
	if got := c.expectClosed(); len(got) != 0 {
		t.Fatalf("got %v, want the close", got)
	}
	c2, _ := ptConnect(t, addr, v3, "next", true)
	ptPublish(t, c2, &packet.Publish{Topic: "ok/1", QoS: 1, PacketID: 1, Payload: []byte("fine")})
	if got := v3Topics(ptDrain(t, srv, w, "mk")); !slices.Equal(got, []string{"ok/1=fine"}) {
		t.Fatalf("got %v", got)
	}
}

// ---- QoS flows, the server as sender ----

// TestV3ServerAsSender: the server as sender of QoS 0, 1 and 2 messages.
// QoS 0 goes with DUP 0 [v3 MQTT-4.3.1-1]. Each QoS 1 and 2 message gets a
// packet id not in use [v3 MQTT-2.3.1-4], QoS and DUP 0; it stays
// unacknowledged until its PUBACK [v3 MQTT-4.3.2-1], or for QoS 2 its
// PUBREC, after which the PUBREL is held until the PUBCOMP and the
// PUBLISH is never sent again [v3 MQTT-4.3.3-1]; a retransmission reuses
// the packet id [v3 MQTT-2.3.1-4].
func TestV3ServerAsSender(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c, _ := ptConnect(t, addr, v3, "rx", false)
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "s/#", QoS: 2}, {Filter: "mk"}}})
	c.recv()
	for q := byte(0); q <= 2; q++ {
		for i := range 5 {
			if err := srv.Publish(fmt.Sprintf("s/%d", q), fmt.Appendf(nil, "%d%d", q, i), q, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	ids := map[string]uint16{}
	used := map[uint16]bool{}
	for range 15 {
		p := c.expectPublish()
		if p.Dup || p.QoS != p.Payload[0]-'0' {
			t.Fatalf("got %v: want DUP 0 and the QoS published", p)
		}
		if p.QoS > 0 {
			if p.PacketID == 0 || used[p.PacketID] {
				t.Fatalf("got %v: packet id 0 or already in use (%v)", p, used)
			}
			used[p.PacketID] = true
			ids[string(p.Payload)] = p.PacketID
		}
	}
	// Acknowledge some: two QoS 1, and three QoS 2 up to PUBREC, one of
	// them to PUBCOMP.
	c.send(&packet.Puback{PacketID: ids["10"]})
	c.send(&packet.Puback{PacketID: ids["11"]})
	for _, m := range []string{"20", "21", "22"} {
		c.send(&packet.Pubrec{PacketID: ids[m]})
		if rel, ok := c.recv().(*packet.Pubrel); !ok || rel.PacketID != ids[m] {
			t.Fatalf("PUBREC %d answered with %v, want PUBREL %d", ids[m], rel, ids[m])
		}
	}
	c.send(&packet.Pubcomp{PacketID: ids["20"]})
	c.nc.Close()
	ptWaitConnected(t, srv, 0)

	// Reconnect: the unacknowledged are sent again with their ids; the
	// released QoS 2 messages as PUBREL, not PUBLISH.
	c, _ = ptConnect(t, addr, v3, "rx", false)
	wantPub := map[uint16]string{ids["12"]: "12", ids["13"]: "13", ids["14"]: "14", ids["23"]: "23", ids["24"]: "24"}
	wantRel := map[uint16]bool{ids["21"]: true, ids["22"]: true}
	for len(wantPub)+len(wantRel) > 0 {
		switch p := c.recv().(type) {
		case *packet.Publish:
			if want, ok := wantPub[p.PacketID]; !ok || string(p.Payload) != want || !p.Dup {
				t.Fatalf("resent %v; want one of %v, DUP 1, with its packet id", p, wantPub)
			}
			delete(wantPub, p.PacketID)
			if p.QoS == 1 {
				c.send(&packet.Puback{PacketID: p.PacketID})
			} else {
				c.send(&packet.Pubrec{PacketID: p.PacketID})
				wantRel[p.PacketID] = true
			}
		case *packet.Pubrel:
			if !wantRel[p.PacketID] {
				t.Fatalf("PUBREL %d, want one of %v", p.PacketID, wantRel)
			}
			delete(wantRel, p.PacketID)
			c.send(&packet.Pubcomp{PacketID: p.PacketID})
		default:
			t.Fatalf("got %v", p)
		}
	}
	if got := ptDrain(t, srv, c, "mk"); len(got) != 0 {
		t.Fatalf("more after the resends: %v", v3Topics(got))
	}
	c.nc.Close()
	ptWaitConnected(t, srv, 0)
	// Everything is acknowledged: nothing is resent.
	c, _ = ptConnect(t, addr, v3, "rx", false)
	if got := ptDrain(t, srv, c, "mk"); len(got) != 0 {
		t.Fatalf("resent after every flow ended: %v", v3Topics(got))
	}
}

// ---- SUBSCRIBE / UNSUBSCRIBE ----

// TestV3Suback: every SUBSCRIBE gets a SUBACK [v3 MQTT-3.8.4-1], refused
// filters included, with the SUBSCRIBE's packet id [v3 MQTT-3.8.4-2]; one
// with several filters is handled as that many SUBSCRIBEs in a row with
// one SUBACK [v3 MQTT-3.8.4-4]: the same filter twice leaves the later
// subscription, and each sends the retained messages.
func TestV3Suback(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	if err := srv.Publish("m/r", []byte("kept"), 2, true); err != nil {
		t.Fatal(err)
	}
	c, _ := ptConnect(t, addr, v3, "s", true)
	for _, id := range []uint16{1, 300, 65535} {
		c.send(&packet.Subscribe{PacketID: id, Subscriptions: []packet.Subscription{{Filter: "x/#"}, {Filter: "a/#/b"}}})
		ack, ok := c.recv().(*packet.Suback)
		if !ok || ack.PacketID != id || !slices.Equal(ack.ReasonCodes, []packet.ReasonCode{0, packet.V3SubackFailure}) {
			t.Fatalf("SUBSCRIBE %d answered with %v, want SUBACK %d [0 0x80]", id, ack, id)
		}
	}
	c.send(&packet.Subscribe{PacketID: 7, Subscriptions: []packet.Subscription{{Filter: "m/#", QoS: 0}, {Filter: "mk"}, {Filter: "m/#", QoS: 2}}})
	ack, ok := c.recv().(*packet.Suback)
	if !ok || ack.PacketID != 7 || !slices.Equal(ack.ReasonCodes, []packet.ReasonCode{0, 0, 2}) {
		t.Fatalf("got %v, want SUBACK 7 [0 0 2]", ack)
	}
	// The retained message once per subscription made, at its QoS.
	for _, q := range []byte{0, 2} {
		p := c.expectPublish()
		if p.Topic != "m/r" || !p.Retain || p.QoS != q {
			t.Fatalf("got %v, want the retained m/r at QoS %d", p, q)
		}
		ptAck(t, c, p)
	}
	if n := srv.Stats().Subscriptions; n != 3 {
		t.Fatalf("%d subscriptions, want 3 (x/#, m/# once, mk)", n)
	}
	if err := srv.Publish("m/x", []byte("live"), 2, false); err != nil {
		t.Fatal(err)
	}
	got := ptDrain(t, srv, c, "mk")
	if len(got) != 1 || got[0].QoS != 2 {
		t.Fatalf("got %v, want one copy at QoS 2, the later subscription's", got)
	}
}

// TestV3SubscribeReplaces: a SUBSCRIBE for a filter the session has
// replaces that subscription, sends the retained messages again and does
// not interrupt the flow of messages [v3 MQTT-3.8.4-3].
func TestV3SubscribeReplaces(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	if err := srv.Publish("r/x", []byte("kept"), 1, true); err != nil {
		t.Fatal(err)
	}
	c, _ := ptConnect(t, addr, v3, "s", true)
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "r/#", QoS: 1}, {Filter: "mk"}}})
	c.recv()
	if p := c.expectPublish(); string(p.Payload) != "kept" || p.QoS != 1 {
		t.Fatalf("got %v", p)
	} else {
		ptAck(t, c, p)
	}
	// A message in flight, unacknowledged, across the new SUBSCRIBE.
	srv.Publish("r/y", []byte("flight"), 1, false)
	inflight := c.expectPublish()
	if ack := c.subscribe(2, "r/#", 0); ack.ReasonCodes[0] != 0 {
		t.Fatalf("got %v", ack)
	}
	if p := c.expectPublish(); string(p.Payload) != "kept" || p.QoS != 0 || !p.Retain {
		t.Fatalf("got %v, want the retained message again, at QoS 0", p)
	}
	c.send(&packet.Puback{PacketID: inflight.PacketID})
	srv.Publish("r/z", []byte("after"), 1, false)
	got := ptDrain(t, srv, c, "mk")
	if len(got) != 1 || string(got[0].Payload) != "after" || got[0].QoS != 0 {
		t.Fatalf("got %v, want one copy of the new message at QoS 0", v3Topics(got))
	}
	if n := srv.Stats().Subscriptions; n != 2 {
		t.Fatalf("%d subscriptions, want 2: the filter was replaced, not added", n)
	}
}

// TestV3WildcardsUnavailable: a server that does not support wildcard
// filters refuses every subscription with one [v3 MQTT-3.8.3-2], and
// grants the others.
func TestV3WildcardsUnavailable(t *testing.T) {
	t.Parallel()
	srv := &Server{WildcardSubscriptionsUnavailable: true}
	addr := ptNewServer(t, srv)
	c, _ := ptConnect(t, addr, v3, "s", true)
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
		{Filter: "a/+", QoS: 1}, {Filter: "#", QoS: 1}, {Filter: "a/b", QoS: 1}, {Filter: "a/#", QoS: 1}, {Filter: "mk"}}})
	ack, ok := c.recv().(*packet.Suback)
	f := packet.V3SubackFailure
	if !ok || !slices.Equal(ack.ReasonCodes, []packet.ReasonCode{f, f, 1, f, 0}) {
		t.Fatalf("got %v, want [0x80 0x80 1 0x80 0]", ack)
	}
	srv.Publish("a/b", []byte("x"), 1, false)
	srv.Publish("a/c", []byte("y"), 1, false)
	if got := v3Topics(ptDrain(t, srv, c, "mk")); !slices.Equal(got, []string{"a/b=x"}) {
		t.Fatalf("got %v, want a/b only", got)
	}
}

// TestV3InvalidFilters: '#' stands alone or after '/', and last [v3
// MQTT-4.7.1-2]; '+' fills a whole level [v3 MQTT-4.7.1-3]. A filter that
// breaks either is refused (SUBACK 0x80); the valid forms are granted and
// match.
func TestV3InvalidFilters(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c, _ := ptConnect(t, addr, v3, "s", true)
	filters := []string{"f/#/b", "f#", "f/b#", "#f", "f/+b", "f+/b", "++", "f/#/", "#", "f/+", "+/+/c", "+", "f/#", "/#", "+/"}
	valid := map[string]bool{"#": true, "f/+": true, "+/+/c": true, "+": true, "f/#": true, "/#": true, "+/": true}
	subs := make([]packet.Subscription, len(filters))
	for i, f := range filters {
		subs[i] = packet.Subscription{Filter: f, QoS: 1}
	}
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: subs})
	ack, ok := c.recv().(*packet.Suback)
	if !ok || len(ack.ReasonCodes) != len(filters) {
		t.Fatalf("got %v", ack)
	}
	for i, f := range filters {
		want := packet.V3SubackFailure
		if valid[f] {
			want = 1
		}
		if ack.ReasonCodes[i] != want {
			t.Errorf("filter %q: code 0x%02x, want 0x%02x", f, byte(ack.ReasonCodes[i]), byte(want))
		}
	}
}

// TestV3UnsubscribeExact: UNSUBSCRIBE filters are compared character by
// character with the session's filters, wildcards included, and only an
// exact match deletes a subscription [v3 MQTT-3.10.4-1]; the server then
// sends no new message for it [v3 MQTT-3.10.4-2]. Several filters get one
// UNSUBACK [v3 MQTT-3.10.4-6] with the packet id, also when nothing was
// deleted [v3 MQTT-3.10.4-5].
func TestV3UnsubscribeExact(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c, _ := ptConnect(t, addr, v3, "u", true)
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a/#"}, {Filter: "a/+"}, {Filter: "mk"}}})
	c.recv()
	c.send(&packet.Unsubscribe{PacketID: 9, Filters: []string{"a/b", "A/#", "a/+/", "a/+/#", "#", "a/#"}})
	if ack, ok := c.recv().(*packet.Unsuback); !ok || ack.PacketID != 9 {
		t.Fatalf("want UNSUBACK 9, got %v", ack)
	}
	if n := srv.Stats().Subscriptions; n != 2 {
		t.Fatalf("%d subscriptions, want 2: only a/# deleted", n)
	}
	srv.Publish("a/x", []byte("1"), 0, false)   // a/+ still matches
	srv.Publish("a/x/y", []byte("2"), 0, false) // only a/# matched it
	if got := v3Topics(ptDrain(t, srv, c, "mk")); !slices.Equal(got, []string{"a/x=1"}) {
		t.Fatalf("got %v, want a/x=1 only", got)
	}
	// Nothing left to delete: still one UNSUBACK.
	c.send(&packet.Unsubscribe{PacketID: 10, Filters: []string{"a/#", "none"}})
	if ack, ok := c.recv().(*packet.Unsuback); !ok || ack.PacketID != 10 {
		t.Fatalf("want UNSUBACK 10, got %v", ack)
	}
	c.send(&packet.Pingreq{})
	if p, ok := c.recv().(*packet.Pingresp); !ok {
		t.Fatalf("got %v, want PINGRESP: one UNSUBACK per UNSUBSCRIBE", p)
	}
}

// TestV3UnsubscribeCompletesFlows: after an UNSUBSCRIBE the QoS 1 and QoS 2
// deliveries the server had started for the removed subscriptions are
// completed [v3 MQTT-3.10.4-3], across a reconnect too, while no new
// message is sent for them.
func TestV3UnsubscribeCompletesFlows(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c, _ := ptConnect(t, addr, v3, "u", false)
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "u/1", QoS: 1}, {Filter: "u/2", QoS: 2}, {Filter: "mk"}}})
	c.recv()
	srv.Publish("u/1", []byte("one"), 1, false)
	srv.Publish("u/2", []byte("two"), 2, false)
	p1, p2 := c.expectPublish(), c.expectPublish()
	c.send(&packet.Unsubscribe{PacketID: 2, Filters: []string{"u/1", "u/2"}})
	if ack, ok := c.recv().(*packet.Unsuback); !ok || ack.PacketID != 2 {
		t.Fatalf("want UNSUBACK 2, got %v", ack)
	}
	// The QoS 2 flow goes on.
	c.send(&packet.Pubrec{PacketID: p2.PacketID})
	if rel, ok := c.recv().(*packet.Pubrel); !ok || rel.PacketID != p2.PacketID {
		t.Fatalf("want PUBREL %d, got %v", p2.PacketID, rel)
	}
	srv.Publish("u/1", []byte("new"), 1, false) // not for the removed subscription
	c.nc.Close()
	ptWaitConnected(t, srv, 0)
	c, _ = ptConnect(t, addr, v3, "u", false)
	gotPub, gotRel := false, false
	for range 2 {
		switch p := c.recv().(type) {
		case *packet.Publish:
			if p.PacketID != p1.PacketID || string(p.Payload) != "one" || !p.Dup {
				t.Fatalf("got %v, want %v again", p, p1)
			}
			c.send(&packet.Puback{PacketID: p.PacketID})
			gotPub = true
		case *packet.Pubrel:
			if p.PacketID != p2.PacketID {
				t.Fatalf("got PUBREL %d, want %d", p.PacketID, p2.PacketID)
			}
			c.send(&packet.Pubcomp{PacketID: p.PacketID})
			gotRel = true
		default:
			t.Fatalf("got %v", p)
		}
	}
	if !gotPub || !gotRel {
		t.Fatal("the started flows were not both completed")
	}
	if got := ptDrain(t, srv, c, "mk"); len(got) != 0 {
		t.Fatalf("got %v after the flows ended", v3Topics(got))
	}
}

// ---- Topic names, transports ----

// TestV3TopicLimits: topic names and filters contain no U+0000 [v3
// MQTT-4.7.3-2] and are at most 65535 bytes [v3 MQTT-4.7.3-3]: the broker
// refuses them from its in-process API as well as from the wire.
func TestV3TopicLimits(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	long := strings.Repeat("a", 65536)
	for _, tp := range []string{"a\x00b", "\x00", long} {
		if err := srv.Publish(tp, nil, 0, false); err == nil {
			t.Errorf("Publish(%.10q...) accepted", tp)
		}
		if _, err := srv.Subscribe(tp, 0, func(*Message) {}); err == nil {
			t.Errorf("Subscribe(%.10q...) accepted", tp)
		}
	}
	w := v3Watch(t, addr, "watch", "#")
	if err := srv.Publish(long[:65535], []byte("max"), 0, false); err != nil {
		t.Fatalf("a 65535-byte topic: %v", err)
	}
	if got := ptDrain(t, srv, w, "mk"); len(got) != 1 || len(got[0].Topic) != 65535 {
		t.Fatalf("got %d messages, want the one with the 65535-byte topic", len(got))
	}
	for _, wire := range [][]byte{
		rawPublish(v3, 0, "a\x00b", 0, nil, "x"),
		rawSubscribe(v3, 1, "a/\x00"),
		rawPkt(0xa2, rawU16(1), rawStr("\x00")),
	} {
		c, _ := ptConnect(t, addr, v3, "nul", true)
		writeRaw(c.nc, wire)
		if got := c.expectClosed(); len(got) != 0 {
			t.Fatalf("% x answered with %v, want the close", wire, got)
		}
	}
}

// TestV3InvalidFlagsClose: a packet with invalid fixed-header flags closes
// the connection [v3 MQTT-2.2.2-2] [v3 MQTT-4.8.0-1]: PUBREL [v3
// MQTT-3.6.1-1], SUBSCRIBE [v3 MQTT-3.8.1-1] and UNSUBSCRIBE [v3
// MQTT-3.10.1-1] need 0010, DISCONNECT 0000 [v3 MQTT-3.14.1-1]. A
// DISCONNECT with bad flags is not a DISCONNECT: the will is published.
func TestV3InvalidFlagsClose(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	w := v3Watch(t, addr, "watch", "will/#")
	cases := []struct {
		name       string
		bad, valid []byte
		answer     packet.Type // to the valid twin, 0 for none
	}{
		{"PUBREL 0000", rawPkt(0x60, rawU16(1)), rawPkt(0x62, rawU16(1)), packet.PUBCOMP},
		{"PUBREL 0011", rawPkt(0x63, rawU16(1)), rawPkt(0x62, rawU16(1)), packet.PUBCOMP},
		{"SUBSCRIBE 0000", rawPkt(0x80, rawU16(1), rawStr("t"), []byte{0}), rawPkt(0x82, rawU16(1), rawStr("t"), []byte{0}), packet.SUBACK},
		{"SUBSCRIBE 1010", rawPkt(0x8a, rawU16(1), rawStr("t"), []byte{0}), rawPkt(0x82, rawU16(1), rawStr("t"), []byte{0}), packet.SUBACK},
		{"UNSUBSCRIBE 0000", rawPkt(0xa0, rawU16(1), rawStr("t")), rawPkt(0xa2, rawU16(1), rawStr("t")), packet.UNSUBACK},
		{"UNSUBSCRIBE 0110", rawPkt(0xa6, rawU16(1), rawStr("t")), rawPkt(0xa2, rawU16(1), rawStr("t")), packet.UNSUBACK},
		{"PUBACK 0010", rawPkt(0x42, rawU16(1)), rawPkt(0x40, rawU16(1)), 0},
		{"PINGREQ 1000", rawPkt(0xc8), rawPkt(0xc0), packet.PINGRESP},
		{"DISCONNECT 0001", rawPkt(0xe1), nil, 0},
		{"DISCONNECT 0100", rawPkt(0xe4), nil, 0},
	}
	for i, tc := range cases {
		topic := fmt.Sprintf("will/%d", i)
		c := dialRaw(t, addr, v3)
		c.connect(&packet.Connect{ClientID: "bad", CleanStart: true, Will: &packet.Will{Topic: topic, Payload: []byte(tc.name)}})
		if tc.valid != nil {
			// The valid twin is answered (or silently taken) and the
			// connection stays.
			writeRaw(c.nc, tc.valid)
			c.send(&packet.Pingreq{})
			want := map[packet.Type]int{packet.PINGRESP: 1}
			if tc.answer != 0 {
				want[tc.answer]++
			}
			for len(want) > 0 {
				p := c.recv()
				if want[p.Type()] == 0 {
					t.Fatalf("%s: valid twin: got %v", tc.name, p)
				}
				if want[p.Type()]--; want[p.Type()] == 0 {
					delete(want, p.Type())
				}
			}
		}
		writeRaw(c.nc, tc.bad)
		if got := c.expectClosed(); len(got) != 0 {
			t.Fatalf("%s: answered with %v, want the close", tc.name, got)
		}
		if p := w.expectPublish(); p.Topic != topic {
			t.Fatalf("%s: got %v, want the will on %s", tc.name, p, topic)
		}
	}
	// A valid DISCONNECT: no will.
	c := dialRaw(t, addr, v3)
	c.connect(&packet.Connect{ClientID: "good", CleanStart: true, Will: &packet.Will{Topic: "will/good", Payload: []byte("x")}})
	writeRaw(c.nc, rawPkt(0xe0))
	c.expectClosed()
	if got := ptDrain(t, srv, w, "mk"); len(got) != 0 {
		t.Fatalf("got %v after a valid DISCONNECT", v3Topics(got))
	}
}

// TestV3QoS0WithoutPacketID: a QoS 0 PUBLISH has no packet identifier [v3
// MQTT-2.3.1-5]: the two bytes after its topic are payload, passed on as
// such.
func TestV3QoS0WithoutPacketID(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	w := v3Watch(t, addr, "watch", "z/#")
	c, _ := ptConnect(t, addr, v3, "pub", true)
	writeRaw(c.nc, rawPublish(v3, 0, "z/0", 0, nil, "\x00\x07rest"))
	c.send(&packet.Pingreq{}) // the PUBLISH is routed once the PINGRESP comes
	if _, ok := c.recv().(*packet.Pingresp); !ok {
		t.Fatal("want PINGRESP")
	}
	got := ptDrain(t, srv, w, "mk")
	if len(got) != 1 || string(got[0].Payload) != "\x00\x07rest" {
		t.Fatalf("got %v, want the payload 00 07 rest whole", got)
	}
}

// TestV3Transports: the server serves over transports with an ordered,
// lossless byte stream both ways [v3 MQTT-7.1.1-1], TCP and unix sockets:
// a burst of QoS 1 messages arrives whole and in order, and its PUBACKs
// come back in order.
func TestV3Transports(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "tern.sock")
	srv := &Server{SysInterval: -1, Logger: testLogger(t),
		Listeners: []Listener{{Type: "tcp", Addr: "127.0.0.1:0"}, {Type: "unix", Addr: sock}}}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ListenAndServe returned %v", err)
		}
		checkNoConnGoroutines(t, srv)
	})
	ptEventually(t, 5*time.Second, "the listeners", func() bool { return len(srv.Addrs()) == 2 })
	dial := func(network, addr string) *rawClient {
		nc, err := net.DialTimeout(network, addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		c := &rawClient{t: t, nc: nc, r: packet.NewReader(nc), w: packet.NewWriter(nc), v: v3}
		c.r.Version, c.w.Version = v3, v3
		return c
	}
	const n = 300
	for _, a := range srv.Addrs() {
		t.Run(a.Network(), func(t *testing.T) {
			sub := dial(a.Network(), a.String())
			sub.t = t
			sub.connect(&packet.Connect{ClientID: "sub-" + a.Network(), CleanStart: true})
			sub.subscribe(1, "burst/"+a.Network(), 1)
			pub := dial(a.Network(), a.String())
			pub.t = t
			pub.connect(&packet.Connect{ClientID: "pub-" + a.Network(), CleanStart: true})
			// Write the whole burst at once, then read the PUBACKs.
			var wire []byte
			for i := range n {
				wire = append(wire, mustEncode(t, &packet.Publish{Topic: "burst/" + a.Network(), QoS: 1, PacketID: uint16(i + 1), Payload: fmt.Appendf(nil, "%d", i)}, v3)...)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := range n {
					p, err := pub.recvErr(10 * time.Second)
					ack, ok := p.(*packet.Puback)
					if err != nil || !ok || ack.PacketID != uint16(i+1) {
						t.Errorf("PUBACK %d: got %v, %v", i+1, p, err)
						return
					}
				}
			}()
			writeRaw(pub.nc, wire)
			for i := range n {
				p := sub.expectPublish()
				if string(p.Payload) != fmt.Sprint(i) {
					t.Fatalf("message %d: got %q", i, p.Payload)
				}
				sub.send(&packet.Puback{PacketID: p.PacketID})
			}
			<-done
		})
	}
}

// TestV3WebSocketSubprotocol: the WebSocket listener selects and returns
// the subprotocol "mqtt" [v3 MQTT-6.0.0-4], and MQTT runs over it.
func TestV3WebSocketSubprotocol(t *testing.T) {
	t.Parallel()
	srv := &Server{SysInterval: -1, Logger: testLogger(t), Listeners: []Listener{{Type: "ws", Addr: "127.0.0.1:0"}}}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ListenAndServe returned %v", err)
		}
		checkNoConnGoroutines(t, srv)
	})
	ptEventually(t, 5*time.Second, "the listener", func() bool { return len(srv.Addrs()) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws://"+srv.Addrs()[0].String()+DefaultWebSocketPath, &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mqtt" || ws.Subprotocol() != "mqtt" {
		t.Fatalf("subprotocol %q (%q), want mqtt", got, ws.Subprotocol())
	}
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	defer nc.Close()
	c := &rawClient{t: t, nc: nc, r: packet.NewReader(nc), w: packet.NewWriter(nc), v: v3}
	c.r.Version, c.w.Version = v3, v3
	c.connect(&packet.Connect{ClientID: "ws", CleanStart: true})
	c.send(&packet.Pingreq{})
	if _, ok := c.recv().(*packet.Pingresp); !ok {
		t.Fatal("want PINGRESP")
	}
	c.send(&packet.Disconnect{})
	c.expectClosed()
}
