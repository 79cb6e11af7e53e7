package broker

// Black-box tests of the MQTT 5.0 session behaviour of the broker: Clean
// Start, Session Expiry Interval, wills and Will Delay Interval, takeover,
// keep alive, the CONNACK properties and shutdown. Real loopback sockets,
// raw packets, one server per test; each test names the normative
// statements of MQTT 5.0 it checks ([v5 MQTT-x.y.z-n]; rules without an
// id by section number or noid).
//
// Timing: expiry intervals and delays are 1 to 3 seconds (whole seconds on
// the wire). Waiting for something to happen polls with generous limits;
// the only assertions on the clock are lower bounds measured from before
// the event that starts the timer, which a slow machine cannot break.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// ---- helpers (prefixed v5s to keep clear of other test files) ----

// v5sConnect dials an MQTT 5 connection and connects it with Clean Start
// clean and Session Expiry Interval expiry; mod, if not nil, adjusts the
// CONNECT before it is sent.
func v5sConnect(t *testing.T, addr, id string, clean bool, expiry uint32, mod func(*packet.Connect)) (*rawClient, *packet.Connack) {
	t.Helper()
	c := dialRaw(t, addr, packet.V5)
	cp := &packet.Connect{ClientID: id, CleanStart: clean}
	cp.Properties.SessionExpiry = expiry
	if mod != nil {
		mod(cp)
	}
	return c, c.connect(cp)
}

// v5sDisconnect sends d and waits for the server to close the connection,
// which must not send anything before.
func v5sDisconnect(t *testing.T, c *rawClient, d *packet.Disconnect) {
	t.Helper()
	c.send(d)
	if got := c.expectClosed(); len(got) != 0 {
		t.Fatalf("packets after DISCONNECT: %v", got)
	}
}

// v5sSubscribe subscribes c to filters at QoS 1 and to "mk" at QoS 0 (the
// marker topic of ptDrain).
func v5sSubscribe(t *testing.T, c *rawClient, id uint16, filters ...string) {
	t.Helper()
	sp := &packet.Subscribe{PacketID: id}
	for _, f := range filters {
		sp.Subscriptions = append(sp.Subscriptions, packet.Subscription{Filter: f, QoS: 1})
	}
	sp.Subscriptions = append(sp.Subscriptions, packet.Subscription{Filter: "mk", QoS: 0})
	c.send(sp)
	ack, ok := c.recv().(*packet.Suback)
	if !ok || ack.PacketID != id || len(ack.ReasonCodes) != len(sp.Subscriptions) {
		t.Fatalf("want SUBACK %d for %d filters, got %v", id, len(sp.Subscriptions), ack)
	}
	for i, code := range ack.ReasonCodes {
		if code.IsError() {
			t.Fatalf("filter %q refused with 0x%02x", sp.Subscriptions[i].Filter, byte(code))
		}
	}
}

// v5sWatcher connects a clean-session subscriber of version v to "will/#"
// at QoS 1 (and to "mk").
func v5sWatcher(t *testing.T, addr string, v packet.Version, id string) *rawClient {
	t.Helper()
	c, _ := ptConnect(t, addr, v, id, true)
	v5sSubscribe(t, c, 1, "will/#")
	return c
}

// v5sExpectWill waits for the will on topic with payload at c, which
// must be the next packet, and acknowledges it.
func v5sExpectWill(t *testing.T, c *rawClient, topicName, payload string) *packet.Publish {
	t.Helper()
	p := c.expectPublish()
	if p.Topic != topicName || string(p.Payload) != payload {
		t.Fatalf("got %v, want the will %q on %q", p, payload, topicName)
	}
	ptAck(t, c, p)
	return p
}

// v5sWaitSessions waits until the broker holds n sessions.
func v5sWaitSessions(t *testing.T, srv *Server, n int) {
	t.Helper()
	ptEventually(t, 10*time.Second, fmt.Sprintf("%d sessions", n), func() bool { return srv.Stats().Sessions == n })
}

// v5sAtLeast fails the test if less than d has passed since start.
func v5sAtLeast(t *testing.T, start time.Time, d time.Duration, what string) {
	t.Helper()
	// 20 ms of slack for the granularity of the clocks involved.
	if e := time.Since(start); e < d-20*time.Millisecond {
		t.Errorf("%s after %v, want not before %v", what, e, d)
	}
}

// v5sWill is a will on will/<name> with payload "gone-<name>".
func v5sWill(name string, delay uint32) *packet.Will {
	w := &packet.Will{Topic: "will/" + name, Payload: []byte("gone-" + name), QoS: 1}
	w.Properties.WillDelay = delay
	return w
}

// ---- Clean Start and Session Expiry ----

