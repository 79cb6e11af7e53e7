package broker

// Conformance tests for the MQTT 5.0 statements of the conformance matrix
// (CONFORMANCE.md) that no other test checked: black-box over loopback
// sockets with raw packets, one server per test, each test naming in its
// comment the normative statements it checks ([v5 MQTT-x.y.z-n]). Wire
// format rules are checked the way a client meets them: the broker must
// close the connection (with DISCONNECT 0x81 after the CONNACK), and the
// valid twin of every bad packet must be accepted, which shows the bad one
// is refused for the rule named and for nothing else.
//
// Timing: nothing here asserts on the clock; waits poll with generous
// limits.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/transport"
)

// ---- helpers (prefixed cf5 to keep clear of other test files) ----

// cf5Connect is an MQTT 5 CONNECT spelled out field by field: the connect
// flags are given as they go on the wire, so that they can disagree with
// the payload.
type cf5Connect struct {
	flags   byte     // 0x02 Clean Start, 0x04 Will, 0x80 User Name, 0x40 Password
	props   []byte   // CONNECT properties, without their length
	payload [][]byte // payload fields, encoded, in order
}

func (c cf5Connect) bytes() []byte {
	parts := [][]byte{rawStr("MQTT"), {byte(packet.V5)}, {c.flags}, rawU16(0), rawProps(packet.V5, c.props)}
	return rawPkt(0x10, append(parts, c.payload...)...)
}

// cf5Fields concatenates payload fields.
func cf5Fields(fs ...[]byte) [][]byte { return fs }

// cf5Dial connects an MQTT 5 client with Clean Start 1; mod, if not nil,
// adjusts the CONNECT.
func cf5Dial(t *testing.T, addr, id string, mod func(*packet.Connect)) (*rawClient, *packet.Connack) {
	t.Helper()
	c := dialRaw(t, addr, packet.V5)
	cp := &packet.Connect{ClientID: id, CleanStart: true}
	if mod != nil {
		mod(cp)
	}
	return c, c.connect(cp)
}

// cf5Kicked waits for the server to close c and checks that the last
// packet before the close is DISCONNECT want, and that nothing follows it
// ([v5 MQTT-3.14.4-1] [v5 MQTT-3.14.4-2], checked by every caller). It
// returns the packets received before the DISCONNECT.
func cf5Kicked(t *testing.T, c *rawClient, want packet.ReasonCode, ids string) []packet.Packet {
	t.Helper()
	got := c.expectClosed()
	if len(got) == 0 {
		t.Fatalf("closed without DISCONNECT, want DISCONNECT 0x%02x %s", byte(want), ids)
	}
	d, ok := got[len(got)-1].(*packet.Disconnect)
	if !ok || d.ReasonCode != want {
		t.Fatalf("got %v before the close, want DISCONNECT 0x%02x (%v) last %s", got, byte(want), want, ids)
	}
	for _, p := range got[:len(got)-1] {
		if p.Type() == packet.CONNACK || p.Type() == packet.DISCONNECT {
			t.Fatalf("got %v before the close, want no %v %s", got, p.Type(), ids)
		}
	}
	return got[:len(got)-1]
}

// cf5Recorder is an Authenticator that accepts everybody except the
// user name "refuse-me" (refused with code), and remembers the user names
// and passwords it saw.
type cf5Recorder struct {
	code packet.ReasonCode
	mu   sync.Mutex
	seen []string // "client id|user name|password"
}

func (r *cf5Recorder) Authenticate(_ context.Context, req *AuthRequest) error {
	r.mu.Lock()
	r.seen = append(r.seen, req.ClientID+"|"+req.Username+"|"+string(req.Password))
	r.mu.Unlock()
	if req.Username == "refuse-me" {
		return &Refusal{Code: r.code, Reason: "refused by the test"}
	}
	return nil
}

func (r *cf5Recorder) saw() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// ---- 3.1 CONNECT ----

