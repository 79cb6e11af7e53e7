package broker

// Tests of the Server as a program sees it: $SYS, hooks, the inline
// client, shutdown and Validate. Helpers are in protocol_test.go.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// ---- $SYS ----

// TestProtoSys: $SYS/broker/... topics are published every SysInterval;
// a "#" subscriber gets none of them [v3 MQTT-4.7.2-1] [v5 MQTT-4.7.2-1].
func TestProtoSys(t *testing.T) {
	t.Parallel()
	srv := &Server{SysInterval: 100 * time.Millisecond}
	addr := startServer(t, srv)
	all, _ := ptConnect(t, addr, packet.V311, "all", true)
	all.subscribe(1, "#", 0)
	plus, _ := ptConnect(t, addr, packet.V311, "plus", true)
	plus.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "+/broker/version", QoS: 0}, {Filter: "mk", QoS: 0}}})
	plus.recv()

	sys, _ := ptConnect(t, addr, packet.V311, "sys", true)
	sys.subscribe(1, "$SYS/broker/#", 0)
	want := map[string]bool{
		"$SYS/broker/version": false, "$SYS/broker/uptime": false,
		"$SYS/broker/clients/connected": false, "$SYS/broker/messages/received": false,
		"$SYS/broker/messages/sent": false, "$SYS/broker/subscriptions/count": false,
	}
	counts := map[string]int{}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := sys.expectPublish()
		counts[p.Topic]++
		if _, ok := want[p.Topic]; ok {
			want[p.Topic] = true
		}
		if p.Topic == "$SYS/broker/version" && string(p.Payload) != Version {
			t.Errorf("version %q", p.Payload)
		}
		if p.Topic == "$SYS/broker/clients/connected" && counts[p.Topic] > 1 && string(p.Payload) != "3" {
			t.Errorf("clients/connected = %q, want 3", p.Payload)
		}
		done := counts["$SYS/broker/uptime"] >= 3 // at least two periodic updates
		for _, ok := range want {
			done = done && ok
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("$SYS topics seen: %v", counts)
		}
	}
	// Periodic updates went out while "all" and "plus" were subscribed.
	if err := srv.Publish("mk", []byte("marker"), 0, false); err != nil {
		t.Fatal(err)
	}
	if p := all.expectPublish(); p.Topic != "mk" {
		t.Fatalf("a # subscriber got %v", p)
	}
	if p := plus.expectPublish(); p.Topic != "mk" {
		t.Fatalf("a +/broker/version subscriber got %v", p)
	}
}

// ---- Hooks ----

type ptAuthz struct{}

func (ptAuthz) Authorize(_ context.Context, _ *ClientInfo, a Action, t string) bool {
	switch a {
	case ActionPublish:
		return !strings.HasPrefix(t, "secret/")
	case ActionSubscribe:
		return !strings.HasPrefix(t, "private/")
	}
	return true
}

