package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/transport"
)

// TestBrokerConsoleBinary: tern broker serves the web console on its
// http listener, behind the API's authentication, with its effective
// configuration for administrators, secrets hidden; --no-http-console
// turns it off.
func TestBrokerConsoleBinary(t *testing.T) {
	dir := t.TempDir()
	const token = "0123456789abcdef-SECRET"
	writeIn(t, dir, "tokens", "alice:"+token+"\n")
	cfg := writeIn(t, dir, "tern.yaml", `
listeners:
  - type: tcp
    addr: 127.0.0.1:0
  - type: http
    name: web
    addr: 127.0.0.1:0
http:
  tokens_file: tokens
  admins: alice
limits:
  max_inflight: 17
`)
	b := startBroker(t, dir, "--config", cfg, "--in-memory")
	httpAddr := b.waitLog(`msg=listening listener=web addr=(\S+)`)[1]
	cl := &http.Client{Timeout: 10 * time.Second}
	get := func(path, tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/console/", token); code != 200 || !strings.Contains(body, "Tern console") {
		t.Fatalf("/console/: %d %.200s", code, body)
	}
	code, body := get("/console/api/config", token)
	if code != 200 {
		t.Fatalf("/console/api/config as alice: %d %s", code, body)
	}
	if strings.Contains(body, "SECRET") {
		t.Errorf("the configuration shows a secret: %s", body)
	}
	var got struct {
		Settings map[string]any `json:"settings"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	httpSec, _ := got.Settings["http"].(map[string]any)
	limits, _ := got.Settings["limits"].(map[string]any)
	if httpSec["tokens_file"] != "(hidden)" || httpSec["admins"] != "alice" || httpSec["console"] != true || limits["max_inflight"] != 17.0 {
		t.Errorf("configuration: http %v, limits %v", httpSec, limits)
	}
	if ls, _ := got.Settings["listeners"].([]any); len(ls) != 2 || ls[1].(map[string]any)["name"] != "web" {
		t.Errorf("listeners: %v", got.Settings["listeners"])
	}
	// No password file: anonymous users get in, and are not administrators.
	if code, _ := get("/console/api/config", ""); code != http.StatusForbidden {
		t.Errorf("/console/api/config anonymously: %d, want 403", code)
	}
	b.stop()

	off := startBroker(t, dir, "--config", cfg, "--in-memory", "--no-http-console")
	httpAddr = off.waitLog(`msg=listening listener=web addr=(\S+)`)[1]
	if code, _ := get("/console/", token); code != http.StatusNotFound {
		t.Errorf("/console/ with --no-http-console: %d, want 404", code)
	}
	off.stop()
}

// TestEffectiveConfigHidesSecrets: the configuration handed to the
// console hides the files of passwords, keys and tokens and the
// password of the cluster's URL, and keeps the rest.
func TestEffectiveConfigHidesSecrets(t *testing.T) {
	c := newBrokerConfig()
	c.Auth.PasswordFile = "/etc/tern/passwd"
	c.HTTP.TokensFile = "/etc/tern/tokens"
	c.Cluster.URL = "redis://tern:s3cret@redis:6379/0"
	c.Listeners = []broker.Listener{
		{Type: "tls", Addr: ":8883", TLS: &transport.TLSConfig{CertFile: "server.pem", KeyFile: "/etc/tern/server.key"}},
		{Type: "http", Addr: ":8080"},
	}
	j, err := json.Marshal(c.effective())
	if err != nil {
		t.Fatal(err)
	}
	s := string(j)
	for _, secret := range []string{"/etc/tern/passwd", "/etc/tern/tokens", "s3cret", "server.key"} {
		if strings.Contains(s, secret) {
			t.Errorf("the effective configuration shows %q: %s", secret, s)
		}
	}
	for _, want := range []string{`"url":"redis://tern:(hidden)@redis:6379/0"`, `"cert_file":"server.pem"`, `"key_file":"(hidden)"`,
		`"password_file":"(hidden)"`, `"tokens_file":"(hidden)"`, `"max_packet_size":`, `"retain_available":true`, `"log_level":"info"`} {
		if !strings.Contains(s, want) {
			t.Errorf("the effective configuration lacks %s: %s", want, s)
		}
	}
	if strings.Contains(s, "0x") {
		t.Errorf("a value printed as a pointer: %s", s)
	}
}