// TestConfV5ConnectFormat: CONNECTs whose payload disagrees with their
// flags, or whose strings are not UTF-8, are closed without a successful
// CONNACK [v5 MQTT-3.1.4-1], while their valid twins connect:
//   - Will Flag 1 needs Will Properties, Will Topic and Will Payload
//     [v5 MQTT-3.1.2-9];
//   - User Name Flag 0: no User Name [v5 MQTT-3.1.2-16]; 1: a User Name
//     [v5 MQTT-3.1.2-17];
//   - Password Flag 0: no Password [v5 MQTT-3.1.2-18]; 1: a Password
//     [v5 MQTT-3.1.2-19];
//   - the Client Identifier is present, first [v5 MQTT-3.1.3-3], and a
//     UTF-8 string [v5 MQTT-3.1.3-4]; so are the Will Topic
//     [v5 MQTT-3.1.3-11] and the User Name [v5 MQTT-3.1.3-12].
func TestConfV5ConnectFormat(t *testing.T) {
	t.Parallel()
	addr := ptNewServer(t, &Server{})
	str, bin := rawStr, func(s string) []byte { return rawStr(s) }
	noProps := rawProps(packet.V5)
	for _, tc := range []struct {
		name, ids string
		bad, good cf5Connect
	}{
		{"will flag without will fields", "[v5 MQTT-3.1.2-9]",
			cf5Connect{0x06, nil, cf5Fields(str("c1"))},
			cf5Connect{0x06, nil, cf5Fields(str("c1"), noProps, str("will/t"), bin("bye"))}},
		{"will flag without will payload", "[v5 MQTT-3.1.2-9]",
			cf5Connect{0x06, nil, cf5Fields(str("c2"), noProps, str("will/t"))},
			cf5Connect{0x06, nil, cf5Fields(str("c2"), noProps, str("will/t"), bin(""))}},
		{"user name flag 0 with a user name", "[v5 MQTT-3.1.2-16]",
			cf5Connect{0x02, nil, cf5Fields(str("c3"), str("user"))},
			cf5Connect{0x82, nil, cf5Fields(str("c3"), str("user"))}},
		{"user name flag 1 without a user name", "[v5 MQTT-3.1.2-17]",
			cf5Connect{0x82, nil, cf5Fields(str("c4"))},
			cf5Connect{0x02, nil, cf5Fields(str("c4"))}},
		{"password flag 0 with a password", "[v5 MQTT-3.1.2-18]",
			cf5Connect{0x82, nil, cf5Fields(str("c5"), str("user"), bin("pw"))},
			cf5Connect{0xc2, nil, cf5Fields(str("c5"), str("user"), bin("pw"))}},
		{"password flag 1 without a password", "[v5 MQTT-3.1.2-19]",
			cf5Connect{0xc2, nil, cf5Fields(str("c6"), str("user"))},
			cf5Connect{0x82, nil, cf5Fields(str("c6"), str("user"))}},
		{"password flag 1 alone without a password", "[v5 MQTT-3.1.2-19]",
			cf5Connect{0x42, nil, cf5Fields(str("c7"))},
			cf5Connect{0x42, nil, cf5Fields(str("c7"), bin("pw"))}},
		{"no client identifier", "[v5 MQTT-3.1.3-3]",
			cf5Connect{0x02, nil, nil},
			cf5Connect{0x02, nil, cf5Fields(str(""))}},
		{"client identifier not UTF-8", "[v5 MQTT-3.1.3-4]",
			cf5Connect{0x02, nil, cf5Fields(str("c\xff8"))},
			cf5Connect{0x02, nil, cf5Fields(str("c8"))}},
		{"client identifier with a surrogate", "[v5 MQTT-3.1.3-4]",
			cf5Connect{0x02, nil, cf5Fields(str("c\xed\xa0\x809"))},
			cf5Connect{0x02, nil, cf5Fields(str("c9"))}},
		{"will topic not UTF-8", "[v5 MQTT-3.1.3-11]",
			cf5Connect{0x06, nil, cf5Fields(str("c10"), noProps, str("will/\xc0\xaf"), bin("bye"))},
			cf5Connect{0x06, nil, cf5Fields(str("c10"), noProps, str("will/ok"), bin("bye"))}},
		{"user name not UTF-8", "[v5 MQTT-3.1.3-12]",
			cf5Connect{0x82, nil, cf5Fields(str("c11"), str("us\x80er"))},
			cf5Connect{0x82, nil, cf5Fields(str("c11"), str("user"))}},
		{"user name with U+0000", "[v5 MQTT-3.1.3-12]",
			cf5Connect{0x82, nil, cf5Fields(str("c12"), str("us\x00er"))},
			cf5Connect{0x82, nil, cf5Fields(str("c12"), str("user"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := tc.good.bytes()
			mustDecode(t, 0, good)
			g := dialRaw(t, addr, packet.V5)
			writeRaw(g.nc, good)
			if ack, ok := g.recv().(*packet.Connack); !ok || ack.ReasonCode != packet.Success {
				t.Fatalf("valid twin: got %v, want CONNACK 0x00", ack)
			}
			g.send(&packet.Disconnect{})
			g.expectClosed()

			b := dialRaw(t, addr, packet.V5)
			writeRaw(b.nc, tc.bad.bytes())
			expectRefused(t, b.nc) // [v5 MQTT-3.1.4-1]
		})
	}
}

// TestConfV5ConnectPayloadOrder: the CONNECT payload is read in the order
// Client Identifier, Will Properties, Will Topic, Will Payload, User Name,
// Password [v5 MQTT-3.1.3-1]: each field reaches its use (the
// Authenticator sees the user name and password, the will goes to its
// topic with its payload and its User Properties in their order
// [v5 MQTT-3.1.3-10]). The will is stored on the server and published when
// the connection drops [v5 MQTT-3.1.2-7].
func TestConfV5ConnectPayloadOrder(t *testing.T) {
	t.Parallel()
	auth := &cf5Recorder{}
	srv := &Server{Authenticator: auth}
	addr := ptNewServer(t, srv)
	w := v5sWatcher(t, addr, packet.V5, "watcher")

	c := dialRaw(t, addr, packet.V5)
	willProps := v5hCat(rawUserProp("z", "1"), rawUserProp("a", "2"), rawUserProp("z", "3"))
	cc := cf5Connect{flags: 0x02 | 0x04 | 0x08 | 0x40 | 0x80, payload: cf5Fields(
		rawStr("ordered"), rawProps(packet.V5, willProps), rawStr("will/ordered"), rawStr("will-payload"),
		rawStr("user-name"), rawStr("pass-word"))}
	writeRaw(c.nc, cc.bytes())
	if ack, ok := c.recv().(*packet.Connack); !ok || ack.ReasonCode != packet.Success {
		t.Fatalf("got %v, want CONNACK 0x00", ack)
	}
	if got, want := auth.saw(), []string{"watcher||", "ordered|user-name|pass-word"}; !slices.Equal(got, want) {
		t.Fatalf("Authenticator saw %q, want %q [v5 MQTT-3.1.3-1]", got, want)
	}
	c.nc.Close() // no DISCONNECT: the will is published
	p := v5sExpectWill(t, w, "will/ordered", "will-payload")
	if p.QoS != 1 {
		t.Errorf("will QoS %d, want the Will QoS 1", p.QoS)
	}
	want := []packet.UserProperty{{Key: "z", Value: "1"}, {Key: "a", Value: "2"}, {Key: "z", Value: "3"}}
	if !slices.Equal(p.Properties.User, want) {
		t.Errorf("will User Properties %v, want %v in that order [v5 MQTT-3.1.3-10]", p.Properties.User, want)
	}
}

// TestConfV5WillWithSession: the Will Message is stored on the server and
// associated with the Session [v5 MQTT-3.1.2-7]: with a Will Delay of an
// hour and a Session Expiry of 1 s, the will is published when the session
// ends, long before the delay; once published it is removed from the
// session state [v5 MQTT-3.1.2-10], so that a client that resumes the
// session and then starts afresh (Clean Start 1, which ends the old session
// and would send a will still held) does not publish it a second time.
func TestConfV5WillWithSession(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	w := v5sWatcher(t, addr, packet.V5, "watcher")

	c, _ := v5sConnect(t, addr, "with-session", false, 1, func(cp *packet.Connect) { cp.Will = v5sWill("with-session", 3600) })
	c.nc.Close()
	v5sExpectWill(t, w, "will/with-session", "gone-with-session") // at the end of the session, after 1 s

	// Delay 1 s, session kept for a minute: published once when the delay
	// has passed; the session lives on without it.
	c, _ = v5sConnect(t, addr, "kept", false, 60, func(cp *packet.Connect) { cp.Will = v5sWill("kept", 1) })
	c.nc.Close()
	v5sExpectWill(t, w, "will/kept", "gone-kept")
	c, ack := v5sConnect(t, addr, "kept", false, 60, nil)
	if !ack.SessionPresent {
		t.Fatal("session not resumed")
	}
	v5sDisconnect(t, c, &packet.Disconnect{})
	c, _ = v5sConnect(t, addr, "kept", true, 0, nil) // ends the old session
	v5sDisconnect(t, c, &packet.Disconnect{})
	if got := ptDrain(t, srv, w, "mk"); len(got) != 0 {
		t.Fatalf("watcher got %q: the will was published twice [v5 MQTT-3.1.2-10]", ptPayloads(got))
	}
}

// TestConfV5ClientIdentifiers: the server accepts Client Identifiers of 1
// to 23 characters of 0-9, a-z and A-Z as they are (no Assigned Client
// Identifier) [v5 MQTT-3.1.3-5], and keeps the session state of each under
// its Client Identifier [v5 MQTT-3.1.3-2]: every client resumes its own
// session, with the message queued for its own subscription only.
func TestConfV5ClientIdentifiers(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	ids := []string{"a", "Z", "7", "0123456789abcdefghijXYZ", "abcdefghijklmnopqrstuvw", "ABCDEFGHIJKLMNOPQRSTUVW", "x0Y1z2"}
	for _, id := range ids {
		c, ack := v5sConnect(t, addr, id, false, 60, nil)
		if ack.Properties.AssignedClientID != "" {
			t.Fatalf("%q: Assigned Client Identifier %q [v5 MQTT-3.1.3-5]", id, ack.Properties.AssignedClientID)
		}
		v5sSubscribe(t, c, 1, "own/"+id)
		v5sDisconnect(t, c, &packet.Disconnect{})
	}
	ptWaitConnected(t, srv, 0)
	for _, id := range ids {
		if err := srv.Publish("own/"+id, []byte("for-"+id), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		c, ack := v5sConnect(t, addr, id, false, 60, nil)
		if !ack.SessionPresent {
			t.Fatalf("%q: Session Present 0, want its session resumed [v5 MQTT-3.1.3-2]", id)
		}
		if got := ptPayloads(ptDrain(t, srv, c, "mk")); !slices.Equal(got, []string{"for-" + id}) {
			t.Fatalf("%q: resumed session delivered %q, want [for-%s] [v5 MQTT-3.1.3-2]", id, got, id)
		}
		v5sDisconnect(t, c, &packet.Disconnect{})
	}
}

// TestConfV5ClientIDRefused: a Client Identifier the server rejects (here
// through its Authenticator) gets CONNACK 0x85 Client Identifier not
// valid, and then the connection is closed [v5 MQTT-3.1.3-8]
// [v5 MQTT-3.2.2-7] [v5 MQTT-4.13.2-1].
func TestConfV5ClientIDRefused(t *testing.T) {
	t.Parallel()
	addr := ptNewServer(t, &Server{Authenticator: &cf5Recorder{code: packet.ClientIdentifierNotValid}})
	c := dialRaw(t, addr, packet.V5)
	ack := ptRefused(t, c, &packet.Connect{ClientID: "unwelcome", CleanStart: true, Username: "refuse-me"})
	if ack.ReasonCode != packet.ClientIdentifierNotValid {
		t.Fatalf("CONNACK 0x%02x, want 0x85 [v5 MQTT-3.1.3-8]", byte(ack.ReasonCode))
	}
}

// TestConfV5CleanStartProcessing: the server performs the Clean Start
// processing of section 3.1.2.4 [v5 MQTT-3.1.4-4]: Clean Start 0 resumes
// the session (its subscription still delivers), Clean Start 1 discards
// it (Session Present 0, the subscription is gone).
func TestConfV5CleanStartProcessing(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c, _ := v5sConnect(t, addr, "cs", false, 60, nil)
	v5sSubscribe(t, c, 1, "cs/t")
	v5sDisconnect(t, c, &packet.Disconnect{})

	c, ack := v5sConnect(t, addr, "cs", false, 60, nil)
	if !ack.SessionPresent {
		t.Fatal("Clean Start 0: Session Present 0 [v5 MQTT-3.1.4-4]")
	}
	srv.Publish("cs/t", []byte("resumed"), 1, false)
	if got := ptPayloads(ptDrain(t, srv, c, "mk")); !slices.Equal(got, []string{"resumed"}) {
		t.Fatalf("Clean Start 0: got %q, want [resumed] [v5 MQTT-3.1.4-4]", got)
	}
	v5sDisconnect(t, c, &packet.Disconnect{})

	c, ack = v5sConnect(t, addr, "cs", true, 60, nil)
	if ack.SessionPresent {
		t.Fatal("Clean Start 1: Session Present 1 [v5 MQTT-3.1.4-4]")
	}
	c.subscribe(1, "mk", 0)
	srv.Publish("cs/t", []byte("discarded"), 1, false)
	if got := ptDrain(t, srv, c, "mk"); len(got) != 0 {
		t.Fatalf("Clean Start 1: got %q from the old session [v5 MQTT-3.1.4-4]", ptPayloads(got))
	}
}

// TestConfV5RejectedConnectIgnoresTheRest: a client may send packets right
// after its CONNECT; if the server rejects the CONNECT it processes none of
// them [v5 MQTT-3.1.4-6]: a retained PUBLISH and a SUBSCRIBE sent in the
// same write as a refused CONNECT get no answer and leave no trace, and
// the connection is closed after the refusing CONNACK [v5 MQTT-3.2.2-7].
// The same holds for a CONNECT that breaks the format [v5 MQTT-3.1.4-1].
func TestConfV5RejectedConnectIgnoresTheRest(t *testing.T) {
	t.Parallel()
	srv := &Server{Authenticator: &cf5Recorder{code: packet.NotAuthorized}}
	addr := ptNewServer(t, srv)
	pipelined := v5hCat(
		rawPublish(packet.V5, 0x03, "pipe/retained", 1, nil, "must-not-be-kept"),
		v5hSubscribe(2, "pipe/#", 1))
	refused := mustEncode(t, &packet.Connect{Version: packet.V5, ClientID: "pipe1", CleanStart: true, Username: "refuse-me"}, packet.V5)
	badFormat := cf5Connect{0x82, nil, cf5Fields(rawStr("pipe2"))}.bytes() // user name flag, no user name

	c := dialRaw(t, addr, packet.V5)
	writeRaw(c.nc, append(refused, pipelined...))
	got := c.expectClosed()
	if len(got) != 1 {
		t.Fatalf("got %v, want one refusing CONNACK and the close [v5 MQTT-3.1.4-6]", got)
	}
	if ack, ok := got[0].(*packet.Connack); !ok || ack.ReasonCode != packet.NotAuthorized {
		t.Fatalf("got %v, want CONNACK 0x87", got[0])
	}

	c = dialRaw(t, addr, packet.V5)
	writeRaw(c.nc, append(badFormat, pipelined...))
	expectRefused(t, c.nc) // [v5 MQTT-3.1.4-1]

	w, _ := cf5Dial(t, addr, "witness", nil)
	w.subscribe(1, "mk", 0)
	w.subscribe(2, "pipe/#", 1)
	if got := ptDrain(t, srv, w, "mk"); len(got) != 0 {
		t.Fatalf("a PUBLISH sent after a rejected CONNECT was processed: retained %q [v5 MQTT-3.1.4-6]", ptPayloads(got))
	}
	if n := srv.Stats().Subscriptions; n != 2 {
		t.Fatalf("%d subscriptions, want the witness's 2: a SUBSCRIBE after a rejected CONNECT was processed [v5 MQTT-3.1.4-6]", n)
	}
}

// TestConfV5SecondConnect: a second CONNECT on a connection is a Protocol
// Error: DISCONNECT 0x82 and the close [v5 MQTT-3.1.0-2], and no second
// CONNACK, whether the CONNECT is valid or not [v5 MQTT-3.2.0-2].
func TestConfV5SecondConnect(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	for _, second := range []*packet.Connect{
		{Version: packet.V5, ClientID: "twice", CleanStart: true},
		{Version: packet.V5, ClientID: "other", CleanStart: false},
	} {
		c, _ := cf5Dial(t, addr, "twice", nil)
		c.send(second)
		cf5Kicked(t, c, packet.ProtocolErrorCode, "[v5 MQTT-3.1.0-2] [v5 MQTT-3.2.0-2]")
	}
	ptWaitConnected(t, srv, 0)
}

// ---- 3.2 CONNACK ----

// TestConfV5ConnackFirst: the CONNACK 0x00 comes before any other packet
// [v5 MQTT-3.2.0-1], even when the resumed session has messages waiting
// and more are published while the client connects.
func TestConfV5ConnackFirst(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c, _ := v5sConnect(t, addr, "first", false, 60, nil)
	v5sSubscribe(t, c, 1, "first/#")
	v5sDisconnect(t, c, &packet.Disconnect{})
	ptWaitConnected(t, srv, 0)
	for i := range 50 {
		srv.Publish("first/q", []byte(fmt.Sprint("queued-", i)), 1, false)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // live messages while the client connects
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			srv.Publish("first/live", []byte(fmt.Sprint("live-", i)), 0, false)
			time.Sleep(time.Millisecond)
		}
	}()
	defer func() { close(stop); <-done }()
	for range 5 {
		c := dialRaw(t, addr, packet.V5)
		cp := &packet.Connect{Version: packet.V5, ClientID: "first"}
		cp.Properties.SessionExpiry = 60
		c.send(cp)
		p := c.recv()
		if ack, ok := p.(*packet.Connack); !ok || ack.ReasonCode != packet.Success {
			t.Fatalf("first packet %v, want CONNACK 0x00 [v5 MQTT-3.2.0-1]", p)
		}
		if pub := c.expectPublish(); pub.Topic != "first/q" && pub.Topic != "first/live" {
			t.Fatalf("got %v", pub)
		}
		c.nc.Close()
		ptWaitConnected(t, srv, 0)
	}
}

// TestConfV5ClientKeepAliveUsed: a server that sends no Server Keep Alive
// uses the Keep Alive of the client's CONNECT [v5 MQTT-3.2.2-22]: with 1 s
// the client stays connected as long as it sends a PINGREQ within 1.5 s,
// and is disconnected (0x8D) once silent; with 0 it is never disconnected
// for silence.
func TestConfV5ClientKeepAliveUsed(t *testing.T) {
	t.Parallel()
	addr := ptNewServer(t, &Server{})
	c, ack := cf5Dial(t, addr, "ka1", func(cp *packet.Connect) { cp.KeepAlive = 1 })
	if ack.Properties.Has(packet.PropServerKeepAlive) {
		t.Fatalf("CONNACK has Server Keep Alive %d", ack.Properties.ServerKeepAlive)
	}
	for range 5 { // 2 s in all, past 1.5 x 1 s
		time.Sleep(400 * time.Millisecond)
		c.send(&packet.Pingreq{})
		if p := c.recv(); p.Type() != packet.PINGRESP {
			t.Fatalf("got %v, want PINGRESP [v5 MQTT-3.2.2-22]", p)
		}
	}
	got := c.expectClosed()
	if len(got) != 1 || got[0].Type() != packet.DISCONNECT || got[0].(*packet.Disconnect).ReasonCode != packet.KeepAliveTimeout {
		t.Fatalf("got %v, want DISCONNECT 0x8D once silent for 1.5 x the client's Keep Alive [v5 MQTT-3.2.2-22]", got)
	}

	c, _ = cf5Dial(t, addr, "ka0", func(cp *packet.Connect) { cp.KeepAlive = 0 })
	c.noPacket(2 * time.Second) // no keep alive: silence is no reason to close
	c.send(&packet.Pingreq{})
	if p := c.recv(); p.Type() != packet.PINGRESP {
		t.Fatalf("got %v, want PINGRESP [v5 MQTT-3.2.2-22]", p)
	}
}

// ---- 3.3 PUBLISH and 4.3 QoS flows ----

// TestConfV5PublishAnswers: the receiver of a PUBLISH answers as its QoS
// calls for [v5 MQTT-3.3.4-1]: nothing for QoS 0 (the PINGRESP to the
// PINGREQ sent after it is the next packet), a PUBACK with the PUBLISH's
// packet id for QoS 1, once the message is owned: a subscriber gets it
// [v5 MQTT-4.3.2-4], and a PUBREC for QoS 2.
func TestConfV5PublishAnswers(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	sub, _ := cf5Dial(t, addr, "sub", nil)
	sub.subscribe(1, "ans/#", 2)
	sub.subscribe(2, "mk", 0)
	pub, _ := cf5Dial(t, addr, "pub", nil)

	pub.send(&packet.Publish{Topic: "ans/0", Payload: []byte("q0")})
	pub.send(&packet.Pingreq{})
	if p := pub.recv(); p.Type() != packet.PINGRESP {
		t.Fatalf("QoS 0: got %v, want no answer (then the PINGRESP) [v5 MQTT-3.3.4-1]", p)
	}
	for _, id := range []uint16{7, 65535} {
		pub.send(&packet.Publish{Topic: "ans/1", QoS: 1, PacketID: id, Payload: []byte("q1")})
		if a, ok := pub.recv().(*packet.Puback); !ok || a.PacketID != id || a.ReasonCode != packet.Success {
			t.Fatalf("QoS 1 id %d: got %v, want PUBACK %d [v5 MQTT-3.3.4-1] [v5 MQTT-4.3.2-4]", id, a, id)
		}
	}
	pub.send(&packet.Publish{Topic: "ans/2", QoS: 2, PacketID: 9, Payload: []byte("q2")})
	if r, ok := pub.recv().(*packet.Pubrec); !ok || r.PacketID != 9 || r.ReasonCode != packet.Success {
		t.Fatalf("QoS 2: got %v, want PUBREC 9 [v5 MQTT-3.3.4-1]", r)
	}
	pub.send(&packet.Pubrel{PacketID: 9})
	if c, ok := pub.recv().(*packet.Pubcomp); !ok || c.PacketID != 9 {
		t.Fatalf("got %v, want PUBCOMP 9", c)
	}
	if got := ptPayloads(ptDrain(t, srv, sub, "mk")); !slices.Equal(got, []string{"q0", "q1", "q1", "q2"}) {
		t.Fatalf("subscriber got %q, want [q0 q1 q1 q2]: a PUBACK for a message not owned [v5 MQTT-4.3.2-4]", got)
	}
}

// TestConfV5OutboundFlows: what the server sends as the sender of the QoS
// flows. A new message gets a non-zero packet id not in use
// [v5 MQTT-2.2.1-4] [v5 MQTT-4.3.2-1] [v5 MQTT-4.3.3-1] and goes out with
// DUP 0 [v5 MQTT-4.3.1-1] [v5 MQTT-4.3.2-2] [v5 MQTT-4.3.3-2], whatever the
// DUP flag of the PUBLISH it came in [v5 MQTT-3.3.1-3]. Unacknowledged
// messages are kept: after a reconnect a QoS 1 PUBLISH without PUBACK
// [v5 MQTT-4.3.2-3] and a QoS 2 PUBLISH without PUBREC [v5 MQTT-4.3.3-3]
// are resent with their packet id and DUP 1 [v5 MQTT-3.3.1-1]; a QoS 2
// message whose PUBREC came is resent as PUBREL, never again as PUBLISH
// [v5 MQTT-4.3.3-6], until its PUBCOMP [v5 MQTT-4.3.3-5]. Once acknowledged,
// nothing is resent.
func TestConfV5OutboundFlows(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	persistent := func(cp *packet.Connect) { cp.Properties.ReceiveMaximum = 50 }
	s, _ := v5sConnect(t, addr, "s", false, 60, persistent)
	s.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
		{Filter: "f/q2/#", QoS: 2}, {Filter: "f/q1/#", QoS: 1}, {Filter: "f/q0/#", QoS: 0}, {Filter: "mk", QoS: 0}}})
	if _, ok := s.recv().(*packet.Suback); !ok {
		t.Fatal("want SUBACK")
	}
	pub, _ := cf5Dial(t, addr, "pub", nil)
	// Inbound DUP 1 on first sends: the outbound DUP must not copy it.
	var raw []byte
	for i := range 10 {
		raw = append(raw, rawPublish(packet.V5, 0x0a, "f/q1/x", uint16(100+i), nil, fmt.Sprint("one-", i))...)
		raw = append(raw, rawPublish(packet.V5, 0x0c, "f/q2/x", uint16(200+i), nil, fmt.Sprint("two-", i))...)
		raw = append(raw, rawPublish(packet.V5, 0x0a, "f/q0/x", uint16(300+i), nil, fmt.Sprint("zero-", i))...)
	}
	writeRaw(pub.nc, raw)

	byID := map[uint16]*packet.Publish{}
	var q1, q2 []*packet.Publish
	for range 30 {
		p := s.expectPublish()
		if p.Dup {
			t.Fatalf("first send of %v has DUP 1 [v5 MQTT-3.3.1-3] [v5 MQTT-4.3.1-1] [v5 MQTT-4.3.2-2] [v5 MQTT-4.3.3-2]", p)
		}
		switch p.QoS {
		case 0:
			if p.PacketID != 0 {
				t.Fatalf("QoS 0 with packet id %d", p.PacketID)
			}
			continue
		case 1:
			q1 = append(q1, p)
		case 2:
			q2 = append(q2, p)
		}
		if p.PacketID == 0 || byID[p.PacketID] != nil {
			t.Fatalf("packet id %d of %v is 0 or in use by %v [v5 MQTT-2.2.1-4] [v5 MQTT-4.3.2-1] [v5 MQTT-4.3.3-1]", p.PacketID, p, byID[p.PacketID])
		}
		byID[p.PacketID] = p
	}
	if len(q1) != 10 || len(q2) != 10 {
		t.Fatalf("got %d QoS 1 and %d QoS 2 PUBLISHes, want 10 each", len(q1), len(q2))
	}
	for range 30 { // the publisher's acknowledgements
		switch a := pub.recv().(type) {
		case *packet.Puback:
		case *packet.Pubrec:
			pub.send(&packet.Pubrel{PacketID: a.PacketID})
		default:
			t.Fatalf("publisher got %v", a)
		}
	}

	// PUBREC the first five QoS 2 messages (PUBREL comes back, no PUBCOMP
	// yet), PUBACK nothing, and drop the connection.
	for _, p := range q2[:5] {
		s.send(&packet.Pubrec{PacketID: p.PacketID})
		if r, ok := s.recv().(*packet.Pubrel); !ok || r.PacketID != p.PacketID {
			t.Fatalf("got %v, want PUBREL %d", r, p.PacketID)
		}
	}
	s.nc.Close()
	ptWaitConnected(t, srv, 1)

	s, _ = v5sConnect(t, addr, "s", false, 60, persistent)
	pubrels := map[uint16]bool{}
	resent := map[uint16]bool{}
	for range 20 { // 10 QoS 1 and 5 QoS 2 PUBLISHes, 5 PUBRELs
		switch p := s.recv().(type) {
		case *packet.Publish:
			orig := byID[p.PacketID]
			if orig == nil || string(orig.Payload) != string(p.Payload) || !p.Dup {
				t.Fatalf("resent %v, want a PUBLISH sent before with its packet id and DUP 1 [v5 MQTT-3.3.1-1]", p)
			}
			if p.QoS == 2 && slices.ContainsFunc(q2[:5], func(o *packet.Publish) bool { return o.PacketID == p.PacketID }) {
				t.Fatalf("PUBLISH %d resent after its PUBREL was sent [v5 MQTT-4.3.3-6]", p.PacketID)
			}
			resent[p.PacketID] = true
		case *packet.Pubrel:
			pubrels[p.PacketID] = true
		default:
			t.Fatalf("got %v while the session resends", p)
		}
	}
	for _, p := range q1 {
		if !resent[p.PacketID] {
			t.Errorf("QoS 1 %d not resent before its PUBACK [v5 MQTT-4.3.2-3]", p.PacketID)
		}
	}
	for i, p := range q2 {
		if i < 5 && !pubrels[p.PacketID] {
			t.Errorf("PUBREL %d not resent before its PUBCOMP [v5 MQTT-4.3.3-5]", p.PacketID)
		}
		if i >= 5 && !resent[p.PacketID] {
			t.Errorf("QoS 2 %d not resent before its PUBREC [v5 MQTT-4.3.3-3]", p.PacketID)
		}
	}
	// Complete everything; then nothing is left to resend.
	for _, p := range q1 {
		s.send(&packet.Puback{PacketID: p.PacketID})
	}
	for _, p := range q2[:5] {
		s.send(&packet.Pubcomp{PacketID: p.PacketID})
	}
	for _, p := range q2[5:] {
		s.send(&packet.Pubrec{PacketID: p.PacketID})
		if r, ok := s.recv().(*packet.Pubrel); !ok || r.PacketID != p.PacketID {
			t.Fatalf("got %v, want PUBREL %d", r, p.PacketID)
		}
		s.send(&packet.Pubcomp{PacketID: p.PacketID})
	}
	s.nc.Close()
	ptWaitConnected(t, srv, 1)
	s, _ = v5sConnect(t, addr, "s", false, 60, persistent)
	if got := ptDrain(t, srv, s, "mk"); len(got) != 0 {
		t.Fatalf("acknowledged messages resent: %q", ptPayloads(got))
	}
}