// TestProtoAuthorizer: a refused PUBLISH is not delivered; 3.1.1 still
// acknowledges it [v3 MQTT-3.3.5-2], MQTT 5 with PUBACK / PUBREC 0x87 [v5
// MQTT-3.4.2-1] [v5 MQTT-3.5.2-1]; a refused filter gets SUBACK 0x80 / 0x87
// in its place [v3 MQTT-3.9.3-2] [v5 MQTT-3.9.3-2] [v5 MQTT-3.8.4-7].
func TestProtoAuthorizer(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{Authorizer: ptAuthz{}}
			addr := ptNewServer(t, srv)
			watch, _ := ptConnect(t, addr, v, "watch", true)
			watch.subscribe(1, "#", 2)
			pub, _ := ptConnect(t, addr, v, "pub", true)
			pub.send(&packet.Publish{Topic: "secret/a", Payload: []byte("0")})
			pub.send(&packet.Publish{Topic: "secret/b", QoS: 1, PacketID: 1, Payload: []byte("1")})
			ack, ok := pub.recv().(*packet.Puback)
			if !ok || ack.PacketID != 1 {
				t.Fatalf("want PUBACK 1, got %v", ack)
			}
			want := packet.Success
			if v == packet.V5 {
				want = packet.NotAuthorized
			}
			if ack.ReasonCode != want {
				t.Errorf("PUBACK code 0x%02x, want 0x%02x", byte(ack.ReasonCode), byte(want))
			}
			pub.send(&packet.Publish{Topic: "secret/c", QoS: 2, PacketID: 2, Payload: []byte("2")})
			rec, ok := pub.recv().(*packet.Pubrec)
			if !ok || rec.PacketID != 2 || rec.ReasonCode != want {
				t.Fatalf("got %v, want PUBREC 2 code 0x%02x", rec, byte(want))
			}
			if v != packet.V5 {
				pub.send(&packet.Pubrel{PacketID: 2})
				if comp, ok := pub.recv().(*packet.Pubcomp); !ok || comp.PacketID != 2 {
					t.Fatalf("want PUBCOMP 2, got %v", comp)
				}
			}
			ptPublish(t, pub, &packet.Publish{Topic: "open/a", QoS: 1, PacketID: 3, Payload: []byte("ok")})
			p := watch.expectPublish()
			if p.Topic != "open/a" {
				t.Fatalf("first delivery %v, want open/a (secret/... refused)", p)
			}
			ptAck(t, watch, p)
			if got := ptDrain(t, srv, watch, "mk"); len(got) != 0 {
				t.Fatalf("refused messages delivered: %v", got)
			}

			sub, _ := ptConnect(t, addr, v, "sub", true)
			sub.send(&packet.Subscribe{PacketID: 7, Subscriptions: []packet.Subscription{{Filter: "open/#", QoS: 1}, {Filter: "private/x", QoS: 1}, {Filter: "mk", QoS: 0}}})
			sa, ok := sub.recv().(*packet.Suback)
			fail := packet.V3SubackFailure
			if v == packet.V5 {
				fail = packet.NotAuthorized
			}
			if !ok || sa.PacketID != 7 || !slices.Equal(sa.ReasonCodes, []packet.ReasonCode{1, fail, 0}) {
				t.Fatalf("got %v, want SUBACK 7 [1 0x%02x 0]", sa, byte(fail))
			}
			srv.Publish("private/x", []byte("p"), 0, false)
			if got := ptDrain(t, srv, sub, "mk"); len(got) != 0 {
				t.Fatalf("refused subscription delivered %v", got)
			}
		})
	}
}

// TestProtoObserverAndUnsubscribe: an Observer sees connect, subscribe,
// publish, unsubscribe and disconnect in order; UNSUBSCRIBE stops delivery
// [v3 MQTT-3.10.4-1] [v3 MQTT-3.10.4-2] [v5 MQTT-3.10.4-1] [v5
// MQTT-3.10.4-2] and is answered with UNSUBACK, also for a filter that was
// not subscribed [v3 MQTT-3.10.4-4] [v3 MQTT-3.10.4-5] [v3 MQTT-3.10.4-6]
// [v5 MQTT-3.10.4-4] [v5 MQTT-3.10.4-5] [v5 MQTT-3.10.4-6].
func TestProtoObserverAndUnsubscribe(t *testing.T) {
	t.Parallel()
	for _, v := range ptVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			rec := &ptRecorder{}
			srv := &Server{Observers: []Observer{rec}}
			addr := ptNewServer(t, srv)
			c, _ := ptConnect(t, addr, v, "obs", true)
			c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "o/#", QoS: 1}, {Filter: "mk", QoS: 0}}})
			c.recv()
			c.send(&packet.Publish{Topic: "o/x", Payload: []byte("1")})
			if p := c.expectPublish(); p.Topic != "o/x" {
				t.Fatalf("got %v", p)
			}
			c.send(&packet.Unsubscribe{PacketID: 2, Filters: []string{"o/#", "never"}})
			ua, ok := c.recv().(*packet.Unsuback)
			if !ok || ua.PacketID != 2 {
				t.Fatalf("want UNSUBACK 2, got %v", ua)
			}
			if v == packet.V5 && !slices.Equal(ua.ReasonCodes, []packet.ReasonCode{packet.Success, packet.NoSubscriptionExisted}) {
				t.Errorf("UNSUBACK codes %v, want [0x00 0x11]", ua.ReasonCodes)
			}
			c.send(&packet.Publish{Topic: "o/y", Payload: []byte("2")})
			if got := ptDrain(t, srv, c, "mk"); len(got) != 0 {
				t.Fatalf("delivered after UNSUBSCRIBE: %v", got)
			}
			c.send(&packet.Disconnect{})
			c.expectClosed()
			ptEventually(t, 5*time.Second, "disconnect event", func() bool {
				return len(rec.get(EventDisconnect, "obs")) == 1
			})
			var got []string
			for _, e := range rec.get(0, "obs") {
				got = append(got, e.kind.String()+" "+e.topic)
				if e.kind == EventDisconnect && e.err != nil {
					t.Errorf("disconnect event after DISCONNECT has error %v", e.err)
				}
			}
			want := []string{"connect ", "subscribe o/#", "subscribe mk", "publish o/x", "unsubscribe o/#", "publish o/y", "disconnect "}
			if !slices.Equal(got, want) {
				t.Fatalf("events %q, want %q", got, want)
			}
		})
	}
}

