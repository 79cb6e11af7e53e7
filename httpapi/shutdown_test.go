package httpapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/httpapi"
	"github.com/ternmq/tern/mqtttest"
)

// TestShutdownEndsStreams: the broker's Shutdown ends an open WebSocket
// stream (the client is told 1001 going away) and an open SSE stream,
// and returns.
func TestShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	srv := &broker.Server{SysInterval: -1, Listeners: []broker.Listener{{Type: "tcp", Addr: "127.0.0.1:0"}, {Type: "http", Addr: "127.0.0.1:0"}}}
	h, err := httpapi.New(srv, httpapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv.HTTPHandler = h
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	<-srv.Ready()
	base := "http://" + srv.Addrs()[1].String()
	b := &mqtttest.HTTPBroker{HTTP: base}

	c, _, err := wsDial(t, b, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	wsSend(t, c, map[string]any{"type": "subscribe", "id": "1", "filter": "#"})
	if ev := wsRecv(t, c); ev.Type != "ok" {
		t.Fatalf("subscribe: %+v", ev)
	}
	resp := do(t, "GET", base+"/api/v1/subscribe?filter=%23", "", nil)
	defer resp.Body.Close()
	events := readEvents(resp.Body)
	nextEvent(t, events)

	// The client reads, so it answers the close handshake.
	rctx, rcancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer rcancel()
	wsErr := make(chan error, 1)
	go func() {
		_, _, err := c.Read(rctx)
		wsErr <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-errc; !errors.Is(err, broker.ErrServerClosed) {
		t.Fatalf("ListenAndServe: %v", err)
	}
	if err := <-wsErr; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("WebSocket after Shutdown: %v, want close 1001", err)
	}
	select {
	case _, ok := <-events:
		if ok {
			t.Error("an SSE event after Shutdown")
		}
	case <-time.After(mqtttest.DefaultTimeout):
		t.Error("the SSE stream is still open after Shutdown")
	}
}