// TestConfV5QoS2ExpiryAfterSend: once a QoS 2 PUBLISH has been sent, the
// server no longer applies message expiry to it [v5 MQTT-4.3.3-7]: after
// the Message Expiry Interval has passed, the one sent is resent on
// reconnect, while its twin with the same expiry, still queued behind the
// Receive Maximum of 1, is dropped (section 3.3.2.3.3).
func TestConfV5QoS2ExpiryAfterSend(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	s, _ := v5sConnect(t, addr, "s", false, 60, func(cp *packet.Connect) { cp.Properties.ReceiveMaximum = 1 })
	v5sSubscribe(t, s, 1, "exp/#")
	s.send(&packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{{Filter: "exp/#", QoS: 2}}})
	if _, ok := s.recv().(*packet.Suback); !ok {
		t.Fatal("want SUBACK")
	}
	start := time.Now()
	for _, payload := range []string{"sent", "queued"} {
		m := &Message{Topic: "exp/t", Payload: []byte(payload), QoS: 2}
		m.Properties.MessageExpiry = 1
		if err := srv.PublishMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	first := s.expectPublish()
	if string(first.Payload) != "sent" || first.QoS != 2 {
		t.Fatalf("got %v, want the QoS 2 message sent", first)
	}
	s.nc.Close()
	ptWaitConnected(t, srv, 0)
	for time.Since(start) < 1500*time.Millisecond { // both have expired by then
		time.Sleep(50 * time.Millisecond)
	}
	s, _ = v5sConnect(t, addr, "s", false, 60, nil)
	again := s.expectPublish()
	if again.PacketID != first.PacketID || string(again.Payload) != "sent" || !again.Dup {
		t.Fatalf("got %v, want PUBLISH %d resent with DUP 1 although expired [v5 MQTT-4.3.3-7]", again, first.PacketID)
	}
	s.send(&packet.Pubrec{PacketID: again.PacketID})
	if r, ok := s.recv().(*packet.Pubrel); !ok || r.PacketID != again.PacketID {
		t.Fatalf("got %v, want PUBREL %d", r, again.PacketID)
	}
	s.send(&packet.Pubcomp{PacketID: again.PacketID})
	if got := ptDrain(t, srv, s, "mk"); len(got) != 0 {
		t.Fatalf("got %q, want the unsent expired message dropped", ptPayloads(got))
	}
}