// TestV5CleanStart: [v5 MQTT-3.1.2-6] Clean Start 0 without a session
// creates one (Session Present 0); [v5 MQTT-3.1.2-5] [v5 MQTT-3.2.2-3]
// Clean Start 0 with a session resumes it (Session Present 1), its
// subscriptions and the QoS 1 messages queued while it was offline
// [v5 MQTT-3.1.2-23]; [v5 MQTT-3.1.2-4] [v5 MQTT-3.2.2-2] Clean Start 1
// discards it (Session Present 0, no subscriptions, no queued messages).
func TestV5CleanStart(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)

	c, ack := v5sConnect(t, addr, "cs", false, 60, nil)
	if ack.SessionPresent {
		t.Fatal("Session Present 1 on the first connect") // [v5 MQTT-3.1.2-6]
	}
	v5sSubscribe(t, c, 1, "cs/#")
	v5sDisconnect(t, c, &packet.Disconnect{})
	ptWaitConnected(t, srv, 0)
	if err := srv.Publish("cs/q", []byte("queued"), 1, false); err != nil {
		t.Fatal(err)
	}

	c, ack = v5sConnect(t, addr, "cs", false, 60, nil)
	if !ack.SessionPresent {
		t.Fatal("Session Present 0 on resume") // [v5 MQTT-3.2.2-3]
	}
	if got := ptDrain(t, srv, c, "mk"); !slices.Equal(ptPayloads(got), []string{"queued"}) {
		t.Fatalf("resumed session delivered %q, want [queued]", ptPayloads(got))
	}
	srv.Publish("cs/live", []byte("live"), 1, false)
	if p := c.expectPublish(); p.Topic != "cs/live" || p.QoS != 1 {
		t.Fatalf("resumed subscription delivered %v", p)
	} else {
		ptAck(t, c, p)
	}
	v5sDisconnect(t, c, &packet.Disconnect{})
	ptWaitConnected(t, srv, 0)
	srv.Publish("cs/q", []byte("discarded"), 1, false)

	c, ack = v5sConnect(t, addr, "cs", true, 60, nil)
	if ack.SessionPresent {
		t.Fatal("Session Present 1 with Clean Start 1") // [v5 MQTT-3.2.2-2]
	}
	if n := srv.Stats().Subscriptions; n != 0 {
		t.Errorf("%d subscriptions survived Clean Start 1", n)
	}
	c.subscribe(2, "mk", 0)
	srv.Publish("cs/x", []byte("old-subscription"), 1, false)
	if got := ptDrain(t, srv, c, "mk"); len(got) != 0 {
		t.Fatalf("Clean Start 1 kept the old session: got %q", ptPayloads(got))
	}
}

// TestV5SessionExpiryZero: section 3.1.2.11.2, a Session Expiry Interval
// of 0 (or none) ends the session when the connection closes, by
// DISCONNECT or by a network drop, even with Clean Start 0: the session
// and its subscriptions are gone at once, and a reconnect gets Session
// Present 0 [v5 MQTT-3.2.2-3] and no messages.
func TestV5SessionExpiryZero(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"disconnect", "drop"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			c, _ := v5sConnect(t, addr, "z", false, 0, nil)
			v5sSubscribe(t, c, 1, "z/#")
			if how == "disconnect" {
				v5sDisconnect(t, c, &packet.Disconnect{})
			} else {
				c.nc.Close()
			}
			ptWaitConnected(t, srv, 0)
			// The session ends before the connection is counted out.
			if st := srv.Stats(); st.Sessions != 0 || st.Subscriptions != 0 {
				t.Errorf("after the close: %d sessions, %d subscriptions; want none", st.Sessions, st.Subscriptions)
			}
			srv.Publish("z/x", []byte("lost"), 1, false)
			c2, ack := v5sConnect(t, addr, "z", false, 0, nil)
			if ack.SessionPresent {
				t.Error("Session Present 1 after a session with expiry 0 ended")
			}
			c2.subscribe(1, "mk", 0)
			if got := ptDrain(t, srv, c2, "mk"); len(got) != 0 {
				t.Fatalf("got %q from an ended session", ptPayloads(got))
			}
		})
	}
}

