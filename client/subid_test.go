package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// result is what a call made on another goroutine returned.
type result[T any] struct {
	v   T
	err error
}

// async runs f on a goroutine of its own; the test's goroutine plays the
// server meanwhile. The channel is buffered, so f never waits on it.
func async[T any](f func() (T, error)) <-chan result[T] {
	ch := make(chan result[T], 1)
	go func() {
		v, err := f()
		ch <- result[T]{v, err}
	}()
	return ch
}

// await waits for an async call, failing the test after 10 s.
func await[T any](t testing.TB, ch <-chan result[T]) (T, error) {
	t.Helper()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("the client call did not return")
		panic("unreachable")
	}
}

// rawConnect connects a client of cfg to a fake server
// (mqtttest.ListenRaw) that answers with ack, and returns both ends. The
// client is disconnected at the end of the test, before the fake
// server's connection is closed.
func rawConnect(t *testing.T, cfg client.Config, ack *packet.Connack) (*client.Client, *mqtttest.RawClient) {
	t.Helper()
	srv := mqtttest.ListenRaw(t)
	cfg.Servers = []string{srv.URL}
	cfg.Logger = quiet()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := async(func() (*client.Connack, error) { return c.Connect(ctx(t)) })
	sc, _ := srv.AcceptConnect(ack)
	if _, err := await(t, done); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Disconnect(ctx)
	})
	return c, sc
}

// subscribeRaw subscribes with opts while the fake server answers with a
// SUBACK granting every filter; it returns the subscription and the
// SUBSCRIBE the server saw.
func subscribeRaw(t *testing.T, c *client.Client, sc *mqtttest.RawClient, opts client.SubscribeOptions) (*client.Subscription, *packet.Subscribe) {
	t.Helper()
	done := async(func() (*client.Subscription, error) { return c.SubscribeWith(ctx(t), opts) })
	sp := mqtttest.Expect[*packet.Subscribe](sc)
	codes := make([]packet.ReasonCode, len(sp.Subscriptions))
	sc.Send(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: codes})
	s, err := await(t, done)
	if err != nil {
		t.Fatal(err)
	}
	return s, sp
}

// next returns the next message of s, failing the test after 5 s.
func next(t *testing.T, s *client.Subscription) *client.Message {
	t.Helper()
	c, cancel := context.WithTimeout(ctx(t), 5*time.Second)
	defer cancel()
	for m := range s.Messages(c) {
		return m
	}
	t.Fatalf("no message for %v", s.Filters())
	return nil
}

// none checks that s has no message buffered.
func none(t *testing.T, s *client.Subscription) {
	t.Helper()
	if n := s.Buffered(); n != 0 {
		t.Fatalf("%v has %d unexpected messages", s.Filters(), n)
	}
}