// TestConfV5QoS2ReceiverExpiry: as the receiver of a QoS 2 PUBLISH the
// server completes the acknowledgement sequence even when the message has
// expired meanwhile [v5 MQTT-4.3.3-13]: a PUBREL sent after the Message
// Expiry Interval gets PUBCOMP 0x00.
func TestConfV5QoS2ReceiverExpiry(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	pub, _ := cf5Dial(t, addr, "pub", nil)
	p := &packet.Publish{Topic: "exp/in", QoS: 2, PacketID: 3, Payload: []byte("x")}
	p.Properties.MessageExpiry = 1
	start := time.Now()
	pub.send(p)
	if r, ok := pub.recv().(*packet.Pubrec); !ok || r.PacketID != 3 {
		t.Fatalf("got %v, want PUBREC 3", r)
	}
	for time.Since(start) < 1500*time.Millisecond {
		time.Sleep(50 * time.Millisecond)
	}
	pub.send(&packet.Pubrel{PacketID: 3})
	if c, ok := pub.recv().(*packet.Pubcomp); !ok || c.PacketID != 3 || c.ReasonCode != packet.Success {
		t.Fatalf("got %v, want PUBCOMP 3 0x00 after the message expired [v5 MQTT-4.3.3-13]", c)
	}
}

// TestConfV5QoS1SameIDNewMessage: after its PUBACK, a QoS 1 PUBLISH with
// the same packet id is a new message, DUP flag or not [v5 MQTT-4.3.2-5].
func TestConfV5QoS1SameIDNewMessage(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	sub, _ := cf5Dial(t, addr, "sub", nil)
	sub.subscribe(1, "same/#", 1)
	sub.subscribe(2, "mk", 0)
	pub, _ := cf5Dial(t, addr, "pub", nil)
	for i, flags := range []byte{0x02, 0x0a, 0x0a, 0x02} {
		writeRaw(pub.nc, rawPublish(packet.V5, flags, "same/t", 5, nil, fmt.Sprint("m", i)))
		if a, ok := pub.recv().(*packet.Puback); !ok || a.PacketID != 5 {
			t.Fatalf("got %v, want PUBACK 5", a)
		}
	}
	if got := ptPayloads(ptDrain(t, srv, sub, "mk")); !slices.Equal(got, []string{"m0", "m1", "m2", "m3"}) {
		t.Fatalf("subscriber got %q, want all four [v5 MQTT-4.3.2-5]", got)
	}
}

