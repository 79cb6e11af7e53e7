package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/transport"
)

// TestPubSubTransports publishes and subscribes over every transport:
// TCP, TLS with a client certificate (--cafile, --cert, --key, and -L
// mqtts://), WebSocket (-L ws://), secure WebSocket, a unix socket
// (--unix, -L unix://), SOCKS5 (--proxy), and from a local address (-A).
func TestPubSubTransports(t *testing.T) {
	tern := ternBinary(t)
	dir := t.TempDir()
	pki, err := testpki.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Client("cli"); err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "client-cli.pem"), filepath.Join(dir, "client-cli.key")
	requireCert := &transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile, ClientCAFile: pki.CAFile, ClientAuth: transport.ClientAuthRequire}
	sock := filepath.Join(dir, "mqtt.sock")
	b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{Listeners: []broker.Listener{
		{Type: "tcp", Addr: "127.0.0.1:0"},
		{Type: "tls", Addr: "127.0.0.1:0", TLS: requireCert},
		{Type: "ws", Addr: "127.0.0.1:0"},
		{Type: "wss", Addr: "127.0.0.1:0", TLS: requireCert},
		{Type: "unix", Addr: sock},
	}}})
	addrs := b.Addrs
	tcpPort, tlsPort, wsPort, wssPort := port(addrs[0].String()), port(addrs[1].String()), port(addrs[2].String()), port(addrs[3].String())
	proxy := mqtttest.StartSOCKS5(t)
	tlsArgs := []string{"--cafile", pki.CAFile, "--cert", cert, "--key", key}
	for _, c := range []struct {
		name string
		args []string // connection options; -t comes after
		url  bool     // -L carries the topic
	}{
		{"tcp", []string{"-h", "127.0.0.1", "-p", tcpPort}, false},
		{"tls", append([]string{"-h", "localhost", "-p", tlsPort}, tlsArgs...), false},
		{"mqtts url", append([]string{"-L", "mqtts://localhost:" + tlsPort + "/tr/mqtts-url"}, tlsArgs...), true},
		{"ws", []string{"-L", "ws://127.0.0.1:" + wsPort + "/tr/ws"}, true},
		{"wss", append([]string{"-L", "wss://localhost:" + wssPort + "/tr/wss"}, tlsArgs...), true},
		{"unix", []string{"--unix", sock}, false},
		{"unix url", []string{"-L", "unix://" + sock}, false},
		{"socks5", []string{"-h", "127.0.0.1", "-p", tcpPort, "--proxy", "socks5h://" + proxy.Addr}, false},
		{"bind", []string{"-h", "127.0.0.1", "-p", tcpPort, "-A", "127.0.0.1"}, false},
		{"bind tls", append([]string{"-h", "localhost", "-p", tlsPort, "-A", "127.0.0.1"}, tlsArgs...), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tp := "tr/" + strings.ReplaceAll(c.name, " ", "-")
			topicArgs := []string{"-t", tp}
			if c.url {
				topicArgs = nil
			}
			pub := append(append(append([]string{"pub"}, c.args...), topicArgs...), "-r", "-q", "1", "-m", "over "+c.name)
			if code, out, e := runProc(t, tern, pub...); code != 0 {
				t.Fatalf("%q: exit %d %s %s", pub, code, out, e)
			}
			sub := append(append(append([]string{"sub"}, c.args...), topicArgs...), "-C", "1", "-W", "20", "-v")
			code, out, e := runProc(t, tern, sub...)
			if code != 0 || out != tp+" over "+c.name+"\n" {
				t.Errorf("%q: exit %d, %q %s", sub, code, out, e)
			}
			runProc(t, tern, append(append(append([]string{"pub"}, c.args...), topicArgs...), "-r", "-n")...)
		})
	}
	if n := len(proxy.Targets()); n < 2 {
		t.Errorf("%d connections through the SOCKS5 proxy, want 2 at least", n)
	}
	// Without the client certificate the TLS listener refuses; without
	// --cafile the certificate is unknown: exit status 1.
	if code, _, e := runProc(t, tern, "pub", "-h", "localhost", "-p", tlsPort, "--cafile", pki.CAFile, "-t", "a", "-m", "b"); code != 1 {
		t.Errorf("no client certificate: exit %d %s", code, e)
	}
	if code, _, e := runProc(t, tern, "pub", "-h", "localhost", "-p", tlsPort, "--tls-use-os-certs", "-t", "a", "-m", "b"); code != 1 || !strings.Contains(e, "certificate") {
		t.Errorf("unknown CA: exit %d %s", code, e)
	}
}
