package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// TestAdminClients: Clients reports each session as a client sees it
// (id, user, version, address, listener, keep alive, subscriptions,
// queued), Subscriptions lists them all, and an offline persistent
// session stays listed as not connected.
func TestAdminClients(t *testing.T) {
	t.Parallel()
	srv := &Server{SysInterval: -1}
	addr := startServer(t, srv)
	before := time.Now()
	a := dialRaw(t, addr, packet.V5)
	a.connect(&packet.Connect{ClientID: "a", Username: "alice", CleanStart: true, KeepAlive: 30})
	a.subscribe(1, "x/#", 1)
	a.subscribe(2, "y", 0)
	b := dialRaw(t, addr, packet.V311)
	b.connect(&packet.Connect{ClientID: "b", KeepAlive: 0}) // persistent: clean session 0
	b.subscribe(1, "z", 1)
	b.send(&packet.Disconnect{})
	b.expectClosed()
	ptEventually(t, 5*time.Second, "b offline", func() bool { st, _ := srv.Client("b"); return !st.Connected })
	// Two messages queue for the offline session.
	for range 2 {
		if err := srv.Publish("z", []byte("q"), 1, false); err != nil {
			t.Fatal(err)
		}
	}

	cs := srv.Clients()
	if len(cs) != 2 {
		t.Fatalf("Clients: %d, want 2: %+v", len(cs), cs)
	}
	ca, cb := cs[0], cs[1]
	if ca.ClientID != "a" || ca.Username != "alice" || ca.Version != packet.V5 || !ca.Connected || ca.KeepAlive != 30*time.Second {
		t.Errorf("a: %+v", ca)
	}
	if ca.RemoteAddr == "" || ca.Listener == "" || ca.ConnectedSince.Before(before.Add(-time.Second)) {
		t.Errorf("a: address %q, listener %q, since %v", ca.RemoteAddr, ca.Listener, ca.ConnectedSince)
	}
	if len(ca.Subscriptions) != 2 || ca.Subscriptions[0].Filter != "x/#" || ca.Subscriptions[0].QoS != 1 || ca.Subscriptions[1].Filter != "y" {
		t.Errorf("a's subscriptions: %+v", ca.Subscriptions)
	}
	if cb.ClientID != "b" || cb.Connected || cb.Version != packet.V311 || cb.Queued != 2 || cb.RemoteAddr != "" {
		t.Errorf("b: %+v", cb)
	}
	if subs := srv.Subscriptions(); len(subs) != 3 || subs[2].ClientID != "b" || subs[2].Filter != "z" {
		t.Errorf("Subscriptions: %+v", subs)
	}
	if _, ok := srv.Client("nobody"); ok {
		t.Error("Client(nobody) found")
	}
}

// TestAdminDisconnect: DisconnectClient closes a client's connection
// with DISCONNECT 0x98 Administrative action (MQTT 5) and publishes its
// will; an unknown id is ErrNoClient.
func TestAdminDisconnect(t *testing.T) {
	t.Parallel()
	srv := &Server{SysInterval: -1}
	addr := startServer(t, srv)
	w, _ := ptConnect(t, addr, packet.V5, "watcher", true)
	w.subscribe(1, "wills/#", 0)
	c := dialRaw(t, addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "victim", CleanStart: true, Will: &packet.Will{Topic: "wills/victim", Payload: []byte("gone")}})
	if err := srv.DisconnectClient("victim"); err != nil {
		t.Fatal(err)
	}
	ps := c.expectClosed()
	if len(ps) != 1 {
		t.Fatalf("victim got %v, want one DISCONNECT", ps)
	}
	if d, ok := ps[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.AdministrativeAction {
		t.Fatalf("victim got %v, want DISCONNECT 0x98", ps[0])
	}
	if p := w.expectPublish(); p.Topic != "wills/victim" {
		t.Fatalf("watcher got %s", p.Topic)
	}
	if err := srv.DisconnectClient("victim"); !errors.Is(err, ErrNoClient) {
		t.Fatalf("again: %v, want ErrNoClient", err)
	}
}

// TestAdminRetained: Retained matches a filter, sorts by topic, is
// bounded by its limit (saying there were more), hides $SYS from
// wildcards and refuses a bad filter.
func TestAdminRetained(t *testing.T) {
	t.Parallel()
	srv := &Server{SysInterval: time.Hour}
	startServer(t, srv)
	for i := range 5 {
		if err := srv.Publish(fmt.Sprintf("r/%d", 4-i), []byte{byte('a' + i)}, 0, true); err != nil {
			t.Fatal(err)
		}
	}
	srv.Publish("other", []byte("o"), 0, true)
	ms, more, err := srv.Retained("r/#", 3)
	if err != nil || !more || len(ms) != 3 || ms[0].Topic != "r/0" || ms[2].Topic != "r/2" {
		t.Fatalf("Retained(r/#, 3) = %d msgs, more %v, err %v", len(ms), more, err)
	}
	ms, more, _ = srv.Retained("#", 0)
	if more || len(ms) != 6 {
		t.Fatalf("Retained(#) = %d, more %v; want the 6 user messages", len(ms), more)
	}
	ptEventually(t, 5*time.Second, "$SYS version", func() bool {
		ms, _, _ := srv.Retained("$SYS/broker/version", 0)
		return len(ms) == 1
	})
	if _, _, err := srv.Retained("a/#/b", 0); err == nil {
		t.Fatal("bad filter accepted")
	}
}

