package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/httpapi"
	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/transport"
)

// TestHTTPS: a listener of type https (an http listener with TLS) serves
// the API over TLS, with the broker's certificate.
func TestHTTPS(t *testing.T) {
	t.Parallel()
	pki, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := &broker.Server{SysInterval: -1, Listeners: []broker.Listener{
		{Type: "tcp", Addr: "127.0.0.1:0"},
		{Type: "https", Addr: "127.0.0.1:0", TLS: &transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile}},
	}}
	h, err := httpapi.New(srv, httpapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv.HTTPHandler = h
	b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: srv})
	base := "https://" + b.Addrs[1].String()
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientConfig()}}
	defer cl.CloseIdleConnections()
	resp, err := cl.Post(base+"/api/v1/publish", "application/json", strings.NewReader(`{"topic":"t","payload":"over tls"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("publish over https: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	// Plain HTTP to the TLS port is not served.
	plain := &http.Client{Timeout: 10 * time.Second}
	if resp, err := plain.Get("http://" + b.Addrs[1].String() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the https listener")
		}
	}
}