// TestConfV5NegativeAckNotResent: a PUBLISH answered by PUBACK or PUBREC
// with a reason code of 0x80 or more counts as acknowledged and is never
// sent again [v5 MQTT-4.4.0-2], not even after a reconnect.
func TestConfV5NegativeAckNotResent(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	s, _ := v5sConnect(t, addr, "neg", false, 60, nil)
	s.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "neg/#", QoS: 2}, {Filter: "mk", QoS: 0}}})
	if _, ok := s.recv().(*packet.Suback); !ok {
		t.Fatal("want SUBACK")
	}
	srv.Publish("neg/1", []byte("refused-1"), 1, false)
	srv.Publish("neg/2", []byte("refused-2"), 2, false)
	p1, p2 := s.expectPublish(), s.expectPublish()
	s.send(&packet.Puback{PacketID: p1.PacketID, ReasonCode: packet.UnspecifiedError})
	s.send(&packet.Pubrec{PacketID: p2.PacketID, ReasonCode: packet.ImplementationSpecificError})
	s.send(&packet.Pingreq{})
	for {
		if p := s.recv(); p.Type() == packet.PINGRESP {
			break
		} else if p.Type() == packet.PUBLISH {
			t.Fatalf("got %v after a negative acknowledgement [v5 MQTT-4.4.0-2]", p)
		}
	}
	s.nc.Close()
	ptWaitConnected(t, srv, 0)
	s, _ = v5sConnect(t, addr, "neg", false, 60, nil)
	if got := ptDrain(t, srv, s, "mk"); len(got) != 0 {
		t.Fatalf("resent %q after PUBACK / PUBREC >= 0x80 [v5 MQTT-4.4.0-2]", ptPayloads(got))
	}
}

// TestConfV5EveryMatchingSession: a message the server takes ownership of
// is added to the session of every client with a matching subscription
// [v5 MQTT-4.5.0-1], online or not, and each PUBLISH sent carries a topic
// name that matches the subscription's filter [v5 MQTT-3.3.2-3].
func TestConfV5EveryMatchingSession(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	filters := map[string]string{"plus": "m/+/c", "hash": "m/#", "exact": "m/b/c", "all": "#", "other": "m/x/c", "longer": "m/b/c/d"}
	clients := map[string]*rawClient{}
	for name, f := range filters {
		c, _ := v5sConnect(t, addr, name, false, 60, nil)
		v5sSubscribe(t, c, 1, f)
		clients[name] = c
	}
	v5sDisconnect(t, clients["hash"], &packet.Disconnect{}) // offline, session kept
	pub, _ := cf5Dial(t, addr, "pub", nil)
	ptPublish(t, pub, &packet.Publish{Topic: "m/b/c", QoS: 1, PacketID: 1, Payload: []byte("owned")})
	clients["hash"], _ = v5sConnect(t, addr, "hash", false, 60, nil)
	for name, c := range clients {
		got := ptDrain(t, srv, c, "mk")
		want := 1
		if name == "other" || name == "longer" {
			want = 0
		}
		if len(got) != want {
			t.Fatalf("%s (%s) got %q, want %d message [v5 MQTT-4.5.0-1]", name, filters[name], ptPayloads(got), want)
		}
		if want == 1 && got[0].Topic != "m/b/c" {
			t.Fatalf("%s (%s) got topic %q, want m/b/c [v5 MQTT-3.3.2-3]", name, filters[name], got[0].Topic)
		}
	}
}

// TestConfV5RefusedQoS2IDIsNew: after the server sent PUBREC >= 0x80 for a
// QoS 2 PUBLISH, a PUBLISH with that packet id is a new message
// [v5 MQTT-4.3.3-9]: it is delivered, not taken for a duplicate.
func TestConfV5RefusedQoS2IDIsNew(t *testing.T) {
	t.Parallel()
	srv := &Server{Authorizer: ptAuthz{}} // refuses publishing to secret/...
	addr := ptNewServer(t, srv)
	sub, _ := cf5Dial(t, addr, "sub", nil)
	sub.subscribe(1, "open/#", 2)
	sub.subscribe(2, "mk", 0)
	pub, _ := cf5Dial(t, addr, "pub", nil)
	pub.send(&packet.Publish{Topic: "secret/x", QoS: 2, PacketID: 5, Payload: []byte("refused")})
	if r, ok := pub.recv().(*packet.Pubrec); !ok || r.PacketID != 5 || r.ReasonCode != packet.NotAuthorized {
		t.Fatalf("got %v, want PUBREC 5 0x87", r)
	}
	for _, dup := range []bool{true, false} {
		p := &packet.Publish{Topic: "open/x", QoS: 2, PacketID: 5, Dup: dup, Payload: []byte(fmt.Sprint("new-", dup))}
		ptPublish(t, pub, p)
	}
	if got := ptPayloads(ptDrain(t, srv, sub, "mk")); !slices.Equal(got, []string{"new-true", "new-false"}) {
		t.Fatalf("subscriber got %q, want [new-true new-false] [v5 MQTT-4.3.3-9]", got)
	}
}

// ---- wire format after CONNECT ----

// TestConfV5Malformed: packets that break a wire-format rule get
// DISCONNECT 0x81 Malformed Packet, and the connection is closed
// [v5 MQTT-4.13.1-1]; the valid twin of each is answered as usual. The
// rules, one or more cases each, are named in the cases.
func TestConfV5Malformed(t *testing.T) {
	t.Parallel()
	addr := ptNewServer(t, &Server{})
	pubProps := func(props ...[]byte) []byte { return v5hPublish(0x02, "t/p", 1, "x", props...) }
	for _, tc := range []struct {
		name, ids string
		bad, good []byte
	}{
		{"topic name not UTF-8", "[v5 MQTT-3.3.2-1]",
			rawPublish(packet.V5, 0x02, "t/\xff", 1, nil, "x"), rawPublish(packet.V5, 0x02, "t/ok", 1, nil, "x")},
		{"topic name with a surrogate", "[v5 MQTT-3.3.2-1]",
			rawPublish(packet.V5, 0x00, "t/\xed\xbf\xbf", 0, nil, "x"), rawPublish(packet.V5, 0x00, "t/ok", 0, nil, "x")},
		{"no topic name", "[v5 MQTT-3.3.2-1]",
			rawPkt(0x30, []byte{0}), rawPkt(0x30, rawStr("t"), []byte{0})},
		{"topic name with U+0000", "[v5 MQTT-4.7.3-2]",
			rawPublish(packet.V5, 0x02, "t/\x00", 1, nil, "x"), rawPublish(packet.V5, 0x02, "t/0", 1, nil, "x")},
		{"Response Topic not UTF-8", "[v5 MQTT-3.3.2-13]",
			pubProps(v5hResponseTopic("r/\xc0\xaf")), pubProps(v5hResponseTopic("r/ok"))},
		{"Content Type not UTF-8", "[v5 MQTT-3.3.2-19]",
			pubProps(v5hContentType("text/\xed\xa0\x80")), pubProps(v5hContentType("text/plain"))},
		{"User Property name not UTF-8", "[v5 MQTT-1.5.7-1]",
			pubProps(rawUserProp("k\xff", "v")), pubProps(rawUserProp("k", "v"))},
		{"User Property value with U+0000", "[v5 MQTT-1.5.7-1]",
			pubProps(rawUserProp("k", "v\x00")), pubProps(rawUserProp("k", "v"))},
		{"User Property in SUBSCRIBE not UTF-8", "[v5 MQTT-1.5.7-1]",
			v5hSubscribe(1, "t", 1, rawUserProp("k", "\x80")), v5hSubscribe(1, "t", 1, rawUserProp("k", "v"))},
		{"PUBLISH without Property Length", "[v5 MQTT-2.2.2-1]",
			rawPkt(0x30, rawStr("t")), rawPkt(0x30, rawStr("t"), []byte{0})},
		{"SUBSCRIBE without Property Length", "[v5 MQTT-2.2.2-1]",
			rawPkt(0x82, rawU16(1), rawStr("t"), []byte{1}), v5hSubscribe(1, "t", 1)},
		{"PUBREL flags 0000", "[v5 MQTT-3.6.1-1]",
			rawPkt(0x60, rawU16(1)), rawPkt(0x62, rawU16(1))},
		{"PUBREL flags 0011", "[v5 MQTT-3.6.1-1]",
			rawPkt(0x63, rawU16(1)), rawPkt(0x62, rawU16(1))},
		{"SUBSCRIBE flags 0000", "[v5 MQTT-3.8.1-1]",
			rawPkt(0x80, rawU16(1), []byte{0}, rawStr("t"), []byte{1}), v5hSubscribe(1, "t", 1)},
		{"SUBSCRIBE flags 0110", "[v5 MQTT-3.8.1-1]",
			rawPkt(0x86, rawU16(1), []byte{0}, rawStr("t"), []byte{1}), v5hSubscribe(1, "t", 1)},
		{"SUBSCRIBE filter not UTF-8", "[v5 MQTT-3.8.3-1]",
			v5hSubscribe(1, "t/\xff", 1), v5hSubscribe(1, "t/ok", 1)},
		{"SUBSCRIBE second filter with U+0000", "[v5 MQTT-3.8.3-1] [v5 MQTT-4.7.3-2]",
			rawPkt(0x82, rawU16(1), []byte{0}, rawStr("t"), []byte{1}, rawStr("t/\x00"), []byte{1}),
			rawPkt(0x82, rawU16(1), []byte{0}, rawStr("t"), []byte{1}, rawStr("t/0"), []byte{1})},
		{"UNSUBSCRIBE flags 0000", "[v5 MQTT-3.10.1-1]",
			rawPkt(0xa0, rawU16(1), []byte{0}, rawStr("t")), rawPkt(0xa2, rawU16(1), []byte{0}, rawStr("t"))},
		{"UNSUBSCRIBE flags 1010", "[v5 MQTT-3.10.1-1]",
			rawPkt(0xaa, rawU16(1), []byte{0}, rawStr("t")), rawPkt(0xa2, rawU16(1), []byte{0}, rawStr("t"))},
		{"UNSUBSCRIBE filter not UTF-8", "[v5 MQTT-3.10.3-1]",
			rawPkt(0xa2, rawU16(1), []byte{0}, rawStr("t/\xc0\xaf")), rawPkt(0xa2, rawU16(1), []byte{0}, rawStr("t/ok"))},
		{"UNSUBSCRIBE filter with U+0000", "[v5 MQTT-3.10.3-1] [v5 MQTT-4.7.3-2]",
			rawPkt(0xa2, rawU16(1), []byte{0}, rawStr("\x00")), rawPkt(0xa2, rawU16(1), []byte{0}, rawStr("0"))},
		{"DISCONNECT flags 0001", "[v5 MQTT-3.14.1-1]", rawPkt(0xe1), rawPkt(0xe0)},
		{"DISCONNECT flags 1000", "[v5 MQTT-3.14.1-1]", rawPkt(0xe8, []byte{0}), rawPkt(0xe0, []byte{0})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustDecode(t, packet.V5, tc.good)
			g, _ := cf5Dial(t, addr, "good", nil)
			if tc.good[0]&0xf0 == 0xe0 {
				writeRaw(g.nc, tc.good) // a valid DISCONNECT: closed without a word
				if got := g.expectClosed(); len(got) != 0 {
					t.Fatalf("valid twin: got %v", got)
				}
			} else {
				writeRaw(g.nc, append(tc.good, 0xc0, 0)) // and a PINGREQ
				for {
					p := g.recv()
					if p.Type() == packet.PINGRESP {
						break
					}
					if p.Type() == packet.DISCONNECT {
						t.Fatalf("valid twin: got %v", p)
					}
				}
			}
			b, _ := cf5Dial(t, addr, "bad", nil)
			writeRaw(b.nc, tc.bad)
			cf5Kicked(t, b, packet.MalformedPacket, tc.ids+" [v5 MQTT-4.13.1-1]")
		})
	}
}

