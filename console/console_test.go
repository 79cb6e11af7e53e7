package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/console"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
)

func TestConsoleNeedsAuthentication(t *testing.T) {
	b := fixture(t, console.Config{})
	for _, path := range []string{"/console/", "/console/assets/app.js", "/console/api/stats", "/console/api/whoami"} {
		status, hdr, _ := get(t, b.HTTP+path, "")
		if status != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("GET %s without credentials: %d, WWW-Authenticate %q; want 401 asking for basic authentication", path, status, hdr.Get("WWW-Authenticate"))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.HTTP+"/console/", nil)
	req.SetBasicAuth("alice", "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong password: %d, want 401", resp.StatusCode)
	}
}

func TestConsoleServedOnlyThroughHTTPAPI(t *testing.T) {
	h, err := console.New(&broker.Server{}, console.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("the console served without httpapi's authentication: %d, want 401", rec.Code)
	}
}

func TestConsoleNewRejectsBadConfig(t *testing.T) {
	if _, err := console.New(nil, console.Config{}); err == nil {
		t.Error("New(nil): no error")
	}
	if _, err := console.New(&broker.Server{}, console.Config{Interval: -time.Second}); err == nil || !strings.Contains(err.Error(), "Interval") {
		t.Errorf("a negative Interval: %v, want an error naming Config.Interval", err)
	}
	if _, err := console.New(&broker.Server{}, console.Config{Settings: func() {}}); err == nil || !strings.Contains(err.Error(), "Settings") {
		t.Errorf("Settings that are not JSON: %v, want an error naming Config.Settings", err)
	}
}

func TestConsoleAssets(t *testing.T) {
	b := fixture(t, console.Config{})
	status, hdr, body := get(t, b.HTTP+"/console/", "bob")
	if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !strings.Contains(string(body), `src="assets/app.js"`) {
		t.Fatalf("GET /console/: %d %q, body %.200s", status, hdr.Get("Content-Type"), body)
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy %q: want default-src 'self'", csp)
	}
	// /console is redirected to /console/.
	if status, _, body := get(t, b.HTTP+"/console", "bob"); status != http.StatusOK || !strings.Contains(string(body), "Tern console") {
		t.Errorf("GET /console: %d %.100s, want the console after a redirect", status, body)
	}
	for path, ctype := range map[string]string{
		"/console/assets/app.js":    "javascript",
		"/console/assets/plot.js":   "javascript",
		"/console/assets/style.css": "text/css",
	} {
		status, hdr, _ := get(t, b.HTTP+path, "bob")
		if status != http.StatusOK || !strings.Contains(hdr.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %q, want 200 %s", path, status, hdr.Get("Content-Type"), ctype)
		}
	}
	for _, path := range []string{"/console/assets/", "/console/assets/nope.js", "/console/nope"} {
		if status, _, body := get(t, b.HTTP+path, "bob"); status != http.StatusNotFound || !strings.Contains(string(body), `"error"`) {
			t.Errorf("GET %s: %d %s, want 404 with a JSON error", path, status, body)
		}
	}
}

func TestConsoleWhoami(t *testing.T) {
	b := fixture(t, console.Config{})
	if w := getJSON[console.Whoami](t, b.HTTP+"/console/api/whoami", "alice"); w != (console.Whoami{User: "alice", Admin: true}) {
		t.Errorf("alice: %+v", w)
	}
	if w := getJSON[console.Whoami](t, b.HTTP+"/console/api/whoami", "bob"); w != (console.Whoami{User: "bob", Admin: false}) {
		t.Errorf("bob: %+v", w)
	}
}

