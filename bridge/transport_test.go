package bridge_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/bridge"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/transport"
)

// users is an Authenticator with a fixed table of user names and
// passwords.
type users map[string]string

func (u users) Authenticate(_ context.Context, req *broker.AuthRequest) error {
	if p, ok := u[req.Username]; ok && p == string(req.Password) {
		return nil
	}
	return broker.ErrBadCredentials
}

// The bridge reaches the remote over every transport the client dials:
// TLS (verified against a CA file, with credentials and a client
// certificate), WebSocket, secure WebSocket and a unix socket.
func TestRemoteTransports(t *testing.T) {
	mqtttest.LeakCheck(t)
	pki, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.Client("bridge-client")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := writeCert(t, cert)
	sock := filepath.Join(t.TempDir(), "remote.sock")
	tlsCfg := &transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile}
	remote := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{
		SysInterval:   -1,
		Authenticator: users{"bridge": "s3cret", "": ""},
		Listeners: []broker.Listener{
			{Type: "tcp", Addr: "127.0.0.1:0"},
			{Type: "tls", Addr: "127.0.0.1:0", TLS: tlsCfg},
			{Type: "ws", Addr: "127.0.0.1:0"},
			{Type: "wss", Addr: "127.0.0.1:0", TLS: tlsCfg},
			{Type: "unix", Addr: sock},
			{Name: "tls-client-cert", Type: "tls", Addr: "127.0.0.1:0", TLS: &transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile,
				ClientCAFile: pki.CAFile, ClientAuth: transport.ClientAuthRequire}},
		},
	}})
	local := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	urls := map[string]string{
		"tls":  "mqtts://" + remote.Addrs[1].String(),
		"ws":   "ws://" + remote.Addrs[2].String() + "/mqtt",
		"wss":  "wss://" + remote.Addrs[3].String() + "/mqtt",
		"unix": "unix://" + sock,
		"cert": "mqtts://" + remote.Addrs[5].String(),
	}
	names := []string{"tls", "ws", "wss", "unix", "cert"}
	onRemote := subscribe(t, remote.URL, "#", 1, packet.V5)
	pub := publisher(t, local.URL, packet.V5)
	for _, name := range names {
		cfg := bridge.Config{Name: name, Remote: urls[name], Username: "bridge", Password: "s3cret", Logger: quietLogger(t),
			Topics: []bridge.Mapping{{Topic: name + "/#", QoS: 1}}}
		if strings.HasPrefix(urls[name], "mqtts") || strings.HasPrefix(urls[name], "wss") {
			cfg.TLS = &bridge.TLS{CAFile: pki.CAFile}
		}
		if name == "cert" {
			cfg.TLS.CertFile, cfg.TLS.KeyFile = certFile, keyFile
		}
		br := startBridge(t, local.Server, cfg)
		waitConnected(t, br)
		publish(t, pub, name+"/x", name, 1)
	}
	waitUntil(t, "a message over each transport", func() bool { return onRemote.Count() >= len(names) })
	for _, name := range names {
		if onRemote.Payloads()[name] != 1 {
			t.Errorf("%s: got %v", name, onRemote.Payloads())
		}
	}
}

// writeCert writes a loaded certificate and its key as PEM files.
func writeCert(t *testing.T, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	var certPEM []byte
	for _, der := range c.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// With TLS.Insecure the bridge connects to a remote whose certificate
// does not verify, and leaves the password out unless InsecurePassword.
func TestRemoteTLSInsecure(t *testing.T) {
	mqtttest.LeakCheck(t)
	pki, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	remote := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1, Authenticator: users{"bridge": "pw", "": ""},
		Listeners: []broker.Listener{{Type: "tls", Addr: "127.0.0.1:0", TLS: &transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile}}}}})
	local := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	url := "mqtts://" + remote.Addrs[0].String()
	noPass := startBridge(t, local.Server, bridge.Config{Name: "nopass", Remote: url, Username: "bridge", Password: "pw",
		TLS: &bridge.TLS{Insecure: true}, Logger: quietLogger(t), Topics: []bridge.Mapping{{Topic: "t/#"}}})
	waitUntil(t, "a refusal without the password", func() bool { return noPass.Status().LastError != "" })
	t.Logf("without InsecurePassword: %s", noPass.Status().LastError)
	br := startBridge(t, local.Server, bridge.Config{Name: "insecure", Remote: url, Username: "bridge", Password: "pw",
		TLS: &bridge.TLS{Insecure: true, InsecurePassword: true}, Logger: quietLogger(t), Topics: []bridge.Mapping{{Topic: "t/#"}}})
	waitConnected(t, br)
}

