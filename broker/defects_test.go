package broker

// Black-box tests of four protocol defects that third-party conformance
// suites found (issue 10, items 20 to 23), each with the bytes of the
// issue, over real loopback connections:
//
//   - 20: an MQTT 5 PUBREC (or PUBACK) with a reason code of 0x80 or above
//     ends the exchange: no PUBREL, the packet id and the Receive Maximum
//     slot are free, and the message counts as a failed delivery;
//   - 21: MQTT 3.1 retransmissions with DUP set (PUBREL, SUBSCRIBE,
//     UNSUBSCRIBE) are accepted on 3.1 connections only;
//   - 22: a CONNACK larger than the client's Maximum Packet Size is not
//     sent, and the connection is closed without a session;
//   - 23: invalid (empty, misplaced wildcard) UNSUBSCRIBE filters close a
//     3.1 / 3.1.1 connection and get 0x8F in an MQTT 5 UNSUBACK; an empty
//     SUBSCRIBE filter closes a 3.1 / 3.1.1 connection.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// ---- helpers (prefixed df) ----

// dfSession returns the broker's session of client id.
func dfSession(t *testing.T, srv *Server, id string) *session {
	t.Helper()
	srv.regMu.Lock()
	s := srv.sessions[id]
	srv.regMu.Unlock()
	if s == nil {
		t.Fatalf("no session %q", id)
	}
	return s
}

// dfIdle checks that nothing is in flight to session id's client and that
// all its packet identifiers are free.
func dfIdle(t *testing.T, srv *Server, id string) {
	t.Helper()
	s := dfSession(t, srv, id)
	s.mu.Lock()
	inflight := s.out.Len() // session.Outbound frees a flight's packet id with it
	s.mu.Unlock()
	if inflight != 0 {
		t.Fatalf("session %s: %d messages in flight, their packet ids in use; want none", id, inflight)
	}
}

// dfRefusal checks that the drops recorded for client are one per
// payload, in order, each refused with packet ack and reason code code.
func dfRefusal(t *testing.T, rec *ptRecorder, client string, ack packet.Type, code packet.ReasonCode, payloads ...string) {
	t.Helper()
	drops := rec.get(EventDrop, client)
	if len(drops) != len(payloads) {
		t.Fatalf("%d drops reported for %s, want %d: %+v", len(drops), client, len(payloads), drops)
	}
	for i, d := range drops {
		var re *refusedError
		if d.payload != payloads[i] || !errors.As(d.err, &re) || re.ack != ack || re.code != code {
			t.Fatalf("drop %d: %+v, want %q refused with %v 0x%02x", i, d, payloads[i], ack, byte(code))
		}
		if want := fmt.Sprintf("%v reason code 0x%02x", ack, byte(code)); !strings.Contains(d.err.Error(), want) {
			t.Errorf("drop error %q does not say %q", d.err, want)
		}
	}
}

// dfDial opens a plain TCP connection for raw bytes.
func dfDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// ---- item 20: PUBREC / PUBACK with a reason code >= 0x80 ----

// TestDefectPubrecErrorEndsQoS2: a v5 subscriber with Receive Maximum 1
// answers QoS 2 PUBLISH id 1 with 50 03 00 01 80. PUBREL follows only a
// PUBREC below 0x80 [v5 MQTT-4.3.3-4], so none comes; the packet id and
// the window's slot are free (MQTT 5 section 2.2.1): the next queued
// message is sent at once [v5 MQTT-4.9.0-2]; and the message counts as
// dropped, reported to Observers as EventDrop with the refusal.
func TestDefectPubrecErrorEndsQoS2(t *testing.T) {
	t.Parallel()
	rec := &ptRecorder{}
	srv := &Server{Observers: []Observer{rec}}
	addr := ptNewServer(t, srv)
	c, _ := v5fConnect(t, addr, "d20", func(cp *packet.Connect) { cp.Properties.ReceiveMaximum = 1 })
	c.subscribe(1, "d20/#", 2)
	for _, pl := range []string{"one", "two"} {
		if err := srv.Publish("d20/x", []byte(pl), 2, false); err != nil {
			t.Fatal(err)
		}
	}
	p := c.expectPublish()
	if p.QoS != 2 || p.PacketID != 1 || string(p.Payload) != "one" {
		t.Fatalf("got %v, want QoS 2 PUBLISH id 1 \"one\"", p)
	}
	v5fPing(t, c) // the window of 1 is full: "two" waits
	writeRaw(c.nc, []byte{0x50, 0x03, 0x00, 0x01, 0x80})
	// Not PUBREL 1 (62 02 00 01): the next packet is "two", sent because
	// the slot is free again.
	q := c.recv()
	two, ok := q.(*packet.Publish)
	if !ok || two.QoS != 2 || string(two.Payload) != "two" {
		t.Fatalf("after PUBREC 0x80 got %v, want the next message (QoS 2 \"two\")", q)
	}
	c.send(&packet.Pubrec{PacketID: two.PacketID})
	if rel, ok := c.recv().(*packet.Pubrel); !ok || rel.PacketID != two.PacketID {
		t.Fatalf("want PUBREL %d, got %v", two.PacketID, rel)
	}
	c.send(&packet.Pubcomp{PacketID: two.PacketID})
	v5fPing(t, c) // no late PUBREL
	dfIdle(t, srv, "d20")
	if d := srv.Stats().Dropped; d != 1 {
		t.Errorf("Stats().Dropped = %d, want 1", d)
	}
	dfRefusal(t, rec, "d20", packet.PUBREC, packet.UnspecifiedError, "one")
}

