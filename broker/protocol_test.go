package broker

// Black-box protocol tests: real loopback sockets, raw packets, one server
// per test. Each test names the normative statements it checks, "v3" for
// MQTT 3.1.1 (which 3.1 shares) and "v5" for MQTT 5.0.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// ---- helpers (prefixed pt to keep clear of other test files) ----

var ptVersions = []packet.Version{packet.V31, packet.V311, packet.V5}

// ptNewServer starts srv ($SYS off unless set) and returns its address.
func ptNewServer(t *testing.T, srv *Server) string {
	t.Helper()
	if srv.SysInterval == 0 {
		srv.SysInterval = -1
	}
	return startServer(t, srv)
}

// ptConnect dials and connects with a clean or persistent session; a
// persistent MQTT 5 session gets a Session Expiry Interval of an hour.
func ptConnect(t *testing.T, addr string, v packet.Version, id string, clean bool) (*rawClient, *packet.Connack) {
	t.Helper()
	c := dialRaw(t, addr, v)
	cp := &packet.Connect{ClientID: id, CleanStart: clean}
	if v == packet.V5 && !clean {
		cp.Properties.SessionExpiry = 3600
	}
	return c, c.connect(cp)
}

// ptRefused sends cp and returns the CONNACK, which must refuse, after
// checking that the server then closes the connection.
func ptRefused(t *testing.T, c *rawClient, cp *packet.Connect) *packet.Connack {
	t.Helper()
	cp.Version = c.v
	c.send(cp)
	ack, ok := c.recv().(*packet.Connack)
	if !ok {
		t.Fatal("want CONNACK")
	}
	if ack.ReasonCode == 0 {
		t.Fatal("CONNACK accepted the connection, want a refusal")
	}
	// [v3 MQTT-3.2.2-4] [v5 MQTT-3.2.2-6] Session Present is 0 on a refusal.
	if ack.SessionPresent {
		t.Error("refusing CONNACK has Session Present 1")
	}
	// [v3 MQTT-3.2.2-5] [v5 MQTT-3.2.2-7] the server closes the connection.
	if got := c.expectClosed(); len(got) != 0 {
		t.Errorf("packets after a refusing CONNACK: %v", got)
	}
	return ack
}

func ptEventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ptWaitConnected(t *testing.T, srv *Server, n int64) {
	t.Helper()
	ptEventually(t, 5*time.Second, fmt.Sprintf("%d connected clients", n), func() bool {
		return srv.Stats().ClientsConnected == n
	})
}

// ptPublish publishes from c and completes the QoS flow of the sender
// [v3 MQTT-4.3.2-1] [v3 MQTT-4.3.3-1] [v5 MQTT-4.3.3-4]. c must not be
// subscribed to anything, so the acknowledgements are its only packets.
func ptPublish(t *testing.T, c *rawClient, p *packet.Publish) {
	t.Helper()
	c.send(p)
	switch p.QoS {
	case 1:
		ack, ok := c.recv().(*packet.Puback)
		if !ok || ack.PacketID != p.PacketID {
			t.Fatalf("want PUBACK %d, got %v", p.PacketID, ack)
		}
	case 2:
		rec, ok := c.recv().(*packet.Pubrec)
		if !ok || rec.PacketID != p.PacketID {
			t.Fatalf("want PUBREC %d, got %v", p.PacketID, rec)
		}
		c.send(&packet.Pubrel{PacketID: p.PacketID})
		comp, ok := c.recv().(*packet.Pubcomp)
		if !ok || comp.PacketID != p.PacketID {
			t.Fatalf("want PUBCOMP %d, got %v", p.PacketID, comp)
		}
	}
}

// ptAck completes the receiver's side of the QoS flow of p, which must be
// the only thing in flight towards c.
func ptAck(t *testing.T, c *rawClient, p *packet.Publish) {
	t.Helper()
	switch p.QoS {
	case 1:
		c.send(&packet.Puback{PacketID: p.PacketID})
	case 2:
		c.send(&packet.Pubrec{PacketID: p.PacketID})
		rel, ok := c.recv().(*packet.Pubrel)
		if !ok || rel.PacketID != p.PacketID {
			t.Fatalf("want PUBREL %d, got %v", p.PacketID, rel)
		}
		c.send(&packet.Pubcomp{PacketID: p.PacketID})
	}
}

// ptDrain publishes a QoS 0 marker on marker, to which c must be
// subscribed, and returns the PUBLISHes c receives before it, acknowledged.
// Messages routed to c before the marker are queued ahead of it, so this
// shows "nothing (else) arrived" without waiting for a timeout.
func ptDrain(t *testing.T, srv *Server, c *rawClient, marker string) []*packet.Publish {
	t.Helper()
	if err := srv.Publish(marker, []byte("marker"), 0, false); err != nil {
		t.Fatal(err)
	}
	var got []*packet.Publish
	for {
		switch p := c.recv().(type) {
		case *packet.Publish:
			if p.Topic == marker && string(p.Payload) == "marker" {
				return got
			}
			got = append(got, p)
			switch p.QoS {
			case 1:
				c.send(&packet.Puback{PacketID: p.PacketID})
			case 2:
				c.send(&packet.Pubrec{PacketID: p.PacketID})
			}
		case *packet.Pubrel:
			c.send(&packet.Pubcomp{PacketID: p.PacketID})
		default:
			t.Fatalf("unexpected %v while draining", p)
		}
	}
}

