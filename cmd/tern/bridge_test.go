package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/bridge"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// Every key of a bridge decodes into bridge.Config, relative paths from
// the file's directory.
func TestBridgesConfig(t *testing.T) {
	cfg := writeFile(t, "tern.yaml", `
bridges:
  - name: cloud
    remote: mqtts://cloud.example:8883
    client_id: edge-1
    username: edge
    password: s3cret
    protocol_version: 3.1.1
    clean_session: true
    session_expiry: 48h
    keep_alive: 30s
    backoff_min: 50ms
    backoff_max: 5s
    max_queued: 500
    local_username: br
    local_password: pw
    tls:
      ca_file: ca.pem
      cert_file: /abs/client.pem
      key_file: client.key
      server_name: cloud.example
      insecure: true
      insecure_password: true
    topics:
      - topic: sensors/#
        direction: out
        qos: 1
        remote_prefix: site1/
      - topic: cmd/#
        direction: in
        qos: 2
        local_prefix: from-cloud/
        remote_prefix: site1/
  - name: second
    remote: unix:///run/other.sock
    topics:
      - topic: "#"
`)
	c := newBrokerConfig()
	if err := c.loadFile(cfg); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(cfg)
	want := []bridge.Config{{
		Name: "cloud", Remote: "mqtts://cloud.example:8883", ClientID: "edge-1", Username: "edge", Password: "s3cret",
		Version: packet.V311, CleanSession: true, SessionExpiry: 48 * time.Hour, KeepAlive: 30 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 5 * time.Second,
		MaxQueued: 500, LocalUsername: "br", LocalPassword: "pw",
		TLS: &bridge.TLS{CAFile: filepath.Join(dir, "ca.pem"), CertFile: "/abs/client.pem", KeyFile: filepath.Join(dir, "client.key"),
			ServerName: "cloud.example", Insecure: true, InsecurePassword: true},
		Topics: []bridge.Mapping{
			{Topic: "sensors/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"},
			{Topic: "cmd/#", Direction: bridge.In, QoS: 2, LocalPrefix: "from-cloud/", RemotePrefix: "site1/"},
		},
	}, {Name: "second", Remote: "unix:///run/other.sock", Topics: []bridge.Mapping{{Topic: "#"}}}}
	if len(c.Bridges) != 2 || c.Bridges[0].TLS == nil || *c.Bridges[0].TLS != *want[0].TLS {
		t.Fatalf("got %+v, want %+v", c.Bridges, want)
	}
	c.Bridges[0].TLS, want[0].TLS = nil, nil
	if got := fmt.Sprintf("%+v", c.Bridges); got != fmt.Sprintf("%+v", want) {
		t.Errorf("got  %s\nwant %s", got, fmt.Sprintf("%+v", want))
	}
}