// TestDefectPubackErrorCounted: a PUBACK with a reason code of 0x80 or
// above also ends a QoS 1 delivery unsuccessfully: the slot is free (the
// next message flows with Receive Maximum 1) and the message counts as
// dropped, as for PUBREC.
func TestDefectPubackErrorCounted(t *testing.T) {
	t.Parallel()
	rec := &ptRecorder{}
	srv := &Server{Observers: []Observer{rec}}
	addr := ptNewServer(t, srv)
	c, _ := v5fConnect(t, addr, "d20a", func(cp *packet.Connect) { cp.Properties.ReceiveMaximum = 1 })
	c.subscribe(1, "d20a/#", 1)
	for _, pl := range []string{"one", "two", "three"} {
		srv.Publish("d20a/x", []byte(pl), 1, false)
	}
	p := c.expectPublish()
	if p.PacketID != 1 || string(p.Payload) != "one" {
		t.Fatalf("got %v, want PUBLISH id 1 \"one\"", p)
	}
	v5fPing(t, c)
	writeRaw(c.nc, []byte{0x40, 0x03, 0x00, 0x01, 0x87}) // PUBACK 0x87 Not authorized
	p = c.expectPublish()
	if string(p.Payload) != "two" {
		t.Fatalf("got %v, want \"two\"", p)
	}
	c.send(&packet.Puback{PacketID: p.PacketID, ReasonCode: packet.PayloadFormatInvalid})
	p = c.expectPublish()
	if string(p.Payload) != "three" {
		t.Fatalf("got %v, want \"three\"", p)
	}
	c.send(&packet.Puback{PacketID: p.PacketID, ReasonCode: packet.NoMatchingSubscribers}) // below 0x80: delivered
	v5fPing(t, c)
	dfIdle(t, srv, "d20a")
	if d := srv.Stats().Dropped; d != 2 {
		t.Errorf("Stats().Dropped = %d, want 2", d)
	}
	drops := rec.get(EventDrop, "d20a")
	if len(drops) != 2 {
		t.Fatalf("drops %+v, want 2", drops)
	}
	dfRefusal(t, &ptRecorder{events: drops[:1]}, "d20a", packet.PUBACK, packet.NotAuthorized, "one")
	dfRefusal(t, &ptRecorder{events: drops[1:]}, "d20a", packet.PUBACK, packet.PayloadFormatInvalid, "two")
}

// TestDefectRefusedSharedNotPassedOn: a shared subscription message that
// its member refused (PUBACK or PUBREC >= 0x80) is discarded, not given
// to another member when the first one's connection ends
// [v5 MQTT-4.8.2-6]; an unacknowledged one would be (TestV5SharedHandoverQoS1).
func TestDefectRefusedSharedNotPassedOn(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	const filter = "$share/g/d20s/#"
	a := v5shMember(t, addr, packet.V5, "d20s-a", true, filter, 2)
	srv.Publish("d20s/x", []byte("q1"), 1, false)
	srv.Publish("d20s/x", []byte("q2"), 2, false)
	for _, want := range []string{"q1", "q2"} {
		p := a.expectPublish()
		if string(p.Payload) != want {
			t.Fatalf("A got %v, want %q", p, want)
		}
		if p.QoS == 1 {
			a.send(&packet.Puback{PacketID: p.PacketID, ReasonCode: packet.UnspecifiedError})
		} else {
			a.send(&packet.Pubrec{PacketID: p.PacketID, ReasonCode: packet.QuotaExceeded})
		}
	}
	v5fPing(t, a)
	b := v5shMember(t, addr, packet.V5, "d20s-b", true, filter, 2)
	ptWaitConnected(t, srv, 2)
	a.nc.Close()
	ptWaitConnected(t, srv, 1)
	srv.Publish("d20s/x", []byte("after"), 1, false)
	if p := v5shRead(t, b); string(p.Payload) != "after" {
		t.Fatalf("B got %v first, want \"after\": a refused message was passed on", p)
	}
	if d := srv.Stats().Dropped; d != 2 {
		t.Errorf("Stats().Dropped = %d, want 2", d)
	}
}