func ptPayloads(ps []*packet.Publish) []string {
	var s []string
	for _, p := range ps {
		s = append(s, string(p.Payload))
	}
	return s
}

// ptRecorder is an Observer that keeps the events it sees.
type ptRecorder struct {
	mu     sync.Mutex
	events []ptEvent
}

type ptEvent struct {
	kind    EventKind
	client  string
	topic   string
	qos     byte
	payload string
	err     error
}

func (r *ptRecorder) Observe(e Event) {
	ev := ptEvent{kind: e.Kind, topic: e.Topic, qos: e.QoS, err: e.Err}
	if e.Client != nil {
		ev.client = e.Client.ClientID
	}
	if e.Message != nil {
		ev.payload = string(e.Message.Payload)
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *ptRecorder) get(kind EventKind, client string) []ptEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ptEvent
	for _, e := range r.events {
		if (kind == 0 || e.kind == kind) && (client == "" || e.client == client) {
			out = append(out, e)
		}
	}
	return out
}

// ptInline subscribes the inline client and returns the channel its
// messages arrive on.
func ptInline(t *testing.T, srv *Server, filter string, qos byte) (<-chan *Message, func()) {
	t.Helper()
	ch := make(chan *Message, 10000)
	unsub, err := srv.Subscribe(filter, qos, func(m *Message) { ch <- m })
	if err != nil {
		t.Fatal(err)
	}
	return ch, unsub
}

func ptRecvInline(t *testing.T, ch <-chan *Message) *Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message for the inline subscriber")
		return nil
	}
}

// ---- CONNECT ----

// TestProtoConnectClientID: [v3 MQTT-3.1.3-6] [v5 MQTT-3.1.3-6] [v5
// MQTT-3.1.3-7] [v5 MQTT-3.2.2-16] an empty client id is assigned one;
// [v3 MQTT-3.1.3-8] [v3 MQTT-3.1.3-9] empty id without clean session is
// refused with 0x02; [v3 MQTT-3.1.3-5] MQTT 3.1 allows 1 to 23 characters.
func TestProtoConnectClientID(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)

	t.Run("v311-empty-clean", func(t *testing.T) {
		c, ack := ptConnect(t, addr, packet.V311, "", true)
		if ack.SessionPresent {
			t.Error("session present with clean session") // [v3 MQTT-3.2.2-1]
		}
		// The connection works: subscribe and get a message.
		c.subscribe(1, "assigned/v311", 1)
		if err := srv.Publish("assigned/v311", []byte("x"), 1, false); err != nil {
			t.Fatal(err)
		}
		p := c.expectPublish()
		if p.Topic != "assigned/v311" || string(p.Payload) != "x" {
			t.Fatalf("got %v", p)
		}
		ptAck(t, c, p)
	})
	t.Run("v311-empty-persistent", func(t *testing.T) {
		c := dialRaw(t, addr, packet.V311)
		ack := ptRefused(t, c, &packet.Connect{ClientID: "", CleanStart: false})
		if ack.ReasonCode != packet.V3IdentifierRejected {
			t.Fatalf("CONNACK code %d, want 2", ack.ReasonCode)
		}
	})
	t.Run("v31-empty", func(t *testing.T) {
		c := dialRaw(t, addr, packet.V31)
		ack := ptRefused(t, c, &packet.Connect{ClientID: "", CleanStart: true})
		if ack.ReasonCode != packet.V3IdentifierRejected {
			t.Fatalf("CONNACK code %d, want 2", ack.ReasonCode)
		}
	})
	t.Run("v31-24-chars", func(t *testing.T) {
		c := dialRaw(t, addr, packet.V31)
		ack := ptRefused(t, c, &packet.Connect{ClientID: strings.Repeat("a", 24), CleanStart: true})
		if ack.ReasonCode != packet.V3IdentifierRejected {
			t.Fatalf("CONNACK code %d, want 2", ack.ReasonCode)
		}
	})
	t.Run("v31-23-chars", func(t *testing.T) {
		ptConnect(t, addr, packet.V31, strings.Repeat("b", 23), true)
	})
	t.Run("v5-empty", func(t *testing.T) {
		c1, ack1 := ptConnect(t, addr, packet.V5, "", true)
		_, ack2 := ptConnect(t, addr, packet.V5, "", true)
		id1, id2 := ack1.Properties.AssignedClientID, ack2.Properties.AssignedClientID
		if id1 == "" || id2 == "" || id1 == id2 {
			t.Fatalf("assigned client ids %q and %q: want two distinct non-empty ids", id1, id2)
		}
		c1.subscribe(1, "assigned/v5", 0)
		srv.Publish("assigned/v5", []byte("y"), 0, false)
		if p := c1.expectPublish(); string(p.Payload) != "y" {
			t.Fatalf("got %v", p)
		}
		// A client that sends an id gets none assigned.
		_, ack3 := ptConnect(t, addr, packet.V5, "named", true)
		if ack3.Properties.AssignedClientID != "" {
			t.Errorf("assigned id %q for a named client", ack3.Properties.AssignedClientID)
		}
	})
}

type ptAuthn struct{ err error }

