package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/mqtttest"
)

// engineAuth is a cluster: section's credentials and TLS keys.
type engineAuth struct {
	url, extra string // extra: more cluster keys, indented by 2
	pki        *testpki.PKI
	cert, key  string
}

func (a engineAuth) config(t *testing.T, name string) string {
	return writeFile(t, name+".yaml", fmt.Sprintf("cluster:\n  url: %s\n  node: %s\n%s  tls:\n    ca_file: %s\n    cert_file: %s\n    key_file: %s\n",
		a.url, name, a.extra, a.pki.CAFile, a.cert, a.key))
}

// startAuthNodes starts three brokers with the configuration of a.
func startAuthNodes(t *testing.T, a engineAuth) []*brokerProc {
	var nodes []*brokerProc
	for i := range 3 {
		nodes = append(nodes, launchBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--in-memory", "-c", a.config(t, fmt.Sprint("node", i+1))))
	}
	for i, n := range nodes {
		n.waitLog(fmt.Sprintf(`msg="joined the back plane" .*node=node%d`, i+1))
	}
	return nodes
}

func newPKI(t *testing.T) (*testpki.PKI, string, string) {
	pki, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := pki.ClientFiles("tern")
	if err != nil {
		t.Fatal(err)
	}
	return pki, cert, key
}

// TestBrokerClusterRedisTLS: three brokers on a redis-server that takes
// TLS only with a client certificate and an ACL user with a password.
func TestBrokerClusterRedisTLS(t *testing.T) {
	pki, cert, key := newPKI(t)
	tlsPort := mqtttest.FreePort(t)
	r := mqtttest.StartRedis(t, mqtttest.RedisOptions{Args: []string{"--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", pki.CertFile, "--tls-key-file", pki.KeyFile, "--tls-ca-cert-file", pki.CAFile, "--tls-auth-clients", "yes",
		"--user", "tern", "on", ">secret", "~*", "&*", "+@all"}})
	_ = r
	a := engineAuth{url: fmt.Sprintf("rediss://127.0.0.1:%d", tlsPort), extra: "  user: tern\n  password: secret\n", pki: pki, cert: cert, key: key}
	testThreeNodes(t, startAuthNodes(t, a))

	// A wrong password, or no client certificate: the broker says so.
	bad := a
	bad.extra = "  user: tern\n  password: wrong\n"
	_, errOut, code := runTern(t, "", "broker", "--in-memory", "--listen", "tcp://127.0.0.1:0", "-c", bad.config(t, "bad"))
	if code == 0 || !strings.Contains(errOut, "WRONGPASS") {
		t.Errorf("wrong password: exit %d, stderr:\n%s", code, errOut)
	}
	noCert := writeFile(t, "nocert.yaml", fmt.Sprintf("cluster:\n  url: %s\n  user: tern\n  password: secret\n  tls:\n    ca_file: %s\n", a.url, pki.CAFile))
	if _, errOut, code := runTern(t, "", "broker", "--in-memory", "--listen", "tcp://127.0.0.1:0", "-c", noCert); code == 0 {
		t.Errorf("no client certificate: exit 0, stderr:\n%s", errOut)
	}
}

// natsTLSConf is a nats-server tls block requiring client certificates.
func natsTLSConf(pki *testpki.PKI) string {
	return fmt.Sprintf("tls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n  verify: true\n}\n", pki.CertFile, pki.KeyFile, pki.CAFile)
}

// TestBrokerClusterNATSTLS: three brokers on Debian's nats-server with
// TLS and client certificates, logging in with a user and password, then
// with a token.
func TestBrokerClusterNATSTLS(t *testing.T) {
	pki, cert, key := newPKI(t)
	tlsOpts := []nats.Option{nats.RootCAs(pki.CAFile), nats.ClientCert(cert, key)}
	s := mqtttest.StartNATSServer(t, mqtttest.NATSServerOptions{
		Config:         natsTLSConf(pki) + "authorization {\n  user: tern\n  password: secret\n}\n",
		ConnectOptions: append(tlsOpts, nats.UserInfo("tern", "secret"))})
	a := engineAuth{url: "tls://" + s.Addr, extra: "  user: tern\n  password: secret\n", pki: pki, cert: cert, key: key}
	testThreeNodes(t, startAuthNodes(t, a))

	bad := a
	bad.extra = "  user: tern\n  password: wrong\n"
	_, errOut, code := runTern(t, "", "broker", "--in-memory", "--listen", "tcp://127.0.0.1:0", "-c", bad.config(t, "bad"))
	if code == 0 || !strings.Contains(strings.ToLower(errOut), "authorization") {
		t.Errorf("wrong password: exit %d, stderr:\n%s", code, errOut)
	}
}

func TestBrokerClusterNATSToken(t *testing.T) {
	pki, cert, key := newPKI(t)
	s := mqtttest.StartNATSServer(t, mqtttest.NATSServerOptions{
		Config:         natsTLSConf(pki) + "authorization {\n  token: s3cr3t\n}\n",
		ConnectOptions: []nats.Option{nats.RootCAs(pki.CAFile), nats.ClientCert(cert, key), nats.Token("s3cr3t")}})
	a := engineAuth{url: "nats://" + s.Addr, extra: "  token: s3cr3t\n", pki: pki, cert: cert, key: key}
	testThreeNodes(t, startAuthNodes(t, a))
}

// TestBrokerClusterAuthBadConfig: credentials that do not fit the engine
// are refused with an error naming the key.
func TestBrokerClusterAuthBadConfig(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{"cluster:\n  url: redis://127.0.0.1:1\n  token: x\n", "cluster.token is for NATS"},
		{"cluster:\n  url: nats://127.0.0.1:1\n  token: x\n  user: u\n", "one way to log in"},
		{"cluster:\n  url: nats://127.0.0.1:1\n  creds_file: /nonexistent.creds\n", "cluster.creds_file"},
		{"cluster:\n  url: nats://127.0.0.1:1\n  tls:\n    cert_file: /x.pem\n", "cluster.tls.key_file"},
		{"cluster:\n  url: nats://127.0.0.1:1\n  tls:\n    ca_file: /nonexistent.pem\n", "cluster.tls.ca_file"},
		{"cluster:\n  user: u\n", "but no cluster"},
		{"cluster:\n  user: u\n  embedded:\n    listen: 127.0.0.1:0\n", "embedded NATS server's routes"},
	} {
		_, errOut, code := runTern(t, "", "broker", "--in-memory", "--listen", "tcp://127.0.0.1:0", "-c", writeFile(t, "c.yaml", tc.conf))
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr lacks %q:\n%s", tc.conf, code, tc.want, errOut)
		}
	}
}