// TestDefectPubrecV3Unchanged: 3.1.1 PUBRECs have no reason code: PUBREC
// gets PUBREL 62 02 00 01 as before [v3 MQTT-4.3.3-1], and a PUBREC with
// a reason code byte is malformed (the connection closes).
func TestDefectPubrecV3Unchanged(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c, _ := ptConnect(t, addr, packet.V311, "d20v3", true)
	c.subscribe(1, "d20v3/#", 2)
	srv.Publish("d20v3/x", []byte("one"), 2, false)
	p := c.expectPublish()
	c.send(&packet.Pubrec{PacketID: p.PacketID})
	if rel, ok := c.recv().(*packet.Pubrel); !ok || rel.PacketID != p.PacketID {
		t.Fatalf("want PUBREL %d, got %v", p.PacketID, rel)
	}
	c.send(&packet.Pubcomp{PacketID: p.PacketID})
	srv.Publish("d20v3/x", []byte("two"), 2, false)
	p = c.expectPublish()
	writeRaw(c.nc, []byte{0x50, 0x03, byte(p.PacketID >> 8), byte(p.PacketID), 0x80})
	if got := c.expectClosed(); len(got) != 0 {
		t.Fatalf("got %v for a 3.1.1 PUBREC with a reason code, want the connection closed", got)
	}
	if d := srv.Stats().Dropped; d != 0 {
		t.Errorf("Stats().Dropped = %d, want 0", d)
	}
}

// ---- item 21: MQTT 3.1 DUP on PUBREL, SUBSCRIBE, UNSUBSCRIBE ----

// TestDefectV31DupRetransmissions: a 3.1 client sends a QoS 2 PUBLISH,
// gets PUBREC, loses its connection, reconnects to its persistent session
// (clean session 0) and resends PUBREL with DUP (6A 02 00 05): it gets
// PUBCOMP and the message reached the subscriber exactly once
// [v3 MQTT-4.3.3-2]. SUBSCRIBE (8A) and UNSUBSCRIBE (AA) with DUP are
// answered too. On 3.1.1 and 5.0 the same PUBREL is malformed
// [v3 MQTT-3.6.1-1] [v5 MQTT-3.6.1-1].
func TestDefectV31DupRetransmissions(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	sub, _ := ptConnect(t, addr, packet.V311, "d21-sub", true)
	sub.subscribe(1, "d21/#", 2)

	pub := dialRaw(t, addr, packet.V31)
	pub.connect(&packet.Connect{ClientID: "d21-pub"})
	pub.send(&packet.Publish{Topic: "d21/x", QoS: 2, PacketID: 5, Payload: []byte("once")})
	if rec, ok := pub.recv().(*packet.Pubrec); !ok || rec.PacketID != 5 {
		t.Fatalf("want PUBREC 5, got %v", rec)
	}
	pub.nc.Close() // gone before the PUBREL
	ptWaitConnected(t, srv, 1)

	pub = dialRaw(t, addr, packet.V31)
	pub.connect(&packet.Connect{ClientID: "d21-pub"})
	s := dfSession(t, srv, "d21-pub")
	s.mu.Lock()
	held := s.in.Pending(5)
	s.mu.Unlock()
	if !held {
		t.Fatal("the persistent session lost QoS 2 packet id 5 before its PUBREL")
	}
	writeRaw(pub.nc, []byte{0x6A, 0x02, 0x00, 0x05})
	if comp, ok := pub.recv().(*packet.Pubcomp); !ok || comp.PacketID != 5 {
		t.Fatalf("want PUBCOMP 5 for the DUP PUBREL, got %v", comp)
	}
	s.mu.Lock()
	held = s.in.Pending(5)
	s.mu.Unlock()
	if held {
		t.Fatal("packet id 5 still held after PUBREL")
	}

	writeRaw(pub.nc, rawPkt(0x8A, rawU16(6), rawStr("d21/own"), []byte{1}))
	if ack, ok := pub.recv().(*packet.Suback); !ok || ack.PacketID != 6 || !slices.Equal(ack.ReasonCodes, []packet.ReasonCode{1}) {
		t.Fatalf("want SUBACK 6 [1] for the DUP SUBSCRIBE, got %v", ack)
	}
	writeRaw(pub.nc, rawPkt(0xAA, rawU16(7), rawStr("d21/own")))
	if ack, ok := pub.recv().(*packet.Unsuback); !ok || ack.PacketID != 7 {
		t.Fatalf("want UNSUBACK 7 for the DUP UNSUBSCRIBE, got %v", ack)
	}
	pub.send(&packet.Pingreq{})
	if p, ok := pub.recv().(*packet.Pingresp); !ok {
		t.Fatalf("want PINGRESP, got %v", p)
	}

	p := sub.expectPublish()
	if string(p.Payload) != "once" {
		t.Fatalf("subscriber got %v, want \"once\"", p)
	}
	ptAck(t, sub, p)
	if got := ptDrain(t, srv, sub, "d21/mk"); len(got) != 0 {
		t.Fatalf("delivered again: %v", got)
	}

	for _, v := range []packet.Version{packet.V311, packet.V5} {
		c, _ := ptConnect(t, addr, v, "d21-"+v.String(), true)
		writeRaw(c.nc, []byte{0x6A, 0x02, 0x00, 0x05})
		expectKicked(t, c, packet.MalformedPacket)
	}
}