// TestV5SessionExpiryInterval: [v5 MQTT-3.1.2-23] a session with a
// Session Expiry Interval of 1 s outlives its connection for that long
// and no longer (section 3.1.2.11.2): afterwards Stats().Sessions drops,
// a reconnect gets Session Present 0 [v5 MQTT-3.2.2-3] and the message
// queued for it is gone; a session with 0xFFFFFFFF does not expire in the
// meantime and is resumed with its queued message [v5 MQTT-3.1.2-5].
func TestV5SessionExpiryInterval(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	short, _ := v5sConnect(t, addr, "short", false, 1, nil)
	v5sSubscribe(t, short, 1, "short/#")
	never, _ := v5sConnect(t, addr, "never", false, neverExpire, nil)
	v5sSubscribe(t, never, 1, "never/#")
	start := time.Now()
	v5sDisconnect(t, short, &packet.Disconnect{})
	v5sDisconnect(t, never, &packet.Disconnect{})
	ptWaitConnected(t, srv, 0)
	srv.Publish("short/x", []byte("expires"), 1, false)
	srv.Publish("never/x", []byte("kept"), 1, false)

	v5sWaitSessions(t, srv, 1)
	v5sAtLeast(t, start, time.Second, "session with expiry 1 s ended")

	c, ack := v5sConnect(t, addr, "short", false, 1, nil)
	if ack.SessionPresent {
		t.Error("Session Present 1 after the session expired")
	}
	c.subscribe(1, "mk", 0)
	if got := ptDrain(t, srv, c, "mk"); len(got) != 0 {
		t.Errorf("expired session delivered %q", ptPayloads(got))
	}

	c2, ack := v5sConnect(t, addr, "never", false, neverExpire, nil)
	if !ack.SessionPresent {
		t.Fatal("session with expiry 0xFFFFFFFF not present")
	}
	if got := ptDrain(t, srv, c2, "mk"); !slices.Equal(ptPayloads(got), []string{"kept"}) {
		t.Fatalf("session with expiry 0xFFFFFFFF delivered %q, want [kept]", ptPayloads(got))
	}
}

// TestV5DisconnectSessionExpiry: section 3.14.2.2.2, a DISCONNECT may
// change the Session Expiry Interval: 60 s to 1 s ends the session after
// about a second, 1 s to 0 ends it at once; after a CONNECT with 0 a
// non-zero value is a Protocol Error: the server answers DISCONNECT 0x82
// and, the DISCONNECT not being accepted, publishes the will
// [v5 MQTT-3.1.2-8].
func TestV5DisconnectSessionExpiry(t *testing.T) {
	t.Parallel()
	t.Run("60-to-1", func(t *testing.T) {
		t.Parallel()
		srv := &Server{}
		addr := ptNewServer(t, srv)
		c, _ := v5sConnect(t, addr, "d", false, 60, nil)
		v5sSubscribe(t, c, 1, "d/#")
		d := &packet.Disconnect{}
		d.Properties.SessionExpiry = 1
		start := time.Now()
		v5sDisconnect(t, c, d)
		ptWaitConnected(t, srv, 0)
		v5sWaitSessions(t, srv, 0)
		v5sAtLeast(t, start, time.Second, "session ended")
		if _, ack := v5sConnect(t, addr, "d", false, 60, nil); ack.SessionPresent {
			t.Error("Session Present 1 after the session expired")
		}
	})
	t.Run("1-to-0", func(t *testing.T) {
		t.Parallel()
		srv := &Server{}
		addr := ptNewServer(t, srv)
		c, _ := v5sConnect(t, addr, "d", false, 1, nil)
		v5sSubscribe(t, c, 1, "d/#")
		d := &packet.Disconnect{}
		d.Properties.Mark(packet.PropSessionExpiry) // 0, present
		v5sDisconnect(t, c, d)
		ptWaitConnected(t, srv, 0)
		// Ended with the connection, not a second later.
		if st := srv.Stats(); st.Sessions != 0 || st.Subscriptions != 0 {
			t.Errorf("after DISCONNECT with expiry 0: %d sessions, %d subscriptions; want none", st.Sessions, st.Subscriptions)
		}
		if _, ack := v5sConnect(t, addr, "d", false, 60, nil); ack.SessionPresent {
			t.Error("Session Present 1 after DISCONNECT with expiry 0")
		}
	})
	t.Run("0-to-60", func(t *testing.T) {
		t.Parallel()
		srv := &Server{}
		addr := ptNewServer(t, srv)
		watch := v5sWatcher(t, addr, packet.V311, "watch")
		c, _ := v5sConnect(t, addr, "d", false, 0, func(cp *packet.Connect) { cp.Will = v5sWill("d", 0) })
		d := &packet.Disconnect{}
		d.Properties.SessionExpiry = 60
		c.send(d)
		expectKicked(t, c, packet.ProtocolErrorCode)
		v5sExpectWill(t, watch, "will/d", "gone-d")
		ptWaitConnected(t, srv, 1)
		if n := srv.Stats().Sessions; n != 1 {
			t.Errorf("%d sessions, want only the watcher's", n)
		}
	})
}

