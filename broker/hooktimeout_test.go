package broker

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// testHookTimeout is the HookTimeout of these tests: short, so that they
// run quickly. No assertion depends on how long anything takes.
const testHookTimeout = 200 * time.Millisecond

// stuckHook is an Authenticator, Authorizer and ReceiveAuthorizer that
// never answers for topics under "slow/" (receive: "slowrecv/") or the
// user "slow": it waits for its context to end (ctxAware) or, ignoring
// the context, until release is closed at the end of the test. Anything
// else is allowed at once.
type stuckHook struct {
	ctxAware bool
	release  chan struct{}
	calls    atomic.Int32
}

func newStuckHook(t *testing.T, ctxAware bool) *stuckHook {
	h := &stuckHook{ctxAware: ctxAware, release: make(chan struct{})}
	t.Cleanup(func() { close(h.release) }) // before goleak looks
	return h
}

func (h *stuckHook) wait(ctx context.Context) {
	h.calls.Add(1)
	if h.ctxAware {
		<-ctx.Done()
		return
	}
	<-h.release
}

func (h *stuckHook) Authenticate(ctx context.Context, req *AuthRequest) error {
	if req.Username == "slow" {
		h.wait(ctx)
	}
	return nil // a late yes is no yes
}

func (h *stuckHook) Authorize(ctx context.Context, _ *ClientInfo, _ Action, topic string) bool {
	if strings.HasPrefix(topic, "slow/") {
		h.wait(ctx)
	}
	return true
}

func (h *stuckHook) AuthorizeReceive(_ *ClientInfo, topic string) bool {
	if strings.HasPrefix(topic, "slowrecv/") {
		h.wait(context.Background()) // no context to wait on: blocks until release
	}
	return true
}

// ping checks that the connection is still served.
func (c *rawClient) ping() {
	c.t.Helper()
	c.send(&packet.Pingreq{})
	if p, ok := c.recv().(*packet.Pingresp); !ok {
		c.t.Fatalf("want PINGRESP, got %v", p)
	}
}

// TestHookTimeoutAuthorizer: an Authorizer that does not answer refuses
// the PUBLISH (PUBACK 0x87) and the subscription (SUBACK 0x87) once
// HookTimeout has passed, with a log line, and the connection goes on,
// whether the hook honours its context or ignores it.
func TestHookTimeoutAuthorizer(t *testing.T) {
	for _, ctxAware := range []bool{true, false} {
		name := "ignores context"
		if ctxAware {
			name = "waits on context"
		}
		t.Run(name, func(t *testing.T) {
			hook := newStuckHook(t, ctxAware)
			var lc logCapture
			srv := &Server{SysInterval: -1, Authorizer: hook, HookTimeout: testHookTimeout, Logger: lc.logger(slog.LevelInfo)}
			addr := startServer(t, srv)

			sub := dialRaw(t, addr, packet.V5)
			sub.connect(&packet.Connect{ClientID: "sub", CleanStart: true})
			if ack := sub.subscribe(1, "slow/#", 1); ack.ReasonCodes[0] != packet.NotAuthorized {
				t.Fatalf("SUBACK %v, want 0x87", ack.ReasonCodes)
			}
			sub.ping()
			sub.subscribe(2, "#", 1)

			pub := dialRaw(t, addr, packet.V5)
			pub.connect(&packet.Connect{ClientID: "pub5", CleanStart: true, Username: "ann"})
			pub.send(&packet.Publish{Topic: "slow/a", QoS: 1, PacketID: 1, Payload: []byte("x")})
			if ack, ok := pub.recv().(*packet.Puback); !ok || ack.ReasonCode != packet.NotAuthorized {
				t.Fatalf("want PUBACK 0x87, got %v", ack)
			}
			pub.ping()
			pub3 := dialRaw(t, addr, packet.V311)
			pub3.connect(&packet.Connect{ClientID: "pub3", CleanStart: true})
			pub3.send(&packet.Publish{Topic: "slow/b", QoS: 1, PacketID: 1, Payload: []byte("x")})
			if _, ok := pub3.recv().(*packet.Puback); !ok {
				t.Fatal("want PUBACK") // 3.1.1 cannot say no: the message is dropped
			}
			pub3.ping()

			// The refused messages went nowhere: the subscriber's first
			// message is the one published after them.
			pub.send(&packet.Publish{Topic: "fast/a", QoS: 1, PacketID: 2, Payload: []byte("ok")})
			if ack, ok := pub.recv().(*packet.Puback); !ok || ack.ReasonCode != packet.Success {
				t.Fatalf("want PUBACK 0, got %v", ack)
			}
			if p := sub.expectPublish(); p.Topic != "fast/a" {
				t.Fatalf("subscriber got %q first", p.Topic)
			}

			lines := lc.waitFor(t, "hook did not answer in time; refused", 3)
			for _, l := range lines {
				if l["hook"] != "*broker.stuckHook.Authorize" || l["timeout"] != float64(testHookTimeout) || l["level"] != "WARN" {
					t.Errorf("log line %v", l)
				}
			}
			if l := lines[1]; l["client"] != "pub5" || l["user"] != "ann" || l["action"] != "publish" || l["topic"] != "slow/a" {
				t.Errorf("publish refusal logged as %v", l)
			}
			if n := hook.calls.Load(); n != 3 {
				t.Errorf("hook called %d times for slow topics, want 3", n)
			}
		})
	}
}