// ---- item 22: a CONNACK larger than the client's Maximum Packet Size ----

// dfConnect5 is the MQTT 5 CONNECT of issue item 22 for client id id:
// clean start, keep alive 10, Maximum Packet Size max.
func dfConnect5(id string, max uint32) []byte {
	return rawPkt(0x10, rawStr("MQTT"), []byte{5, 0x02}, rawU16(10), rawProps(packet.V5, append([]byte{0x27}, v5hU32(max)...)), rawStr(id))
}

// TestDefectConnackTooLarge: the issue's CONNECT (Maximum Packet Size 2)
// gets no CONNACK: it cannot be sent [v5 MQTT-3.1.2-24] and must come
// first [v5 MQTT-3.2.0-1], so the connection is closed; no session is
// created or taken over, the client is not counted as connected, and
// Observers see no connect. A CONNACK of exactly the maximum is sent.
func TestDefectConnackTooLarge(t *testing.T) {
	t.Parallel()
	rec := &ptRecorder{}
	srv := &Server{Observers: []Observer{rec}}
	addr := ptNewServer(t, srv)

	issue := []byte{0x10, 0x13, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x0A, 0x05, 0x27, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x70}
	if !bytes.Equal(dfConnect5("p", 2), issue) {
		t.Fatalf("test bug: dfConnect5 gives % x", dfConnect5("p", 2))
	}
	nc := dfDial(t, addr)
	writeRaw(nc, issue)
	if got := readUntilClosed(t, nc, 5*time.Second); len(got) != 0 {
		t.Fatalf("server sent % x, want the connection closed without a CONNACK", got)
	}
	if st := srv.Stats(); st.ClientsConnected != 0 || st.ClientsTotal != 0 || st.Sessions != 0 {
		t.Fatalf("after the refused CONNECT: %d connected, %d total, %d sessions; want none", st.ClientsConnected, st.ClientsTotal, st.Sessions)
	}

	// A connected client "p" with a session keeps both.
	p, _ := v5fConnect(t, addr, "p", v5fPersistent)
	p.subscribe(1, "d22/#", 1)
	nc = dfDial(t, addr)
	writeRaw(nc, issue)
	if got := readUntilClosed(t, nc, 5*time.Second); len(got) != 0 {
		t.Fatalf("server sent % x, want the connection closed without a CONNACK", got)
	}
	v5fPing(t, p)
	srv.Publish("d22/x", []byte("still here"), 1, false)
	if m := p.expectPublish(); string(m.Payload) != "still here" {
		t.Fatalf("got %v", m)
	}
	if st := srv.Stats(); st.ClientsConnected != 1 || st.ClientsTotal != 1 || st.Sessions != 1 {
		t.Fatalf("%d connected, %d total, %d sessions; want 1, 1, 1", st.ClientsConnected, st.ClientsTotal, st.Sessions)
	}
	if n, d := len(rec.get(EventConnect, "")), len(rec.get(EventDisconnect, "")); n != 1 || d != 0 {
		t.Fatalf("%d connect and %d disconnect events, want 1 and 0", n, d)
	}

	// The boundary: this broker's CONNACK to such a client has n bytes;
	// Maximum Packet Size n gets it, n-1 does not.
	c, ack := v5fConnect(t, addr, "size", nil)
	n := len(mustEncode(t, ack, packet.V5))
	c.send(&packet.Disconnect{})
	c.expectClosed()
	nc = dfDial(t, addr)
	writeRaw(nc, dfConnect5("sz-1", uint32(n-1)))
	if got := readUntilClosed(t, nc, 5*time.Second); len(got) != 0 {
		t.Fatalf("Maximum Packet Size %d (CONNACK %d bytes): server sent % x", n-1, n, got)
	}
	c, ack = v5fConnect(t, addr, "sz-0", func(cp *packet.Connect) { cp.Properties.MaximumPacketSize = uint32(n) })
	if got := len(mustEncode(t, ack, packet.V5)); got != n {
		t.Fatalf("CONNACK of %d bytes, want %d", got, n)
	}
	v5fPing(t, c)
}

