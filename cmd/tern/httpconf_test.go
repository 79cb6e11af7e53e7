package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// TestBrokerHTTPBinary runs tern broker --http and uses the HTTP API of
// the real process: health, readiness, metrics, and a publish a raw MQTT
// subscriber receives.
func TestBrokerHTTPBinary(t *testing.T) {
	b := startBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--http", "127.0.0.1:0")
	mqttAddr := b.addr()
	httpAddr := b.waitLog(`msg=listening listener="http [^"]*" addr=(\S+)`)[1]
	base := "http://" + httpAddr
	cl := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		resp, err := cl.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := get(p); code != 200 {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	sub := dialMQTT(t, mqttAddr, "sub", "e2e/#")
	resp, err := cl.Post(base+"/api/v1/publish", "application/json", strings.NewReader(`{"topic":"e2e/http","payload":"over http","qos":1}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"matched":1`) {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	if got := sub(); got != "e2e/http over http" {
		t.Fatalf("the MQTT subscriber got %q", got)
	}
	code, metrics := get("/metrics")
	if code != 200 || !strings.Contains(metrics, `tern_messages_received_total{qos="1"} 1`) || !strings.Contains(metrics, "tern_connections{") {
		t.Errorf("metrics: %d\n%s", code, metrics)
	}
	b.stop()
}

// TestBrokerHTTPConfig: http listeners from the file (https with TLS),
// the http section, and the errors of a bad tokens file name the line.
func TestBrokerHTTPConfig(t *testing.T) {
	dir := t.TempDir()
	writeIn(t, dir, "tokens", "# users\nalice:0123456789abcdef0123\n")
	cfg := writeIn(t, dir, "tern.yaml", `
listeners:
  - type: http
    addr: 127.0.0.1:0
http:
  tokens_file: tokens
  admins: alice, bob
  protect_metrics: true
`)
	srv, err := buildFromArgs(t, "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if srv.HTTPHandler == nil || len(srv.Listeners) != 2 || srv.Listeners[1].Type != "tcp" {
		t.Fatalf("listeners %+v, handler %v: want the http listener and the default MQTT one", srv.Listeners, srv.HTTPHandler)
	}
	for _, c := range []struct{ tokens, want string }{
		{"alice:short\n", "tokens:1: the token of \"alice\" is shorter than 16"},
		{"\nnocolon\n", "tokens:2: want user:token"},
		{"a:0123456789abcdef0123\nb:0123456789abcdef0123\n", "tokens:2: this token is also \"a\"'s"},
	} {
		d := t.TempDir()
		writeIn(t, d, "tokens", c.tokens)
		cfg := writeIn(t, d, "tern.yaml", "http:\n  tokens_file: tokens\nlisteners:\n  - type: http\n    addr: 127.0.0.1:0\n")
		if _, err := buildFromArgs(t, "--config", cfg); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "http.tokens_file") {
			t.Errorf("%q: %v, want %q naming http.tokens_file", c.tokens, err, c.want)
		}
	}
	if _, err := buildFromArgs(t, "--http", "nonsense"); err == nil || !strings.Contains(err.Error(), "--http") {
		t.Errorf("--http nonsense: %v", err)
	}
	if _, err := buildFromArgs(t, "--config", writeIn(t, t.TempDir(), "t.yaml", "listeners:\n  - type: https\n    addr: 127.0.0.1:0\n")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("https without tls: %v", err)
	}
}

// dialMQTT connects a raw MQTT 3.1.1 client subscribed to filter and
// returns a function that reads its next message as "topic payload".
func dialMQTT(t *testing.T, addr, id, filter string) func() string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	w, r := packet.NewWriter(nc), packet.NewReader(nc)
	r.Version = packet.V311
	for _, p := range []packet.Packet{
		&packet.Connect{Version: packet.V311, ClientID: id, CleanStart: true},
		&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter, QoS: 1}}},
	} {
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // CONNACK, SUBACK
		if _, err := r.ReadPacket(); err != nil {
			t.Fatal(err)
		}
	}
	return func() string {
		for {
			p, err := r.ReadPacket()
			if err != nil {
				t.Fatal(err)
			}
			if pub, ok := p.(*packet.Publish); ok {
				return pub.Topic + " " + string(pub.Payload)
			}
		}
	}
}

// TestBrokerHTTPKeptByFlags: -p and --listen replace the file's MQTT
// listeners, not its http listener.
func TestBrokerHTTPKeptByFlags(t *testing.T) {
	cfg := writeFile(t, "tern.yaml", `
listeners:
  - type: tcp
    addr: 127.0.0.1:1999
  - type: http
    addr: 127.0.0.1:0
`)
	srv, logs, err := buildLogged(t, "--config", cfg, "-p", "0")
	if err != nil {
		t.Fatal(err)
	}
	if len(srv.Listeners) != 2 || srv.Listeners[0].Addr != "127.0.0.1:0" || srv.Listeners[1].Type != "http" || srv.HTTPHandler == nil {
		t.Fatalf("listeners %+v", srv.Listeners)
	}
	if !strings.Contains(logs, "-p replaces the listener of") {
		t.Errorf("log: %s", logs)
	}
}