// TestV5MaxSessionExpiry: Server.MaxSessionExpiry caps the Session Expiry
// Interval of CONNECT, and the CONNACK carries the value used (section
// 3.2.2.3.2); a smaller value is left as the client asked, without the
// property; DISCONNECT cannot raise it above the cap (section 3.14.2.2.2);
// and it is the expiry of MQTT 3.1.1 persistent sessions.
func TestV5MaxSessionExpiry(t *testing.T) {
	t.Parallel()
	t.Run("connect", func(t *testing.T) {
		t.Parallel()
		srv := &Server{MaxSessionExpiry: time.Second}
		addr := ptNewServer(t, srv)
		c, ack := v5sConnect(t, addr, "capped", false, 3600, nil)
		if !ack.Properties.Has(packet.PropSessionExpiry) || ack.Properties.SessionExpiry != 1 {
			t.Fatalf("CONNACK properties %v, want Session Expiry Interval 1", &ack.Properties)
		}
		_, ack0 := v5sConnect(t, addr, "uncapped", true, 0, nil)
		if ack0.Properties.Has(packet.PropSessionExpiry) {
			t.Errorf("CONNACK of a client below the cap has %v", &ack0.Properties)
		}
		v5sSubscribe(t, c, 1, "capped/#")
		start := time.Now()
		v5sDisconnect(t, c, &packet.Disconnect{})
		v5sWaitSessions(t, srv, 1) // the uncapped client's
		v5sAtLeast(t, start, time.Second, "capped session ended")
		if _, ack := v5sConnect(t, addr, "capped", false, 3600, nil); ack.SessionPresent {
			t.Error("Session Present 1 after the capped session expired")
		}
	})
	t.Run("disconnect", func(t *testing.T) {
		t.Parallel()
		srv := &Server{MaxSessionExpiry: time.Second}
		addr := ptNewServer(t, srv)
		c, _ := v5sConnect(t, addr, "raise", false, 1, nil)
		v5sSubscribe(t, c, 1, "raise/#")
		d := &packet.Disconnect{}
		d.Properties.SessionExpiry = 3600
		start := time.Now()
		v5sDisconnect(t, c, d)
		v5sWaitSessions(t, srv, 0)
		v5sAtLeast(t, start, time.Second, "session ended")
	})
	t.Run("v3.1.1", func(t *testing.T) {
		t.Parallel()
		srv := &Server{MaxSessionExpiry: time.Second}
		addr := ptNewServer(t, srv)
		c, _ := ptConnect(t, addr, packet.V311, "v3", false)
		c.subscribe(1, "v3/#", 1)
		start := time.Now()
		c.send(&packet.Disconnect{})
		c.expectClosed()
		ptWaitConnected(t, srv, 0)
		srv.Publish("v3/x", []byte("lost"), 1, false)
		v5sWaitSessions(t, srv, 0)
		v5sAtLeast(t, start, time.Second, "3.1.1 persistent session ended")
		c2, ack := ptConnect(t, addr, packet.V311, "v3", false)
		if ack.SessionPresent {
			t.Error("Session Present 1 after the 3.1.1 session expired")
		}
		c2.subscribe(2, "mk", 0)
		if got := ptDrain(t, srv, c2, "mk"); len(got) != 0 {
			t.Errorf("expired 3.1.1 session delivered %q", ptPayloads(got))
		}
	})
}

// ---- Wills ----

// TestV5WillOnClose: [v5 MQTT-3.1.2-8] the will is published when the
// connection closes without a normal DISCONNECT: after a network drop,
// and after DISCONNECT 0x04 Disconnect with Will Message (section
// 3.14.2.1); not after DISCONNECT 0x00 [v5 MQTT-3.14.4-3] [v5
// MQTT-3.1.2-10]; published once, non-retained [v5 MQTT-3.1.2-14].
func TestV5WillOnClose(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"drop", "disconnect-0x04", "disconnect-0x00"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			watch := v5sWatcher(t, addr, packet.V5, "watch")
			c, _ := v5sConnect(t, addr, "w", false, 60, func(cp *packet.Connect) { cp.Will = v5sWill("w", 0) })
			switch how {
			case "drop":
				c.nc.Close()
			case "disconnect-0x04":
				v5sDisconnect(t, c, &packet.Disconnect{ReasonCode: packet.DisconnectWithWill})
			case "disconnect-0x00":
				v5sDisconnect(t, c, &packet.Disconnect{ReasonCode: packet.NormalDisconnection})
				ptWaitConnected(t, srv, 1)
				if got := ptDrain(t, srv, watch, "mk"); len(got) != 0 {
					t.Fatalf("will published after DISCONNECT 0x00: %v", got)
				}
				return
			}
			p := v5sExpectWill(t, watch, "will/w", "gone-w")
			if p.QoS != 1 || p.Retain {
				t.Errorf("will %v, want QoS 1 without RETAIN", p)
			}
			ptWaitConnected(t, srv, 1)
			if got := ptDrain(t, srv, watch, "mk"); len(got) != 0 {
				t.Fatalf("will published twice: %v", got)
			}
		})
	}
}