// TestSubscriptionIDs checks, at the wire, the Subscription Identifier of
// each SUBSCRIBE: the client's own (default), SubscribeOptions.ID, and
// none with Config.NoSubscriptionIDs; and that messages are routed by it,
// a single copy carrying several identifiers going to each of their
// subscriptions once [v5 MQTT-3.3.4-4]. An identifier out of range
// [v5 noid:subid-range], or for a server without them
// [v5 noid:subid-unavailable], is refused before anything is sent.
func TestSubscriptionIDs(t *testing.T) {
	t.Run("auto", func(t *testing.T) {
		c, sc := rawConnect(t, client.Config{}, nil)
		s, sp := subscribeRaw(t, c, sc, client.SubscribeOptions{Filters: []client.Filter{{Topic: "a/#"}}})
		if ids := sp.Properties.SubscriptionIDs; len(ids) != 1 || ids[0] == 0 || ids[0] != s.ID() {
			t.Fatalf("SUBSCRIBE ids %v, Subscription.ID %d: want one non-zero id, the same", ids, s.ID())
		}
	})
	t.Run("explicit", func(t *testing.T) {
		c, sc := rawConnect(t, client.Config{}, nil)
		a, sp := subscribeRaw(t, c, sc, client.SubscribeOptions{Filters: []client.Filter{{Topic: "a/#"}}, ID: 42})
		if ids := sp.Properties.SubscriptionIDs; len(ids) != 1 || ids[0] != 42 || a.ID() != 42 {
			t.Fatalf("SUBSCRIBE ids %v, ID() %d: want [42]", ids, a.ID())
		}
		// An automatic id never takes one given explicitly.
		b, sp := subscribeRaw(t, c, sc, client.SubscribeOptions{Filters: []client.Filter{{Topic: "a/b"}}})
		if ids := sp.Properties.SubscriptionIDs; len(ids) != 1 || ids[0] == 42 || ids[0] == 0 {
			t.Fatalf("second SUBSCRIBE ids %v: want one id other than 42", ids)
		}
		// A message carrying 42 only is a's alone, though b's filter
		// matches it: routed by id.
		p := &packet.Publish{Topic: "a/b", Payload: []byte("x")}
		p.Properties.SubscriptionIDs = []uint32{42}
		sc.Send(p)
		if m := next(t, a); string(m.Payload) != "x" {
			t.Fatalf("a got %q", m.Payload)
		}
		p = &packet.Publish{Topic: "a/b", Payload: []byte("y")}
		p.Properties.SubscriptionIDs = []uint32{b.ID(), 42}
		sc.Send(p)
		if m := next(t, b); string(m.Payload) != "y" {
			t.Fatalf("b got %q", m.Payload)
		}
		if m := next(t, a); string(m.Payload) != "y" {
			t.Fatalf("a got %q", m.Payload)
		}
		none(t, b)
	})
	t.Run("off", func(t *testing.T) {
		c, sc := rawConnect(t, client.Config{NoSubscriptionIDs: true}, nil)
		a, sp := subscribeRaw(t, c, sc, client.SubscribeOptions{Filters: []client.Filter{{Topic: "a/#"}}})
		if sp.Properties.Has(packet.PropSubscriptionID) || len(sp.Properties.SubscriptionIDs) != 0 || a.ID() != 0 {
			t.Fatalf("SUBSCRIBE carries ids %v with NoSubscriptionIDs (ID() %d)", sp.Properties.SubscriptionIDs, a.ID())
		}
		// One explicit id still goes out; mixed routing: a message with
		// 7 goes to the subscription with 7 and to the matching ones
		// without an id, once each.
		b, sp := subscribeRaw(t, c, sc, client.SubscribeOptions{Filters: []client.Filter{{Topic: "a/b"}}, ID: 7})
		if ids := sp.Properties.SubscriptionIDs; len(ids) != 1 || ids[0] != 7 {
			t.Fatalf("SUBSCRIBE ids %v: want [7]", ids)
		}
		p := &packet.Publish{Topic: "a/b", Payload: []byte("1")}
		p.Properties.SubscriptionIDs = []uint32{7}
		sc.Send(p)
		sc.Send(&packet.Publish{Topic: "a/c", Payload: []byte("2")})
		if m := next(t, b); string(m.Payload) != "1" {
			t.Fatalf("b got %q", m.Payload)
		}
		for _, want := range []string{"1", "2"} {
			if m := next(t, a); string(m.Payload) != want {
				t.Fatalf("a got %q, want %q", m.Payload, want)
			}
		}
		none(t, a)
		none(t, b)
	})
	t.Run("refused", func(t *testing.T) {
		ack := &packet.Connack{}
		ack.Properties.SubIDAvailable = 0
		ack.Properties.Mark(packet.PropSubIDAvailable)
		c, sc := rawConnect(t, client.Config{}, ack)
		_, err := c.SubscribeWith(ctx(t), client.SubscribeOptions{Filters: []client.Filter{{Topic: "a"}}, ID: 3})
		if err == nil || !strings.Contains(err.Error(), "SubscribeOptions.ID") {
			t.Fatalf("ID with a server without ids: %v, want an error naming SubscribeOptions.ID", err)
		}
		// Without one the SUBSCRIBE goes, carrying none.
		_, sp := subscribeRaw(t, c, sc, client.SubscribeOptions{Filters: []client.Filter{{Topic: "a"}}})
		if len(sp.Properties.SubscriptionIDs) != 0 {
			t.Fatalf("SUBSCRIBE ids %v to a server without them", sp.Properties.SubscriptionIDs)
		}
		_, err = c.SubscribeWith(ctx(t), client.SubscribeOptions{Filters: []client.Filter{{Topic: "a"}}, ID: 268_435_456})
		if err == nil || !strings.Contains(err.Error(), "268435455") {
			t.Fatalf("ID out of range: %v", err)
		}
	})
	t.Run("v311", func(t *testing.T) {
		c, _ := rawConnect(t, client.Config{Version: packet.V311}, nil)
		_, err := c.SubscribeWith(ctx(t), client.SubscribeOptions{Filters: []client.Filter{{Topic: "a"}}, ID: 3})
		if err == nil || !strings.Contains(err.Error(), "MQTT 5") {
			t.Fatalf("ID with MQTT 3.1.1: %v, want an error naming MQTT 5", err)
		}
	})
}