func (a ptAuthn) Authenticate(_ context.Context, req *AuthRequest) error {
	if req.Username == "good" {
		return nil
	}
	return a.err
}

// TestProtoConnectRefusals: CONNACK return codes of an Authenticator's
// refusal, [v3 MQTT-3.2.2-4] [v3 MQTT-3.2.2-5] [v5 MQTT-3.1.4-2] [v5
// MQTT-3.2.2-6] [v5 MQTT-3.2.2-7] [v5 MQTT-3.2.2-8]; an accepted CONNECT gets
// code 0 [v3 MQTT-3.1.4-4] [v5 MQTT-3.1.4-5].
func TestProtoConnectRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		err    error
		v3, v5 packet.ReasonCode
	}{
		{"bad-credentials", ErrBadCredentials, packet.V3BadUsernameOrPassword, packet.BadUserNameOrPassword},
		{"not-authorized", ErrNotAuthorized, packet.V3NotAuthorized, packet.NotAuthorized},
		{"other-error", errors.New("backend down"), packet.V3NotAuthorized, packet.NotAuthorized},
		{"banned", &Refusal{Code: packet.Banned}, packet.V3NotAuthorized, packet.Banned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := ptNewServer(t, &Server{Authenticator: ptAuthn{tc.err}})
			for _, v := range ptVersions {
				c := dialRaw(t, addr, v)
				ack := ptRefused(t, c, &packet.Connect{ClientID: "x", CleanStart: true, Username: "bad", Password: []byte("pw")})
				want := tc.v3
				if v == packet.V5 {
					want = tc.v5
				}
				if ack.ReasonCode != want {
					t.Errorf("%v: CONNACK code 0x%02x, want 0x%02x", v, byte(ack.ReasonCode), byte(want))
				}
				ok := dialRaw(t, addr, v)
				ok.connect(&packet.Connect{ClientID: "x", CleanStart: true, Username: "good"})
			}
		})
	}
}

// TestProtoConnectUnsupportedLevel: [v3 MQTT-3.1.2-2] [v5 MQTT-3.1.2-2] an
// unsupported protocol level gets CONNACK return code 1, then the close.
func TestProtoConnectUnsupportedLevel(t *testing.T) {
	t.Parallel()
	addr := ptNewServer(t, &Server{})
	for _, level := range []byte{2, 6, 0x85} {
		c := dialRaw(t, addr, packet.V311)
		raw := []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', level, 0x02, 0, 60, 0, 1, 'x'}
		if _, err := c.nc.Write(raw); err != nil {
			t.Fatal(err)
		}
		ack, ok := c.recv().(*packet.Connack)
		if !ok || ack.ReasonCode != packet.V3UnacceptableProtocolVersion || ack.SessionPresent {
			t.Fatalf("level %d: got %v, want CONNACK return code 1", level, ack)
		}
		if got := c.expectClosed(); len(got) != 0 {
			t.Fatalf("level %d: packets after the refusal: %v", level, got)
		}
	}
}

// TestProtoConnectTimeout: a connection that sends no CONNECT within
// ConnectTimeout is closed (noid:connect-timeout).
func TestProtoConnectTimeout(t *testing.T) {
	t.Parallel()
	addr := ptNewServer(t, &Server{ConnectTimeout: 200 * time.Millisecond})
	c := dialRaw(t, addr, packet.V311)
	if got := c.expectClosed(); len(got) != 0 {
		t.Fatalf("packets before the close: %v", got)
	}
}

// TestProtoKeepAlive: [v3 MQTT-3.1.2-24] [v5 MQTT-3.1.2-22] the server
// closes a connection silent for 1.5 x Keep Alive, MQTT 5 with DISCONNECT
// 0x8D; [v3 MQTT-3.12.4-1] [v5 MQTT-3.12.4-1] PINGREQ keeps it alive and is
// answered with PINGRESP.
func TestProtoKeepAlive(t *testing.T) {
	t.Parallel()
	addr := ptNewServer(t, &Server{})
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, addr, v)
			c.connect(&packet.Connect{ClientID: "ka" + v.String(), CleanStart: true, KeepAlive: 1})
			c.noPacket(time.Second) // not closed after one keep-alive period
			got := c.expectClosed()
			if v == packet.V5 {
				if len(got) != 1 {
					t.Fatalf("got %v, want DISCONNECT 0x8D", got)
				}
				if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.KeepAliveTimeout {
					t.Fatalf("got %v, want DISCONNECT 0x8D", got[0])
				}
			} else if len(got) != 0 {
				t.Fatalf("packets before the close: %v", got)
			}
		})
		t.Run(v.String()+"-ping", func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, addr, v)
			c.connect(&packet.Connect{ClientID: "ping" + v.String(), CleanStart: true, KeepAlive: 1})
			for range 10 { // 2.5 s, well past 1.5 x keep alive; pings 6 x as often as needed, so a loaded machine cannot fail it
				time.Sleep(250 * time.Millisecond)
				c.send(&packet.Pingreq{})
				if _, ok := c.recv().(*packet.Pingresp); !ok {
					t.Fatal("want PINGRESP")
				}
			}
		})
	}
}

