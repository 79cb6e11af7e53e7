package client_test

import (
	"strings"
	"testing"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
)

// TestHTTPConnectProxy: Config.Proxy http://user:pass@host:port takes the
// connection through an HTTP CONNECT proxy, with basic proxy
// authentication, and the client works through it.
func TestHTTPConnectProxy(t *testing.T) {
	_, url := startTern(t, nil)
	p := mqtttest.StartHTTPProxy(t)
	pu := "http://alice:s3cret@" + p.Addr
	c := connect(t, client.Config{Servers: []string{url}, Proxy: pu})
	if _, err := c.Publish(ctx(t), &message.Message{Topic: "via/proxy", Payload: []byte("x"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	targets, auths := p.Targets(), p.Auths()
	hostport := url[strings.Index(url, "://")+3:]
	if len(targets) != 1 || targets[0] != hostport {
		t.Fatalf("proxy saw CONNECT %v, want [%s]", targets, hostport)
	}
	if auths[0] != "Basic YWxpY2U6czNjcmV0" { // base64("alice:s3cret")
		t.Fatalf("Proxy-Authorization %q", auths[0])
	}
}

// TestProxyEnvironment: with Config.Proxy empty the client takes its
// proxy from the environment as net/http does: HTTP_PROXY (or
// http_proxy) for plain schemes, then ALL_PROXY (all_proxy); HTTPS_PROXY
// only for TLS schemes; NO_PROXY (no_proxy) exempts hosts; Config.Proxy
// "direct" ignores the environment.
func TestProxyEnvironment(t *testing.T) {
	_, url := startTern(t, nil)
	vars := []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"}
	cases := []struct {
		name    string
		env     map[string]string
		proxy   string // Config.Proxy
		viaProx bool
	}{
		{"HTTP_PROXY", map[string]string{"HTTP_PROXY": "P"}, "", true},
		{"http_proxy", map[string]string{"http_proxy": "P"}, "", true},
		{"ALL_PROXY", map[string]string{"ALL_PROXY": "P"}, "", true},
		{"all_proxy", map[string]string{"all_proxy": "P"}, "", true},
		{"HTTPS_PROXY not for tcp", map[string]string{"HTTPS_PROXY": "P", "https_proxy": "P"}, "", false},
		{"NO_PROXY host", map[string]string{"HTTP_PROXY": "P", "NO_PROXY": "example.com, 127.0.0.1"}, "", false},
		{"no_proxy star", map[string]string{"HTTP_PROXY": "P", "no_proxy": "*"}, "", false},
		{"NO_PROXY other", map[string]string{"HTTP_PROXY": "P", "NO_PROXY": "example.com"}, "", true},
		{"direct", map[string]string{"HTTP_PROXY": "P", "ALL_PROXY": "P"}, "direct", false},
		{"none", nil, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mqtttest.StartHTTPProxy(t)
			for _, k := range vars {
				t.Setenv(k, strings.ReplaceAll(tc.env[k], "P", p.URL))
			}
			c := connect(t, client.Config{Servers: []string{url}, Proxy: tc.proxy})
			if _, err := c.Publish(ctx(t), &message.Message{Topic: "env", Payload: []byte("x"), QoS: 1}); err != nil {
				t.Fatal(err)
			}
			targets := p.Targets()
			if got := len(targets) > 0; got != tc.viaProx {
				t.Fatalf("through the proxy: %v, want %v (CONNECTs %v)", got, tc.viaProx, targets)
			}
		})
	}
}