// TestConfV5TopicLength: topic names and filters are at most 65,535 bytes
// [v5 MQTT-4.7.3-3]: on the wire the two-byte length cannot say more, and
// the broker's own API refuses longer ones; a 65,535-byte topic name works
// end to end.
func TestConfV5TopicLength(t *testing.T) {
	t.Parallel()
	srv := &Server{MaxPacketSize: 1 << 20}
	addr := ptNewServer(t, srv)
	long := make([]byte, 65535)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	if err := srv.Publish(string(long)+"z", nil, 0, false); err == nil {
		t.Fatal("Publish accepted a 65,536-byte topic name [v5 MQTT-4.7.3-3]")
	}
	if _, err := srv.Subscribe(string(long)+"/", 0, func(*Message) {}); err == nil {
		t.Fatal("Subscribe accepted a 65,536-byte topic filter [v5 MQTT-4.7.3-3]")
	}
	got := make(chan *Message, 1)
	unsub, err := srv.Subscribe(string(long), 0, func(m *Message) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	sub, _ := cf5Dial(t, addr, "sub", nil)
	sub.subscribe(1, string(long), 1)
	pub, _ := cf5Dial(t, addr, "pub", nil)
	ptPublish(t, pub, &packet.Publish{Topic: string(long), QoS: 1, PacketID: 1, Payload: []byte("longest")})
	if p := sub.expectPublish(); p.Topic != string(long) || string(p.Payload) != "longest" {
		t.Fatalf("got %.40v", p)
	}
	select {
	case m := <-got:
		if m.Topic != string(long) {
			t.Fatal("inline subscriber got another topic")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("inline subscriber got nothing")
	}
}

// ---- Reason String and User Property within the Maximum Packet Size ----

// cf5Sized connects a client with Maximum Packet Size max (0: none) and
// returns it with a reader of raw packets, to see their sizes.
func cf5Sized(t *testing.T, addr, id string, max uint32) *rawClient {
	t.Helper()
	c, _ := cf5Dial(t, addr, id, func(cp *packet.Connect) { cp.Properties.MaximumPacketSize = max })
	return c
}

// cf5Fits checks that p, received by a client with Maximum Packet Size
// max, fits and carries a Reason String exactly when want says.
func cf5Fits(t *testing.T, p packet.Packet, max uint32, want bool, ids string) {
	t.Helper()
	b, err := packet.Encode(p, packet.V5) // the size it had on the wire
	if err != nil {
		t.Fatal(err)
	}
	props := packet.Diagnostics(p)
	if len(b) > int(max) {
		t.Fatalf("%v is %d bytes, above the client's Maximum Packet Size %d %s", p, len(b), max, ids)
	}
	if got := props.ReasonString != ""; got != want {
		t.Fatalf("%v (%d bytes, limit %d): Reason String present %v, want %v %s", p, len(b), max, got, want, ids)
	}
}

// TestConfV5ReasonStringLeftOut: the server leaves the Reason String out
// of a packet when it would make the packet larger than the client's
// Maximum Packet Size, and keeps it when it fits: PUBACK
// [v5 MQTT-3.4.2-2] and PUBREC [v5 MQTT-3.5.2-2] refusing a PUBLISH,
// DISCONNECT after a Protocol Error [v5 MQTT-3.14.2-3] and CONNACK
// refusing a connection [v5 MQTT-3.2.2-19].
func TestConfV5ReasonStringLeftOut(t *testing.T) {
	t.Parallel()
	addr := ptNewServer(t, &Server{Authorizer: ptAuthz{}, Authenticator: &cf5Recorder{code: packet.BadUserNameOrPassword}})
	secret := "secret/" + strings.Repeat("s", 64)
	for _, tc := range []struct {
		max  uint32
		want bool
	}{{24, false}, {4096, true}} {
		c := cf5Sized(t, addr, fmt.Sprint("acks-", tc.max), tc.max)
		c.send(&packet.Publish{Topic: secret, QoS: 1, PacketID: 1, Payload: []byte("x")})
		a, ok := c.recv().(*packet.Puback)
		if !ok || a.ReasonCode != packet.NotAuthorized {
			t.Fatalf("got %v, want PUBACK 0x87", a)
		}
		cf5Fits(t, a, tc.max, tc.want, "[v5 MQTT-3.4.2-2]")
		c.send(&packet.Publish{Topic: secret, QoS: 2, PacketID: 2, Payload: []byte("x")})
		r, ok := c.recv().(*packet.Pubrec)
		if !ok || r.ReasonCode != packet.NotAuthorized {
			t.Fatalf("got %v, want PUBREC 0x87", r)
		}
		cf5Fits(t, r, tc.max, tc.want, "[v5 MQTT-3.5.2-2]")

		writeRaw(c.nc, v5hPublish(0x00, "t", 0, "x", v5hSubID(1))) // a Protocol Error [v5 MQTT-3.3.4-6]
		got := c.expectClosed()
		if len(got) != 1 || got[0].Type() != packet.DISCONNECT || got[0].(*packet.Disconnect).ReasonCode != packet.ProtocolErrorCode {
			t.Fatalf("got %v, want DISCONNECT 0x82", got)
		}
		cf5Fits(t, got[0], tc.max, tc.want, "[v5 MQTT-3.14.2-3]")

		r2 := dialRaw(t, addr, packet.V5)
		cp := &packet.Connect{ClientID: "refused", CleanStart: true, Username: "refuse-me"}
		cp.Properties.MaximumPacketSize = tc.max
		ack := ptRefused(t, r2, cp)
		cf5Fits(t, ack, tc.max, tc.want, "[v5 MQTT-3.2.2-19]")
	}
}

// TestConfV5DiagnosticsFit: every packet the broker sends that may carry
// a Reason String and User Properties is encoded without both when they
// would take it above the client's Maximum Packet Size, and with both when
// it fits: PUBACK [v5 MQTT-3.4.2-2] [v5 MQTT-3.4.2-3], PUBREC
// [v5 MQTT-3.5.2-2] [v5 MQTT-3.5.2-3], PUBREL [v5 MQTT-3.6.2-2]
// [v5 MQTT-3.6.2-3], PUBCOMP [v5 MQTT-3.7.2-2] [v5 MQTT-3.7.2-3], SUBACK
// [v5 MQTT-3.9.2-1] [v5 MQTT-3.9.2-2], UNSUBACK [v5 MQTT-3.11.2-1]
// [v5 MQTT-3.11.2-2], DISCONNECT [v5 MQTT-3.14.2-3] [v5 MQTT-3.14.2-4],
// AUTH [v5 MQTT-3.15.2-2] [v5 MQTT-3.15.2-3] and CONNACK [v5 MQTT-3.2.2-19]
// [v5 MQTT-3.2.2-20]. The broker sends User Properties on none of these
// and Reason Strings on some only, so this is checked on the writer's
// encoding path itself: appendCtrl for control packets, appendOut for a
// SUBACK, which travels in the session's backlog.
func TestConfV5DiagnosticsFit(t *testing.T) {
	reason := "a reason string of some length" + strings.Repeat(".", 40)
	users := []packet.UserProperty{{Key: "diagnostic", Value: "one"}, {Key: "diagnostic", Value: "two"}}
	withDiag := func(p packet.Packet) packet.Packet {
		props := packet.Diagnostics(p)
		props.ReasonString, props.User = reason, slices.Clone(users)
		return p
	}
	makers := []func() packet.Packet{
		func() packet.Packet { return &packet.Puback{PacketID: 1, ReasonCode: packet.NotAuthorized} },
		func() packet.Packet { return &packet.Pubrec{PacketID: 2, ReasonCode: packet.QuotaExceeded} },
		func() packet.Packet { return &packet.Pubrel{PacketID: 3, ReasonCode: packet.PacketIdentifierNotFound} },
		func() packet.Packet { return &packet.Pubcomp{PacketID: 4, ReasonCode: packet.PacketIdentifierNotFound} },
		func() packet.Packet {
			return &packet.Suback{PacketID: 5, ReasonCodes: []packet.ReasonCode{packet.GrantedQoS1, packet.NotAuthorized}}
		},
		func() packet.Packet {
			return &packet.Unsuback{PacketID: 6, ReasonCodes: []packet.ReasonCode{packet.Success, packet.NoSubscriptionExisted}}
		},
		func() packet.Packet { return &packet.Disconnect{ReasonCode: packet.AdministrativeAction} },
		func() packet.Packet {
			a := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
			a.Properties.AuthMethod = "SCRAM-SHA-256"
			return a
		},
		func() packet.Packet { return &packet.Connack{ReasonCode: packet.NotAuthorized} },
	}
	for _, mk := range makers {
		name := mk().Type().String()
		t.Run(name, func(t *testing.T) {
			c := &conn{version: packet.V5, log: testLogger(t)}
			encode := func() []byte {
				p := withDiag(mk())
				if p.Type() == packet.SUBACK {
					return c.appendOut(nil, &out{d: delivery{ctl: p}}, time.Now())
				}
				return c.appendCtrl(nil, ctrlPkt{p: p})
			}
			decode := func(b []byte) *packet.Properties {
				t.Helper()
				p, n, err := packet.Decode(packet.V5, b)
				if err != nil || n != len(b) {
					t.Fatalf("% x does not decode: %v", b, err)
				}
				return packet.Diagnostics(p)
			}
			full := encode() // no Maximum Packet Size
			if props := decode(full); props.ReasonString != reason || !slices.Equal(props.User, users) {
				t.Fatalf("without a limit: Reason String %q, User Properties %v; want both", props.ReasonString, props.User)
			}
			c.maxOut = uint32(len(full)) // exactly fits: kept
			if props := decode(encode()); props.ReasonString != reason || !slices.Equal(props.User, users) {
				t.Fatalf("limit %d = its size: Reason String %q, User Properties %v; want both", c.maxOut, props.ReasonString, props.User)
			}
			c.maxOut = uint32(len(full)) - 1 // one byte too many: both left out
			b := encode()
			if len(b) == 0 || len(b) > int(c.maxOut) {
				t.Fatalf("limit %d: encoded %d bytes", c.maxOut, len(b))
			}
			if props := decode(b); props.ReasonString != "" || len(props.User) != 0 {
				t.Fatalf("limit %d: Reason String %q, User Properties %v; want neither", c.maxOut, props.ReasonString, props.User)
			}
		})
	}
}

// ---- 3.8 SUBSCRIBE, 3.10 UNSUBSCRIBE ----

// TestConfV5SubackForEverySubscribe: every SUBSCRIBE is answered with a
// SUBACK [v5 MQTT-3.8.4-1] that carries its packet id [v5 MQTT-3.8.4-2],
// also when every filter in it is refused; pipelined SUBSCRIBEs get their
// SUBACKs in order.
func TestConfV5SubackForEverySubscribe(t *testing.T) {
	t.Parallel()
	addr := ptNewServer(t, &Server{Authorizer: ptAuthz{}}) // refuses subscribing to private/...
	c, _ := cf5Dial(t, addr, "subs", nil)
	subs := []struct {
		id    uint16
		subs  []packet.Subscription
		codes []packet.ReasonCode
	}{
		{1, []packet.Subscription{{Filter: "a", QoS: 1}}, []packet.ReasonCode{1}},
		{65535, []packet.Subscription{{Filter: "private/x", QoS: 1}}, []packet.ReasonCode{packet.NotAuthorized}},
		{2, []packet.Subscription{{Filter: "a/#/b", QoS: 0}, {Filter: "private/y", QoS: 2}}, []packet.ReasonCode{packet.TopicFilterInvalid, packet.NotAuthorized}},
		{300, []packet.Subscription{{Filter: "a", QoS: 2}, {Filter: "b/+", QoS: 0}, {Filter: "private/z", QoS: 0}}, []packet.ReasonCode{2, 0, packet.NotAuthorized}},
		{2, []packet.Subscription{{Filter: "c", QoS: 1}}, []packet.ReasonCode{1}},
	}
	var raw []byte
	for _, s := range subs {
		raw = append(raw, mustEncode(t, &packet.Subscribe{PacketID: s.id, Subscriptions: s.subs}, packet.V5)...)
	}
	writeRaw(c.nc, raw)
	for _, s := range subs {
		ack, ok := c.recv().(*packet.Suback)
		if !ok || ack.PacketID != s.id {
			t.Fatalf("got %v, want SUBACK %d [v5 MQTT-3.8.4-1] [v5 MQTT-3.8.4-2]", ack, s.id)
		}
		if !slices.Equal(ack.ReasonCodes, s.codes) {
			t.Fatalf("SUBACK %d codes %v, want %v", s.id, ack.ReasonCodes, s.codes)
		}
	}
}

// TestConfV5UnsubscribeCompletesInflight: the QoS 1 and QoS 2 deliveries
// the server has started for a subscription are completed after the
// subscription is removed [v5 MQTT-3.10.4-3], also across a reconnect,
// while new messages for it are not sent.
func TestConfV5UnsubscribeCompletesInflight(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	s, _ := v5sConnect(t, addr, "u", false, 60, nil)
	s.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "u/#", QoS: 2}, {Filter: "mk", QoS: 0}}})
	if _, ok := s.recv().(*packet.Suback); !ok {
		t.Fatal("want SUBACK")
	}
	srv.Publish("u/1", []byte("started-1"), 1, false)
	srv.Publish("u/2", []byte("started-2"), 2, false)
	p1, p2 := s.expectPublish(), s.expectPublish()
	s.send(&packet.Unsubscribe{PacketID: 2, Filters: []string{"u/#"}})
	if ua, ok := s.recv().(*packet.Unsuback); !ok || ua.PacketID != 2 || !slices.Equal(ua.ReasonCodes, []packet.ReasonCode{packet.Success}) {
		t.Fatalf("got %v, want UNSUBACK 2 [0x00]", ua)
	}
	srv.Publish("u/3", []byte("after"), 1, false)
	s.nc.Close()
	ptWaitConnected(t, srv, 0)

	s, _ = v5sConnect(t, addr, "u", false, 60, nil)
	r1, r2 := s.expectPublish(), s.expectPublish()
	if r1.PacketID != p1.PacketID || !r1.Dup || r2.PacketID != p2.PacketID || !r2.Dup {
		t.Fatalf("resent %v and %v, want %d and %d with DUP 1 [v5 MQTT-3.10.4-3]", r1, r2, p1.PacketID, p2.PacketID)
	}
	s.send(&packet.Puback{PacketID: p1.PacketID})
	s.send(&packet.Pubrec{PacketID: p2.PacketID})
	if rel, ok := s.recv().(*packet.Pubrel); !ok || rel.PacketID != p2.PacketID {
		t.Fatalf("got %v, want PUBREL %d [v5 MQTT-3.10.4-3]", rel, p2.PacketID)
	}
	s.send(&packet.Pubcomp{PacketID: p2.PacketID})
	if got := ptDrain(t, srv, s, "mk"); len(got) != 0 {
		t.Fatalf("got %q after the UNSUBSCRIBE", ptPayloads(got))
	}
}

