package mqtttest

import (
	"testing"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/httpapi"
)

// HTTPBroker is a broker started by StartHTTPBroker: an MQTT listener
// and an http listener serving package httpapi's handler.
type HTTPBroker struct {
	*Broker
	// Handler is the HTTP API of the broker.
	Handler *httpapi.Handler
	// HTTP is the base URL of the http listener, "http://127.0.0.1:port".
	HTTP string
}

// StartHTTPBroker runs srv (configured, not started; nil for a zero
// Server) as StartBroker does, with a TCP listener for MQTT clients and
// an http listener on another free port serving httpapi.New(srv, cfg),
// until the test ends.
func StartHTTPBroker(t testing.TB, srv *broker.Server, cfg httpapi.Config) *HTTPBroker {
	t.Helper()
	if srv == nil {
		srv = &broker.Server{}
	}
	h, err := httpapi.New(srv, cfg)
	if err != nil {
		t.Fatalf("mqtttest: StartHTTPBroker: %v", err)
	}
	srv.HTTPHandler = h
	srv.Listeners = append(srv.Listeners,
		broker.Listener{Type: "tcp", Addr: "127.0.0.1:0"},
		broker.Listener{Type: "http", Name: "http", Addr: "127.0.0.1:0"})
	b := StartBroker(t, BrokerConfig{Server: srv})
	return &HTTPBroker{Broker: b, Handler: h, HTTP: "http://" + b.Addrs[len(b.Addrs)-1].String()}
}
