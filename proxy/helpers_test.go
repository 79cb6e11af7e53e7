package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/proxy"
)

var versions = []packet.Version{packet.V31, packet.V311, packet.V5}

// env is a Tern broker, a tap on the proxy's upstream connections and a
// proxy in front.
type env struct {
	broker *mqtttest.Broker
	tap    *mqtttest.Tap
	proxy  *mqtttest.Proxy
}

// newEnv starts a broker (srv, or a default one), a tap and a proxy with
// the filters.
func newEnv(t *testing.T, srv *broker.Server, filters ...proxy.Filter) *env {
	t.Helper()
	return newEnvP(t, srv, &proxy.Server{Filters: filters})
}

// newEnvP is newEnv with a proxy configured by ps, whose Upstreams it sets.
func newEnvP(t *testing.T, srv *broker.Server, ps *proxy.Server) *env {
	t.Helper()
	if srv == nil {
		srv = &broker.Server{SysInterval: -1}
	}
	e := &env{broker: mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: srv})}
	e.tap = mqtttest.StartTap(t, e.broker.Addr)
	ps.Upstreams = []string{e.tap.URL}
	e.proxy = mqtttest.StartProxy(t, ps, nil)
	t.Cleanup(func() {
		if errs := e.tap.Errors(); len(errs) > 0 {
			t.Errorf("the upstream was sent malformed bytes: %v", errs)
		}
	})
	return e
}

// connect connects a client of version v through the proxy.
func (e *env) connect(t *testing.T, id string, v packet.Version) *client.Client {
	t.Helper()
	return mqtttest.Connect(t, client.Config{Servers: []string{e.proxy.URL}, ClientID: id, Version: v,
		CleanStart: true, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
}

// raw connects a raw client of version v through the proxy.
func (e *env) raw(t *testing.T, id string, v packet.Version) *mqtttest.RawClient {
	t.Helper()
	c := mqtttest.DialRaw(t, e.proxy.Addr, v)
	c.Connect(&packet.Connect{ClientID: id, CleanStart: true})
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// collect subscribes c to filter and returns a channel of what arrives.
func collect(t *testing.T, c *client.Client, filter string, qos byte) <-chan *client.Message {
	t.Helper()
	ch := make(chan *client.Message, 100)
	if _, err := c.Subscribe(ctxT(t), filter, qos, func(m *client.Message) { ch <- m }); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	return ch
}

func publish(t *testing.T, c *client.Client, topic, payload string, qos byte) *client.PublishResult {
	t.Helper()
	res, err := c.Publish(ctxT(t), &message.Message{Topic: topic, Payload: []byte(payload), QoS: qos})
	if err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return res
}

func expectMsg(t *testing.T, ch <-chan *client.Message, topic, payload string) {
	t.Helper()
	select {
	case m := <-ch:
		if m.Topic != topic || string(m.Payload) != payload {
			t.Fatalf("got %s %q, want %s %q", m.Topic, m.Payload, topic, payload)
		}
	case <-time.After(mqtttest.DefaultTimeout):
		t.Fatalf("no message %s %q", topic, payload)
	}
}

// upstreamPublishes returns the topics of the PUBLISHes the upstream was
// sent.
func (e *env) upstreamTopics() []string {
	var ts []string
	for _, p := range e.tap.Packets(mqtttest.ClientToServer) {
		if pub, ok := p.(*packet.Publish); ok {
			ts = append(ts, pub.Topic)
		}
	}
	return ts
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func name(v packet.Version, s string) string { return fmt.Sprintf("%s/%s", v, s) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