// TestProtoSessionPresent: [v3 MQTT-3.2.2-1] [v3 MQTT-3.2.2-2] [v3
// MQTT-3.2.2-3] [v5 MQTT-3.2.2-2] [v5 MQTT-3.2.2-3] Session Present is 0 on
// a first persistent connect, 1 on resume (3.1.1 section 3.1.2.4: the
// existence of a session is session state, even if it is otherwise empty),
// and 0 with clean session, which discards the session [v3 MQTT-3.1.2-6]
// [v5 MQTT-3.1.2-4].
func TestProtoSessionPresent(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			step := func(clean, want bool, subscribe bool) {
				t.Helper()
				c, ack := ptConnect(t, addr, v, "sp", clean)
				if v == packet.V31 {
					want = false // MQTT 3.1 reserves the byte: the flag is never set
				}
				if ack.SessionPresent != want {
					t.Fatalf("clean=%v: session present %v, want %v", clean, ack.SessionPresent, want)
				}
				if subscribe {
					c.subscribe(1, "sp/#", 1)
				}
				c.send(&packet.Disconnect{})
				c.expectClosed()
				ptWaitConnected(t, srv, 0)
			}
			step(false, false, false) // first persistent connect
			step(false, true, false)  // resume an empty session
			step(false, true, true)   // resume, subscribe
			step(false, true, false)  // resume a session with a subscription
			step(true, false, false)  // clean session
			step(false, false, false) // the clean session discarded the old one
		})
	}
}

// ---- Sessions ----

// TestProtoCleanSessionEnds: [v3 MQTT-3.1.2-6] [v5 MQTT-3.1.2-4] a clean
// session ends with its connection: no subscriptions survive.
func TestProtoCleanSessionEnds(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			c, _ := ptConnect(t, addr, v, "cs", true)
			c.subscribe(1, "cs/#", 1)
			c.send(&packet.Disconnect{})
			c.expectClosed()
			ptWaitConnected(t, srv, 0)
			if n := srv.Stats().Subscriptions; n != 0 {
				t.Errorf("%d subscriptions after the clean session ended", n)
			}
			c2, ack := ptConnect(t, addr, v, "cs", false)
			if ack.SessionPresent {
				t.Error("session present after a clean session ended")
			}
			c2.subscribe(2, "mk", 0)
			srv.Publish("cs/x", []byte("lost"), 1, false)
			if got := ptDrain(t, srv, c2, "mk"); len(got) != 0 {
				t.Fatalf("got %v through a subscription of the ended session", got)
			}
		})
	}
}

// TestProtoPersistentQueue: [v3 MQTT-3.1.2-4] [v3 MQTT-3.1.2-5] [v5
// MQTT-3.1.2-5] [v5 MQTT-3.1.2-23] a persistent session keeps its
// subscriptions and queues QoS 1 and 2 messages while offline; QoS 0 only
// with QueueQoS0.
func TestProtoPersistentQueue(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		for _, q0 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v-qos0=%v", v, q0), func(t *testing.T) {
				t.Parallel()
				srv := &Server{QueueQoS0: q0}
				addr := ptNewServer(t, srv)
				c, _ := ptConnect(t, addr, v, "pq", false)
				c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "pq/#", QoS: 2}, {Filter: "mk", QoS: 0}}})
				if _, ok := c.recv().(*packet.Suback); !ok {
					t.Fatal("want SUBACK")
				}
				c.send(&packet.Disconnect{})
				c.expectClosed()
				ptWaitConnected(t, srv, 0)

				// A socket publisher, one message per QoS.
				pub, _ := ptConnect(t, addr, v, "pub", true)
				for qos := byte(0); qos <= 2; qos++ {
					ptPublish(t, pub, &packet.Publish{Topic: "pq/m", QoS: qos, PacketID: uint16(qos + 10), Payload: []byte{'0' + qos}})
				}
				c2, ack := ptConnect(t, addr, v, "pq", false)
				if !ack.SessionPresent && v != packet.V31 { // 3.1 has no session present flag
					t.Fatal("session not present on resume")
				}
				got := ptDrain(t, srv, c2, "mk")
				want := []string{"1", "2"}
				if q0 {
					want = []string{"0", "1", "2"}
				}
				if !slices.Equal(ptPayloads(got), want) {
					t.Fatalf("queued messages %q, want %q", ptPayloads(got), want)
				}
				for _, p := range got {
					if p.QoS != p.Payload[0]-'0' || p.Topic != "pq/m" || p.Dup {
						t.Errorf("got %v", p)
					}
				}
			})
		}
	}
}