// TestV5WillDelay: section 3.1.2.5 and 3.1.3.2.2, the Will Delay
// Interval. [v5 MQTT-3.1.2-8] the will is published when the delay has
// passed or the session ends, whichever is first: after the delay of 1 s;
// after the session expiry of 1 s when the delay is 30 s; at once when a
// reconnect with Clean Start 1 ends the session [v5 MQTT-3.1.2-4]. [v5
// MQTT-3.1.3-9] a reconnect to the session (Clean Start 0) within the
// delay cancels it: a control client with a longer delay shows the
// cancelled will's time has passed.
func TestV5WillDelay(t *testing.T) {
	t.Parallel()
	t.Run("after-delay", func(t *testing.T) {
		t.Parallel()
		srv := &Server{}
		addr := ptNewServer(t, srv)
		watch := v5sWatcher(t, addr, packet.V5, "watch")
		c, _ := v5sConnect(t, addr, "wd", false, 60, func(cp *packet.Connect) { cp.Will = v5sWill("wd", 1) })
		start := time.Now()
		c.nc.Close()
		v5sExpectWill(t, watch, "will/wd", "gone-wd")
		v5sAtLeast(t, start, time.Second, "delayed will published")
	})
	t.Run("session-expiry-first", func(t *testing.T) {
		t.Parallel()
		srv := &Server{}
		addr := ptNewServer(t, srv)
		watch := v5sWatcher(t, addr, packet.V5, "watch")
		c, _ := v5sConnect(t, addr, "wd", false, 1, func(cp *packet.Connect) { cp.Will = v5sWill("wd", 30) })
		start := time.Now()
		c.nc.Close()
		v5sExpectWill(t, watch, "will/wd", "gone-wd") // within 5 s, not after 30
		v5sAtLeast(t, start, time.Second, "will of the expired session published")
	})
	t.Run("clean-start-reconnect", func(t *testing.T) {
		t.Parallel()
		srv := &Server{}
		addr := ptNewServer(t, srv)
		watch := v5sWatcher(t, addr, packet.V5, "watch")
		c, _ := v5sConnect(t, addr, "wd", false, 60, func(cp *packet.Connect) { cp.Will = v5sWill("wd", 30) })
		c.nc.Close()
		ptWaitConnected(t, srv, 1)
		_, ack := v5sConnect(t, addr, "wd", true, 60, nil)
		if ack.SessionPresent {
			t.Error("Session Present 1 with Clean Start 1")
		}
		v5sExpectWill(t, watch, "will/wd", "gone-wd") // within 5 s, not after 30
	})
	t.Run("resume-cancels", func(t *testing.T) {
		t.Parallel()
		srv := &Server{}
		addr := ptNewServer(t, srv)
		watch := v5sWatcher(t, addr, packet.V5, "watch")
		resumed, _ := v5sConnect(t, addr, "resumed", false, 60, func(cp *packet.Connect) { cp.Will = v5sWill("resumed", 1) })
		control, _ := v5sConnect(t, addr, "control", false, 60, func(cp *packet.Connect) { cp.Will = v5sWill("control", 2) })
		resumed.nc.Close()
		control.nc.Close()
		ptWaitConnected(t, srv, 1)
		if _, ack := v5sConnect(t, addr, "resumed", false, 60, nil); !ack.SessionPresent {
			t.Fatal("session not present on resume")
		}
		// The resumed will was due a second before the control's.
		v5sExpectWill(t, watch, "will/control", "gone-control")
		if got := ptDrain(t, srv, watch, "mk"); len(got) != 0 {
			t.Fatalf("will published although the session resumed: %v", got)
		}
	})
}