// TestMaxInflight: with Config.MaxInflight N, a server that withholds
// its PUBACKs never has more than N QoS 1 PUBLISHes unacknowledged
// [v5 MQTT-3.3.4-7]; with a lower Receive Maximum that one bounds it.
func TestMaxInflight(t *testing.T) {
	for _, tc := range []struct {
		name          string
		max, rm, want int
		version       packet.Version
	}{
		{"config", 3, 0, 3, packet.V5},
		{"receive-maximum", 5, 2, 2, packet.V5},
		{"v311", 4, 0, 4, packet.V311},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ack := &packet.Connack{}
			if tc.rm > 0 {
				ack.Properties.ReceiveMaximum = uint16(tc.rm)
				ack.Properties.Mark(packet.PropReceiveMaximum)
			}
			c, sc := rawConnect(t, client.Config{MaxInflight: tc.max, Version: tc.version}, ack)
			const total = 10
			toks := make([]*client.Token, total)
			for i := range toks {
				toks[i] = c.PublishAsync(&message.Message{Topic: "t", QoS: 1, Payload: []byte{byte(i)}})
			}
			var unacked []uint16
			peak := 0
			for got := 0; got < total; {
				if len(unacked) == tc.want {
					// Full: nothing more may come until a PUBACK. Wait a
					// moment for a PUBLISH that must not come, then
					// acknowledge the oldest.
					if p, err := sc.RecvTimeout(200 * time.Millisecond); err == nil {
						t.Fatalf("a PUBLISH beyond the window of %d: %v", tc.want, p)
					} else if !mqtttest.IsTimeout(err) {
						t.Fatal(err)
					}
					sc.Send(&packet.Puback{PacketID: unacked[0]})
					unacked = unacked[1:]
					continue
				}
				p := mqtttest.Expect[*packet.Publish](sc)
				got++
				unacked = append(unacked, p.PacketID)
				peak = max(peak, len(unacked))
			}
			for _, id := range unacked {
				sc.Send(&packet.Puback{PacketID: id})
			}
			for i, tok := range toks {
				if _, err := tok.Wait(ctx(t)); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			}
			if peak != tc.want {
				t.Fatalf("at most %d unacknowledged at once, want %d", peak, tc.want)
			}
		})
	}
}

// TestMaxInflightValidate: a bad Config.MaxInflight is named.
func TestMaxInflightValidate(t *testing.T) {
	for _, n := range []int{-1, 65536} {
		err := (&client.Config{Servers: []string{"mqtt://127.0.0.1:1"}, MaxInflight: n}).Validate()
		if err == nil || !strings.Contains(err.Error(), "Config.MaxInflight") {
			t.Fatalf("MaxInflight %d: %v", n, err)
		}
	}
}
