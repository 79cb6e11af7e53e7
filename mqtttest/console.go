package mqtttest

import (
	"testing"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/console"
	"github.com/ternmq/tern/httpapi"
)

// StartConsoleBroker is StartHTTPBroker with the web console of package
// console mounted at /console/ (cfg.Console is replaced).
func StartConsoleBroker(t testing.TB, srv *broker.Server, cfg httpapi.Config, ccfg console.Config) *HTTPBroker {
	t.Helper()
	if srv == nil {
		srv = &broker.Server{}
	}
	c, err := console.New(srv, ccfg)
	if err != nil {
		t.Fatalf("mqtttest: StartConsoleBroker: %v", err)
	}
	cfg.Console = c
	return StartHTTPBroker(t, srv, cfg)
}