// ---- Inline client ----

// TestProtoInline: Server.Publish reaches a socket subscriber; an inline
// subscription receives a socket client's messages, QoS capped by its own;
// its unsubscribe function stops delivery.
func TestProtoInline(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c, _ := ptConnect(t, addr, packet.V311, "sock", true)
	c.subscribe(1, "in/#", 2)
	if err := srv.Publish("in/x", []byte("from inline"), 2, false); err != nil {
		t.Fatal(err)
	}
	p := c.expectPublish()
	if p.Topic != "in/x" || string(p.Payload) != "from inline" || p.QoS != 2 {
		t.Fatalf("got %v", p)
	}
	ptAck(t, c, p)

	ch, unsub := ptInline(t, srv, "out/+", 1)
	marks, unsubMarks := ptInline(t, srv, "out/mark", 0)
	defer unsubMarks()
	pub, _ := ptConnect(t, addr, packet.V5, "pub", true)
	ptPublish(t, pub, &packet.Publish{Topic: "out/a", QoS: 2, PacketID: 1, Payload: []byte("to inline")})
	m := ptRecvInline(t, ch)
	if m.Topic != "out/a" || string(m.Payload) != "to inline" || m.QoS != 1 || m.From != "pub" {
		t.Fatalf("inline got %+v", m)
	}
	unsub()
	ptPublish(t, pub, &packet.Publish{Topic: "out/b", QoS: 1, PacketID: 2, Payload: []byte("late")})
	ptPublish(t, pub, &packet.Publish{Topic: "out/mark", QoS: 1, PacketID: 3, Payload: []byte("mark")})
	ptRecvInline(t, marks)
	select {
	case m := <-ch:
		t.Fatalf("delivered after unsubscribe: %+v", m)
	default:
	}
	if err := srv.Publish("bad/#", nil, 0, false); err == nil {
		t.Error("Publish to a wildcard topic succeeded")
	}
	if _, err := srv.Subscribe("bad/#/x", 0, func(*Message) {}); err == nil {
		t.Error("Subscribe to an invalid filter succeeded")
	}
}

// ---- Shutdown ----

// ptServe runs srv.Serve on a new loopback listener; the returned channel
// gets Serve's error.
func ptServe(t *testing.T, srv *Server) (string, <-chan error) {
	t.Helper()
	srv.Logger = testLogger(t)
	srv.SysInterval = -1
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	return l.Addr().String(), errc
}

// TestProtoShutdown: Shutdown sends MQTT 5 clients DISCONNECT 0x8B, closes
// every connection, publishes the wills of the connected clients (to an
// inline subscriber, the only one left), and Serve returns ErrServerClosed;
// Close does the same without DISCONNECT.
func TestProtoShutdown(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"shutdown", "close"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr, errc := ptServe(t, srv)
			wills, _ := ptInline(t, srv, "will/#", 1)
			c3 := dialRaw(t, addr, packet.V311)
			c3.connect(&packet.Connect{ClientID: "c3", CleanStart: true, Will: &packet.Will{Topic: "will/c3", Payload: []byte("3")}})
			c5 := dialRaw(t, addr, packet.V5)
			c5.connect(&packet.Connect{ClientID: "c5", CleanStart: true, Will: &packet.Will{Topic: "will/c5", Payload: []byte("5")}})
			c5.subscribe(1, "x", 0)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var err error
			if mode == "shutdown" {
				err = srv.Shutdown(ctx)
			} else {
				err = srv.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			got := c5.expectClosed()
			if mode == "shutdown" {
				if len(got) != 1 {
					t.Fatalf("v5 client got %v, want DISCONNECT 0x8B", got)
				}
				if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.ServerShuttingDown {
					t.Fatalf("v5 client got %v, want DISCONNECT 0x8B", got[0])
				}
			} else if len(got) != 0 {
				t.Fatalf("Close sent %v", got)
			}
			if got := c3.expectClosed(); len(got) != 0 {
				t.Fatalf("v3.1.1 client got %v", got)
			}
			select {
			case err := <-errc:
				if !errors.Is(err, ErrServerClosed) {
					t.Fatalf("Serve returned %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return")
			}
			var topics []string
			for len(wills) > 0 {
				topics = append(topics, (<-wills).Topic)
			}
			slices.Sort(topics)
			if !slices.Equal(topics, []string{"will/c3", "will/c5"}) {
				t.Errorf("wills delivered to the inline subscriber: %q", topics)
			}
			if err := srv.Publish("x", nil, 0, false); !errors.Is(err, ErrServerClosed) {
				t.Errorf("Publish after shutdown: %v", err)
			}
			if _, err := srv.Subscribe("x", 0, func(*Message) {}); !errors.Is(err, ErrServerClosed) {
				t.Errorf("Subscribe after shutdown: %v", err)
			}
			if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				nc.Close()
				t.Error("listener still accepts connections")
			}
			// A second Shutdown or Close is harmless.
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("second Shutdown: %v", err)
			}
			if err := srv.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			// Serve on a closed server returns at once.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Serve(l); !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve after shutdown: %v", err)
			}
		})
	}
}