// publishN publishes n QoS 1 messages from a real MQTT client.
func publishN(t *testing.T, c *client.Client, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	for i := range n {
		if _, err := c.Publish(ctx, &message.Message{Topic: topic, QoS: 1, Payload: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConsoleStats(t *testing.T) {
	b := fixture(t, console.Config{})
	c := mqtttest.Connect(t, client.Config{Servers: []string{b.Addrs[0].String()}, ClientID: "stats-1", Username: "alice", Password: []byte("alice-pw")})
	publishN(t, c, "public/retained", 1)
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	if _, err := c.Publish(ctx, &message.Message{Topic: "public/r", Retain: true, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	publishN(t, c, "public/x", 9)
	s := getJSON[console.Sample](t, b.HTTP+"/console/api/stats", "bob")
	if s.ClientsConnected != 1 || s.ClientsTotal != 1 || s.Sessions != 1 || s.MessagesReceived < 11 || s.Retained != 1 || s.Time.IsZero() {
		t.Errorf("stats after one client published 11 messages, one retained: %+v", s)
	}
	if s.MessagesInRate != 0 {
		t.Errorf("a single sample has rates: %+v", s)
	}
}

func TestConsoleStatsStream(t *testing.T) {
	b := fixture(t, console.Config{Interval: 50 * time.Millisecond})
	resp := open(t, b.HTTP+"/console/api/stats/stream", "bob")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := samples(resp.Body)
	next := func() console.Sample {
		t.Helper()
		select {
		case s, ok := <-ch:
			if !ok {
				t.Fatal("the stream ended")
			}
			return s
		case <-time.After(mqtttest.DefaultTimeout):
			t.Fatal("no sample in time")
		}
		return console.Sample{}
	}
	first := next()
	if first.ClientsConnected != 0 || first.MessagesInRate != 0 {
		t.Fatalf("first sample: %+v", first)
	}
	c := mqtttest.Connect(t, client.Config{Servers: []string{b.Addrs[0].String()}, ClientID: "stream-1", Username: "bob", Password: []byte("bob-pw")})
	publishN(t, c, "bob/x", 20)
	// The samples that follow see the client, and their rates add up to
	// the messages sent (a sample's rate times its interval).
	var in float64
	var connects float64
	deadline := time.After(mqtttest.DefaultTimeout)
	prev := first
	for in < 19.5 || connects < 0.5 {
		select {
		case <-deadline:
			t.Fatalf("the rates add up to %.2f messages and %.2f connections, want 20 and 1", in, connects)
		default:
		}
		s := next()
		secs := s.Time.Sub(prev.Time).Seconds()
		in += s.MessagesInRate * secs
		connects += s.ConnectRate * secs
		prev = s
	}
	if prev.ClientsConnected != 1 || prev.MessagesReceived < 20 {
		t.Errorf("last sample: %+v", prev)
	}
}

func TestConsoleConfigRedacted(t *testing.T) {
	settings := map[string]any{
		"listeners": []map[string]any{
			{"type": "tls", "addr": "0.0.0.0:8883", "tls": map[string]any{"cert_file": "server.pem", "key_file": "/etc/tern/server.key"}},
		},
		"auth":    map[string]any{"password_file": "/etc/tern/passwd", "allow_anonymous": false},
		"http":    map[string]any{"tokens_file": "/etc/tern/tokens", "admins": "alice", "api_token": "tok-SECRET-1"},
		"cluster": map[string]any{"url": "redis://tern:SECRET-2@redis:6379/0", "node": "node-1"},
		"limits":  map[string]any{"keep_alive": "60s", "max_inflight": 20},
	}
	b := fixture(t, console.Config{Settings: settings})
	status, _, body := get(t, b.HTTP+"/console/api/config", "alice")
	if status != http.StatusOK {
		t.Fatalf("alice: %d %s", status, body)
	}
	for _, secret := range []string{"SECRET", "/etc/tern/server.key", "/etc/tern/passwd", "/etc/tern/tokens"} {
		if strings.Contains(string(body), secret) {
			t.Errorf("the configuration shows %q: %s", secret, body)
		}
	}
	var got console.ConfigResponse
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(got.Settings)
	for _, want := range []string{`"cert_file":"server.pem"`, `"key_file":"(hidden)"`, `"url":"redis://tern:(hidden)@redis:6379/0"`,
		`"keep_alive":"60s"`, `"max_inflight":20`, `"admins":"alice"`, `"allow_anonymous":false`, `"node":"node-1"`} {
		if !strings.Contains(string(j), want) {
			t.Errorf("the configuration lacks %s: %s", want, j)
		}
	}
	if status, _, body := get(t, b.HTTP+"/console/api/config", "bob"); status != http.StatusForbidden || !strings.Contains(string(body), "administrator") {
		t.Errorf("bob, not an administrator: %d %s, want 403", status, body)
	}
}

func TestConsoleConfigNone(t *testing.T) {
	b := fixture(t, console.Config{})
	if got := getJSON[console.ConfigResponse](t, b.HTTP+"/console/api/config", "alice"); got.Settings != nil {
		t.Errorf("no settings given: %+v", got)
	}
}

func TestRedact(t *testing.T) {
	type tls struct {
		CertFile string `json:"cert_file"`
		KeyFile  string `json:"key_file"`
	}
	in := struct {
		Password   string            `json:"password"`
		Empty      string            `json:"password_file"`
		KeepAlive  int               `json:"keep_alive"`
		Keys       []string          `json:"keys"`
		TLS        tls               `json:"tls"`
		Secret     map[string]string `json:"client-secret"`
		Cluster    string            `json:"cluster"`
		NATS       string            `json:"nats"`
		UserOnly   string            `json:"user_url"`
		PlainAt    string            `json:"contact"`
		Passphrase string            `json:"TLS.Passphrase"`
	}{
		Password: "p1", KeepAlive: 60, Keys: []string{"k1"}, TLS: tls{"c.pem", "k.pem"},
		Secret: map[string]string{"a": "b"}, Cluster: "redis://u:p2@h:1/0",
		NATS: "nats://a:p3@h1:4222,nats://b:p4@h2:4222", UserOnly: "mqtt://user@h", PlainAt: "ops@example.com", Passphrase: "p5",
	}
	out, err := console.Redact(in)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(out)
	want := `{"TLS.Passphrase":"(hidden)","client-secret":"(hidden)","cluster":"redis://u:(hidden)@h:1/0","contact":"ops@example.com","keep_alive":60,"keys":"(hidden)","nats":"nats://a:(hidden)@h1:4222,nats://b:(hidden)@h2:4222","password":"(hidden)","password_file":"","tls":{"cert_file":"c.pem","key_file":"(hidden)"},"user_url":"mqtt://user@h"}`
	if string(j) != want {
		t.Errorf("Redact:\n got %s\nwant %s", j, want)
	}
	if out, err := console.Redact(nil); out != nil || err != nil {
		t.Errorf("Redact(nil) = %v, %v", out, err)
	}
}

// TestConsoleStatsStreamEndsAtShutdown: the broker's Shutdown ends the
// stats stream (its request's context) and does not wait for it until
// its deadline.
func TestConsoleStatsStreamEndsAtShutdown(t *testing.T) {
	b := fixture(t, console.Config{Interval: 20 * time.Millisecond})
	resp := open(t, b.HTTP+"/console/api/stats/stream", "bob")
	defer resp.Body.Close()
	ch := samples(resp.Body)
	select {
	case <-ch:
	case <-time.After(mqtttest.DefaultTimeout):
		t.Fatal("no sample")
	}
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	if err := b.Server.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a console stream open: %v", err)
	}
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-time.After(mqtttest.DefaultTimeout):
			t.Fatal("the stream did not end at the broker's shutdown")
		}
	}
}