// ---- 3.14 DISCONNECT ----

// TestConfV5DisconnectIsLast: after the server sends DISCONNECT it sends
// nothing more [v5 MQTT-3.14.4-1] and closes the connection
// [v5 MQTT-3.14.4-2] [v5 MQTT-4.13.2-1], even with messages waiting for
// the client: a subscriber with 200 messages queued behind a Receive
// Maximum of 1 acknowledges one (which frees the window) and breaks the
// protocol in the same write; and a subscriber taken over while messages
// flow to it. The DISCONNECT carries no Session Expiry Interval
// [v5 MQTT-3.14.2-2].
func TestConfV5DisconnectIsLast(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c, _ := v5sConnect(t, addr, "last", false, 60, func(cp *packet.Connect) { cp.Properties.ReceiveMaximum = 1 })
	v5sSubscribe(t, c, 1, "last/#")
	for i := range 200 {
		srv.Publish("last/t", []byte(fmt.Sprint(i)), 1, false)
	}
	p := c.expectPublish()
	writeRaw(c.nc, append(mustEncode(t, &packet.Puback{PacketID: p.PacketID}, packet.V5), rawPkt(0x60, rawU16(1))...)) // PUBREL with flags 0000
	got := cf5Kicked(t, c, packet.MalformedPacket, "[v5 MQTT-3.14.4-1] [v5 MQTT-3.14.4-2]")
	for _, p := range got {
		if p.Type() != packet.PUBLISH {
			t.Fatalf("got %v before the DISCONNECT", got)
		}
	}

	c, _ = v5sConnect(t, addr, "last", false, 60, nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			srv.Publish("last/t", []byte(fmt.Sprint("live-", i)), 0, false)
			time.Sleep(100 * time.Microsecond)
		}
	}()
	c.expectPublish()
	v5sConnect(t, addr, "last", false, 60, nil) // takes the session over
	got = cf5Kicked(t, c, packet.SessionTakenOver, "[v5 MQTT-3.14.4-1] [v5 MQTT-3.14.4-2]")
	close(stop)
	<-done
	for _, p := range got {
		if p.Type() != packet.PUBLISH {
			t.Fatalf("got %v before the DISCONNECT", p)
		}
	}
}