// TestV5WillProperties: [v5 MQTT-3.1.3-10] the will's User Properties
// reach an MQTT 5 subscriber in their order, and with them, unchanged,
// the Payload Format Indicator [v5 MQTT-3.3.2-4], Response Topic [v5
// MQTT-3.3.2-15], Correlation Data [v5 MQTT-3.3.2-16] and Content Type
// [v5 MQTT-3.3.2-20], and the Message Expiry Interval (less the time
// waited, [v5 MQTT-3.3.2-6]); the Will Delay Interval is not forwarded
// (section 3.1.3.2.2: a will property only). An MQTT 3.1.1 subscriber gets
// the same topic and payload, without properties. (Will Delay 1 s with
// Session Expiry 0: the session ends at once, so does the delay.)
func TestV5WillProperties(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	w5 := v5sWatcher(t, addr, packet.V5, "watch5")
	w3 := v5sWatcher(t, addr, packet.V311, "watch3")
	will := &packet.Will{Topic: "will/props", Payload: []byte("gone \u00e9"), QoS: 1}
	will.Properties = packet.Properties{
		PayloadFormat:   1,
		MessageExpiry:   3600,
		ContentType:     "text/plain; charset=utf-8",
		ResponseTopic:   "reply/props",
		CorrelationData: []byte{0, 1, 2, 0xff},
		User:            []packet.UserProperty{{Key: "k", Value: "1"}, {Key: "a", Value: "2"}, {Key: "k", Value: "3"}, {Key: "", Value: ""}},
		WillDelay:       1,
	}
	c, _ := v5sConnect(t, addr, "props", true, 0, func(cp *packet.Connect) { cp.Will = will })
	c.nc.Close()

	p := v5sExpectWill(t, w5, "will/props", "gone \u00e9")
	got := p.Properties
	if got.MessageExpiry < 3590 || got.MessageExpiry > 3600 {
		t.Errorf("Message Expiry Interval %d, want about 3600", got.MessageExpiry)
	}
	want := will.Properties
	want.WillDelay = 0
	want.MessageExpiry = got.MessageExpiry
	if got.Has(packet.PropWillDelay) {
		t.Error("the will's PUBLISH has a Will Delay Interval")
	}
	if got.String() != want.String() {
		t.Errorf("will properties\n got  %v\n want %v", &got, &want)
	}
	if !slices.Equal(got.User, want.User) || !slices.Equal(got.CorrelationData, want.CorrelationData) {
		t.Errorf("user properties %q, correlation data % x", got.User, got.CorrelationData)
	}

	p3 := v5sExpectWill(t, w3, "will/props", "gone \u00e9")
	if !p3.Properties.IsZero() {
		t.Errorf("3.1.1 subscriber got properties %v", &p3.Properties)
	}
}

// TestV5TakeoverWill: [v5 MQTT-3.1.4-3] a second connection with the
// same client id gets the first one a DISCONNECT 0x8E (and nothing else)
// and a close; the first connection's will, with no delay, is published
// (section 3.1.4, 3.1.2.5); the session is resumed [v5 MQTT-3.2.2-3].
func TestV5TakeoverWill(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	watch := v5sWatcher(t, addr, packet.V5, "watch")
	first, _ := v5sConnect(t, addr, "tk", false, 60, func(cp *packet.Connect) { cp.Will = v5sWill("tk", 0) })
	_, ack := v5sConnect(t, addr, "tk", false, 60, nil)
	if !ack.SessionPresent {
		t.Error("Session Present 0 after takeover")
	}
	got := first.expectClosed()
	if len(got) != 1 {
		t.Fatalf("first connection got %v, want DISCONNECT 0x8E", got)
	}
	if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.SessionTakenOver {
		t.Fatalf("first connection got %v, want DISCONNECT 0x8E", got[0])
	}
	v5sExpectWill(t, watch, "will/tk", "gone-tk")
	if got := ptDrain(t, srv, watch, "mk"); len(got) != 0 {
		t.Fatalf("will published twice: %v", got)
	}
}

// ---- CONNACK ----

// TestV5ServerKeepAlive: with Server.ServerKeepAlive the CONNACK carries
// Server Keep Alive, which replaces the client's Keep Alive, longer or
// off ([v5 MQTT-3.1.2-21] [v5 MQTT-3.2.2-21] the client is to use it),
// and the server enforces 1.5 times it: a silent client is disconnected
// with DISCONNECT 0x8D [v5 MQTT-3.1.2-22]. Without it the CONNACK has no
// Server Keep Alive [v5 MQTT-3.2.2-22]; an MQTT 3.1.1 client keeps its own
// Keep Alive (here: none).
func TestV5ServerKeepAlive(t *testing.T) {
	t.Parallel()
	srv := &Server{ServerKeepAlive: time.Second}
	addr := ptNewServer(t, srv)
	for _, ka := range []uint16{0, 60} {
		t.Run(fmt.Sprintf("client-%d", ka), func(t *testing.T) {
			t.Parallel()
			c, ack := v5sConnect(t, addr, fmt.Sprint("ka", ka), true, 0, func(cp *packet.Connect) { cp.KeepAlive = ka })
			if !ack.Properties.Has(packet.PropServerKeepAlive) || ack.Properties.ServerKeepAlive != 1 {
				t.Fatalf("CONNACK properties %v, want Server Keep Alive 1", &ack.Properties)
			}
			c.noPacket(time.Second) // less than 1.5 x 1 s
			got := c.expectClosed()
			if len(got) != 1 {
				t.Fatalf("got %v, want DISCONNECT 0x8D", got)
			}
			if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.KeepAliveTimeout {
				t.Fatalf("got %v, want DISCONNECT 0x8D", got[0])
			}
		})
	}
	t.Run("v3.1.1", func(t *testing.T) {
		t.Parallel()
		c, _ := ptConnect(t, addr, packet.V311, "ka3", true)
		c.noPacket(2 * time.Second) // past 1.5 x the Server Keep Alive
		c.send(&packet.Pingreq{})
		if _, ok := c.recv().(*packet.Pingresp); !ok {
			t.Fatal("want PINGRESP")
		}
	})
	t.Run("unset", func(t *testing.T) {
		t.Parallel()
		addr := ptNewServer(t, &Server{})
		_, ack := v5sConnect(t, addr, "ka", true, 0, func(cp *packet.Connect) { cp.KeepAlive = 30 })
		if ack.Properties.Has(packet.PropServerKeepAlive) {
			t.Errorf("CONNACK has Server Keep Alive %d without Server.ServerKeepAlive", ack.Properties.ServerKeepAlive)
		}
	})
}

