package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// TestProxyConfigErrors: every bad setting is named, with the fix.
func TestProxyConfigErrors(t *testing.T) {
	cases := []struct{ file, want string }{
		{"upstream: [tcp://127.0.0.1:1883]\n", `:1: unknown key "upstream" at the top level (did you mean upstreams?)`},
		{"upstreams: [tcp://127.0.0.1:1883]\ntopics:\n  upp: {allow: [a]}\n", `:3: unknown key "upp" in topics (did you mean up?)`},
		{"upstreams: [tcp://127.0.0.1:1883]\nlimits: {connect_timeout: soon}\n", "write a duration such as 10s"},
		{"upstreams: [tcp://127.0.0.1:1883]\ntopics: {up: {deny: [a/#/b]}}\n", `topics.up: deny[0] "a/#/b"`},
		{"upstreams: [tcp://127.0.0.1:1883]\nrewrite: {client_id: \"{cid}\"}\n", "unknown placeholder {cid}"},
		{"upstreams: [tcp://127.0.0.1:1883]\nrate_limit: {messages_per_second: 5, over_limit: shout}\n", `rate_limit.over_limit in`},
		{"upstreams: [foo://x]\n", `unknown scheme "foo"`},
		{"listen: [wss://127.0.0.1:0/mqtt]\nupstreams: [tcp://127.0.0.1:1883]\n", "needs a certificate: set tls.cert_file"},
		{"topics: []\n", "topics must be a mapping"},
		{"log_level: loud\nupstreams: [tcp://127.0.0.1:1883]\n", `"loud" is not one of debug, info, warn, error`},
	}
	for _, c := range cases {
		path := writeFile(t, "proxy.yaml", c.file)
		_, err := buildProxy(&proxyOptions{config: path}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error with %q", c.file, err, c.want)
		}
	}
	if _, err := buildProxy(&proxyOptions{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--upstream URL") {
		t.Errorf("no upstream: %v", err)
	}
	// The example configuration is valid as it stands.
	path := writeFile(t, "proxy.yaml", proxyExample)
	if _, err := buildProxy(&proxyOptions{config: path}, &bytes.Buffer{}); err != nil {
		t.Errorf("the example configuration: %v", err)
	}
}

// TestProxyBinary runs tern proxy with a configuration file in front of a
// Tern broker, checks a denied and an allowed PUBLISH, and stops it with
// SIGTERM.
func TestProxyBinary(t *testing.T) {
	b := mqtttest.StartBroker(t)
	cfg := writeFile(t, "proxy.yaml", "topics:\n  up:\n    deny: [\"secret/#\"]\nrewrite:\n  client_id: \"px-{client_id}\"\npacket_log: true\n")
	p := &brokerProc{t: t, more: make(chan struct{}, 1), done: make(chan error, 1)}
	p.cmd = exec.Command(ternBinary(t), "proxy", "--listen", "tcp://127.0.0.1:0", "--upstream", b.URL, "--config", cfg)
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			t.Errorf("tern proxy did not stop on SIGTERM:\n%s", p)
		}
	})
	addr := p.waitLog(`msg="proxy listening" .*addr=(\S+)`)[1]
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatal(err)
	}
	c := mqtttest.DialRaw(t, addr, packet.V5)
	c.Connect(&packet.Connect{ClientID: "bin", CleanStart: true})
	c.Send(&packet.Publish{Topic: "secret/x", QoS: 1, PacketID: 1})
	if ack := mqtttest.Expect[*packet.Puback](c); ack.ReasonCode != packet.NotAuthorized {
		t.Fatalf("denied PUBLISH: %v, want PUBACK 0x87", ack)
	}
	c.Send(&packet.Publish{Topic: "open/x", QoS: 1, PacketID: 2})
	if ack := mqtttest.Expect[*packet.Puback](c); ack.ReasonCode >= 0x80 {
		t.Fatalf("allowed PUBLISH: %v", ack)
	}
	p.waitLog(`dir=up packet="PUBLISH topic=\\"open/x\\"`)
	p.waitLog(`client_id=bin`)
	c.Close()
	p.cmd.Process.Signal(os.Interrupt)
	p.waitLog(`msg=stopped`)
}

// TestREADMEProxyConfig: the configuration in README.md's MQTT proxy
// section has only known keys, of the right types.
func TestREADMEProxyConfig(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(readme), "\n## MQTT proxy\n")
	_, block, ok2 := strings.Cut(sec, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no MQTT proxy section with a yaml block")
	}
	f, err := loadProxyFile(writeFile(t, "proxy.yaml", block))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Upstreams) != 2 || f.RateLimit.OverLimit != "disconnect" || f.Limits.DialTimeout != 5*time.Second {
		t.Fatalf("decoded %+v", f)
	}
}