// Bad bridge keys and values are named, with their line.
func TestBridgesConfigErrors(t *testing.T) {
	const head = "bridges:\n  - name: b\n    remote: mqtt://127.0.0.1:1883\n"
	for _, tc := range []struct{ yaml, want string }{
		{"bridge:\n  - name: b\n", `tern.yaml:1: unknown key "bridge" at the top level (did you mean bridges?)`},
		{"bridges: 5\n", `tern.yaml:1: bridges must be a list (lines starting with "- "), not the value "5"`},
		{head + "    remte: x\n", `tern.yaml:4: unknown key "remte" in bridges[0] (did you mean bridges[0].remote?); README.md, section Bridges, lists the keys`},
		{head + "    topics:\n      - topic: a/#\n        directon: out\n",
			`tern.yaml:6: unknown key "directon" in bridges[0].topics[0] (did you mean bridges[0].topics[0].direction?)`},
		{head + "    tls:\n      ca: x\n", `tern.yaml:5: unknown key "ca" in bridges[0].tls`},
		{head + "    topics:\n      - topic: a/#\n        direction: sideways\n",
			`tern.yaml:6: bridges[0].topics[0].direction: "sideways" is not one of out, in, both`},
		{head + "    topics:\n      - topic: a/#\n        qos: 3\n", `tern.yaml:6: bridges[0].topics[0].qos: 3 is outside 0..2`},
		{head + "    keep_alive: 10\n", `tern.yaml:4: bridges[0].keep_alive: 10 has no unit`},
		{head + "    protocol_version: 6\n", `tern.yaml:4: bridges[0].protocol_version: "6" is not one of 5, 3.1.1, 3.1`},
		{head, `tern.yaml:2: bridges[0].topics: empty: give at least one topic mapping`},
		{head + "    topics:\n      - direction: out\n", `tern.yaml:5: bridges[0].topics[0].topic: empty`},
		{head + "    topics:\n      - topic: a/#\n        local_prefix: x/+/\n", `tern.yaml:6: bridges[0].topics[0].local_prefix: "x/+/" holds a wildcard`},
		{"bridges:\n  - name: b\n    remote: http://x:1\n    topics: [{topic: a}]\n", `tern.yaml:3: bridges[0].remote: "http://x:1": unknown scheme "http"`},
		{"bridges:\n  - remote: mqtt://x:1\n    topics: [{topic: a}]\n", `tern.yaml:2: bridges[0].name: empty`},
		{head + "    topics: [{topic: a}]\n  - name: b\n    remote: mqtt://x:1\n    topics: [{topic: a}]\n",
			`tern.yaml:5: bridges[1].name: "b" is the name of bridges[0] already`},
		{head + "    topics: [{topic: a}]\n    tls:\n      cert_file: c.pem\n", `tern.yaml:6: bridges[0].tls.cert_file: a client certificate needs both`},
	} {
		c := newBrokerConfig()
		err := c.loadFile(writeFile(t, "tern.yaml", tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}

// tern broker runs the bridges of its configuration file: a message
// published on it reaches a remote Tern broker over TLS, and one published
// there comes back; $SYS says the bridge is connected.
func TestBrokerRunsBridges(t *testing.T) {
	dir := t.TempDir()
	pki, err := testpki.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	remoteTLS := writeIn(t, dir, "remote.yaml", fmt.Sprintf(`
listeners:
  - type: tls
    addr: 127.0.0.1:0
    tls:
      cert_file: %s
      key_file: %s
`, pki.CertFile, pki.KeyFile))
	rtls := startBroker(t, dir, "--in-memory", "-c", remoteTLS)
	remoteAddr := rtls.addr()
	cfg := writeIn(t, dir, "tern.yaml", fmt.Sprintf(`
listeners:
  - addr: 127.0.0.1:0
sys_interval: 1s
bridges:
  - name: up
    remote: mqtts://%s
    tls:
      ca_file: ca.pem
    backoff_max: 500ms
    topics:
      - topic: data/#
        direction: out
        qos: 1
        remote_prefix: site1/
      - topic: cmd/#
        direction: in
        qos: 2
        remote_prefix: site1/
`, remoteAddr))
	local := startBroker(t, dir, "-c", cfg)
	local.waitLog(`msg="bridge started" bridge=up`)
	localURL := "tcp://" + local.addr()
	remoteURL := "mqtts://" + remoteAddr

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan string, 10)
	handle := func(m *client.Message) { got <- m.Topic + " " + string(m.Payload) }
	sys := mqtttest.Connect(t, client.Config{Servers: []string{localURL}})
	if _, err := sys.Subscribe(ctx, "$SYS/broker/bridges/up/state", 0, handle); err != nil {
		t.Fatal(err)
	}
	waitMsg := func(want string) {
		t.Helper()
		for {
			select {
			case m := <-got:
				if m == want {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %q\nlocal broker:\n%s", want, local)
			}
		}
	}
	waitMsg("$SYS/broker/bridges/up/state connected")
	rc := mqtttest.Connect(t, client.Config{Servers: []string{remoteURL}, TLS: pki.ClientConfig()})
	if _, err := rc.Subscribe(ctx, "site1/data/#", 1, handle); err != nil {
		t.Fatal(err)
	}
	lc := mqtttest.Connect(t, client.Config{Servers: []string{localURL}})
	if _, err := lc.Subscribe(ctx, "cmd/#", 1, handle); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Publish(ctx, &message.Message{Topic: "data/t", Payload: []byte("21"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	waitMsg("site1/data/t 21")
	// The bridge subscribes on the remote once connected; publish until
	// the command comes through.
	for {
		if _, err := rc.Publish(ctx, &message.Message{Topic: "site1/cmd/go", Payload: []byte("now"), QoS: 2}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m == "cmd/go now" {
				return
			}
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("no command from the remote\n%s", local)
		}
	}
}

// The example of README.md's section Bridges decodes.
func TestREADMEBridgesExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Bridges\n")
	_, block, ok2 := strings.Cut(section, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no section Bridges with a yaml block")
	}
	c := newBrokerConfig()
	if err := c.loadFile(writeFile(t, "tern.yaml", block)); err != nil {
		t.Fatalf("README.md's bridges example: %v", err)
	}
	if len(c.Bridges) != 1 || len(c.Bridges[0].Topics) != 2 {
		t.Errorf("decoded %+v", c.Bridges)
	}
}

// tern broker, with a bridge to a remote that is down, takes QoS 2
// messages, is killed with SIGKILL and started again on its data
// directory; when the remote comes up every message reaches it, once.
// max_queued 5 leaves most of the messages the bridge had taken in its
// subscription, not yet handed to the remote side, when it is killed.
func TestBridgeKill9(t *testing.T) {
	dir := t.TempDir()
	port, remotePort := freePort(t), freePort(t)
	cfg := writeIn(t, dir, "tern.yaml", fmt.Sprintf(`
listeners:
  - addr: 127.0.0.1:%s
store:
  data_dir: data
bridges:
  - name: up
    remote: mqtt://127.0.0.1:%s
    backoff_min: 20ms
    backoff_max: 200ms
    max_queued: 5
    topics:
      - topic: out/#
        qos: 2
`, port, remotePort))
	local := startBroker(t, dir, "-c", cfg)
	local.waitLog(`msg="bridge started" bridge=up`)
	localURL := "tcp://127.0.0.1:" + port

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub, err := client.New(client.Config{Servers: []string{localURL}, ClientID: "k9-pub"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		if _, err := pub.Publish(ctx, &message.Message{Topic: "out/x", Payload: []byte(fmt.Sprint(i)), QoS: 2}); err != nil {
			t.Fatal(err)
		}
	}
	pub.Disconnect(ctx)
	t.Logf("published %d; killing", n)
	local.kill()
	local = startBroker(t, dir, "-c", cfg)
	local.waitLog(`msg="bridge started" bridge=up`)

	// The remote, with its subscriber there before the bridge can connect.
	got := make(chan string, 2*n)
	remote := &broker.Server{Listeners: []broker.Listener{{Addr: "127.0.0.1:" + remotePort}}, SysInterval: -1, Logger: slog.New(slog.DiscardHandler)}
	if _, err := remote.Subscribe("out/#", 2, func(m *broker.Message) { got <- string(m.Payload) }); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- remote.ListenAndServe() }()
	defer func() {
		local.stop() // the bridge first, then its remote
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		remote.Shutdown(sctx)
		<-errc
	}()
	seen := map[string]int{}
	for len(seen) < n {
		select {
		case p := <-got:
			seen[p]++
		case <-ctx.Done():
			t.Fatalf("%d of %d messages reached the remote\n%s", len(seen), n, local)
		}
	}
	t.Logf("all %d on the remote", n)
	time.Sleep(200 * time.Millisecond) // duplicates, if any, have time to arrive
	for len(got) > 0 {
		seen[<-got]++
	}
	for p, c := range seen {
		if c != 1 {
			t.Errorf("message %s arrived %d times", p, c)
		}
	}
}

// A broker with a password file refuses a bridge without local
// credentials: tern broker says which key to set, and exits; with them it
// runs.
func TestBridgeLocalCredentials(t *testing.T) {
	dir := t.TempDir()
	writeIn(t, dir, "passwd", passwordLine(t, "bridge", "pw", false))
	conf := func(extra string) string {
		return writeIn(t, dir, "tern.yaml", `
listeners:
  - addr: 127.0.0.1:0
auth:
  password_file: passwd
bridges:
  - name: up
    remote: mqtt://127.0.0.1:1
`+extra+`    topics:
      - topic: t/#
`)
	}
	_, stderr, code := runTern(t, dir, "broker", "--in-memory", "-c", conf(""))
	if code == 0 || !strings.Contains(stderr, "tern.yaml:7: bridges[0].local_username: the broker refused the bridge's own connection") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	b := startBroker(t, dir, "--in-memory", "-c", conf("    local_username: bridge\n    local_password: pw\n"))
	b.waitLog(`msg="bridge started" bridge=up`)
}