// TestProtoListenAndServe: ListenAndServe opens a Listener of address
// 127.0.0.1:0 (Addrs reports the port), serves it, and returns
// ErrServerClosed after Shutdown.
func TestProtoListenAndServe(t *testing.T) {
	t.Parallel()
	srv := &Server{Listeners: []Listener{{Addr: "127.0.0.1:0"}}, Logger: testLogger(t), SysInterval: -1}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	ptEventually(t, 5*time.Second, "the listener", func() bool { return len(srv.Addrs()) == 1 })
	addr := srv.Addrs()[0].String()
	c := dialRaw(t, addr, packet.V311)
	c.connect(&packet.Connect{ClientID: "las", CleanStart: true})
	c.subscribe(1, "las", 0)
	srv.Publish("las", []byte("x"), 0, false)
	c.expectPublish()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe returned %v", err)
	}
	c.expectClosed()
}

// ---- Validate ----

// TestProtoValidate: every bad field gives an error naming it; the zero
// Server is valid, and Serve refuses an invalid configuration.
func TestProtoValidate(t *testing.T) {
	t.Parallel()
	if err := (&Server{}).Validate(); err != nil {
		t.Fatalf("zero Server: %v", err)
	}
	for _, tc := range []struct {
		field string
		srv   *Server
	}{
		{"ConnectTimeout", &Server{ConnectTimeout: -1}},
		{"WriteTimeout", &Server{WriteTimeout: -time.Second}},
		{"MaxPacketSize", &Server{MaxPacketSize: 10}},
		{"MaxPacketSize", &Server{MaxPacketSize: 268435461}},
		{"MaxQueuedMessages", &Server{MaxQueuedMessages: -1}},
		{"MaxInflight", &Server{MaxInflight: -1}},
		{"MaxInflight", &Server{MaxInflight: 65536}},
		{"QueuePolicy", &Server{QueuePolicy: 7}},
		{"RetryInterval", &Server{RetryInterval: -time.Millisecond}},
		{"Listeners[0].Type", &Server{Listeners: []Listener{{Type: "udp"}}}},
		{"Listeners[0].TLS", &Server{Listeners: []Listener{{Type: "tls", Addr: ":8883"}}}},
		{"Listeners[1].TLS", &Server{Listeners: []Listener{{Addr: ":1"}, {Type: "wss", Addr: ":2"}}}},
		{"Listeners[0].Addr", &Server{Listeners: []Listener{{Type: "unix"}}}},
		{"Listeners[0].Path", &Server{Listeners: []Listener{{Type: "ws", Addr: ":80", Path: "mqtt"}}}},
		{"Listeners[0].UseCertCommonName", &Server{Listeners: []Listener{{Addr: ":1", UseCertCommonName: true}}}},
		{"Listeners[1].Name", &Server{Listeners: []Listener{{Addr: ":1"}, {Addr: ":1"}}}},
		{"Listeners[1].Name", &Server{Listeners: []Listener{{Name: "a", Addr: ":1"}, {Name: "a", Addr: ":2"}}}},
	} {
		err := tc.srv.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+": ") {
			t.Errorf("%s: Validate() = %v, want an error naming %s", tc.field, err, tc.field)
		}
	}
	// Every bad field is reported, not only the first.
	err := (&Server{ConnectTimeout: -1, MaxInflight: -1}).Validate()
	if err == nil || !strings.Contains(err.Error(), "ConnectTimeout") || !strings.Contains(err.Error(), "MaxInflight") {
		t.Errorf("two bad fields: %v", err)
	}
	// Serve refuses an invalid configuration and leaves the listener to the caller.
	l, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	defer l.Close()
	bad := &Server{MaxInflight: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := bad.Serve(l); err == nil || !strings.Contains(err.Error(), "MaxInflight") {
		t.Errorf("Serve with a bad configuration: %v", err)
	}
}