// TestHookTimeoutAuthenticator: an Authenticator that does not answer
// refuses the client with 0x88 Server unavailable (3.1.1: return code
// 3); other clients connect meanwhile.
func TestHookTimeoutAuthenticator(t *testing.T) {
	hook := newStuckHook(t, false)
	var lc logCapture
	srv := &Server{SysInterval: -1, Authenticator: hook, HookTimeout: testHookTimeout, Logger: lc.logger(slog.LevelInfo)}
	addr := startServer(t, srv)

	var wg sync.WaitGroup
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		c := dialRaw(t, addr, v)
		c.send(&packet.Connect{Version: v, ClientID: "slow-" + v.String(), CleanStart: true, Username: "slow"})
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := c.recvErr(10 * time.Second)
			ack, ok := p.(*packet.Connack)
			want := packet.ServerUnavailable
			if v != packet.V5 {
				want = packet.V3ServerUnavailable
			}
			if err != nil || !ok || ack.ReasonCode != want {
				t.Errorf("%v: got %v, %v; want CONNACK %v", v, p, err, want)
			}
		}()
	}
	// Meanwhile another client is served.
	ok := dialRaw(t, addr, packet.V5)
	ok.connect(&packet.Connect{ClientID: "fine", CleanStart: true, Username: "fine"})
	ok.ping()
	wg.Wait()
	for _, l := range lc.waitFor(t, "hook did not answer in time; refused", 2) {
		if l["hook"] != "*broker.stuckHook.Authenticate" || l["user"] != "slow" {
			t.Errorf("log line %v", l)
		}
	}
}

// stuckMethod is an AuthMethod whose exchange never answers its second
// step; the first one asks the client to continue.
type stuckMethod struct{}

type stuckExchange struct{ step int }

func (stuckMethod) Start(context.Context, *AuthRequest) (AuthExchange, error) {
	return &stuckExchange{}, nil
}

func (e *stuckExchange) Next(ctx context.Context, in []byte) ([]byte, bool, error) {
	e.step++
	if e.step == 1 {
		return []byte("challenge"), false, nil
	}
	<-ctx.Done()
	return nil, true, nil
}

// TestHookTimeoutAuthMethod: an enhanced authentication step that does
// not answer refuses the CONNECT with 0x88.
func TestHookTimeoutAuthMethod(t *testing.T) {
	srv := &Server{SysInterval: -1, HookTimeout: testHookTimeout, AuthMethods: map[string]AuthMethod{"STUCK": stuckMethod{}}}
	c := dialRaw(t, startServer(t, srv), packet.V5)
	cp := &packet.Connect{Version: packet.V5, ClientID: "m", CleanStart: true}
	cp.Properties.AuthMethod = "STUCK"
	c.send(cp)
	if a, ok := c.recv().(*packet.Auth); !ok || a.ReasonCode != packet.ContinueAuthentication {
		t.Fatalf("want AUTH 0x18, got %v", a)
	}
	a := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
	a.Properties.AuthMethod = "STUCK"
	c.send(a)
	if ack, ok := c.recv().(*packet.Connack); !ok || ack.ReasonCode != packet.ServerUnavailable {
		t.Fatalf("want CONNACK 0x88, got %v", ack)
	}
}