// dfRefuser refuses every client with 0x87 and a reason.
type dfRefuser struct{}

func (dfRefuser) Authenticate(context.Context, *AuthRequest) error {
	return &Refusal{Code: packet.NotAuthorized, Reason: "no entry"}
}

// TestDefectRefusalConnackTooLarge: a refusing CONNACK that fits only
// without its Reason String is sent without it [v5 MQTT-3.2.2-19]; one
// that does not fit at all is not sent [v5 MQTT-3.1.2-24]: the
// connection is closed without an answer.
func TestDefectRefusalConnackTooLarge(t *testing.T) {
	t.Parallel()
	srv := &Server{Authenticator: dfRefuser{}}
	addr := ptNewServer(t, srv)
	// Without a limit, the refusal carries its Reason String.
	c := dialRaw(t, addr, packet.V5)
	if ack := ptRefused(t, c, &packet.Connect{ClientID: "r", CleanStart: true}); ack.ReasonCode != packet.NotAuthorized || !strings.Contains(ack.Properties.ReasonString, "no entry") {
		t.Fatalf("got %v, want CONNACK 0x87 with a Reason String", ack)
	}
	bare := []byte{0x20, 0x03, 0x00, 0x87, 0x00} // CONNACK 0x87, no properties
	for _, tc := range []struct {
		max  uint32
		want []byte
	}{{5, bare}, {4, nil}} {
		nc := dfDial(t, addr)
		writeRaw(nc, dfConnect5("r", tc.max))
		if got := readUntilClosed(t, nc, 5*time.Second); !bytes.Equal(got, tc.want) {
			t.Errorf("Maximum Packet Size %d: got % x, want % x", tc.max, got, tc.want)
		}
	}
	if st := srv.Stats(); st.ClientsTotal != 0 || st.Sessions != 0 {
		t.Fatalf("%d clients, %d sessions after refusals", st.ClientsTotal, st.Sessions)
	}
}

// ---- item 23: invalid topic filters in UNSUBSCRIBE (and empty in SUBSCRIBE) ----

