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
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
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