// TestProtoQueueLimit: MaxQueuedMessages bounds an offline session's
// queue; DropNewest keeps the first messages, DropOldest the last; every
// drop is counted in Stats().Dropped and reported as EventDrop.
func TestProtoQueueLimit(t *testing.T) {
	t.Parallel()
	for _, policy := range []QueuePolicy{DropNewest, DropOldest} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			rec := &ptRecorder{}
			srv := &Server{MaxQueuedMessages: 5, QueuePolicy: policy, Observers: []Observer{rec}}
			addr := ptNewServer(t, srv)
			c, _ := ptConnect(t, addr, packet.V311, "ql", false)
			c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "ql/#", QoS: 1}, {Filter: "mk", QoS: 0}}})
			c.recv()
			c.send(&packet.Disconnect{})
			c.expectClosed()
			ptWaitConnected(t, srv, 0)
			for i := range 10 {
				if err := srv.Publish("ql/m", []byte{'0' + byte(i)}, 1, false); err != nil {
					t.Fatal(err)
				}
			}
			if d := srv.Stats().Dropped; d != 5 {
				t.Errorf("Stats().Dropped = %d, want 5", d)
			}
			var dropped []string
			for _, e := range rec.get(EventDrop, "") {
				dropped = append(dropped, e.payload)
				if !errors.Is(e.err, errQueueFull) {
					t.Errorf("drop event error %v", e.err)
				}
			}
			keep, lose := "01234", "56789"
			if policy == DropOldest {
				keep, lose = lose, keep
			}
			if strings.Join(dropped, "") != lose {
				t.Errorf("EventDrop for %q, want %q", dropped, lose)
			}
			c2, _ := ptConnect(t, addr, packet.V311, "ql", false)
			var got []string
			for range 5 {
				p := c2.expectPublish()
				got = append(got, string(p.Payload))
				c2.send(&packet.Puback{PacketID: p.PacketID})
			}
			if more := ptDrain(t, srv, c2, "mk"); len(more) != 0 {
				t.Errorf("more messages than the queue holds: %v", more)
			}
			if strings.Join(got, "") != keep {
				t.Fatalf("got %q, want %q", got, keep)
			}
		})
	}
}

// ---- Takeover ----

// TestProtoTakeover: [v3 MQTT-3.1.4-2] [v5 MQTT-3.1.4-3] a second
// connection with the same client id closes the first (MQTT 5: DISCONNECT
// 0x8E) and continues its session [v3 MQTT-3.2.2-2] [v5 MQTT-3.1.2-5].
func TestProtoTakeover(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			c1, _ := ptConnect(t, addr, v, "tk", false)
			c1.subscribe(1, "tk/#", 1)
			c2, ack := ptConnect(t, addr, v, "tk", false)
			if !ack.SessionPresent && v != packet.V31 { // 3.1 has no session present flag
				t.Error("session not present after takeover")
			}
			got := c1.expectClosed()
			if v == packet.V5 {
				if len(got) != 1 {
					t.Fatalf("first connection got %v, want DISCONNECT 0x8E", got)
				}
				if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.SessionTakenOver {
					t.Fatalf("first connection got %v, want DISCONNECT 0x8E", got[0])
				}
			} else if len(got) != 0 {
				t.Fatalf("first connection got %v", got)
			}
			srv.Publish("tk/x", []byte("after"), 1, false)
			p := c2.expectPublish()
			if p.Topic != "tk/x" || string(p.Payload) != "after" || p.QoS != 1 {
				t.Fatalf("got %v", p)
			}
			ptAck(t, c2, p)
			ptWaitConnected(t, srv, 1)

			// A takeover with clean session starts afresh.
			c3, ack := ptConnect(t, addr, v, "tk", true)
			if ack.SessionPresent {
				t.Error("session present on a clean takeover")
			}
			c2.expectClosed()
			c3.subscribe(2, "mk", 0)
			srv.Publish("tk/x", []byte("gone"), 1, false)
			if got := ptDrain(t, srv, c3, "mk"); len(got) != 0 {
				t.Fatalf("clean takeover kept the subscription: %v", got)
			}
		})
	}
}

// TestProtoTakeoverOfCleanSession: [v3 MQTT-3.1.2-6] [v5 MQTT-3.1.2-4] a
// clean session lasts as long as its connection, also when a connection
// with the same id and clean session 0 takes it over: nothing of it is
// resumed (Session Present 0, no subscriptions).
func TestProtoTakeoverOfCleanSession(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			c1, _ := ptConnect(t, addr, v, "tc", true)
			c1.subscribe(1, "tc/#", 1)
			c2, ack := ptConnect(t, addr, v, "tc", false)
			if ack.SessionPresent {
				t.Error("session present after taking over a clean session")
			}
			c1.expectClosed()
			c2.subscribe(2, "mk", 0)
			srv.Publish("tc/x", []byte("old"), 1, false)
			if got := ptDrain(t, srv, c2, "mk"); len(got) != 0 {
				t.Fatalf("subscription of the clean session resumed: %v", got)
			}
			// The new, persistent session is resumed as usual.
			c2.send(&packet.Disconnect{})
			c2.expectClosed()
			ptWaitConnected(t, srv, 0)
			if _, ack := ptConnect(t, addr, v, "tc", false); !ack.SessionPresent && v != packet.V31 { // 3.1 has no flag
				t.Error("persistent session not present")
			}
		})
	}
}