// TestConfV5DisconnectNoSessionExpiry: no DISCONNECT of the server carries
// a Session Expiry Interval [v5 MQTT-3.14.2-2]: not after a Protocol Error,
// nor on takeover or shutdown, whatever the session's expiry.
func TestConfV5DisconnectNoSessionExpiry(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	check := func(p packet.Packet) {
		t.Helper()
		if d, ok := p.(*packet.Disconnect); !ok || d.Properties.Has(packet.PropSessionExpiry) {
			t.Fatalf("got %v, want a DISCONNECT without Session Expiry Interval [v5 MQTT-3.14.2-2]", p)
		}
	}
	c, _ := v5sConnect(t, addr, "exp", false, 3600, nil)
	c.send(&packet.Connect{Version: packet.V5, ClientID: "exp"})
	check(c.expectClosed()[0])
	c, _ = v5sConnect(t, addr, "exp", false, 3600, nil)
	v5sConnect(t, addr, "exp", false, 60, nil)
	check(c.expectClosed()[0])
}

// ---- 4.1 Session State ----

// TestConfV5SessionStateLifetime: the server does not discard the session
// state while the connection is open [v5 MQTT-4.1.0-1], however long that
// is beyond the Session Expiry Interval, and discards it once the
// connection is closed and the interval has passed [v5 MQTT-4.1.0-2]: the
// subscription then no longer queues messages and a reconnect finds no
// session.
func TestConfV5SessionStateLifetime(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c, _ := v5sConnect(t, addr, "life", false, 1, nil)
	v5sSubscribe(t, c, 1, "life/#")
	start := time.Now()
	for time.Since(start) < 2500*time.Millisecond { // well past the 1 s of expiry
		if n := srv.Stats().Sessions; n != 1 {
			t.Fatalf("%d sessions while the connection is open [v5 MQTT-4.1.0-1]", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv.Publish("life/t", []byte("still-subscribed"), 1, false)
	if got := ptPayloads(ptDrain(t, srv, c, "mk")); !slices.Equal(got, []string{"still-subscribed"}) {
		t.Fatalf("got %q, want [still-subscribed] [v5 MQTT-4.1.0-1]", got)
	}
	v5sDisconnect(t, c, &packet.Disconnect{})
	v5sWaitSessions(t, srv, 0) // [v5 MQTT-4.1.0-2]
	if n := srv.Stats().Subscriptions; n != 0 {
		t.Fatalf("%d subscriptions left after the session expired [v5 MQTT-4.1.0-2]", n)
	}
	c, ack := v5sConnect(t, addr, "life", false, 1, nil)
	if ack.SessionPresent {
		t.Fatal("Session Present 1 after the session expired [v5 MQTT-4.1.0-2]")
	}
}

// ---- 4.2 Network connections, 6 WebSocket ----

// cf5Listen opens listeners of the given types on srv (its Serve for each)
// and returns their addresses; the server is shut down when the test ends.
func cf5Listen(t *testing.T, srv *Server, ls ...Listener) []string {
	t.Helper()
	srv.Logger = testLogger(t)
	srv.SysInterval = -1
	var addrs []string
	errc := make(chan error, len(ls))
	for _, l := range ls {
		nl, err := Listen(l)
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, nl.Addr().String())
		go func() { errc <- srv.Serve(nl) }()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		for range ls {
			<-errc
		}
		checkNoConnGoroutines(t, srv)
	})
	return addrs
}

// TestConfV5Transports: every listener kind carries an ordered, lossless
// stream of bytes both ways [v5 MQTT-4.2.0-1]: over TCP, WebSocket and a
// Unix socket, 300 QoS 1 PUBLISHes written in one go (packets split
// across reads and WebSocket messages as it happens) all arrive, intact
// and in order, at a subscriber on the same transport.
func TestConfV5Transports(t *testing.T) {
	t.Parallel()
	sock := t.TempDir() + "/tern.sock"
	srv := &Server{}
	addrs := cf5Listen(t, srv, Listener{Type: "tcp", Addr: "127.0.0.1:0"}, Listener{Type: "ws", Addr: "127.0.0.1:0"}, Listener{Type: "unix", Addr: sock})
	urls := map[string]string{"tcp": "tcp://" + addrs[0], "ws": "ws://" + addrs[1] + "/mqtt", "unix": "unix://" + sock}
	for name, url := range urls {
		dial := func(id string) *rawClient {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			nc, err := transport.Dial(ctx, url, transport.DialOptions{})
			if err != nil {
				t.Fatalf("%s: %v", url, err)
			}
			t.Cleanup(func() { nc.Close() })
			c := &rawClient{t: t, nc: nc, r: packet.NewReader(nc), w: packet.NewWriter(nc), v: packet.V5}
			c.r.Version, c.w.Version = packet.V5, packet.V5
			c.connect(&packet.Connect{ClientID: id, CleanStart: true})
			return c
		}
		sub := dial(name + "-sub")
		sub.subscribe(1, name+"/#", 1)
		pub := dial(name + "-pub")
		var raw []byte
		for i := range 300 {
			payload := bytes.Repeat([]byte{byte(i)}, 1+i*7)
			raw = append(raw, mustEncode(t, &packet.Publish{Topic: name + "/t", QoS: 1, PacketID: uint16(i + 1), Payload: payload}, packet.V5)...)
		}
		writeRaw(pub.nc, raw)
		for i := range 300 {
			if a, ok := pub.recv().(*packet.Puback); !ok || a.PacketID != uint16(i+1) {
				t.Fatalf("%s: got %v, want PUBACK %d [v5 MQTT-4.2.0-1]", name, a, i+1)
			}
			p := sub.expectPublish()
			if !bytes.Equal(p.Payload, bytes.Repeat([]byte{byte(i)}, 1+i*7)) {
				t.Fatalf("%s: message %d arrived as %.60v [v5 MQTT-4.2.0-1]", name, i, p)
			}
			sub.send(&packet.Puback{PacketID: p.PacketID})
		}
	}
}

// TestConfV5WebSocketSubprotocol: the server selects and returns the
// WebSocket subprotocol "mqtt" [v5 MQTT-6.0.0-4], also when the client
// offers another one first, and MQTT 5 then runs over the connection.
func TestConfV5WebSocketSubprotocol(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addrs := cf5Listen(t, srv, Listener{Type: "ws", Addr: "127.0.0.1:0"})
	for _, offer := range [][]string{{"mqtt"}, {"chat", "mqtt"}, {"mqttv3.1", "mqtt"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ws, resp, err := websocket.Dial(ctx, "ws://"+addrs[0]+"/mqtt", &websocket.DialOptions{Subprotocols: offer})
		cancel()
		if err != nil {
			t.Fatalf("offering %q: %v", offer, err)
		}
		if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mqtt" || ws.Subprotocol() != "mqtt" {
			t.Fatalf("offering %q: server selected %q, want \"mqtt\" [v5 MQTT-6.0.0-4]", offer, got)
		}
		nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
		c := &rawClient{t: t, nc: nc, r: packet.NewReader(nc), w: packet.NewWriter(nc), v: packet.V5}
		c.r.Version, c.w.Version = packet.V5, packet.V5
		c.connect(&packet.Connect{ClientID: "ws", CleanStart: true})
		c.send(&packet.Pingreq{})
		if p := c.recv(); p.Type() != packet.PINGRESP {
			t.Fatalf("got %v, want PINGRESP", p)
		}
		nc.Close()
	}
}

// TestConfV5QoS0NoPacketIDOnTheWire: a QoS 0 PUBLISH the server sends
// carries no Packet Identifier [v5 MQTT-2.2.1-2], also when it was
// published at QoS 1 (with one) and downgraded by the subscription: the
// bytes on the wire are the topic, the property length and the payload.
func TestConfV5QoS0NoPacketIDOnTheWire(t *testing.T) {
	t.Parallel()
	addr := ptNewServer(t, &Server{})
	sub, _ := cf5Dial(t, addr, "sub", nil)
	sub.subscribe(1, "t", 0)
	pub, _ := cf5Dial(t, addr, "pub", nil)
	ptPublish(t, pub, &packet.Publish{Topic: "t", QoS: 1, PacketID: 0x0102, Payload: []byte("hi")})
	want := []byte{0x30, 0x06, 0x00, 0x01, 't', 0x00, 'h', 'i'}
	got := make([]byte, len(want))
	sub.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(sub.nc, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("QoS 0 PUBLISH on the wire: % x, want % x [v5 MQTT-2.2.1-2]", got, want)
	}
}