// TestV5AssignedClientID: [v5 MQTT-3.2.2-16] [v5 MQTT-3.1.3-6] [v5
// MQTT-3.1.3-7] an empty client id gets an Assigned Client Identifier in
// the CONNACK, unique among the sessions; with Clean Start 0 and a Session
// Expiry Interval the session is kept under it and resumed by it; a
// client with an id gets none.
func TestV5AssignedClientID(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c1, ack1 := v5sConnect(t, addr, "", false, 60, nil)
	_, ack2 := v5sConnect(t, addr, "", true, 0, nil)
	id1, id2 := ack1.Properties.AssignedClientID, ack2.Properties.AssignedClientID
	if id1 == "" || id2 == "" || id1 == id2 {
		t.Fatalf("assigned client ids %q and %q, want two distinct ids", id1, id2)
	}
	v5sSubscribe(t, c1, 1, "aid/#")
	v5sDisconnect(t, c1, &packet.Disconnect{})
	ptWaitConnected(t, srv, 1)
	srv.Publish("aid/x", []byte("kept"), 1, false)
	c3, ack3 := v5sConnect(t, addr, id1, false, 60, nil)
	if !ack3.SessionPresent {
		t.Fatal("session of the assigned id not present")
	}
	if ack3.Properties.Has(packet.PropAssignedClientID) {
		t.Errorf("assigned id %q for a client that sent one", ack3.Properties.AssignedClientID)
	}
	if got := ptDrain(t, srv, c3, "mk"); !slices.Equal(ptPayloads(got), []string{"kept"}) {
		t.Fatalf("resumed session delivered %q, want [kept]", ptPayloads(got))
	}
}

// TestV5ResponseInformation: the CONNACK carries Response Information
// only when the CONNECT has Request Response Information 1 [v5
// MQTT-3.1.2-28] (section 3.2.2.3.15), with "%c" replaced by the client
// id, the assigned one included; default "tern/response/%c".
func TestV5ResponseInformation(t *testing.T) {
	t.Parallel()
	addr := ptNewServer(t, &Server{ResponseInformation: "reply/%c/x"})
	for _, tc := range []struct {
		name string
		rri  *byte
		want string
	}{
		{"absent", nil, ""},
		{"0", QoS(0), ""},
		{"1", QoS(1), "reply/ri-1/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ack := v5sConnect(t, addr, "ri-"+tc.name, true, 0, func(cp *packet.Connect) {
				if tc.rri != nil {
					cp.Properties.RequestResponseInfo = *tc.rri
					cp.Properties.Mark(packet.PropRequestResponseInfo)
				}
			})
			if got := ack.Properties.ResponseInfo; got != tc.want || ack.Properties.Has(packet.PropResponseInfo) != (tc.want != "") {
				t.Errorf("Response Information %q (present %v), want %q", got, ack.Properties.Has(packet.PropResponseInfo), tc.want)
			}
		})
	}
	t.Run("assigned-id", func(t *testing.T) {
		_, ack := v5sConnect(t, addr, "", true, 0, func(cp *packet.Connect) { cp.Properties.RequestResponseInfo = 1 })
		if want := "reply/" + ack.Properties.AssignedClientID + "/x"; ack.Properties.AssignedClientID == "" || ack.Properties.ResponseInfo != want {
			t.Errorf("Response Information %q, want %q", ack.Properties.ResponseInfo, want)
		}
	})
	t.Run("default", func(t *testing.T) {
		addr := ptNewServer(t, &Server{})
		_, ack := v5sConnect(t, addr, "ri", true, 0, func(cp *packet.Connect) { cp.Properties.RequestResponseInfo = 1 })
		if got := ack.Properties.ResponseInfo; got != "tern/response/ri" {
			t.Errorf("Response Information %q, want tern/response/ri", got)
		}
	})
}