// A remote whose certificate does not verify is not connected to, and the
// bridge says why.
func TestRemoteTLSUnverified(t *testing.T) {
	mqtttest.LeakCheck(t)
	pki, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	remote := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1,
		Listeners: []broker.Listener{{Type: "tls", Addr: "127.0.0.1:0", TLS: &transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile}}}}})
	local := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	br := startBridge(t, local.Server, bridge.Config{Name: "unverified", Remote: "mqtts://" + remote.Addrs[0].String(), Logger: quietLogger(t),
		Topics: []bridge.Mapping{{Topic: "t/#"}}})
	waitUntil(t, "a certificate error", func() bool { return strings.Contains(br.Status().LastError, "certificate") })
	if br.Status().Connected {
		t.Fatal("connected to a remote whose certificate is not trusted")
	}
}

// A local broker that asks for credentials gets the bridge's
// LocalUsername and LocalPassword; without them Start fails and says what
// to set.
func TestLocalCredentials(t *testing.T) {
	mqtttest.LeakCheck(t)
	remote := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1}})
	local := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: -1, Authenticator: users{"br": "pw"}}})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, err := bridge.Start(ctx, local.Server, bridge.Config{Name: "nocreds", Remote: remote.URL, Logger: quietLogger(t), Topics: []bridge.Mapping{{Topic: "t/#"}}})
	var fe *bridge.FieldError
	if !errors.As(err, &fe) || fe.Field != "LocalUsername" {
		t.Fatalf("Start without local credentials: %v, want an error naming LocalUsername", err)
	}
	br := startBridge(t, local.Server, bridge.Config{Name: "creds", Remote: remote.URL, LocalUsername: "br", LocalPassword: "pw", Logger: quietLogger(t),
		Topics: []bridge.Mapping{{Topic: "t/#", QoS: 1}}})
	waitConnected(t, br)
}

// Bad configurations are refused with the field named.
func TestValidate(t *testing.T) {
	ok := bridge.Config{Name: "b", Remote: "mqtt://127.0.0.1:1883", Topics: []bridge.Mapping{{Topic: "t/#"}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a good config: %v", err)
	}
	for _, tc := range []struct {
		field string
		edit  func(c *bridge.Config)
	}{
		{"Name", func(c *bridge.Config) { c.Name = "" }},
		{"Name", func(c *bridge.Config) { c.Name = "a/b" }},
		{"Remote", func(c *bridge.Config) { c.Remote = "" }},
		{"Remote", func(c *bridge.Config) { c.Remote = "http://x:1" }},
		{"Remote", func(c *bridge.Config) { c.Remote = "127.0.0.1" }},
		{"Version", func(c *bridge.Config) { c.Version = 6 }},
		{"Topics", func(c *bridge.Config) { c.Topics = nil }},
		{"Topics[0].Topic", func(c *bridge.Config) { c.Topics[0].Topic = "" }},
		{"Topics[0].Topic", func(c *bridge.Config) { c.Topics[0].Topic = "a/#/b" }},
		{"Topics[0].Topic", func(c *bridge.Config) { c.Topics[0].Topic = "$share/g/t" }},
		{"Topics[0].Direction", func(c *bridge.Config) { c.Topics[0].Direction = "sideways" }},
		{"Topics[0].QoS", func(c *bridge.Config) { c.Topics[0].QoS = 3 }},
		{"Topics[0].LocalPrefix", func(c *bridge.Config) { c.Topics[0].LocalPrefix = "a/+/" }},
		{"TLS.CertFile", func(c *bridge.Config) { c.TLS = &bridge.TLS{CertFile: "c.pem"} }},
		{"BackoffMin", func(c *bridge.Config) { c.BackoffMin, c.BackoffMax = 2, 1 }},
		{"KeepAlive", func(c *bridge.Config) { c.KeepAlive = -1 }},
		{"ClientID", func(c *bridge.Config) { c.Version, c.ClientID = packet.V31, "a-client-id-longer-than-23" }},
		{"SessionExpiry", func(c *bridge.Config) { c.SessionExpiry = -time.Second }},
	} {
		c := ok
		c.Topics = append([]bridge.Mapping(nil), ok.Topics...)
		tc.edit(&c)
		err := c.Validate()
		var fe *bridge.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: got %v, want a FieldError for %s", tc.field, err, tc.field)
			continue
		}
		t.Logf("%v", err)
	}
}