// TestDefectInvalidFilterV3: on 3.1 and 3.1.1 an UNSUBSCRIBE with an
// empty filter (the issue's A2 07 12 34 00 00 00 01 71) [v3 MQTT-4.7.3-1]
// or a misplaced wildcard [v3 MQTT-4.7.1-2] [v3 MQTT-4.7.1-3], and a
// SUBSCRIBE with an empty filter, close the connection without an answer
// and without acting on any of their filters: the subscription to "q"
// survives. A "$share/" filter that is no valid shared subscription is a
// valid 3.1.1 filter and gets its UNSUBACK.
func TestDefectInvalidFilterV3(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	cases := []struct {
		name string
		v    packet.Version
		b    []byte
	}{
		{"issue", packet.V311, []byte{0xA2, 0x07, 0x12, 0x34, 0x00, 0x00, 0x00, 0x01, 0x71}},
		{"empty 3.1", packet.V31, rawPkt(0xA2, rawU16(1), rawStr("q"), rawStr(""))},
		{"a/#/b", packet.V311, rawPkt(0xA2, rawU16(2), rawStr("q"), rawStr("a/#/b"))},
		{"#/", packet.V31, rawPkt(0xA2, rawU16(2), rawStr("q"), rawStr("#/"))},
		{"a+", packet.V311, rawPkt(0xA2, rawU16(3), rawStr("q"), rawStr("a+"))},
		{"$share/g/a/#/b", packet.V311, rawPkt(0xA2, rawU16(3), rawStr("q"), rawStr("$share/g/a/#/b"))},
		{"SUBSCRIBE empty", packet.V311, rawPkt(0x82, rawU16(4), rawStr("q2"), []byte{1}, rawStr(""), []byte{1})},
		{"SUBSCRIBE empty 3.1", packet.V31, rawPkt(0x82, rawU16(4), rawStr(""), []byte{0})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := ptConnect(t, addr, tc.v, "d23", false)
			c.subscribe(9, "q", 1)
			writeRaw(c.nc, tc.b)
			if got := c.expectClosed(); len(got) != 0 {
				t.Fatalf("got %v, want the connection closed without an answer", got)
			}
			ptWaitConnected(t, srv, 0)
			s := dfSession(t, srv, "d23")
			s.mu.Lock()
			subs := len(s.subs)
			_, q := s.subs["q"]
			s.mu.Unlock()
			if subs != 1 || !q || srv.Stats().Subscriptions != 1 {
				t.Fatalf("subscriptions after the refused packet: %d (q: %v), want q alone", subs, q)
			}
		})
	}
	c, _ := ptConnect(t, addr, packet.V311, "d23-share", true)
	writeRaw(c.nc, rawPkt(0xA2, rawU16(5), rawStr("$share/g"), rawStr("$share//a")))
	if ack, ok := c.recv().(*packet.Unsuback); !ok || ack.PacketID != 5 {
		t.Fatalf("want UNSUBACK 5, got %v", ack)
	}
}

// TestDefectInvalidFilterV5: MQTT 5 answers each invalid UNSUBSCRIBE
// filter with 0x8F Topic Filter invalid [v5 MQTT-4.7.3-1]
// [v5 MQTT-4.7.1-1] [v5 MQTT-4.7.1-2] and handles the others (the
// issue's packet, with its property length, once gave 0x11); the
// connection stays. An empty SUBSCRIBE filter gets 0x8F in the SUBACK,
// the same answer.
func TestDefectInvalidFilterV5(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c, _ := v5fConnect(t, addr, "d23v5", nil)
	c.subscribe(1, "q", 1)
	writeRaw(c.nc, []byte{0xA2, 0x08, 0x12, 0x34, 0x00, 0x00, 0x00, 0x00, 0x01, 0x71})
	ack, ok := c.recv().(*packet.Unsuback)
	if want := []packet.ReasonCode{packet.TopicFilterInvalid, packet.Success}; !ok || ack.PacketID != 0x1234 || !slices.Equal(ack.ReasonCodes, want) {
		t.Fatalf("got %v, want UNSUBACK 0x1234 [0x8f 0x00]", ack)
	}
	if n := srv.Stats().Subscriptions; n != 0 {
		t.Fatalf("%d subscriptions, want 0: q was unsubscribed", n)
	}

	c.subscribe(2, "q", 1)
	filters := []string{"a/#/b", "a+", "#/", "", "$share/g", "$share/g/a/#/b", "q", "never"}
	c.send(&packet.Unsubscribe{PacketID: 3, Filters: filters})
	ack, ok = c.recv().(*packet.Unsuback)
	f := packet.TopicFilterInvalid
	if want := []packet.ReasonCode{f, f, f, f, f, f, packet.Success, packet.NoSubscriptionExisted}; !ok || ack.PacketID != 3 || !slices.Equal(ack.ReasonCodes, want) {
		t.Fatalf("got %v, want UNSUBACK 3 %v", ack, want)
	}

	writeRaw(c.nc, rawPkt(0x82, rawU16(4), rawProps(packet.V5), rawStr(""), []byte{1}, rawStr("q"), []byte{1}))
	sa, ok := c.recv().(*packet.Suback)
	if want := []packet.ReasonCode{packet.TopicFilterInvalid, packet.GrantedQoS1}; !ok || sa.PacketID != 4 || !slices.Equal(sa.ReasonCodes, want) {
		t.Fatalf("got %v, want SUBACK 4 %v", sa, want)
	}
	v5fPing(t, c)
}