// TestProtoConcurrentReconnect: 20 connections of one client id at once,
// three rounds: afterwards exactly one is alive and works, the others were
// closed [v3 MQTT-3.1.4-2] [v5 MQTT-3.1.4-3], and the first packet each
// got, if any, was CONNACK [v3 MQTT-3.2.0-1].
func TestProtoConcurrentReconnect(t *testing.T) {
	t.Parallel()
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			var prev *rawClient
			for round := range 3 {
				const n = 20
				clients := make([]*rawClient, n)
				for i := range clients {
					clients[i] = dialRaw(t, addr, v)
				}
				acked := make([]bool, n)
				errs := make(chan error, n)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i, c := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						cp := &packet.Connect{Version: v, ClientID: "same"}
						if v == packet.V5 {
							cp.Properties.SessionExpiry = 3600
						}
						<-start
						c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
						if err := c.w.WritePacket(cp); err != nil {
							return // closed already
						}
						p, err := c.recvErr(10 * time.Second)
						if err != nil {
							if isTimeout(err) {
								errs <- fmt.Errorf("client %d: no CONNACK and no close", i)
							}
							return
						}
						ack, ok := p.(*packet.Connack)
						if !ok {
							errs <- fmt.Errorf("client %d: first packet %v, want CONNACK", i, p)
							return
						}
						if ack.ReasonCode != 0 {
							errs <- fmt.Errorf("client %d: CONNACK 0x%02x", i, byte(ack.ReasonCode))
							return
						}
						acked[i] = true
					}()
				}
				close(start)
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
				if t.Failed() {
					t.FailNow()
				}
				open := map[*rawClient]bool{}
				for i, c := range clients {
					if acked[i] {
						open[c] = true
					}
				}
				if prev != nil {
					open[prev] = true
				}
				deadline := time.Now().Add(10 * time.Second)
				for len(open) > 1 && time.Now().Before(deadline) {
					for c := range open {
						p, err := c.recvErr(20 * time.Millisecond)
						switch {
						case err == nil:
							if d, ok := p.(*packet.Disconnect); !ok || d.ReasonCode != packet.SessionTakenOver {
								t.Fatalf("round %d: got %v, want DISCONNECT 0x8E", round, p)
							}
						case isTimeout(err):
						default:
							delete(open, c)
						}
					}
				}
				if len(open) != 1 {
					t.Fatalf("round %d: %d connections alive, want 1", round, len(open))
				}
				var alive *rawClient
				for c := range open {
					alive = c
				}
				ptWaitConnected(t, srv, 1)
				filter := fmt.Sprintf("round/%d", round)
				alive.subscribe(1, filter, 1)
				srv.Publish(filter, []byte("ok"), 1, false)
				p := alive.expectPublish()
				if p.Topic != filter {
					t.Fatalf("round %d: got %v", round, p)
				}
				ptAck(t, alive, p)
				// A PINGRESP shows the PUBACK was processed before the next
				// round's takeover (else the message is rightly resent).
				alive.send(&packet.Pingreq{})
				if _, ok := alive.recv().(*packet.Pingresp); !ok {
					t.Fatal("want PINGRESP")
				}
				prev = alive
			}
		})
	}
}

// ---- QoS ----

// TestProtoQoSMatrix: [v3 MQTT-3.8.4-6] [v5 MQTT-3.8.4-8] a message goes
// out at min(publish QoS, granted QoS), with the QoS 1 and 2 flows in both
// directions [v3 MQTT-4.3.2-1] [v3 MQTT-4.3.2-2] [v3 MQTT-4.3.3-1] [v3
// MQTT-4.3.3-2] [v5 MQTT-4.3.3-1..5] [v5 MQTT-4.3.3-8] [v5 MQTT-4.3.3-11];
// SUBACK grants each filter in order [v3 MQTT-3.8.4-5] [v3 MQTT-3.9.3-1]
// [v5 MQTT-3.8.4-6] [v5 MQTT-3.9.3-1]; DUP is 0 on a first send [v3
// MQTT-3.3.1-2] [v3 MQTT-4.3.1-1] [v5 MQTT-4.3.3-2].
func TestProtoQoSMatrix(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			sub, _ := ptConnect(t, addr, v, "sub", true)
			sub.send(&packet.Subscribe{PacketID: 3, Subscriptions: []packet.Subscription{{Filter: "m/0", QoS: 0}, {Filter: "m/1", QoS: 1}, {Filter: "m/2", QoS: 2}}})
			ack, ok := sub.recv().(*packet.Suback)
			if !ok || ack.PacketID != 3 || !slices.Equal(ack.ReasonCodes, []packet.ReasonCode{0, 1, 2}) {
				t.Fatalf("got %v, want SUBACK 3 [0 1 2]", ack)
			}
			pub, _ := ptConnect(t, addr, v, "pub", true)
			id := uint16(100)
			for s := byte(0); s <= 2; s++ {
				for q := byte(0); q <= 2; q++ {
					id++
					topicName := fmt.Sprintf("m/%d", s)
					payload := fmt.Sprintf("pub%d-sub%d", q, s)
					var pid uint16
					if q > 0 {
						pid = id
					}
					ptPublish(t, pub, &packet.Publish{Topic: topicName, QoS: q, PacketID: pid, Payload: []byte(payload)})
					p := sub.expectPublish()
					want := min(q, s)
					if p.Topic != topicName || string(p.Payload) != payload || p.QoS != want || p.Dup || p.Retain {
						t.Fatalf("publish QoS %d, subscription QoS %d: got %v, want QoS %d", q, s, p, want)
					}
					if (p.PacketID != 0) != (want > 0) {
						t.Fatalf("packet id %d at QoS %d", p.PacketID, want)
					}
					ptAck(t, sub, p)
				}
			}
			sub.subscribe(4, "mk", 0)
			if got := ptDrain(t, srv, sub, "mk"); len(got) != 0 {
				t.Fatalf("extra messages: %v", got)
			}
		})
	}
}