// TestV5ConnackLimits: the CONNACK properties announce the server's
// limits (section 3.2.2.3), each only when it differs from the default
// that its absence means: Maximum QoS [v5 MQTT-3.2.2-9], Retain Available
// 0, Topic Alias Maximum (absent: 0), Receive Maximum (absent: 65535),
// Maximum Packet Size, Wildcard, Subscription Identifier and Shared
// Subscription Available 0.
func TestV5ConnackLimits(t *testing.T) {
	t.Parallel()
	pp := func(f func(*packet.Properties)) packet.Properties {
		var p packet.Properties
		f(&p)
		return p
	}
	for _, tc := range []struct {
		name string
		srv  *Server
		want packet.Properties
	}{
		{"defaults", &Server{}, pp(func(p *packet.Properties) {
			p.MaximumPacketSize = DefaultMaxPacketSize
			p.TopicAliasMaximum = DefaultTopicAliasMaximum
		})},
		{"limits", &Server{
			MaximumQoS: QoS(1), RetainUnavailable: true, TopicAliasMaximum: TopicAliases(5), ReceiveMaximum: 10, MaxPacketSize: 4096,
			WildcardSubscriptionsUnavailable: true, SubscriptionIDsUnavailable: true, SharedSubscriptionsUnavailable: true,
		}, pp(func(p *packet.Properties) {
			p.MaximumQoS = 1
			p.RetainAvailable = 0
			p.Mark(packet.PropRetainAvailable)
			p.TopicAliasMaximum = 5
			p.ReceiveMaximum = 10
			p.MaximumPacketSize = 4096
			p.WildcardSubAvailable = 0
			p.Mark(packet.PropWildcardSubAvailable)
			p.SubIDAvailable = 0
			p.Mark(packet.PropSubIDAvailable)
			p.SharedSubAvailable = 0
			p.Mark(packet.PropSharedSubAvailable)
		})},
		{"qos0-no-aliases", &Server{MaximumQoS: QoS(0), TopicAliasMaximum: TopicAliases(0)}, pp(func(p *packet.Properties) {
			p.MaximumQoS = 0
			p.Mark(packet.PropMaximumQoS)
			p.MaximumPacketSize = DefaultMaxPacketSize
		})},
		{"qos2-receive-max-65535", &Server{MaximumQoS: QoS(2), ReceiveMaximum: 65535}, pp(func(p *packet.Properties) {
			p.MaximumPacketSize = DefaultMaxPacketSize
			p.TopicAliasMaximum = DefaultTopicAliasMaximum
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := ptNewServer(t, tc.srv)
			_, ack := v5sConnect(t, addr, "limits", true, 0, nil)
			if got, want := ack.Properties.String(), tc.want.String(); got != want {
				t.Errorf("CONNACK properties\n got  %s\n want %s", got, want)
			}
		})
	}
}

// TestV5ShutdownDisconnect: Shutdown sends every MQTT 5 client DISCONNECT
// 0x8B Server shutting down, as its last packet, before the close
// (section 3.14.2.1), without a Session Expiry Interval [v5
// MQTT-3.14.2-2]; an MQTT 3.1.1 client is closed without a packet.
func TestV5ShutdownDisconnect(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	var v5 []*rawClient
	for i := range 3 {
		c, _ := v5sConnect(t, addr, fmt.Sprint("sd", i), i == 0, uint32(i*60), nil)
		v5 = append(v5, c)
	}
	v5[1].subscribe(1, "sd/#", 1)
	c3, _ := ptConnect(t, addr, packet.V311, "sd3", true)
	ptWaitConnected(t, srv, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i, c := range v5 {
		got := c.expectClosed()
		if len(got) != 1 {
			t.Fatalf("client %d got %v, want DISCONNECT 0x8B", i, got)
		}
		d, ok := got[0].(*packet.Disconnect)
		if !ok || d.ReasonCode != packet.ServerShuttingDown {
			t.Fatalf("client %d got %v, want DISCONNECT 0x8B", i, got[0])
		}
		if d.Properties.Has(packet.PropSessionExpiry) {
			t.Errorf("server DISCONNECT carries %v", &d.Properties)
		}
	}
	if got := c3.expectClosed(); len(got) != 0 {
		t.Errorf("3.1.1 client got %v", got)
	}
}