// TestAdminHooks: Authenticate and Authorize go to the broker's hooks,
// with its deadline; a nil hook allows all.
func TestAdminHooks(t *testing.T) {
	t.Parallel()
	open := &Server{SysInterval: -1}
	startServer(t, open)
	if err := open.Authenticate(context.Background(), &AuthRequest{}); err != nil {
		t.Fatalf("nil Authenticator: %v", err)
	}
	if !open.Authorize(&ClientInfo{}, ActionPublish, "a") {
		t.Fatal("nil Authorizer refused")
	}
	srv := &Server{SysInterval: -1, HookTimeout: 50 * time.Millisecond,
		Authenticator: authnFunc(func(ctx context.Context, r *AuthRequest) error {
			if string(r.Password) == "slow" {
				<-ctx.Done()
			}
			if r.Username == "u" && string(r.Password) == "p" {
				return nil
			}
			return ErrBadCredentials
		}),
		Authorizer: authzFunc(func(_ context.Context, c *ClientInfo, a Action, topic string) bool {
			return c.Username == "u" && topic == "ok"
		}),
	}
	startServer(t, srv)
	ctx := context.Background()
	if err := srv.Authenticate(ctx, &AuthRequest{ClientInfo: ClientInfo{Username: "u"}, Password: []byte("p")}); err != nil {
		t.Errorf("good credentials: %v", err)
	}
	if err := srv.Authenticate(ctx, &AuthRequest{ClientInfo: ClientInfo{Username: "u"}, Password: []byte("x")}); err == nil {
		t.Error("bad credentials accepted")
	}
	if err := srv.Authenticate(ctx, &AuthRequest{ClientInfo: ClientInfo{Username: "u"}, Password: []byte("slow")}); err == nil {
		t.Error("a hook past its deadline accepted")
	}
	if !srv.Authorize(&ClientInfo{Username: "u"}, ActionPublish, "ok") || srv.Authorize(&ClientInfo{Username: "u"}, ActionPublish, "no") {
		t.Error("Authorize does not follow the Authorizer")
	}
}

type authnFunc func(context.Context, *AuthRequest) error

func (f authnFunc) Authenticate(ctx context.Context, r *AuthRequest) error { return f(ctx, r) }

type authzFunc func(context.Context, *ClientInfo, Action, string) bool

func (f authzFunc) Authorize(ctx context.Context, c *ClientInfo, a Action, topic string) bool {
	return f(ctx, c, a, topic)
}

// TestAdminCounters: the per-QoS counters, the connect outcomes, the
// route latency histogram and Health follow known traffic.
func TestAdminCounters(t *testing.T) {
	t.Parallel()
	srv := &Server{SysInterval: -1, Authenticator: authnFunc(func(_ context.Context, r *AuthRequest) error {
		if r.Username == "bad" {
			return ErrBadCredentials
		}
		return nil
	})}
	addr := startServer(t, srv)
	ptEventually(t, 5*time.Second, "Health nil", func() bool { return srv.Health() == nil })
	sub, _ := ptConnect(t, addr, packet.V5, "sub", true)
	sub.subscribe(1, "t/#", 2)
	pub, _ := ptConnect(t, addr, packet.V5, "pub", true)
	for q := byte(0); q <= 2; q++ {
		ptPublish(t, pub, &packet.Publish{Topic: "t/x", QoS: q, PacketID: uint16(q), Payload: []byte("12345")})
		p := sub.expectPublish()
		ptAck(t, sub, p)
	}
	bad := dialRaw(t, addr, packet.V5)
	if ack := ptRefused(t, bad, &packet.Connect{ClientID: "bad", Username: "bad", CleanStart: true}); ack.ReasonCode != packet.BadUserNameOrPassword {
		t.Fatalf("bad: %v", ack.ReasonCode)
	}
	ptEventually(t, 5*time.Second, "sent counted", func() bool { return srv.Stats().MessagesSent == 3 })
	st := srv.Stats()
	if st.MessagesReceivedByQoS != [3]uint64{1, 1, 1} || st.MessagesSentByQoS != [3]uint64{1, 1, 1} {
		t.Errorf("by QoS: in %v, out %v", st.MessagesReceivedByQoS, st.MessagesSentByQoS)
	}
	if st.PayloadReceivedByQoS != [3]uint64{5, 5, 5} || st.PayloadSentByQoS != [3]uint64{5, 5, 5} {
		t.Errorf("payload by QoS: in %v, out %v", st.PayloadReceivedByQoS, st.PayloadSentByQoS)
	}
	if st.RouteLatency.Count != 3 || st.RouteLatency.Cumulative[len(st.RouteLatency.Cumulative)-1] > 3 {
		t.Errorf("route latency: %+v", st.RouteLatency)
	}
	cs := srv.Connects()
	if cs.Accepted != 2 || cs.Refused[packet.BadUserNameOrPassword] != 1 {
		t.Errorf("connects: %+v", cs)
	}
	srv.Close()
	if err := srv.Health(); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Health after Close: %v", err)
	}
}