// TestProtoQoS2ReceiveDup: [v3 MQTT-4.3.3-2] [v5 MQTT-4.3.3-10] a QoS 2
// PUBLISH resent with DUP before PUBREL gets another PUBREC and is
// delivered once; after PUBCOMP the id is new again [v5 MQTT-4.3.3-12];
// PUBREL is answered with PUBCOMP [v5 MQTT-4.3.3-11].
func TestProtoQoS2ReceiveDup(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			sub, _ := ptConnect(t, addr, v, "sub", true)
			sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "d/#", QoS: 2}, {Filter: "mk", QoS: 0}}})
			sub.recv()
			pub, _ := ptConnect(t, addr, v, "pub", true)
			expect := func(p packet.Packet, typ packet.Type) {
				t.Helper()
				if p.Type() != typ {
					t.Fatalf("got %v, want %v", p, typ)
				}
			}
			first := &packet.Publish{Topic: "d/x", QoS: 2, PacketID: 9, Payload: []byte("one")}
			pub.send(first)
			expect(pub.recv(), packet.PUBREC)
			dup := *first
			dup.Dup = true
			pub.send(&dup)
			rec := pub.recv()
			expect(rec, packet.PUBREC)
			if rec.(*packet.Pubrec).PacketID != 9 {
				t.Fatalf("got %v", rec)
			}
			pub.send(&packet.Pubrel{PacketID: 9})
			comp := pub.recv()
			expect(comp, packet.PUBCOMP)
			if comp.(*packet.Pubcomp).PacketID != 9 {
				t.Fatalf("got %v", comp)
			}
			ptPublish(t, pub, &packet.Publish{Topic: "d/x", QoS: 2, PacketID: 9, Payload: []byte("two")})
			got := ptDrain(t, srv, sub, "mk")
			if !slices.Equal(ptPayloads(got), []string{"one", "two"}) {
				t.Fatalf("delivered %q, want [one two]", ptPayloads(got))
			}
		})
	}
}

// TestProtoQoS2SendFlow: the broker as QoS 2 sender [v3 MQTT-4.3.3-1] [v5
// MQTT-4.3.3-1..5]: PUBLISH QoS 2 DUP 0, PUBREL on PUBREC with the same
// id, done at PUBCOMP (the id is then free: the next message may reuse it).
func TestProtoQoS2SendFlow(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{MaxInflight: 1}
			addr := ptNewServer(t, srv)
			sub, _ := ptConnect(t, addr, v, "sub", true)
			sub.subscribe(1, "q2", 2)
			for i := range 3 {
				srv.Publish("q2", []byte{'a' + byte(i)}, 2, false)
			}
			for i := range 3 {
				p := sub.expectPublish()
				if p.QoS != 2 || p.Dup || p.PacketID == 0 || p.Payload[0] != 'a'+byte(i) {
					t.Fatalf("got %v", p)
				}
				sub.send(&packet.Pubrec{PacketID: p.PacketID})
				rel, ok := sub.recv().(*packet.Pubrel)
				if !ok || rel.PacketID != p.PacketID {
					t.Fatalf("want PUBREL %d, got %v", p.PacketID, rel)
				}
				sub.send(&packet.Pubcomp{PacketID: p.PacketID})
			}
		})
	}
}

// TestProtoResendOnReconnect: [v3 MQTT-4.4.0-1] [v5 MQTT-4.4.0-1] [v3
// MQTT-4.6.0-1] [v3 MQTT-3.3.1-1] unacknowledged QoS 1 messages are resent
// on reconnect with DUP 1, their ids, in order; a QoS 2 message whose
// PUBREC arrived gets its PUBREL resent, not the PUBLISH [v3 MQTT-4.3.3-1]
// [v5 MQTT-4.3.3-6].
func TestProtoResendOnReconnect(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			c, _ := ptConnect(t, addr, v, "rs", false)
			c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "rs/#", QoS: 2}, {Filter: "mk", QoS: 0}}})
			c.recv()
			for i := range 3 {
				srv.Publish("rs/1", []byte{'0' + byte(i)}, 1, false)
			}
			var ids []uint16
			for i := range 3 {
				p := c.expectPublish()
				if p.Dup || p.QoS != 1 || p.Payload[0] != '0'+byte(i) {
					t.Fatalf("got %v", p)
				}
				ids = append(ids, p.PacketID)
			}
			c.nc.Close() // no acknowledgement
			ptWaitConnected(t, srv, 0)
			c2, ack := ptConnect(t, addr, v, "rs", false)
			if !ack.SessionPresent && v != packet.V31 { // 3.1 has no session present flag
				t.Fatal("session not present")
			}
			for i := range 3 {
				p := c2.expectPublish()
				if !p.Dup || p.QoS != 1 || p.PacketID != ids[i] || p.Payload[0] != '0'+byte(i) {
					t.Fatalf("resend %d: got %v, want DUP QoS 1 id %d payload %c", i, p, ids[i], '0'+i)
				}
				c2.send(&packet.Puback{PacketID: p.PacketID})
			}

			// QoS 2: PUBREC sent, PUBREL received, PUBCOMP missing.
			srv.Publish("rs/2", []byte("q2"), 2, false)
			p := c2.expectPublish()
			if p.QoS != 2 {
				t.Fatalf("got %v", p)
			}
			c2.send(&packet.Pubrec{PacketID: p.PacketID})
			if rel, ok := c2.recv().(*packet.Pubrel); !ok || rel.PacketID != p.PacketID {
				t.Fatalf("want PUBREL %d, got %v", p.PacketID, rel)
			}
			c2.nc.Close()
			ptWaitConnected(t, srv, 0)
			c3, _ := ptConnect(t, addr, v, "rs", false)
			rel, ok := c3.recv().(*packet.Pubrel)
			if !ok || rel.PacketID != p.PacketID {
				t.Fatalf("want PUBREL %d resent, got %v", p.PacketID, rel)
			}
			c3.send(&packet.Pubcomp{PacketID: p.PacketID})
			if got := ptDrain(t, srv, c3, "mk"); len(got) != 0 {
				t.Fatalf("extra messages after the resend: %v", got)
			}
		})
	}
}