// TestHookTimeoutReceive: a ReceiveAuthorizer that does not answer keeps
// the message from that subscriber (a drop, counted) and the publisher
// is answered.
func TestHookTimeoutReceive(t *testing.T) {
	hook := newStuckHook(t, false)
	srv := &Server{SysInterval: -1, Authorizer: hook, HookTimeout: testHookTimeout}
	addr := startServer(t, srv)
	sub := dialRaw(t, addr, packet.V311)
	sub.connect(&packet.Connect{ClientID: "sub", CleanStart: true})
	sub.subscribe(1, "#", 1)
	pub := dialRaw(t, addr, packet.V311)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	pub.send(&packet.Publish{Topic: "slowrecv/x", QoS: 1, PacketID: 1, Payload: []byte("x")})
	if _, ok := pub.recv().(*packet.Puback); !ok {
		t.Fatal("want PUBACK")
	}
	pub.send(&packet.Publish{Topic: "quick", QoS: 1, PacketID: 2, Payload: []byte("y")})
	pub.recv()
	if p := sub.expectPublish(); p.Topic != "quick" {
		t.Fatalf("subscriber got %q", p.Topic)
	}
	if d := srv.Stats().Dropped; d != 1 {
		t.Fatalf("Dropped = %d, want 1", d)
	}
}

// deadlineHook records whether each call's context had a deadline, and
// panics on topic "boom".
type deadlineHook struct {
	mu        sync.Mutex
	deadlines []time.Duration // left until the deadline; -1 for none
	fast      bool
}

func (h *deadlineHook) Authorize(ctx context.Context, _ *ClientInfo, _ Action, topic string) bool {
	if topic == "boom" {
		panic("hook bug")
	}
	left := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	h.mu.Lock()
	h.deadlines = append(h.deadlines, left)
	h.mu.Unlock()
	return true
}

type fastDeadlineHook struct{ deadlineHook }

func (*fastDeadlineHook) NonBlocking() bool { return true }

// TestHookContextDeadline: every call of a hook that is not NonBlocking
// gets a context that ends within HookTimeout; a NonBlocking one is
// called directly. A hook that panics closes the connection that called it.
func TestHookContextDeadline(t *testing.T) {
	slow := &deadlineHook{}
	fast := &fastDeadlineHook{}
	for _, tc := range []struct {
		name  string
		authz Authorizer
		h     *deadlineHook
	}{{"blocking", slow, slow}, {"non-blocking", fast, &fast.deadlineHook}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{SysInterval: -1, Authorizer: tc.authz, HookTimeout: time.Hour}
			c := dialRaw(t, startServer(t, srv), packet.V5)
			c.connect(&packet.Connect{ClientID: "d", CleanStart: true})
			c.subscribe(1, "a", 0)
			c.send(&packet.Publish{Topic: "a", QoS: 1, PacketID: 1})
			c.recv() // PUBACK; the message comes too
			c.recv()
			tc.h.mu.Lock()
			got := append([]time.Duration(nil), tc.h.deadlines...)
			tc.h.mu.Unlock()
			if len(got) != 2 {
				t.Fatalf("%d calls, want 2", len(got))
			}
			for _, left := range got {
				if tc.h == slow && (left <= 0 || left > time.Hour) {
					t.Errorf("context deadline %v away, want within HookTimeout", left)
				}
				if tc.h != slow && left != -1 {
					t.Errorf("NonBlocking hook got a deadline %v away: not called directly", left)
				}
			}
			if tc.h == slow {
				c.send(&packet.Publish{Topic: "boom", QoS: 1, PacketID: 2})
				if got := c.expectClosed(); len(got) != 0 {
					t.Fatalf("panicking hook: got %v, want the connection closed", got)
				} // [v3 MQTT-4.8.0-2] as with a hook called directly
			}
		})
	}
}