// TestProtoRetryInterval: RetryInterval resends an unacknowledged message
// with DUP 1 to an MQTT 3.1 / 3.1.1 client without a reconnect [v3
// MQTT-3.3.1-1]; an MQTT 5 client gets no such resend [v5 MQTT-4.4.0-1].
func TestProtoRetryInterval(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{RetryInterval: 200 * time.Millisecond}
			addr := ptNewServer(t, srv)
			c, _ := ptConnect(t, addr, v, "retry", true)
			c.subscribe(1, "rt", 1)
			srv.Publish("rt", []byte("x"), 1, false)
			p := c.expectPublish()
			if p.Dup {
				t.Fatalf("first send has DUP: %v", p)
			}
			if v == packet.V5 {
				c.noPacket(700 * time.Millisecond)
				c.send(&packet.Puback{PacketID: p.PacketID})
				return
			}
			again := c.expectPublish()
			if !again.Dup || again.PacketID != p.PacketID || string(again.Payload) != "x" {
				t.Fatalf("resend: got %v, want DUP id %d", again, p.PacketID)
			}
			c.send(&packet.Puback{PacketID: p.PacketID})
		})
	}
}

// TestProtoMaxInflight: with MaxInflight 2 a subscriber that does not
// acknowledge gets two messages, then one more per PUBACK [v5
// MQTT-3.3.4-9] [v5 MQTT-4.9.0-2]; other packets are not held back [v5
// MQTT-3.3.4-10] [v5 MQTT-4.9.0-3].
func TestProtoMaxInflight(t *testing.T) {
	t.Parallel()
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{MaxInflight: 2}
			addr := ptNewServer(t, srv)
			c, _ := ptConnect(t, addr, v, "mi", true)
			c.subscribe(1, "mi", 1)
			for i := range 5 {
				srv.Publish("mi", []byte{'0' + byte(i)}, 1, false)
			}
			p0, p1 := c.expectPublish(), c.expectPublish()
			c.noPacket(300 * time.Millisecond)
			c.send(&packet.Pingreq{}) // the full window does not hold up PINGRESP
			if _, ok := c.recv().(*packet.Pingresp); !ok {
				t.Fatal("want PINGRESP")
			}
			c.send(&packet.Puback{PacketID: p0.PacketID})
			p2 := c.expectPublish()
			c.noPacket(200 * time.Millisecond)
			if string(p0.Payload)+string(p1.Payload)+string(p2.Payload) != "012" {
				t.Fatalf("got %v %v %v", p0, p1, p2)
			}
			c.send(&packet.Puback{PacketID: p1.PacketID})
			c.send(&packet.Puback{PacketID: p2.PacketID})
			for i := 3; i < 5; i++ {
				p := c.expectPublish()
				if p.Payload[0] != '0'+byte(i) {
					t.Fatalf("got %v", p)
				}
				c.send(&packet.Puback{PacketID: p.PacketID})
			}
		})
	}
}

// TestProtoOrdered: [v3 MQTT-4.6.0-5] [v3 MQTT-4.6.0-6] [v5 MQTT-4.6.0-5]
// [v5 MQTT-4.6.0-6] 200 QoS 1 messages on one topic arrive in order, and
// the PUBACKs to the publisher come in order too.
func TestProtoOrdered(t *testing.T) {
	t.Parallel()
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			const n = 200
			addr := ptNewServer(t, &Server{})
			sub, _ := ptConnect(t, addr, v, "sub", true)
			sub.subscribe(1, "ord", 1)
			pub, _ := ptConnect(t, addr, v, "pub", true)
			for i := 1; i <= n; i++ {
				pub.send(&packet.Publish{Topic: "ord", QoS: 1, PacketID: uint16(i), Payload: []byte(fmt.Sprint(i))})
			}
			for i := 1; i <= n; i++ {
				p := sub.expectPublish()
				if string(p.Payload) != fmt.Sprint(i) {
					t.Fatalf("message %d: got payload %q", i, p.Payload)
				}
				sub.send(&packet.Puback{PacketID: p.PacketID})
			}
			for i := 1; i <= n; i++ {
				ack, ok := pub.recv().(*packet.Puback)
				if !ok || ack.PacketID != uint16(i) {
					t.Fatalf("PUBACK %d: got %v", i, ack)
				}
			}
		})
	}
}
